"""The automatic backend choice reads what benchmarks/fps.py verified on this machine."""
from sanrt.runtime import choice


def _paths(**overrides):
    paths = {
        "ort-fp32": {"backend": "onnxruntime", "precision": "fp32", "median_s": 2.0, "label_agreement": 1.0, "mask_emb_cosine_min": 1.0},
        "ov-bf16": {"backend": "openvino", "precision": "bf16", "median_s": 0.8, "label_agreement": 0.995, "mask_emb_cosine_min": 0.999},
        "ov-int8": {"backend": "openvino", "precision": "int8", "median_s": 0.5, "label_agreement": 0.93, "mask_emb_cosine_min": 0.97},
    }
    for k, v in overrides.items():
        paths[k].update(v)
    return paths


def test_fastest_verified_path_wins(tmp_path):
    choice.record(tmp_path, _paths(), source="test")
    backend, precision, why = choice.choose(tmp_path, available={"onnxruntime", "openvino"})
    assert (backend, precision) == ("openvino", "bf16")  # ov-int8 is faster but misses the bounds
    assert "ov-bf16" in why and "99.50%" in why


def test_uninstalled_backend_is_skipped(tmp_path):
    choice.record(tmp_path, _paths(), source="test")
    assert choice.choose(tmp_path, available={"onnxruntime"})[:2] == ("onnxruntime", "fp32")


def test_no_measurements_falls_back_and_says_so(tmp_path):
    backend, precision, why = choice.choose(tmp_path)
    assert (backend, precision) == ("onnxruntime", "fp32") and "no verified measurements" in why


def test_other_machines_entries_are_ignored(tmp_path):
    (tmp_path / choice.VERIFIED).write_text('{"cpu64-some-other-cpu": {"source": "x", "paths": {}}}')
    assert "no verified measurements" in choice.choose(tmp_path)[2]
