"""benchmarks/bench_growth.py --quick runs at tiny sizes and prints a fitted exponent per axis."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    path = ROOT / "benchmarks" / "bench_growth.py"
    spec = importlib.util.spec_from_file_location("bench_growth", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fit_exponent_recovers_a_power_law():
    mod = _load()
    x = [10.0, 20.0, 40.0, 80.0]
    assert mod.fit_exponent(x, [3.0 * v**1.5 for v in x]) == pytest.approx(1.5)
    assert math.isnan(mod.fit_exponent([5.0, 5.0], [1.0, 2.0]))


def test_quick_growth_prints_exponents(capsys, tmp_path):
    mod = _load()
    out = tmp_path / "growth.json"
    assert mod.main(["--quick", "--axes", "T", "classes", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fitted log-log exponents" in text
    for axis in ("T", "classes"):
        assert f"exponent {axis} q=2: time ~ {axis}^" in text
    import json

    res = json.loads(out.read_text())
    rows = res["axes"]["T"]["2"]
    assert [r["T"] for r in rows] == [24, 48, 96]
    assert all(0 <= r["gap"] <= 1e-2 + 1e-12 for r in rows)
    # fewer nearest data centres per region: at least as many route classes
    classes = [r["classes"] for r in res["axes"]["classes"]["2"]]
    assert classes[0] == 1 and classes == sorted(classes)
    assert math.isfinite(res["exponents"]["T"]["2"]["time"])
