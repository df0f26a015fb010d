"""A fast, friendly CLI: lazy subcommands, option errors that name the option, ``--out``
checked before any solve, documented exit codes, ``eqglb scenario generate``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from eqglb.cli import COMMANDS, EXIT_CODES, main

NAMES = [c.name for c in COMMANDS]

HEAVY = (
    "numpy",
    "pandas",
    "cvxpy",
    "scipy",
    "pyarrow",
    "eqglb.scenario",
    "eqglb.sweep",
    "eqglb.reproduce",
    "eqglb.service.server",
    "eqglb.signals.command",
)


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_help_imports_no_heavy_module_and_lists_every_command_and_exit_code():
    """`eqglb --help` in a fresh process imports none of numpy, pandas, cvxpy or the
    subcommand modules, yet lists every command and the exit codes."""
    res = _fresh(
        "import sys, json\nfrom eqglb.cli import main\nrc = main(['--help'])\n"
        f"print(json.dumps([rc, [m for m in {list(HEAVY)!r} if m in sys.modules]]))"
    )
    assert res.returncode == 0, res.stderr
    *help_lines, last = res.stdout.strip().splitlines()
    rc, loaded = json.loads(last)
    assert rc == 0
    assert loaded == []
    text = "\n".join(help_lines)
    for name in NAMES:
        assert f"\n  {name} " in text, name
    assert "Exit codes" in text
    for code in EXIT_CODES:
        assert f"\n  {code} " in text


@pytest.mark.parametrize("name", NAMES)
def test_lazy_help_matches_the_loaded_command(name, capsys):
    """The one-line help listed without importing is the loaded command's own first line,
    and `eqglb NAME --help` loads and shows the command."""
    from eqglb.cli import _load

    cmd = _load(name)
    first = " ".join((cmd.help or "").strip().split("\n\n")[0].split())
    listed = {c.name: c for c in COMMANDS}[name].help.split(" (see ")[0].rstrip(".")
    assert first.startswith(listed), (first, listed)
    assert main([name, "--help"]) == 0
    assert "Usage: eqglb " + name in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "option", "value"),
    [
        (["run", "--mu-carbon", "-1"], "--mu-carbon", "-1"),
        (["run", "--mu-water=-0.5"], "--mu-water", "-0.5"),
        (["solve", "--days", "0"], "--days", "0"),
        (["scenario", "generate", "--models", "0", "--out", "x"], "--models", "0"),
        (["run", "--days", "many"], "--days", "many"),
    ],
)
def test_option_errors_name_the_option_and_value(argv, option, value, capsys):
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: {option} {value}:" in err
    assert "--help" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--days", "1", "-p", "energy"],
        ["solve", "--days", "1"],
        ["sweep", "--days", "1", "--q", "1"],
        ["reproduce", "egl2022", "--data", "no-such-folder"],
        ["scenario", "generate"],
    ],
)
def test_out_that_is_a_file_is_refused_before_any_solve(argv, tmp_path, capsys, monkeypatch):
    """Every command with --out refuses a file there before loading or solving anything."""
    import eqglb.cli

    def boom(*a, **k):  # pragma: no cover - reached only if the check comes too late
        raise AssertionError("scenario loaded before --out was checked")

    monkeypatch.setattr(eqglb.cli, "load_scenario", boom)
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main([*argv, "--out", str(afile)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--out {afile} exists and is not a folder" in err
    assert afile.read_text() == "x"


def test_scenario_generate_writes_the_benchmark_scenario(tmp_path, capsys):
    """`eqglb scenario generate` writes what eqglb.synthetic.make_scenario builds; it reads
    back equal, refuses to overwrite without --overwrite, and runs with eqglb run."""
    from eqglb.io.scenario_format import read_scenario
    from eqglb.synthetic import make_scenario

    out = tmp_path / "gen"
    argv = [
        "scenario",
        "generate",
        "--datacenters",
        "4",
        "--regions",
        "5",
        "--models",
        "2",
        "--days",
        "1",
        "--seed",
        "7",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "4 data centres, 5 regions, 2 models, 24 hourly slots" in capsys.readouterr().out
    got = read_scenario(out)
    ref = make_scenario(4, 5, 2, 24, seed=7)
    assert got.shape == ref.shape == (24, 4, 5, 2)
    assert got.name == "synthetic-4x5x2x24-seed7"
    for field in (
        "demand",
        "price",
        "carbon_intensity",
        "wue",
        "capacity",
        "energy_per_request",
        "quality_loss",
    ):
        np.testing.assert_allclose(
            getattr(got, field), getattr(ref, field), rtol=1e-12, err_msg=field
        )
    np.testing.assert_array_equal(got.allowed, ref.allowed)
    assert main(argv) == 2
    assert "add --overwrite" in capsys.readouterr().err
    assert main([*argv[:-2], "--seed", "8", "--out", str(out), "--overwrite"]) == 0
    assert not np.allclose(read_scenario(out).demand, ref.demand)
    assert main(["run", "--scenario", str(out), "-p", "energy", "--baseline", "energy"]) == 0
    assert "energy" in capsys.readouterr().out


def test_scenario_generate_refuses_bad_choices(tmp_path, capsys):
    base = ["scenario", "generate", "--days", "1", "--out", str(tmp_path / "g")]
    assert main([*base, "--capacity-mode", "pooled"]) == 2
    assert "--capacity-mode 'pooled'; use 'shared' or 'per_model'" in capsys.readouterr().err
    assert main([*base, "--format", "xlsx"]) == 2
    assert "--format 'xlsx'; use 'csv' or 'parquet'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    assert main([*base[:-1], str(tmp_path / "full")]) == 2
    assert "not a scenario folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"datacenters": 0}, "datacenters = 0; give a whole number >= 1"),
        ({"slots": 2.5}, "slots = 2.5; give a whole number >= 1"),
        ({"capacity_mode": "pooled"}, "capacity_mode = 'pooled'"),
        ({"headroom": 0.0}, "headroom = 0.0; give a factor > 0"),
    ],
)
def test_synthetic_arguments_are_checked(kw, message):
    from eqglb.synthetic import make_scenario

    args = {"datacenters": 3, "regions": 4, "models": 2, "slots": 6, **kw}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        make_scenario(**args)


def test_benchmark_instances_are_the_package_generator():
    """benchmarks/instances.py re-exports eqglb.synthetic (one generator) and its tiers."""
    import importlib.util
    from pathlib import Path

    import eqglb.synthetic as syn

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "instances.py"
    spec = importlib.util.spec_from_file_location("bench_instances", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses in the module look their module up
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(spec.name, None)
    assert mod.make_scenario is syn.make_scenario
    # every tier of the package generator, unchanged (benchmarks add their own on top)
    assert {k: mod.TIERS[k] for k in syn.TIERS} == syn.TIERS
    sc = mod.make_instance("tiny", seed=1)
    assert sc.shape == (6, 3, 4, 2)
    with pytest.raises(ValueError, match="unknown tier 'huge'"):
        mod.make_instance("huge")


def test_top_level_names_resolve_lazily():
    """`import eqglb` gives the library user's main names (imported on first use), and the
    package is typed (py.typed ships)."""
    import subprocess
    import sys
    from pathlib import Path

    import eqglb

    for name in eqglb.__all__:
        assert getattr(eqglb, name) is not None, name
    assert {
        "Scenario",
        "Objective",
        "make_policy",
        "evaluate",
        "SolveStatus",
        "build_objective",
        "builtin_scenario",
        "read_scenario",
    } <= set(eqglb.__all__)
    assert (Path(eqglb.__file__).parent / "py.typed").is_file()
    code = "import sys, eqglb; print('numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"
