"""Write the pinned results that tests/test_pinned.py compares against.

Run from the repository root, on the code whose results are to be kept:

    python tests/pinned/make_pinned.py            # example workloads only
    python tests/pinned/make_pinned.py --larsson  # also the Larsson et al. 2019 subsets

The workloads are defined once, in :mod:`workloads` beside this script, and
the test runs the very same functions; this script only saves what they
return (gzip CSV, full float precision) so that a refactoring can be checked
to leave every number where it was. Re-run it only when a change is meant to
alter results, and say so in the commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--larsson", action="store_true",
                        help="also the Larsson 2019 workloads (needs ../shared/data/larsson2019)")
    args = parser.parse_args(argv)
    names = list(workloads.EXAMPLE)
    if args.larsson:
        names += list(workloads.LARSSON_WORKLOADS)
    for name in names:
        table = workloads.run(name)
        path = HERE / f"{name}.csv.gz"
        workloads.save(table, path)
        print(f"{path.name}: {table.shape[0]} rows x {table.shape[1]} columns")


if __name__ == "__main__":
    main()
