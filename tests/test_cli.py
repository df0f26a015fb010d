"""The command line, run in-process through ``eqglb.cli.main(argv)``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from eqglb.cli import DEFAULT_MODEL_RULE, DEFAULT_POLICIES, ModelRule, main
from eqglb.io.scenario_format import read_scenario, write_scenario
from eqglb.policies import DESCRIPTIONS, REGISTRY
from eqglb.testing import random_scenario

EXPECTED_FILES = {
    "metrics.json",
    "regions.csv",
    "dispatch.parquet",
    "report.md",
    "report.html",
    "regional_carbon.png",
    "regional_water.png",
    "regional_quality_loss.png",
}


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory):
    """A small random scenario written as a scenario folder (3 DCs, 3 regions, 2 models)."""
    sc = random_scenario(np.random.default_rng(5), T=4, N=3, J=3, K=2)
    path = tmp_path_factory.mktemp("cli") / "scenario"
    write_scenario(sc.replace(name="tiny"), path)
    return path


@pytest.fixture(scope="module")
def default_run(scenario_dir, tmp_path_factory):
    """`eqglb run --scenario DIR --out OUT` with every default policy."""
    out = tmp_path_factory.mktemp("cli") / "out"
    code = main(["run", "--scenario", str(scenario_dir), "--out", str(out)])
    return code, out


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())["policies"]


def _doc(out):
    return json.loads((out / "metrics.json").read_text())


def test_run_writes_every_file_with_exit_code_0(default_run):
    code, out = default_run
    assert code == 0
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES
    for p in out.iterdir():
        assert p.stat().st_size > 0, p.name


def test_metrics_json_schema(default_run, scenario_dir):
    _, out = default_run
    sc = read_scenario(scenario_dir)
    data = _metrics(out)
    assert list(data) == list(DEFAULT_POLICIES)
    for name, m in data.items():
        assert isinstance(m["energy_cost"], float) and isinstance(m["objective"], float)
        assert list(m["carbon_kg"]) == list(sc.datacenters)
        assert list(m["water_l"]) == list(sc.datacenters)
        assert list(m["quality_loss"]) == list(sc.regions)
        assert all(v >= 0 for v in m["carbon_kg"].values())
        assert m["solve"]["status"] == "optimal", name
        assert m["baseline"] == "weighted"
        assert m["overheads_pct"]["energy_cost"] == pytest.approx(
            100
            * (m["energy_cost"] - data["weighted"]["energy_cost"])
            / abs(data["weighted"]["energy_cost"])
        )
        assert m["totals"]["requests"] == pytest.approx(float(np.asarray(sc.demand).sum()))
    # one objective scores every policy; the equitable policy is its optimum
    best = min(m["objective"] for m in data.values())
    assert data["equitable"]["objective"] == pytest.approx(best, rel=1e-6)


def test_metrics_json_records_provenance_and_headline(default_run, scenario_dir):
    _, out = default_run
    doc = _doc(out)
    prov = doc["provenance"]
    from eqglb import __version__
    from eqglb.comparison import scenario_hash

    assert prov["eqglb_version"] == __version__
    assert prov["scenario"]["hash"] == scenario_hash(read_scenario(scenario_dir))
    assert prov["model_rule"] == "weighted" and prov["q"]["carbon"] == 2.0
    assert prov["command"].startswith("eqglb")
    head = doc["headline"]
    pol = doc["policies"]
    worst = head["worst"]["carbon_max_kg"]
    assert worst["equitable"] == pytest.approx(max(pol["equitable"]["carbon_kg"].values()))
    assert worst["oblivious"] == pytest.approx(max(pol["weighted"]["carbon_kg"].values()))
    # the equitable row can only cost more in the q = 1 objective than its optimum
    v = head["price_of_fairness"]["q1_objective_usd"]
    assert v["equitable"] >= v["oblivious"] * (1 - 1e-6)
    assert head["cost_only"]["energy_cost_usd"] == pytest.approx(pol["cost-only"]["energy_cost"])
    assert min(m["energy_cost"] for m in pol.values()) == pytest.approx(
        pol["cost-only"]["energy_cost"], rel=1e-7
    )
    # the term split adds up to the objective; switches and the frontier are recorded
    assert sum(doc["term_shares"].values()) == pytest.approx(1.0)
    assert [r["equity_on"] for r in doc["switches"]] == [
        "none",
        "quality",
        "carbon",
        "water",
        "all",
    ]
    qs = [r["q"] for r in doc["frontier"]]
    assert qs[0] == 1.0 and qs[-1] is None or qs[-1] == "inf" or math.isinf(float(qs[-1]))
    assert all(r["status"] == "optimal" for r in doc["frontier"])
    # the figures carry the same provenance
    from PIL import Image

    png = Image.open(out / "regional_carbon.png")
    assert json.loads(png.text["Description"])["scenario"]["hash"] == prov["scenario"]["hash"]
    assert png.text["Software"] == f"eqglb {__version__}"


def test_output_files_agree_with_metrics(default_run):
    _, out = default_run
    data = _metrics(out)
    regions = pd.read_csv(out / "regions.csv")
    carbon = regions[regions["cost"] == "carbon"].groupby("policy", sort=False)["value"].sum()
    for name, m in data.items():
        assert carbon[name] == pytest.approx(m["totals"]["carbon_kg"], rel=1e-8)
    disp = pd.read_parquet(out / "dispatch.parquet")
    served = disp.groupby("policy", observed=True)["requests"].sum()
    for name, m in data.items():
        assert served[name] == pytest.approx(m["totals"]["requests"], rel=1e-8)
    report = (out / "report.md").read_text()
    assert all(f"| {name} |" in report for name in data)


def test_table_on_stdout_lists_policies_and_objective(scenario_dir, capsys):
    code = main(
        [
            "run",
            "--scenario",
            str(scenario_dir),
            "-p",
            "carbon",
            "-p",
            "equitable",
            "--q",
            "2",
            "--mu-carbon",
            "0.5",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "mu_carbon 0.5 " in text
    assert f"{0.5 * math.sqrt(3):g} ||C||_2" in text  # normalised: 0.5 x 3^(1 - 1/2)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    # the baseline (weighted) is added to the requested policies; two tables
    names = [r.strip("│ ").split()[0] for r in rows]
    assert names == ["weighted", "carbon", "equitable"] * 2
    assert max(len(line) for line in text.splitlines() if line.startswith(("│", "┃"))) <= 100
    assert "Running HiGHS" not in text


def test_per_term_q_and_switches_reach_the_objective(scenario_dir, tmp_path):
    out = tmp_path / "o"
    code = main(
        [
            "run",
            "--scenario",
            str(scenario_dir),
            "-p",
            "energy",
            "-p",
            "equitable",
            "--q",
            "2",
            "--q-carbon",
            "inf",
            "--mu-social",
            "3",
            "--combined-env",
            "--total-quality",
            "--mu-water",
            "0",
            "--out",
            str(out),
            "--no-plots",
        ]
    )
    assert code == 0
    spec = _metrics(out)["equitable"]["objective_spec"]
    assert f"{3 * math.sqrt(3):g} ||S||_2" in spec and "||0.57 C + 0 W||_inf" in spec
    assert _metrics(out)["equitable"]["units"]["quality_loss"] == "requests"
    assert not list(out.glob("*.png"))


def test_default_quality_weight_scales_with_demand(scenario_dir, tmp_path):
    from eqglb.cli import DEFAULT_QUALITY_VALUE

    sc = read_scenario(scenario_dir)
    out = tmp_path / "o"
    assert (
        main(
            [
                "run",
                "--scenario",
                str(scenario_dir),
                "-p",
                "energy",
                "--out",
                str(out),
                "--no-plots",
            ]
        )
        == 0
    )
    spec = _metrics(out)["energy"]["objective_spec"]
    mu = DEFAULT_QUALITY_VALUE * float(np.asarray(sc.demand).sum()) / len(sc.regions)
    # default q = 2 on normalised norms: mu x J^(1 - 1/2)
    assert spec.startswith(f"energy + {mu * math.sqrt(len(sc.regions)):g} ||S||_2")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--q", "0.5"], "--q = '0.5'"),
        (["--q", "abc"], "--q = 'abc'"),
        (["--q-water", "0"], "--q-water"),
        (["-p", "bogus"], "unknown policy 'bogus'"),
        (["--mu-carbon", "-1"], "greater than or equal to 0"),
        (["--model-rule", "fastest"], "fastest"),
        (["--solver", "NO_SUCH_SOLVER"], "NO_SUCH_SOLVER"),
        (["--frobnicate"], "--frobnicate"),
    ],
)
def test_bad_input_exit_code_2_one_red_line(scenario_dir, capsys, args, needle):
    code = main(["run", "--scenario", str(scenario_dir), "-p", "energy", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert needle in " ".join(err.split())
    assert "Traceback" not in err


def test_missing_or_broken_scenario_folder(tmp_path, capsys):
    assert main(["run", "--scenario", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "scenario.toml").write_text("format_version = 1\nname = [unclosed\n")
    assert main(["run", "--scenario", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "scenario.toml" in err and "Traceback" not in err


def test_out_path_that_is_a_file(scenario_dir, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["run", "--scenario", str(scenario_dir), "-p", "energy", "--out", str(f)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_policies_lists_the_registry(capsys):
    assert main(["policies"]) == 0
    text = capsys.readouterr().out
    for name, desc in DESCRIPTIONS.items():
        assert name in text
        assert desc.split()[0] in text
    assert set(DEFAULT_POLICIES) <= set(REGISTRY)


def test_help_version_and_no_arguments(capsys):
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    from eqglb.burdens import BURDENS

    # the objective options come from the burden registry, with their units
    for name, b in BURDENS.items():
        assert f"--mu-{name} " in text and f"--q-{name} " in text, name
        if b.side == "datacenter":
            assert f"[{b.weight_unit}]: {b.help} [{b.unit}]" in text, name
    for option in ("--q ", "--combined-env", "--total-quality", "--normalize / --plain-norms"):
        assert option in text
    assert "[days]" in text
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("eqglb ")
    assert main([]) == 0
    assert "Usage" in capsys.readouterr().out
    assert ModelRule(DEFAULT_MODEL_RULE) is ModelRule.weighted  # the option's default


def test_builtin_defaults_make_equitable_lower_the_worst_region(tmp_path):
    """With the default weights and q, on two days of the built-in scenario, the equitable
    policy lowers the worst data centre's carbon and water and the worst region's quality
    loss versus the same objective at q = 1, and no term is negligible."""
    out = tmp_path / "o"
    assert (
        main(
            [
                "run",
                "--days",
                "2",
                "-p",
                "cost-only",
                "-p",
                "equitable",
                "--out",
                str(out),
                "--no-plots",
            ]
        )
        == 0
    )
    doc = _doc(out)
    data = doc["policies"]
    eq, ob = data["equitable"]["summary"], data["weighted"]["summary"]
    for cost in ("carbon", "water", "social"):
        assert eq[cost]["max"] < 0.999 * ob[cost]["max"], cost
    assert not data["equitable"]["flagged"]
    assert min(doc["term_shares"].values()) > 0.05, doc["term_shares"]
    assert doc["headline"]["price_of_fairness"]["pct"] > 0


def test_console_script_module_has_no_highs_banner(scenario_dir):
    """`python -m eqglb` in a fresh process: clean stdout (HiGHS banner silenced)."""
    res = subprocess.run(
        [sys.executable, "-m", "eqglb", "run", "--scenario", str(scenario_dir), "-p", "energy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "HiGHS" not in res.stdout
    assert "energy" in res.stdout


def test_a_module_can_register_a_subcommand(tmp_path, monkeypatch, capsys):
    """A command added to the one registration list (COMMANDS) is listed by --help, gets
    the shared objective options and the --out check, and its bad input gives exit code
    2 like the built-in commands."""
    from eqglb import cli

    (tmp_path / "eqglb_test_hello_cmd.py").write_text(
        "from pathlib import Path\n"
        "import typer\n"
        "from eqglb.cli.options import ObjectiveOptions, objective_options\n"
        "from eqglb.errors import CLIError\n"
        "@objective_options\n"
        "def hello(objective: ObjectiveOptions, who: str = typer.Option('world'),\n"
        "          out: Path = typer.Option(None)) -> None:\n"
        "    if who == 'nobody':\n"
        "        raise CLIError('nobody to greet')\n"
        "    print(f'hello {who} q={objective.q} mu_health={objective.mu[\"health\"]}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = cli.Command("hello", "eqglb_test_hello_cmd", "hello", "Say hello.")
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, extra])
    try:
        assert main(["--help"]) == 0
        assert "\n  hello " in capsys.readouterr().out
        assert main(["hello", "--who", "you", "--q", "3", "--mu-health", "2"]) == 0
        assert capsys.readouterr().out.strip() == "hello you q=3 mu_health=2.0"
        assert main(["hello", "--who", "nobody"]) == 2
        assert "nobody to greet" in capsys.readouterr().err
        afile = tmp_path / "afile"
        afile.write_text("x")
        assert main(["hello", "--out", str(afile)]) == 2
        assert "exists and is not a folder" in capsys.readouterr().err
    finally:
        sys.modules.pop("eqglb_test_hello_cmd", None)
    monkeypatch.setattr(cli, "COMMANDS", [c for c in cli.COMMANDS if c.name != "hello"])
    assert main(["hello"]) == 2  # gone again
