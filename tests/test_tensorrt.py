"""TensorRT path: everything that needs no GPU (cache keys, profiles, source graphs, clean errors);
the build itself is marked and skipped where TensorRT is absent."""
import json

import pytest
from conftest import run_script
from sanrt.export.tensorrt_build import engine_key, profiles_for, source_onnx
from sanrt.runtime.engines import check_compatible, resolve
from sanrt.runtime.errors import BackendError, ExportFolderError
from sanrt.runtime.manifest import Manifest

GPU = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


def test_profiles_follow_the_manifest(tiny_export):
    m = Manifest.load(tiny_export)
    p = profiles_for(m, "image")
    lo, opt, hi = p["images"]
    assert lo == (1, 3, 32, 32) and opt == (1, 3, 640, 640) and hi == (m["ranges"]["batch"][1], 3, 2560, 2560)
    assert p["sizes"][2] == (m["ranges"]["batch"][1], 2)
    assert profiles_for(m, "text")["token_ids"][2][1] == 77
    k_hi = profiles_for(m, "head")["class_weights"][2]
    assert k_hi == (m["ranges"]["classes"][1] + 1, m["embed_dim"])


def test_engine_key_changes_with_every_input(tiny_export):
    m = Manifest.load(tiny_export)
    p = profiles_for(m, "image")
    base = engine_key("abc", "11.4.0", GPU, p, "fp16")
    assert base == engine_key("abc", "11.4.0", dict(GPU), dict(p), "fp16")
    others = [engine_key("abd", "11.4.0", GPU, p, "fp16"), engine_key("abc", "10.13.0", GPU, p, "fp16"),
              engine_key("abc", "11.4.0", {**GPU, "gpu": "NVIDIA L4"}, p, "fp16"),
              engine_key("abc", "11.4.0", {**GPU, "compute_capability": "8.9"}, p, "fp16"),
              engine_key("abc", "11.4.0", GPU, {**p, "sizes": ((1, 2), (1, 2), (4, 2))}, "fp16"),
              engine_key("abc", "11.4.0", GPU, p, "fp32")]
    assert base not in others and len(set(others)) == len(others)


def test_strongly_typed_builds_need_the_fp16_graphs(tiny_export):
    m = Manifest.load(tiny_export)
    with pytest.raises(BackendError, match="export with --precision fp16"):
        source_onnx(m, "image", "fp16", strongly_typed=True)
    assert source_onnx(m, "image", "fp16", strongly_typed=False) == "image.onnx"  # TensorRT 10: FP32 ONNX + flag
    assert source_onnx(m, "head", "fp16", strongly_typed=True) == "head.onnx"


def test_engines_for_another_gpu_or_version_are_refused(tmp_path):
    meta = {"export": str(tmp_path), "tensorrt": "11.4.0", **GPU, "precision": "fp16",
            "engines": {g: {"file": f"{g}.engine"} for g in ("image", "text", "head")}}
    (tmp_path / "engine.json").write_text(json.dumps(meta))
    for g in ("image", "text", "head"):
        (tmp_path / f"{g}.engine").write_bytes(b"x")
    export_dir, m = resolve(tmp_path / "image.engine")
    assert export_dir == tmp_path and m["folder"] == str(tmp_path)
    check_compatible(m, GPU, "11.4.0")
    with pytest.raises(BackendError, match="built for NVIDIA H100 .* this is NVIDIA L4"):
        check_compatible(m, {"gpu": "NVIDIA L4", "compute_capability": "8.9"}, "11.4.0")
    with pytest.raises(BackendError, match="with TensorRT 11.4.0; .* with TensorRT 10.13.0"):
        check_compatible(m, GPU, "10.13.0")
    with pytest.raises(ExportFolderError, match="engine not found"):
        resolve(tmp_path / "other.engine")


@pytest.mark.parametrize("damage,text", [
    (lambda m: "{not json", "is corrupt"), (lambda m: "[1]", "not an engine description"),
    (lambda m: {k: v for k, v in m.items() if k != "gpu"}, "field gpu is missing"),
    (lambda m: {**m, "engines": {"image": {"file": "image.engine"}}}, "image, text and head"),
    (lambda m: {**m, "engines": {**m["engines"], "text": {"file": "../x.engine"}}}, "not a plain file name"),
    (lambda m: {**m, "engines": {**m["engines"], "head": {"file": "gone.engine"}}}, "gone.engine is missing")])
def test_a_damaged_engine_json_is_one_clear_error(tmp_path, damage, text):
    meta = {"export": str(tmp_path), "tensorrt": "11.4.0", **GPU, "precision": "fp16",
            "engines": {g: {"file": f"{g}.engine"} for g in ("image", "text", "head")}}
    for g in ("image", "text", "head"):
        (tmp_path / f"{g}.engine").write_bytes(b"x")
    bad = damage(meta)
    (tmp_path / "engine.json").write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(ExportFolderError, match=text):
        resolve(tmp_path)


def test_build_without_tensorrt_is_one_line(tiny_export):
    pytest.importorskip("polygraphy")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except (ImportError, OSError):
        pass
    code, _, err = run_script("export/build_engine.py", "--onnx", tiny_export, "--out", tiny_export / "engines_x")
    assert code == 2 and err.startswith("error: TensorRT is not installed") and "Traceback" not in err
    assert not (tiny_export / "engines_x").exists()


def _no_gpu_here():
    """cuda-python's runtime where it imports and finds no GPU (this project's CI), else skip."""
    pytest.importorskip("cuda.bindings")
    from sanrt.runtime.cuda import cudart

    if int(cudart().cudaGetDeviceCount()[0]) == 0:
        pytest.skip("a CUDA GPU is present")


def test_cuda_errors_without_a_gpu_are_one_line():
    _no_gpu_here()
    from sanrt.runtime.cuda import check, cudart
    from sanrt.runtime.engines import gpu_identity

    with pytest.raises(BackendError, match=r"^CUDA stream creation failed: \S.*") as e:
        check(cudart().cudaStreamCreate(), "stream creation")
    assert "\n" not in str(e.value)
    with pytest.raises(BackendError, match=r"^CUDA query of GPU 0 failed: \S"):
        gpu_identity()


def test_engine_runner_without_tensorrt_is_one_line(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except (ImportError, OSError):
        pass
    from sanrt.runtime.backends import make_runner

    (tmp_path / "image.engine").write_bytes(b"not an engine")
    with pytest.raises(BackendError, match="^TensorRT is not installed"):
        make_runner("tensorrt", tmp_path / "image.engine")
    with pytest.raises(BackendError, match="^engine not found"):
        make_runner("tensorrt", tmp_path / "text.engine")
    with pytest.raises(BackendError, match="not the CPU"):
        make_runner("tensorrt", tmp_path / "image.engine", device="cpu")


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_build_and_run_engines(tiny_dev, tmp_path):
    pytest.importorskip("tensorrt")
    out = tmp_path / "export"
    code, _, err = run_script("export/to_onnx.py", "--config", tiny_dev / "tiny_config.json", "--checkpoint",
                              tiny_dev / "checkpoint.pth", "--out", out, "--precision", "fp16")
    assert code == 0, err
    code, _, err = run_script("export/build_engine.py", "--onnx", out, timeout=1800)
    assert code == 0, err
    import numpy as np
    from PIL import Image

    Image.fromarray(np.load(tiny_dev / "astronaut.npz")["orig_image_hwc_u8"]).save(tmp_path / "astronaut.png")
    labels = {}
    for name, extra in (("onnxruntime", ["--engine", out, "--backend", "onnxruntime"]),
                        ("trt", ["--engine", out / "engines" / "image.engine"]),
                        ("trt-graph", ["--engine", out / "engines", "--cuda-graph"])):
        code, _, err = run_script("runtime/infer.py", *extra, "--image", tmp_path / "astronaut.png", "--vocab",
                                  "cat,dog,person,sky", "--out", tmp_path / name)
        assert code == 0, err
        labels[name] = np.asarray(Image.open(tmp_path / name / "astronaut_labels.png"))
    assert (labels["trt"] == labels["onnxruntime"]).mean() >= 0.99  # FP16 engines against the FP32 graph
    assert (labels["trt-graph"] == labels["trt"]).all()  # a replayed CUDA graph computes the same


@pytest.mark.slow
def test_gpu_check_script_runs_quick_on_cpu(tmp_path):
    code, _, err = run_script("benchmarks/gpu_check.py", "--out", tmp_path, "--quick", timeout=600)
    assert code == 0, err
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    assert {r["mode"] for r in rep["rows"]} == {"fp32-eager", "fp16-autocast-eager"}
    assert all(r["median_s"] > 0 for r in rep["rows"]) and (tmp_path / "gpu_check.md").is_file()
