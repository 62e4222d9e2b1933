"""The source tree as a user runs it: no module beside a script can shadow an installed package
(`python runtime/infer.py` puts runtime/ first on sys.path)."""
import json
from importlib.metadata import packages_distributions

import pytest
from conftest import ROOT, run_script

# folders holding scripts or put on sys.path (tests/ by pytest), and import names of sanrt's extras
# that need not be installed here (GPU, serving, batch, app, video)
FOLDERS = ("runtime", "export", "model", "benchmarks", "tests")
EXTRAS = {"tensorrt", "cuda", "polygraphy", "onnxruntime", "openvino", "nncf", "pytriton", "tritonclient", "ray",
          "gradio", "gradio_client", "av", "torch", "open_clip", "onnx", "onnxslim", "skimage", "PIL", "numpy"}


def test_no_module_shadows_an_installed_package():
    taken = set(packages_distributions()) | EXTRAS
    clashes = []
    for folder in FOLDERS:
        for p in (ROOT / folder).iterdir():
            name = p.stem if p.suffix == ".py" else p.name if p.is_dir() and (p / "__init__.py").exists() else None
            if name in taken:
                clashes.append(f"{folder}/{p.name} shadows the installed package {name!r}")
    assert not clashes, clashes


def test_infer_script_on_an_engine_folder_gives_the_true_reason(tiny_export, tmp_path):
    """With cuda-python installed, `python runtime/infer.py --engine ENGINE_DIR` on a machine without
    a GPU or TensorRT says so, never that cuda-python is missing."""
    pytest.importorskip("cuda.bindings")
    from sanrt.runtime.manifest import Manifest

    m = Manifest.load(tiny_export)
    engines = tmp_path / "engines"
    engines.mkdir()
    for g in ("image", "text", "head"):
        (engines / f"{g}.engine").write_bytes(b"not a real engine")
    (engines / "engine.json").write_text(json.dumps({
        "export": str(tiny_export), "precision": "fp16", "tensorrt": "10.13.0", "gpu": "NVIDIA H100",
        "compute_capability": "9.0", "engines": {g: {"file": f"{g}.engine", "onnx": m.graphs[g].file,
                                                      "onnx_sha256": m.sha256[m.graphs[g].file]}
                                                  for g in ("image", "text", "head")}}))
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "photo.png")
    code, _, err = run_script("runtime/infer.py", "--engine", engines, "--image", tmp_path / "photo.png", "--vocab",
                              "cat", "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in err, err
    assert "cuda-python is not installed" not in err
    assert err.startswith(("error: CUDA", "error: TensorRT")), err  # no GPU here, or no TensorRT


def test_export_folders_are_named_export_and_old_spellings_still_work(tiny_export, tmp_path):
    """Every tool but infer.py names the export folder --export; --engine and --onnx still work
    with one notice line."""
    code, _, err = run_script("export/quantize.py", "--engine", tiny_export, "--calibration-images", "0")
    assert code == 2 and err.splitlines()[0] == "notice: --engine is now --export (the old spelling still works)", err
    assert err.splitlines()[1].startswith("error: quantisation needs at least one calibration image")
    code, _, err = run_script("export/quantize.py", "--export", tiny_export, "--calibration-images", "0")
    assert code == 2 and "notice" not in err, err
