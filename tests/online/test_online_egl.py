"""The online policy on the eGLB study's real data (egl-2022, shared folder required).

The issue's goal: with the study's weights (energy + 60 USD/m3 max water + 1500 USD/t max
carbon) the pure online policy's objective is within 2 % of the hindsight optimum (the
study's own online algorithm lands near 3 %). Default settings, no tuning in the test.
"""

from __future__ import annotations

import math

from eqglb.costs import Objective
from eqglb.io.egl2022 import load_egl2022
from eqglb.online import OnlineDMD, simulate_online
from eqglb.policies import EquitableOffline
from eqglb.simulate import evaluate

STUDY = Objective(mu_carbon=1.5, mu_water=0.06, q_carbon=math.inf, q_water=math.inf)


def test_online_within_two_percent_of_hindsight_on_egl2022(shared_dir):
    sc = load_egl2022(shared_dir / "data" / "egl-2022", "full")
    online = evaluate(sc, simulate_online(sc, OnlineDMD(STUDY)), STUDY)
    offline = evaluate(sc, EquitableOffline(STUDY).plan(sc), STUDY)
    assert online.feasibility.ok(1e-6)
    gap = online.objective / offline.objective - 1.0
    assert 0.0 <= gap < 0.02, f"online gap {100 * gap:.2f} %"
