"""The tutorials run, end to end, on their small settings, and draw their figures.

Each tutorial is a jupytext "percent" script; here it runs as a plain script in a
subprocess with ``TELEGRAPH_TUTORIAL_SMALL=1`` and its figures sent to a temporary
directory. Every figure the script saves (each ``save(fig, "NAME.png")`` call in its
source) must exist and be a non-empty PNG.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

TUTORIALS = REPO / "tutorials"
EXPECTED = ["01_quickstart.py", "02_simulation_study.py", "03_larsson2019.py",
            "04_technical_noise.py", "05_experiment_design.py", "06_two_species.py",
            "07_metabolic_labelling.py"]
NEEDS_LARSSON = {"03_larsson2019.py", "05_experiment_design.py"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figures_saved_by(path):
    names = re.findall(r"""save\(\s*fig\s*,\s*["']([^"']+\.png)["']\s*\)""", path.read_text())
    return sorted(set(names))


def test_every_tutorial_is_present():
    present = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
    assert present == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_tutorial_is_a_percent_notebook(name):
    """Pairs with a notebook: markdown and code cells, opening with a title."""
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(TUTORIALS / name)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= 3 and kinds.count("code") >= 3
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    assert first_md.source.lstrip().startswith("# ")
    # the round trip through ipynb keeps the cells
    text = jupytext.writes(nb, fmt="ipynb")
    again = jupytext.reads(text, fmt="ipynb")
    assert [c.cell_type for c in again.cells] == kinds


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_tutorial_runs_small(name, tmp_path, request):
    path = TUTORIALS / name
    expected = figures_saved_by(path)
    assert expected, f"{name} saves no figure"
    env = dict(os.environ)
    env.update(TELEGRAPH_TUTORIAL_SMALL="1", TELEGRAPH_TUTORIAL_OUTPUT=str(tmp_path / "figures"),
               MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "")
                                                         .split(os.pathsep) if p]))
    if name in NEEDS_LARSSON:
        env["TELEGRAPH_LARSSON_DIR"] = str(request.getfixturevalue("larsson_dir"))
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"{name} failed (exit status {proc.returncode}):\n{proc.stderr[-3000:]}")
    made = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    missing = sorted(set(expected) - set(made))
    assert not missing, f"{name} did not write {missing} (wrote {made})"
    for fig in expected:
        data = (tmp_path / "figures" / fig).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000, \
            f"{fig} is not a real PNG image ({len(data)} bytes)"
