"""benchmarks/fps.py runs on a tiny config and writes a well-formed report (never a speed check)."""
import json
import shutil

from conftest import run_script


def test_fps_harness_report(tiny_dev, tiny_export, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)  # fps.py adds variants and verified.json to the folder it measures
    code, out, err = run_script("benchmarks/fps.py", "--config", tiny_dev / "tiny_config.json", "--checkpoint",
                                tiny_dev / "checkpoint.pth", "--export", export, "--paths", "torch-fp32,ort-fp32,ort-int8dyn",
                                "--stress", "--size", "256x256", "--runs", "2", "--warmup", "1", "--sweep-runs", "1", "--batches", "1,2",
                                "--results", tmp_path, timeout=900)
    assert code == 0, err
    rep = json.loads((tmp_path / "fps_tiny_dev.json").read_text())
    # (PyTorch BF16 autocast is left out: on CPUs without BF16 instructions it is emulated, minutes here)
    assert set(rep["main"]["timings"]) == {"torch-fp32", "ort-fp32", "ort-int8dyn"}
    for t in rep["main"]["timings"].values():
        assert t["runs"] == 2 and 0 < t["median_s"] <= t["p99_s"] and t["images_per_s"] > 0
    assert set(rep["accuracy"]) == {"ort-fp32", "ort-int8dyn"}
    assert rep["accuracy"]["ort-fp32"]["label_agreement"] >= 0.9999
    # the INT8 path was also measured on the outlier-stress variant, and that is recorded for the choice
    assert set(rep["stress"]) == {"ort-int8dyn"} and 0 <= rep["stress"]["ort-int8dyn"]["label_agreement"] <= 1
    assert (tmp_path / "export_stress" / "manifest.json").is_file()
    verified = json.loads((export / "verified.json").read_text())
    [entry] = verified.values()
    assert entry["paths"]["ort-int8dyn"]["stress"] == rep["stress"]["ort-int8dyn"]
    assert rep["best_path"] in ("ort-fp32", "ort-int8dyn")
    # the distance to the limit: graph FLOPs and the measured GEMM peaks of this run
    assert rep["flops"]["total"] > sum(v for v in rep["flops"]["parts"].values()) * 0.99 > 0
    assert rep["peaks"]["fp32"]["gflops"] > 0 and rep["peaks"]["int8"]["gflops"] > 0
    assert [s["label"].split(",")[0] for s in rep["sweeps"]] == ["batch sweep", "size sweep"]
    assert [r["setting"] for r in rep["sweeps"][0]["rows"]] == ["batch 1", "batch 2"]
    assert set(rep["vocabulary"]) == {"20", "150", "847"}
    assert {"decode", "preprocess", "image_graph", "head", "postprocess", "png"} <= set(rep["e2e"]["stages"])
    assert rep["cpu_flags"] is not None and rep["threads"] >= 1 and len(rep["loadavg_before"]) == 3
    md = (tmp_path / "fps_tiny_dev.md").read_text()
    assert "| ort-int8dyn (7-bit weights) |" in md or "| ort-int8dyn (8-bit weights) |" in md  # this tier's recipe
    assert "INT8 accuracy per CPU tier" in md and "ort-int8dyn" in next(iter(rep["int8_by_tier"].values()))
    assert "| ort-fp32 |" in md and "vs strongest PyTorch" in md and "of FP32 peak" in md and "## End to end" in md
    assert (tmp_path / "fps_tiny_dev.png").read_bytes()[:4] == b"\x89PNG"


def test_postprocess_benchmark_report(tmp_path):
    code, _, err = run_script("benchmarks/postprocess_speed.py", "--quick", "--results", tmp_path, timeout=600)
    assert code == 0, err
    rep = json.loads((tmp_path / "postprocess.json").read_text())
    assert [(r["size"], r["k"]) for r in rep["rows"]] == [("600x400", 150), ("512x512", 150), ("1920x1080", 150)]
    for r in rep["rows"]:
        assert r["runs"] == 3 and r["numpy_s"] > 0 and r["torch_s"] > 0
        assert r["label_agreement"] >= 0.9999  # the numpy runtime computes what the official code does
    assert "| 1920x1080 | 150 |" in (tmp_path / "postprocess.md").read_text()
    assert (tmp_path / "postprocess.png").read_bytes()[:4] == b"\x89PNG"


def test_text_side_report(tiny_export, tmp_path):
    """benchmarks/text_side.py: per-name caching encodes only new names, with the same class weights."""
    code, _, err = run_script("benchmarks/text_side.py", "--export", tiny_export, "--results", tmp_path, timeout=600)
    assert code == 0, err
    rep = json.loads((tmp_path / "text_side.json").read_text())
    encoded = [r["names_encoded"] for r in rep["rows"]]
    assert encoded[0] == 150 and 0 < encoded[1] < 150 and encoded[2] == 10 and encoded[3] == 0
    # expansion: 3 names + 171 distractors; after another expanded vocabulary only the 3 names run
    assert encoded[4] == 3 and encoded[5] == 174 and encoded[6] == 3 and rep["rows"][5]["classes"] == 174
    assert rep["rows"][3]["whole_vocabulary_cached"]
    assert all(r["cosine_min"] >= 0.99999 for r in rep["rows"])
    assert 0 < rep["ade150_tokens"]["tokens_prefix_shared"] < rep["ade150_tokens"]["tokens_now"]
    assert "| ADE20K-150 again | 150 | 0 (whole vocabulary cached) |" in (tmp_path / "text_side.md").read_text()


def _fps():
    from sanrt.benchmarks import fps

    return fps


def test_default_paths_are_those_the_cpu_runs_natively():
    fps = _fps()
    paths, skipped = fps.default_paths("avx2", quick=False)
    assert not set(paths) & set(fps.BF16_PATHS) and set(skipped) == set(fps.BF16_PATHS)
    assert "emulate" in skipped["torch-bf16"] and "ov-int8" in paths
    paths, skipped = fps.default_paths("amx", quick=True)
    assert set(fps.BF16_PATHS) - set(fps.STATIC_INT8) <= set(paths) and not set(paths) & set(fps.STATIC_INT8)
    assert set(paths) | set(skipped) == set(fps.ALL_PATHS)
