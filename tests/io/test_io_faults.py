"""Issue 15 C1-C4, L1, L2, F1, F2: corrupt, hostile or out-of-range input files give a
clear error naming the file, the field and the line (never a traceback from deep inside
numpy, pandas, gzip or tomllib), and writing a scenario never writes outside its folder.

Every test builds a real faulty file (from the example scenario folder or from copies of
the real data under ``../shared/data``) and reads it through the public readers or the
``eqglb`` command.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eqglb.cli import main
from eqglb.io._common import DataFormatError
from eqglb.io.azure import MAX_TOKENS, azure_arrivals, read_azure_trace
from eqglb.io.egl2022 import load_egl2022
from eqglb.io.scenario_format import (
    MAX_TABLE_ROWS,
    ScenarioFormatError,
    read_scenario,
    write_scenario,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "scenario_small"


def copy_example(tmp_path: Path, name: str = "sc") -> Path:
    d = tmp_path / name
    shutil.copytree(EXAMPLE, d)
    return d


def set_cell(path: Path, line: int, col: int, value: str) -> None:
    """Replace cell ``col`` (0-based) of 1-based ``line`` of a CSV file."""
    lines = path.read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[col] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def rename_table(folder: Path, old: str, new: str) -> None:
    toml = folder / "scenario.toml"
    text = toml.read_text()
    assert f'"{old}"' in text
    toml.write_text(text.replace(f'"{old}"', f'"{new}"'))


def located(exc: pytest.ExceptionInfo, file: str, *needles: str) -> str:
    msg = str(exc.value)
    assert file in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


# ---------------------------------------------------------------------------- C1
def test_c1_carbon_1e300_is_refused_with_file_line_and_column(tmp_path, capsys):
    d = copy_example(tmp_path)
    set_cell(d / "carbon_intensity.csv", 3, 2, "1e300")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    assert exc.value.line == 3 and exc.value.column == "us-oregon"
    located(exc, "carbon_intensity.csv", "1e300", "magnitude")
    # the command: one located error line and exit 2, not an OverflowError traceback
    assert main(["run", "--scenario", str(d), "--policy", "nearest"]) == 2
    err = capsys.readouterr().err
    assert "carbon_intensity.csv" in err and "line 3" in err and "Traceback" not in err


def test_c1_csv_zip_that_is_not_a_zip_names_the_file(tmp_path):
    d = copy_example(tmp_path)
    (d / "demand.csv.zip").write_bytes(b"PK but not really a zip archive\n" * 4)
    rename_table(d, "demand.csv", "demand.csv.zip")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    located(exc, "demand.csv.zip", "not a valid zip", "[timeseries.demand]")


def test_c1_toml_arrays_nested_5000_deep_are_a_located_error(tmp_path):
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    toml.write_text(toml.read_text() + "deep = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    located(exc, "scenario.toml", "nested too deeply")
    # nesting that tomllib parses but later code could not walk is refused too
    toml.write_text(toml.read_text().replace("[" * 5000 + "]" * 5000, "[" * 40 + "]" * 40))
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    located(exc, "scenario.toml", "'attrs.deep'", "nested more than 32 levels")


# ---------------------------------------------------------------------------- C2
def test_c2_truncated_csv_gz_is_a_located_error_exit_2_not_interrupted(tmp_path):
    d = copy_example(tmp_path)
    data = gzip.compress((d / "demand.csv").read_bytes())
    (d / "demand.csv.gz").write_bytes(data[: len(data) * 2 // 3])
    rename_table(d, "demand.csv", "demand.csv.gz")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    located(exc, "demand.csv.gz", "truncated")
    run = subprocess.run(
        [sys.executable, "-m", "eqglb", "run", "--scenario", str(d), "--policy", "nearest"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 2, run.stderr
    assert "demand.csv.gz" in run.stderr and "truncated" in run.stderr, run.stderr
    assert "interrupted" not in run.stderr, run.stderr


# ---------------------------------------------------------------------------- C3
def _gzip_bomb(path: Path, line: bytes, copies: int) -> None:
    block = line * (2**20 // len(line))
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(copies):
            f.write(block)


def test_c3_small_gz_decompression_bomb_is_refused_at_the_row_cap(tmp_path):
    d = copy_example(tmp_path)
    # ~200 MB of demand rows in a ~0.5 MB file (the bomb: 204 KB, > 1.9 GB RSS)
    _gzip_bomb(d / "demand.csv.gz", b"2022-09-22T00:00:00Z,1,1,1\n", 200)
    size = (d / "demand.csv.gz").stat().st_size
    assert size < 2**20, size
    rename_table(d, "demand.csv", "demand.csv.gz")
    t0 = time.perf_counter()
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    took = time.perf_counter() - t0
    located(
        exc, "demand.csv.gz", f"more than {MAX_TABLE_ROWS + 1:,} lines", "max_rows of read_scenario"
    )
    # refused after ~1 million lines (~27 MB), not after 200 MB are parsed
    assert took < 30, took


def test_c3_byte_cap_stops_a_bomb_without_line_breaks(tmp_path):
    d = copy_example(tmp_path)
    _gzip_bomb(d / "demand.csv.gz", b"1" * 1024, 8)  # 8 MiB, one line
    rename_table(d, "demand.csv", "demand.csv.gz")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d, max_bytes=2**20)
    located(exc, "demand.csv.gz", "larger than the cap of 1,048,576 bytes", "once decompressed")


def test_c3_row_cap_applies_to_plain_csv_and_parquet(tmp_path):
    d = copy_example(tmp_path)
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d, max_rows=5)
    located(exc, "demand.csv", "more than 6 lines")
    pd.read_csv(d / "demand.csv").to_parquet(d / "demand.parquet")
    rename_table(d, "demand.csv", "demand.parquet")
    assert read_scenario(d, max_rows=12).shape[0] == 12
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d, max_rows=11)
    located(exc, "demand.parquet", "12 rows, more than the cap of 11")


# ---------------------------------------------------------------------------- C4
@pytest.mark.parametrize(
    ("file", "line", "col", "name"),
    [("wue.csv", 2, 1, "us-virginia"), ("pue.csv", 4, 1, "us-virginia")],
)
def test_c4_wue_and_pue_of_1e308_name_file_line_and_column(tmp_path, file, line, col, name):
    d = copy_example(tmp_path)
    set_cell(d / file, line, col, "1e308")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    assert exc.value.line == line and exc.value.column == name
    located(exc, file, "1e308", "magnitude")


def test_c4_pue_1e308_in_scenario_toml_names_its_line(tmp_path):
    d = copy_example(tmp_path)
    toml = d / "scenario.toml"
    toml.write_text(toml.read_text().replace("pue = 1.12", "pue = 1e308"))
    line = next(n for n, s in enumerate(toml.read_text().splitlines(), 1) if "1e308" in s)
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    assert exc.value.line == line
    located(exc, "scenario.toml", "pue of datacenter 'us-oregon'", "magnitude")


@pytest.mark.parametrize(
    ("suffix", "compress", "kind"),
    [(".gz", gzip.compress, "gzip"), (".bz2", bz2.compress, "bzip2")],
)
def test_c4_bad_gz_and_bz2_files_name_file_and_field(tmp_path, suffix, compress, kind):
    d = copy_example(tmp_path)
    good = compress((d / "wue.csv").read_bytes())
    bad = good[:10] + bytes(b ^ 0xFF for b in good[10:40]) + good[40:]  # corrupt stream
    (d / f"wue.csv{suffix}").write_bytes(bad)
    rename_table(d, "wue.csv", f"wue.csv{suffix}")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    located(exc, f"wue.csv{suffix}", f"not a valid {kind}", "[timeseries.wue]")
    (d / f"wue.csv{suffix}").write_bytes(b"plain text, not compressed\n")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    located(exc, f"wue.csv{suffix}", f"not a valid {kind}")


# ---------------------------------------------------------------------------- L1
def _azure_copy(shared_dir: Path, tmp_path: Path, rows: int = 20) -> Path:
    src = shared_dir / "data" / "azure-llm-2023" / "AzureLLMInferenceTrace_code.csv"
    assert src.is_file(), f"{src} is missing: the tests need ../shared/data"
    lines = src.read_text().splitlines()[: rows + 1]
    out = tmp_path / "trace.csv"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize(
    "value", ["9223372036854775808", "18446744073709551616", str(MAX_TOKENS + 2)]
)
def test_l1_azure_token_counts_from_2_to_63_are_refused_not_wrapped(shared_dir, tmp_path, value):
    trace = _azure_copy(shared_dir, tmp_path)
    set_cell(trace, 6, 1, value)
    with pytest.raises(DataFormatError) as exc:
        read_azure_trace(trace)
    assert exc.value.line == 6 and exc.value.column == "ContextTokens"
    located(exc, "trace.csv", value, "too large")


def test_l1_azure_per_slot_sums_never_wrap(shared_dir, tmp_path):
    trace = _azure_copy(shared_dir, tmp_path, rows=1100)
    df = read_azure_trace(trace)
    assert (df["context_tokens"] >= 0).all()
    lines = trace.read_text().splitlines()
    big = [",".join([ln.split(",")[0], str(MAX_TOKENS), "1"]) for ln in lines[1:1030]]
    trace.write_text("\n".join([lines[0], *big]) + "\n")
    df = read_azure_trace(trace)  # each count is exact, but 1029 x 2^53 > 2^63 - 1
    assert (df["context_tokens"] == MAX_TOKENS).all()
    with pytest.raises(ValueError, match=r"trace\.csv.*more than 2\^63"):
        azure_arrivals(df, "1h")


# ---------------------------------------------------------------------------- L2
def test_l2_egl2022_stamp_in_year_3000_names_file_and_line(shared_dir, tmp_path):
    src = shared_dir / "data" / "egl-2022"
    d = tmp_path / "egl-2022"
    shutil.copytree(src, d)
    f = d / "price" / "Texas_Price.csv"
    os.chmod(f, 0o644)
    lines = f.read_text().splitlines()
    assert lines[2].startswith("2022-09-22 01")
    lines[2] = "3000" + lines[2][4:]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as exc:
        load_egl2022(d)
    assert exc.value.line == 3 and exc.value.column == "Time (UTC)"
    located(exc, "Texas_Price.csv", "3000-09-22 01", "outside the supported range")


def test_l2_scenario_time_in_year_3000_names_file_and_line(tmp_path):
    d = copy_example(tmp_path)
    set_cell(d / "price.csv", 5, 0, "3000-09-22T03:00:00Z")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    assert exc.value.line == 5
    located(exc, "price.csv", "3000-09-22T03:00:00Z", "outside the supported range")


# ---------------------------------------------------------------------------- F1
def test_f1_overwrite_replaces_a_symlinked_table_never_writes_through_it(tmp_path):
    sc = read_scenario(EXAMPLE)
    d = tmp_path / "out"
    write_scenario(sc, d)
    outside = tmp_path / "precious.csv"
    outside.write_text("not yours\n")
    (d / "demand.csv").unlink()
    (d / "demand.csv").symlink_to(outside)
    (d / "price.csv").unlink()
    (d / "price.csv").symlink_to(tmp_path / "dangling.csv")  # a broken link
    write_scenario(sc, d, overwrite=True)
    assert outside.read_text() == "not yours\n"
    assert not (tmp_path / "dangling.csv").exists()
    for name in ("demand.csv", "price.csv", "scenario.toml"):
        assert not (d / name).is_symlink() and (d / name).is_file(), name
    back = read_scenario(d)
    np.testing.assert_array_equal(back.demand, sc.demand)
    np.testing.assert_array_equal(back.price, sc.price)


def test_f1_overwrite_removes_a_stale_link_not_its_target(tmp_path):
    sc = read_scenario(EXAMPLE)
    d = tmp_path / "out"
    write_scenario(sc, d, fmt="csv")
    outside = tmp_path / "precious.csv"
    outside.write_text("keep me\n")
    (d / "latency.csv").unlink()
    (d / "latency.csv").symlink_to(outside)
    write_scenario(sc, d, fmt="parquet", overwrite=True)  # latency.csv is now stale
    assert not (d / "latency.csv").is_symlink() and not (d / "latency.csv").exists()
    assert outside.read_text() == "keep me\n"


def test_f1_overwrite_refuses_a_file_its_old_scenario_does_not_name(tmp_path):
    sc = read_scenario(EXAMPLE)
    d = tmp_path / "out"
    write_scenario(sc, d, fmt="parquet")
    (d / "demand.csv").write_text("my own notes\n")  # not named by scenario.toml
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(ScenarioFormatError, match="demand.csv.*does not name"):
        write_scenario(sc, d, fmt="csv", overwrite=True)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # nothing touched


# ---------------------------------------------------------------------------- F2
@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_f2_tables_outside_the_folder_need_allow_outside(tmp_path, how):
    d = copy_example(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(d / "demand.csv", elsewhere / "demand.csv")
    if how == "dotdot":
        rename_table(d, "demand.csv", "../elsewhere/demand.csv")
    elif how == "absolute":
        rename_table(d, "demand.csv", str(elsewhere / "demand.csv"))
    else:
        (d / "demand.csv").symlink_to(elsewhere / "demand.csv")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    lines = (d / "scenario.toml").read_text().splitlines()
    head = lines.index("[timeseries.demand]")
    # the `file = ...` key of [timeseries.demand], the value at fault
    toml_line = 1 + next(n for n in range(head, len(lines)) if lines[n].startswith("file = "))
    assert toml_line == head + 2
    assert exc.value.line == toml_line
    located(exc, "scenario.toml", "outside the scenario folder", "allow_outside=True")
    sc = read_scenario(d, allow_outside=True)
    assert sc.demand.shape == (12, 3)


def test_f2_system_file_is_not_read_or_quoted(tmp_path):
    d = copy_example(tmp_path)
    rename_table(d, "routes.csv", "/etc/passwd")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    msg = located(exc, "scenario.toml", "'/etc/passwd' is an absolute path")
    assert "root:" not in msg


def test_error_messages_of_readers_fit_one_line(tmp_path):
    """The CLI prints one red line: the new messages hold no line breaks."""
    d = copy_example(tmp_path)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as f:
        f.write((d / "ewif.csv").read_bytes())
    (d / "ewif.csv.gz").write_bytes(buf.getvalue()[:-8])  # drop the CRC and size trailer
    rename_table(d, "ewif.csv", "ewif.csv.gz")
    with pytest.raises(ScenarioFormatError) as exc:
        read_scenario(d)
    msg = located(exc, "ewif.csv.gz", "truncated")
    assert "\n" not in msg
