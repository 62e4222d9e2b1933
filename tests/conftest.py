import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The official reference data, carried in the repository (tests/data/official/README.md says how it
# was made): a clone alone runs the suite. SANRT_REFERENCE points at another folder of that format.
REFERENCE = Path(os.environ.get("SANRT_REFERENCE", ROOT / "tests" / "data" / "official"))
TINY_DEV = REFERENCE / "tiny_dev"


@pytest.fixture(scope="session", autouse=True)
def private_vocabulary_cache(tmp_path_factory) -> Path:
    """Every test, and every script a test starts (run_script passes the environment on), uses a
    temporary vocabulary cache ($SANRT_CACHE), never the user's ~/.cache/sanrt."""
    from sanrt.runtime.text import default_cache_dir

    cache = tmp_path_factory.mktemp("sanrt_cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("SANRT_CACHE", str(cache))
    assert default_cache_dir().is_relative_to(cache)
    yield cache
    patch.undo()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "san_vit_b_16.keys.tsv").is_file():
        pytest.fail(f"official reference data not found at {REFERENCE} (set SANRT_REFERENCE)")
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_dev(reference_dir) -> Path:
    return reference_dir / "tiny_dev"


def run_script(script: str, *args, timeout=300, env_extra=None):
    """Run one of the project's scripts as a user would; returns (returncode, stdout, stderr)."""
    import subprocess
    import sys

    env = dict(os.environ, **(env_extra or {}))
    p = subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def fake_engine_folder(export_dir: Path, folder: Path, **changes) -> Path:
    """An engine folder as export/build_engine.py writes one for `export_dir` (engine.json with the
    ONNX hashes, a relative export path), with placeholder plans: for every check that reads the
    metadata and never loads a plan. `changes` replace engine.json fields."""
    import json

    from sanrt.runtime.manifest import Manifest

    m = Manifest.load(export_dir)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"export": str(export_dir), "export_relative": os.path.relpath(export_dir, folder), "tensorrt": "11.4.0",
            "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "precision": "fp16",
            "engines": {g: {"file": f"{g}.engine", "onnx": m.graphs[g].file, "onnx_sha256": m.sha256[m.graphs[g].file]}
                        for g in ("image", "text", "head")}}
    meta.update(changes)
    for g in ("image", "text", "head"):
        (folder / f"{g}.engine").write_bytes(b"not a real engine")
    (folder / "engine.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="session")
def tiny_export(tiny_dev, tmp_path_factory) -> Path:
    """tiny_dev's config and official checkpoint exported once for the session."""
    out = tmp_path_factory.mktemp("export") / "tiny_dev"
    code, _, err = run_script("export/to_onnx.py", "--config", tiny_dev / "tiny_config.json",
                              "--checkpoint", tiny_dev / "checkpoint.pth", "--out", out)
    assert code == 0, err
    return out


@pytest.fixture(scope="session")
def small_export(tiny_dev, tmp_path_factory) -> Path:
    """tiny_dev exported with padded sides up to 1024 only: some images fall outside its range."""
    out = tmp_path_factory.mktemp("export") / "tiny_dev_1024"
    code, _, err = run_script("export/to_onnx.py", "--config", tiny_dev / "tiny_config.json",
                              "--checkpoint", tiny_dev / "checkpoint.pth", "--out", out, "--max-side", "1024")
    assert code == 0, err
    return out
