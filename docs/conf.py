"""Sphinx configuration of the telegraph documentation.

Build (as CI does): ``python -m sphinx -W -b html docs <outdir>``.

Two kinds of page are produced at build time, into git-ignored places inside
this directory, and never committed:

- ``tutorials/NN_name.py``: copies of the jupytext scripts of the repository's
  ``tutorials/`` folder, rendered by myst-nb without being executed;
- ``_generated/cli.md``: the ``--help`` text of ``telegraph`` and of each of its
  subcommands (from ``telegraph.cli.build_parser()``), included by ``cli.md``.

autosummary writes one page per documented function and module into
``generated/`` (see ``api.md``); that directory is emptied at the start of each
build so that a module taken off the list leaves no stale page behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))  # document the checkout, also without an install

import telegraph  # noqa: E402

project = "telegraph"
author = "telegraph developers"
copyright = "telegraph developers"
release = telegraph.__version__
version = release

extensions = [
    "myst_nb",                 # Markdown pages (MyST) and the tutorials as notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",     # numpydoc-style docstrings
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# myst-nb reads .md and .ipynb; the tutorials are jupytext "percent" scripts: read them as notebooks
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "off"      # render, never run: outputs are not part of the docs

templates_path = ["_templates"]
# conf.py is a .py file too; _generated/ holds fragments included by other pages
exclude_patterns = ["_build", "conf.py", "_generated", "**/__pycache__", "**/.ipynb_checkpoints"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3       # links such as maths.md#the-stationary-law

autosummary_generate = True
autosummary_ignore_module_all = False   # a module's page lists what its __all__ exports
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
autodoc_typehints = "description"               # types go with the documented parameters
autodoc_typehints_description_target = "documented"
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# keep apostrophes straight: code comments cite section titles such as
# "Fisher's and Louis' identities" verbatim
smartquotes = False

# Parameter types such as "array_like of shape (n_genes,)" are read as cross-references,
# word by word; "n_genes" then names several attributes (CountHistograms.n_genes,
# ReadPlan.n_genes) and Sphinx warns that the reference is ambiguous. Those words are
# shapes, not references: ambiguous Python references are not errors here.
suppress_warnings = ["ref.python"]

html_theme = "furo"
html_title = f"telegraph {release}"
html_static_path: list[str] = []


# -- pages generated at build time -------------------------------------------

def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.read_bytes() == src.read_bytes():
        return  # unchanged: keeps incremental builds incremental
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def copy_tutorials() -> None:
    """Copy ``tutorials/NN_*.py`` into the source tree (the tutorials stay where they are)."""
    dst_dir = DOCS / "tutorials"
    sources = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py"))
    wanted = {src.name for src in sources}
    for src in sources:
        _copy_if_changed(src, dst_dir / src.name)
    for old in dst_dir.glob("*.py"):  # a tutorial removed from the repository
        if old.name not in wanted:
            old.unlink()


def write_cli_help() -> None:
    """Write the ``--help`` of ``telegraph`` and of each subcommand to ``_generated/cli.md``."""
    from telegraph.cli import build_parser

    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: fix it
    try:
        parser = build_parser()
        pages = [("telegraph", parser.format_help())]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pages += [(sub.prog, sub.format_help()) for sub in action.choices.values()]
    finally:
        if old_columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old_columns
    text = "".join(f"## `{prog}`\n\n````text\n{help_.rstrip()}\n````\n\n"
                   for prog, help_ in pages)
    path = DOCS / "_generated" / "cli.md"
    path.parent.mkdir(exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


shutil.rmtree(DOCS / "generated", ignore_errors=True)
copy_tutorials()
write_cli_help()
