import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The official reference data lives in shared/ beside the checkout (CI lays a copy there too).
REFERENCE = Path(os.environ.get("SANRT_REFERENCE", ROOT.parent / "shared" / "reference"))
TINY_DEV = REFERENCE / "tiny_dev"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "san_vit_b_16.keys.tsv").is_file():
        pytest.fail(f"official reference data not found at {REFERENCE} (set SANRT_REFERENCE)")
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_dev(reference_dir) -> Path:
    return reference_dir / "tiny_dev"
