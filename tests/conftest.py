import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
LARSSON = Path(os.environ.get("TELEGRAPH_LARSSON_DIR",
                              REPO.parent / "shared" / "data" / "larsson2019"))


@pytest.fixture(scope="session")
def larsson_dir():
    """The Larsson et al. 2019 data shipped beside the repository in ../shared."""
    if not LARSSON.is_dir():
        pytest.skip(f"Larsson 2019 data not found at {LARSSON} (../shared is absent); "
                    "set TELEGRAPH_LARSSON_DIR to run the real-data checks")
    return LARSSON
