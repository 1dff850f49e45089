"""Workloads whose results are pinned (see make_pinned.py and tests/test_pinned.py).

Each workload goes through the public interface only (``tg.fit``, ``tg.tl``, the
``telegraph`` command line), so that the pins survive any reorganisation of the
code behind it. They cover the paths a refactoring of input handling could
move: per-cell capture as an array, a single number and an obs column, size
factors (``capture="total"``) for fits and tests, per-gene ``k_deg``, profile
and Wald intervals, and real data (Larsson et al. 2019).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
LARSSON = Path(os.environ.get("TELEGRAPH_LARSSON_DIR",
                              REPO.parent / "shared" / "data" / "larsson2019"))


def _example():
    import telegraph as tg
    return tg.datasets.example(seed=0)


def example_fit_profile():
    import telegraph as tg
    ad = _example()
    return tg.fit(ad.X[:, :40], capture=ad.obs["capture"].to_numpy(),
                  genes=ad.var_names[:40], progress=False)


def example_fit_wald():
    import telegraph as tg
    ad = _example()
    return tg.fit(ad.X, capture=ad.obs["capture"].to_numpy(), genes=ad.var_names,
                  interval="wald", progress=False)


def example_fit_total_kdeg():
    import telegraph as tg
    ad = _example()
    k_deg = np.linspace(0.2, 3.0, ad.n_vars)
    return tg.fit(ad.X, capture="total", k_deg=k_deg, genes=ad.var_names, interval="wald",
                  progress=False)


def example_tl_fit_obs_capture():
    import telegraph as tg
    ad = _example()[:, 40:80].copy()
    tg.tl.fit(ad, capture="capture", progress=False)
    cols = [c for c in ad.var.columns if c.startswith("telegraph_")]
    return ad.var[cols]


def example_cli_capture_value():
    from telegraph.cli import main
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fit.csv"
        genes = ",".join(f"gene{j:04d}" for j in range(80, 140))
        code = main(["fit", "--example", "--capture", "0.3", "--interval", "wald",
                     "--genes", genes, "--table", str(out), "--no-progress"])
        assert code == 0
        return pd.read_csv(out, index_col="gene")


def example_differential_wald():
    import telegraph as tg
    ad = _example()
    return tg.tl.differential_bursting(ad, "group", capture="capture", interval="wald",
                                       progress=False)


def example_differential_total_profile():
    import telegraph as tg
    ad = _example()[:, 140:180].copy()
    return tg.tl.differential_bursting(ad, "group", capture="total", progress=False)


def _larsson_genes(path, every=10):
    names = pd.read_csv(path, usecols=[0]).iloc[:, 0].astype(str).to_numpy()
    return list(names[::every])


def larsson_g2m_profile():
    from telegraph.cli import main
    g2m = LARSSON / "SS3_c57_UMIs_concat_G2M.csv"
    with tempfile.TemporaryDirectory() as tmp:
        genes = Path(tmp) / "genes.txt"
        genes.write_text("\n".join(_larsson_genes(g2m)) + "\n")
        out = Path(tmp) / "fit.csv"
        code = main(["fit", str(g2m), "--genes", f"@{genes}", "--table", str(out),
                     "--no-progress"])
        assert code == 0
        return pd.read_csv(out, index_col="gene")


def larsson_s_vs_g2m_wald():
    """S vs G2/M on every 7th gene, size factors from the genes in the files.

    The gene subset is written to temporary files (rather than selected with
    --genes) so that the size factors come from the same genes whatever the
    code does with a gene selection."""
    from telegraph.cli import main
    s = LARSSON / "SS3_c57_UMIs_concat_S.csv"
    g2m = LARSSON / "SS3_c57_UMIs_concat_G2M.csv"
    with tempfile.TemporaryDirectory() as tmp:
        shared = set(_larsson_genes(s, every=1))
        keep = [g for g in _larsson_genes(g2m, every=7) if g in shared]
        paths = []
        for src in (s, g2m):
            table = pd.read_csv(src, index_col=0, dtype=str, keep_default_na=False)
            path = Path(tmp) / src.name
            table.loc[keep].to_csv(path)
            paths.append(str(path))
        out = Path(tmp) / "test.csv"
        code = main(["test", *paths, "--interval", "wald", "--capture", "total",
                     "--table", str(out), "--no-progress"])
        assert code == 0
        return pd.read_csv(out, index_col="gene")


EXAMPLE = {f.__name__: f for f in (example_fit_profile, example_fit_wald,
                                   example_fit_total_kdeg, example_tl_fit_obs_capture,
                                   example_cli_capture_value, example_differential_wald,
                                   example_differential_total_profile)}
LARSSON_WORKLOADS = {f.__name__: f for f in (larsson_g2m_profile, larsson_s_vs_g2m_wald)}
ALL = {**EXAMPLE, **LARSSON_WORKLOADS}


def run(name) -> pd.DataFrame:
    """The result table of workload ``name``, index = gene names, as saved."""
    table = ALL[name]()
    table = table.copy()
    table.index = table.index.astype(str)
    table.index.name = "gene"
    if "gene" in table.columns:
        table = table.drop(columns=["gene"])
    return table


def save(table: pd.DataFrame, path) -> None:
    table.to_csv(path, float_format="%.17g", na_rep="NaN")


def load(path) -> pd.DataFrame:
    return pd.read_csv(path, index_col="gene", keep_default_na=False,
                       na_values=["NaN"])


#: columns compared to a looser relative tolerance than ``rtol``, by prefix: the
#: information weights of the differential test and the adjusted p-values made
#: with them come out of Nelder-Mead fits (telegraph.multitest._bum_fit, xatol
#: 1e-4) whose path moves with the last bit of NumPy's exp and log, which differ
#: between CPUs (NumPy picks AVX-512 or AVX2 code at run time): on an AVX-512
#: machine they differ from pins made on another by ~2e-8 relative, while the
#: p-values they are made from agree to 1e-9
LOOSE = {"weight_": 1e-6, "padj_": 1e-6}


def compare(got: pd.DataFrame, want: pd.DataFrame, *, rtol=1e-9, atol=1e-12):
    """Every pinned column of ``want`` equals ``got``: numbers to ``rtol`` (to
    :data:`LOOSE` for the columns named there; NaN and +-inf in the same places),
    everything else exactly. Returns a list of differences (empty when equal)."""
    problems = []
    if list(got.index) != list(want.index):
        return [f"genes differ: {list(want.index)[:5]} ... vs {list(got.index)[:5]} ..."]
    for col in want.columns:
        if col not in got.columns:
            problems.append(f"column {col!r} is missing")
            continue
        w = want[col]
        g = got[col]
        if pd.api.types.is_numeric_dtype(w) and not pd.api.types.is_bool_dtype(w):
            wv = w.to_numpy(float)
            try:
                gv = pd.to_numeric(g).to_numpy(float)
            except (ValueError, TypeError):
                problems.append(f"{col}: not numeric any more")
                continue
            same_nan = np.isnan(wv) == np.isnan(gv)
            fin = np.isfinite(wv) & np.isfinite(gv)
            same_inf = np.where(np.isinf(wv) | np.isinf(gv), wv == gv, True)
            tol = next((t for prefix, t in LOOSE.items() if col.startswith(prefix)), rtol)
            with np.errstate(invalid="ignore"):
                close = np.where(fin, np.abs(gv - wv) <= atol + tol * np.abs(wv), True)
            bad = ~(same_nan & same_inf & close)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                problems.append(f"{col}: {int(bad.sum())} genes differ, e.g. "
                                f"{want.index[i]}: {wv[i]!r} -> {gv[i]!r}")
        else:
            ws = w.astype(str).to_numpy()
            gs = g.astype(str).to_numpy()
            bad = ws != gs
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                problems.append(f"{col}: {int(bad.sum())} genes differ, e.g. "
                                f"{want.index[i]}: {ws[i]!r} -> {gs[i]!r}")
    return problems
