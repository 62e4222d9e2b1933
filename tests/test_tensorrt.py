"""TensorRT path: everything that needs no GPU (cache keys, profiles, source graphs, clean errors);
the build itself is marked and skipped where TensorRT is absent."""
import json

import pytest
from conftest import fake_engine_folder, run_script
from sanrt.export.tensorrt_build import engine_key, profiles_for, source_onnx
from sanrt.runtime.backends.trt_engines import check_compatible, resolve
from sanrt.runtime.errors import BackendError, ExportFolderError
from sanrt.runtime.manifest import Manifest

GPU = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


def test_profiles_follow_the_manifest(tiny_export):
    m = Manifest.load(tiny_export)
    p = profiles_for(m, "image")
    lo, opt, hi = p["images"]
    assert lo == (1, 3, 32, 32) and opt == (1, 3, 640, 640) and hi == (m.ranges.batch[1], 3, 2560, 2560)
    assert p["sizes"][2] == (m.ranges.batch[1], 2)
    assert profiles_for(m, "text")["token_ids"][2][1] == 77
    k_hi = profiles_for(m, "head")["class_weights"][2]
    assert k_hi == (m.ranges.classes[1] + 1, m.embed_dim)


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
    (tmp_path / "manifest.json").write_text("{}")  # resolve finds the export; Manifest.load reads it later
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
    code, _, err = run_script("export/build_engine.py", "--export", tiny_export, "--out", tiny_export / "engines_x")
    assert code == 2 and err.startswith("error: TensorRT is not installed") and "Traceback" not in err
    assert not (tiny_export / "engines_x").exists()


def _no_gpu_here():
    """cuda-python's runtime where it imports and finds no GPU (this project's CI), else skip."""
    pytest.importorskip("cuda.bindings")
    from sanrt.runtime.backends.cuda_api import cudart

    if int(cudart().cudaGetDeviceCount()[0]) == 0:
        pytest.skip("a CUDA GPU is present")


def test_cuda_errors_without_a_gpu_are_one_line():
    _no_gpu_here()
    from sanrt.runtime.backends.cuda_api import check, cudart
    from sanrt.runtime.backends.trt_engines import gpu_identity

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
    code, _, err = run_script("export/build_engine.py", "--export", out, timeout=1800)
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


# the dry run's rows (on a GPU the ORT row is ort-cuda-fp16): PyTorch, then sanrt's Segmenter
GPU_CHECK_TORCH = ("torch-fp32", "torch-fp16", "torch-compile-fp16")
GPU_CHECK_PATHS = (*GPU_CHECK_TORCH, "ort-fp16", "trt-fp16", "trt-fp16-cudagraph")


def test_gpu_check_dry_run_reports_every_planned_row(tmp_path):
    """benchmarks/gpu_check.py end to end on CPU (tiny config): every planned row is measured or
    skipped with a reason; the PyTorch rows and sanrt's ONNX Runtime FP16 row (IO binding) are
    measured, accurate against PyTorch FP32; TensorRT's rows carry the reason it cannot run; the
    budget guard skips what does not fit, still reporting every row."""
    code, _, err = run_script("benchmarks/gpu_check.py", "--dry-run", "--budget-s", "200", "--out", tmp_path, timeout=300)  # slow CI: no skips
    assert code == 0, err
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    md = (tmp_path / "gpu_check.md").read_text()
    assert rep["dry_run"] and "DRY RUN" in md and sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.md"]
    planned = {(p, b) for p in GPU_CHECK_PATHS for b in (1, 2)}
    rows = {(r["path"], r["batch"]): r for r in rep["rows"]}
    assert set(rows) == planned and len(rep["rows"]) == len(planned)
    assert {(p["path"], p["batch"]) for p in rep["plan"]} == planned
    assert set(rep["peak_tflops"]) == {"fp16", "bf16", "fp32", "tf32"} and all(v > 0 for v in rep["peak_tflops"].values())
    assert rep["flops_per_image"] > 0 and sum(rep["flops_parts"].values()) == rep["flops_per_image"]
    for (path, batch), r in rows.items():
        assert f"| {path} | {batch} |" in md
        if r.get("skipped"):
            assert isinstance(r["skipped"], str) and r["skipped"].strip()
            continue
        assert r["median_s"] > 0 and r["p90_s"] >= r["median_s"] and r["images_per_s"] > 0 and r["first_call_s"] > 0
        assert r["runs"] >= 3 and r["achieved_tflops"] > 0 and r["fraction_of_peak"] > 0 and r["peak"] == r["precision"]
    # measured: the PyTorch rows and sanrt's ONNX Runtime row; TensorRT's rows need a GPU, and say why not
    assert {k for k, r in rows.items() if not r.get("skipped")} == {(p, b) for p in GPU_CHECK_PATHS[:4] for b in (1, 2)}
    for b in (1, 2):  # what the Segmenter reports it ran: ONNX Runtime's CPU provider, the FP16 graph, IO binding
        assert {k: rows[("ort-fp16", b)][k] for k in ("backend", "device", "precision", "io_binding")} == {
            "backend": "onnxruntime", "device": "cpu", "precision": "fp16", "io_binding": True}
        assert [rows[(p, b)]["precision"] for p in GPU_CHECK_TORCH] == ["fp32", "fp16", "fp16"]
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):  # the reason is sanrt's own line
        assert all(rows[(p, b)]["skipped"].startswith("TensorRT") for p in ("trt-fp16", "trt-fp16-cudagraph") for b in (1, 2))
    acc = rep["accuracy"]
    assert acc["torch-fp32"] == {"reference": True}
    for path in ("torch-fp16", "torch-compile-fp16", "ort-fp16"):  # FP16 against FP32 on the sample photos
        a = acc[path]
        assert 0.98 <= a["mask_emb_cosine_min"] <= 1.0001, (path, a)
        assert 0.9 <= a["label_agreement"] <= 1 and 0.8 <= a["probe_label_agreement"] <= 1, (path, a)
    assert set(acc) == set(GPU_CHECK_TORCH) | {"ort-fp16"}

    code, _, err = run_script("benchmarks/gpu_check.py", "--dry-run", "--budget-s", "0", "--out", tmp_path / "b", timeout=300)
    assert code == 0, err
    rep = json.loads((tmp_path / "b" / "gpu_check.json").read_text())
    assert {(r["path"], r["batch"]) for r in rep["rows"]} == planned
    assert all(r["skipped"].startswith("time budget") for r in rep["rows"])
    assert "time budget" in rep["gemm_skipped"] and "time budget" in rep["flops_skipped"]


def _engines_for(export_dir, folder, **changes):
    return fake_engine_folder(export_dir, folder, **{"tensorrt": "11.4.0", **GPU, **changes})


def test_engines_follow_their_export_when_both_move_and_refuse_other_graphs(tiny_export, tmp_path):
    import shutil

    from sanrt.runtime.backends.trt_engines import check_built_from
    from sanrt.runtime.manifest import Manifest

    export = tmp_path / "a" / "export"
    shutil.copytree(tiny_export, export)
    _engines_for(export, export / "engines")
    shutil.move(tmp_path / "a", tmp_path / "b")  # the recorded absolute path is gone now
    export_dir, meta = resolve(tmp_path / "b" / "export" / "engines")
    assert export_dir.resolve() == (tmp_path / "b" / "export").resolve()
    check_built_from(meta, Manifest.load(export_dir))
    meta["engines"]["text"]["onnx_sha256"] = "0" * 64  # built from a text graph this export no longer holds
    with pytest.raises(BackendError, match="text engine .* was not built from this export's text.onnx"):
        check_built_from(meta, Manifest.load(export_dir))
    shutil.rmtree(tmp_path / "b" / "export" / "engines")
    lone = _engines_for(tmp_path / "b" / "export", tmp_path / "elsewhere", export="/nowhere", export_relative="../nope")
    with pytest.raises(ExportFolderError, match="the export these engines were built from is gone"):
        resolve(lone)
