"""The automatic backend choice reads what benchmarks/fps.py verified on this machine for the graphs
the export holds now."""
import copy
import json

import pytest
from sanrt.runtime import choice
from sanrt.runtime.manifest import Manifest


def _paths(**overrides):
    paths = {
        "ort-fp32": {"backend": "onnxruntime", "precision": "fp32", "median_s": 2.0, "label_agreement": 1.0, "probe_label_agreement": 1.0, "mask_emb_cosine_min": 1.0},
        "ov-bf16": {"backend": "openvino", "precision": "bf16", "median_s": 0.8, "label_agreement": 0.995, "probe_label_agreement": 0.993, "mask_emb_cosine_min": 0.999},
        "ov-int8": {"backend": "openvino", "precision": "int8", "median_s": 0.5, "label_agreement": 0.93, "probe_label_agreement": 0.95, "mask_emb_cosine_min": 0.97},
        "ort-int8dyn": {"backend": "onnxruntime", "precision": "int8dyn", "median_s": 0.6, "label_agreement": 0.995, "probe_label_agreement": 0.994, "mask_emb_cosine_min": 0.995,
                        "stress": {"label_agreement": 0.993, "probe_label_agreement": 0.992, "mask_emb_cosine_min": 0.994}},
    }
    for k, v in overrides.items():
        paths[k].update(v)
    return paths


@pytest.fixture
def manifest(tiny_export, tmp_path):
    """tiny_export's manifest over an empty folder, with two INT8 variants listed (choose reads only
    the manifest and verified.json)."""
    data = copy.deepcopy(Manifest.load(tiny_export).data)
    data["graphs"]["image"]["variants"] = {"int8": "image_int8.onnx", "int8dyn": "image_int8dyn.onnx"}
    data["sha256"].update({"image_int8.onnx": "a" * 64, "image_int8dyn.onnx": "b" * 64})
    return Manifest(data, tmp_path)


def test_fastest_verified_path_wins(manifest):
    choice.record(manifest, _paths(), source="test")
    backend, precision, device, why = choice.choose(manifest, available={"onnxruntime", "openvino"})
    # ov-int8 is faster but misses the bounds; ort-int8dyn is the fastest that meets them
    assert (backend, precision) == ("onnxruntime", "int8dyn") and "ort-int8dyn" in why and "99.50%" in why
    recorded = json.loads((manifest.folder / choice.VERIFIED).read_text())
    assert all("graphs" in p for entry in recorded.values() for p in entry["paths"].values())


@pytest.mark.parametrize("stress", [None, {"label_agreement": 0.95, "probe_label_agreement": 0.999, "mask_emb_cosine_min": 0.999},
                                    {"label_agreement": 0.999, "probe_label_agreement": 0.999, "mask_emb_cosine_min": 0.9}])
def test_int8_that_fails_or_skipped_the_outlier_stress_is_not_chosen(manifest, stress):
    paths = _paths(**{"ov-int8": {"label_agreement": 0.999, "probe_label_agreement": 0.999, "mask_emb_cosine_min": 0.999,
                                  "stress": stress}})
    if stress is None:
        del paths["ov-int8"]["stress"]
    choice.record(manifest, paths, source="test")
    # ov-int8 (0.5 s) meets the bounds on the export's own weights, but not on the stress variant
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("onnxruntime", "int8dyn")
    paths["ov-int8"]["stress"] = {"label_agreement": 0.995, "probe_label_agreement": 0.995, "mask_emb_cosine_min": 0.995}
    choice.record(manifest, paths, source="test")
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("openvino", "int8")


def test_uninstalled_backend_is_skipped(manifest):
    choice.record(manifest, _paths(**{"ort-int8dyn": {"median_s": 5.0}}), source="test")
    assert choice.choose(manifest, available={"onnxruntime"})[:2] == ("onnxruntime", "fp32")
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("openvino", "bf16")


def test_a_removed_variant_invalidates_its_entry(manifest):
    choice.record(manifest, _paths(), source="test")
    data = copy.deepcopy(manifest.data)
    del data["graphs"]["image"]["variants"]["int8dyn"]
    manifest = Manifest(data, manifest.folder)
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("openvino", "bf16")


def test_a_re_export_invalidates_every_entry(manifest):
    choice.record(manifest, _paths(), source="test")
    data = copy.deepcopy(manifest.data)
    for f in ("image.onnx", "image_int8.onnx", "image_int8dyn.onnx"):
        data["sha256"][f] = "c" * 64  # new graphs under the same names
    manifest = Manifest(data, manifest.folder)
    backend, precision, device, why = choice.choose(manifest, available={"onnxruntime", "openvino"})
    assert (backend, precision) == ("onnxruntime", "fp32") and "no longer those of this export" in why


def test_entries_without_graph_hashes_or_with_pairs_that_do_not_exist_are_ignored(manifest):
    old = {"backend": "openvino", "precision": "bf16", "median_s": 0.1, "label_agreement": 1.0, "probe_label_agreement": 1.0, "mask_emb_cosine_min": 1.0}
    bad_pair = {**old, "backend": "onnxruntime", "graphs": choice.graphs_of(manifest, "bf16")}
    (manifest.folder / choice.VERIFIED).write_text(json.dumps(
        {choice.machine_slug(): {"source": "older sanrt", "paths": {"ov-bf16": old, "ort-bf16": bad_pair}}}))
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("onnxruntime", "fp32")


def test_no_measurements_falls_back_and_says_so(manifest):
    backend, precision, device, why = choice.choose(manifest)
    assert (backend, precision) == ("onnxruntime", "fp32") and "no verified measurements" in why


def test_other_machines_entries_are_ignored(manifest):
    (manifest.folder / choice.VERIFIED).write_text('{"cpu64-some-other-cpu": {"source": "x", "paths": {}}}')
    assert "no verified measurements" in choice.choose(manifest)[3]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"%s": 5}'])
def test_a_damaged_verified_json_falls_back(manifest, text):
    (manifest.folder / choice.VERIFIED).write_text(text.replace("%s", choice.machine_slug()))
    assert choice.choose(manifest)[:2] == ("onnxruntime", "fp32")


@pytest.mark.parametrize("acc", [{"label_agreement": 0.98, "mask_emb_cosine_min": 0.999},
                                 {"label_agreement": 0.999, "mask_emb_cosine_min": 0.98}])
def test_each_accuracy_bound_alone_refuses_a_path(manifest, acc):
    """Both bounds must hold: a path missing either one is never chosen (also under stress)."""
    assert not choice.meets_bounds(acc)
    good = {"label_agreement": 0.999, "mask_emb_cosine_min": 0.999, "median_s": 0.3}  # the fastest path
    choice.record(manifest, _paths(**{"ov-bf16": good}), source="test")
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("openvino", "bf16")
    choice.record(manifest, _paths(**{"ov-bf16": {**good, **acc}}), source="test")
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("onnxruntime", "int8dyn")
    paths = _paths(**{"ort-int8dyn": {"stress": acc}})
    del paths["ov-bf16"]
    choice.record(manifest, paths, source="test")
    assert choice.choose(manifest, available={"onnxruntime", "openvino"})[:2] == ("onnxruntime", "fp32")


def test_cpu_measurements_never_choose_a_cuda_path(manifest):
    """A CUDA path cannot be recorded as a CPU measurement, and an entry under this CPU's key that
    claims a CUDA path (hand-edited, or from another tool) is never chosen: CPU paths run on the CPU."""
    from sanrt.runtime.errors import BackendError

    cuda = {"backend": "onnxruntime", "precision": "fp16", "median_s": 0.01, "label_agreement": 1.0,
            "mask_emb_cosine_min": 1.0}
    with pytest.raises(BackendError, match="tensorrt fp16 runs on cuda, not cpu"):
        choice.record(manifest, {"trt-fp16": {**cuda, "backend": "tensorrt"}}, source="test")
    choice.record(manifest, _paths(), source="test")
    data = json.loads((manifest.folder / choice.VERIFIED).read_text())
    data[choice.verification_key("cpu")]["paths"]["ort-cuda-fp16"] = {**cuda, "device": "cuda",
                                                                     "graphs": choice.graphs_of(manifest, "fp32")}
    (manifest.folder / choice.VERIFIED).write_text(json.dumps(data))
    backend, precision, device, why = choice.choose(manifest, available={"onnxruntime", "openvino"})
    assert (backend, precision, device) == ("onnxruntime", "int8dyn", "cpu") and "ort-int8dyn" in why
