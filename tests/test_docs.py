"""The docs site builds strictly, and its API pages document every public name.

This is how CI builds the site: ``mkdocs build --strict`` (mkdocs-material +
mkdocstrings, the ``docs`` extra) into a temporary folder.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: module -> API page (docs/api/<page>.md), as in mkdocs.yml's nav
API_MODULES = [
    "scenario",
    "costs",
    "defaults",
    "certify",
    "comparison",
    "policies",
    "structured",
    "online",
    "simulate",
    "report",
    "report_html",
    "labels",
    "units",
    "io.scenario_format",
    "latency",
    "signals",
    "service",
]
GUIDE = ["run", "sweep", "solve", "reproduce", "serve", "signals"]
TOPICS = [
    "model.md",
    "defaults.md",
    "online.md",
    "performance.md",
    "reproduction.md",
    "scenario-format.md",
    "service.md",
    "signals.md",
    "sweep.md",
]


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may hold !!python/name tags (material's emoji); read them as text."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: str(suffix))


def _nav_files(nav) -> list[str]:
    out: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out.extend(_nav_files(value) if isinstance(value, list) else [value])
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert res.returncode == 0, f"mkdocs build --strict failed:\n{res.stdout}\n{res.stderr}"
    assert "WARNING" not in res.stderr, res.stderr
    return out


def test_nav_holds_every_page_and_every_page_is_in_the_nav():
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)  # noqa: S506
    files = _nav_files(cfg["nav"])
    assert len(files) == len(set(files))
    for page in [
        *TOPICS,
        "index.md",
        "gallery.md",
        *(f"guide/{g}.md" for g in GUIDE),
        *(f"api/{m.replace('.', '-')}.md" for m in API_MODULES),
    ]:
        assert page in files, page
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == set(files), on_disk ^ set(files)
    plugins = [next(iter(p)) if isinstance(p, dict) else p for p in cfg["plugins"]]
    assert "mkdocstrings" in plugins and cfg["theme"]["name"] == "material"


@pytest.mark.parametrize("module", API_MODULES)
def test_api_page_documents_every_public_name(site, module):
    """Every name in the module's __all__ has its own entry (anchor) on its API page:
    under the module's path, or under the path where it is defined."""
    html = (site / "api" / module.replace(".", "-") / "index.html").read_text()
    ids = set(re.findall(r'id="(eqglb\.[A-Za-z0-9_.]+)"', html))
    mod = importlib.import_module(f"eqglb.{module}")
    names = list(mod.__all__)
    assert names, module
    missing = []
    for name in names:
        obj = getattr(mod, name)
        own = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', name)}"
        if f"eqglb.{module}.{name}" not in ids and own not in ids:
            missing.append(name)
    assert not missing, f"eqglb.{module}: no API entry for {missing}"
    assert f'id="eqglb.{module}"' in html


def test_guide_gallery_and_model_pages_are_built(site):
    for g in GUIDE:
        text = (site / "guide" / g / "index.html").read_text()
        assert f"eqglb {g}" in text, g
    solve = (site / "guide" / "solve" / "index.html").read_text()
    assert "eqglb scenario generate" in solve and "--datacenters" in solve
    guide = (site / "guide" / "index.html").read_text()
    for code in ("130", "--mu-carbon"):
        assert code in guide
    gallery = (site / "gallery" / "index.html").read_text()
    for example in ("quickstart.ipynb", "egl2022_study.py", "azure_byod.py"):
        assert example in gallery, example
        assert (ROOT / "examples" / example).is_file(), example


def test_no_docstring_points_outside_the_repository():
    """Docstrings and docs pages cite docs/model.md (in the repository), not the shared
    MODEL.md, and the model page holds what they cite it for."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in [*(ROOT / "src" / "eqglb").rglob("*.py"), *(ROOT / "docs").rglob("*.md")]
        if "MODEL.md" in p.read_text()
    ]
    assert offenders == []
    model = (ROOT / "docs" / "model.md").read_text()
    for needle in ("allowed[i,j,k]", "||v||_q", "dual", "wet-bulb", "Jain"):
        assert needle in model, needle
