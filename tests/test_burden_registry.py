"""A burden declared once in the registry reaches every consumer without other edits.

A fifth burden ``noise`` (per data centre, twice the on-site water intensity, so no new
scenario field is needed) is added to :data:`eqglb.burdens.BURDENS` for the test; the
objective, the structured solver, the cvxpy reference, the online policy and the evaluator
must all carry it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import eqglb.burdens as burdens
from eqglb.costs import Objective, coefficients, regional_costs
from eqglb.online import simulate_online
from eqglb.policies import make_policy
from eqglb.simulate import evaluate
from eqglb.testing import random_scenario


@pytest.fixture
def with_noise(monkeypatch):
    noise = burdens.Burden(
        name="noise",
        label="noise",
        symbol="N",
        side="datacenter",
        unit="dB",
        weight_unit="USD/dB",
        fields=("wue",),
        factor=lambda get: 2.0 * np.asarray(get("wue")),
        combinable=False,
        default_mu=0.0,
        help="a test burden",
    )
    monkeypatch.setitem(burdens.BURDENS, "noise", noise)  # the one shared table
    return noise


def test_a_registered_burden_is_solved_and_scored_everywhere(with_noise):
    sc = random_scenario(np.random.default_rng(11), 3, 3, 2, 2)
    obj = Objective(mu_social=1.0, mu_carbon=0.1, mu_noise=0.5, q_noise=math.inf)
    assert obj.mu_noise == 0.5 and "noise" in obj.terms
    coef = coefficients(sc)
    want = 2.0 * np.asarray(sc.wue)[:, :, None] * np.asarray(sc.energy_per_request)[None]
    np.testing.assert_allclose(coef.noise, want)
    values = {}
    for name in ("equitable", "reference"):
        ev = evaluate(sc, make_policy(name, obj).plan(sc), obj)
        assert "noise" in ev.burdens and "noise" in ev.summary
        values[name] = ev.objective
    assert values["equitable"] == pytest.approx(values["reference"], rel=1e-5)
    # pricing the new burden changes the optimum's worst site
    plain = evaluate(sc, make_policy("equitable", obj.replace(mu_noise=0.0)).plan(sc), obj)
    priced = evaluate(sc, make_policy("equitable", obj).plan(sc), obj)
    assert max(priced.noise.values()) <= max(plain.noise.values()) * (1 + 1e-9)
    d = simulate_online(sc, make_policy("online", obj))
    y = np.asarray(d.y)
    np.testing.assert_allclose(
        list(evaluate(sc, d, obj).noise.values()), regional_costs(coef, y).noise, rtol=1e-12
    )


def test_further_burdens_are_those_every_evaluation_reports_and_priced_on_request():
    """The reports' burdens beyond quality, carbon and water (eqglb.burdens.further_burdens)."""
    from types import SimpleNamespace

    core = {k: {} for k in burdens.ALWAYS_SHOWN}
    with_h = SimpleNamespace(burdens={**core, "health": {}})
    without = SimpleNamespace(burdens=core)
    assert burdens.further_burdens([with_h]) == ["health"]
    assert burdens.further_burdens([with_h, without]) == []
    assert burdens.further_burdens([]) == []
    assert burdens.further_burdens([with_h], priced_by=Objective(mu_health=0.0)) == []
    assert burdens.further_burdens([with_h], priced_by=Objective(mu_health=1.0)) == ["health"]
