"""The examples run: the quick-start notebook (nbclient) and the example scripts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart_notebook_runs():
    """Every cell runs (its own checks included) and the plot cell draws a figure."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = "\n".join(
        o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream"
    )
    assert "checks passed" in text
    assert "price of fairness" in text
    images = [o for o in code[-1].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1


def test_egl2022_study_runs_and_each_policy_is_optimal_for_its_objective(
    shared_dir, tmp_path, capsys
):
    mod = _load("egl2022_study")
    rows = mod.main(
        ["--data", str(shared_dir / "data" / "egl-2022"), "--hours", "48", "--out", str(tmp_path)]
    )
    assert set(rows) == {
        "nearest",
        "energy",
        "carbon",
        "water",
        "eglb",
        "equitable (q = 2, defaults)",
    }
    # all five study policies are scored with eGLB-Off's objective: eglb minimises it
    eglb = rows["eglb"]["objective_usd"]
    for name in ("nearest", "energy", "carbon", "water"):
        assert eglb <= rows[name]["objective_usd"] * (1 + 1e-6), name
    # single model, so the energy baseline is the true cost-only optimum
    assert rows["energy"]["energy_cost_usd"] <= min(r["energy_cost_usd"] for r in rows.values()) * (
        1 + 1e-6
    )
    assert rows["carbon"]["carbon_total_kg"] <= min(r["carbon_total_kg"] for r in rows.values()) * (
        1 + 1e-6
    )
    assert rows["water"]["water_total_l"] <= min(r["water_total_l"] for r in rows.values()) * (
        1 + 1e-6
    )
    assert (tmp_path / "comparison.csv").read_text().count("\n") == 7
    assert "48 hourly slots" in capsys.readouterr().out


def test_egl2022_study_refuses_a_missing_data_folder(tmp_path, capsys):
    mod = _load("egl2022_study")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--data", str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    assert "--data" in capsys.readouterr().err


def test_azure_byod_aligns_by_name_and_compares(shared_dir, capsys):
    mod = _load("azure_byod")
    trace = shared_dir / "data" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
    sc, evals = mod.main(["--trace", str(trace)])
    out = capsys.readouterr().out
    # demand: 5 x every request of the trace, spread with weights that sum to 1
    with trace.open() as fh:
        n_requests = sum(1 for _ in fh) - 1
    assert sc.demand.sum() == pytest.approx(5 * n_requests)
    # the price frame's columns were (tokyo, virginia, dublin): aligned by name, and
    # converted from USD/MWh; tokyo's price in slot 0 is 140 + 5 sin(hour) [USD/MWh]
    t0 = sc.time[0]
    hour = t0.hour + t0.minute / 60.0
    tokyo = sc.datacenters.index("tokyo")
    assert sc.price[0, tokyo] == pytest.approx((140.0 + 5 * np.sin(hour)) / 1000.0)
    assert sc.carbon_intensity[0, sc.datacenters.index("dublin")] == pytest.approx(0.29)
    # energy per request = Wh/token x mean output tokens, in kWh
    from eqglb.io.azure import azure_arrivals

    tokens = azure_arrivals(trace, slot="5min").attrs["mean_generated_tokens"]
    np.testing.assert_allclose(sc.energy_per_request[:, 0], 0.01 * tokens / 1000.0)
    np.testing.assert_allclose(sc.energy_per_request[:, 1], 0.05 * tokens / 1000.0)
    assert evals["equitable"].objective <= min(ev.objective for ev in evals.values()) * (1 + 1e-6)
    assert "worst carbon_max_kg" in out and "large-70b" in out
