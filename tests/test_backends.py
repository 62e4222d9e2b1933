"""Every backend behind the one Runner interface gives the same image-graph outputs."""
import shutil

import numpy as np
import pytest
from sanrt.export.quantize import add_variant
from sanrt.runtime.backends import make_runner
from sanrt.evaluation.compare import cosine_min
from sanrt.runtime.errors import BackendError
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.preprocess import pad_batch, prepare
from sanrt.runtime.segmenter import Segmenter


@pytest.fixture(scope="module")
def feed(tiny_dev):
    img = np.load(tiny_dev / "chelsea.npz")["orig_image_hwc_u8"]
    batch, sizes = pad_batch([prepare(img)])
    return {"images": batch, "sizes": sizes}


def test_openvino_fp32_matches_onnxruntime(tiny_export, feed):
    pytest.importorskip("openvino")
    ort = make_runner("onnxruntime", tiny_export / "image.onnx", device="cpu").infer(feed)
    ov = make_runner("openvino", tiny_export / "image.onnx", precision="fp32").infer(feed)
    for k in ("mask_logits", "mask_emb"):
        assert ov[k].shape == ort[k].shape
        assert np.abs(ov[k] - ort[k]).max() / np.abs(ort[k]).max() < 1e-4, k


def test_openvino_bf16_runs_close(tiny_export, feed):
    pytest.importorskip("openvino")
    ort = make_runner("onnxruntime", tiny_export / "image.onnx", device="cpu").infer(feed)
    ov = make_runner("openvino", tiny_export / "image.onnx", precision="bf16").infer(feed)
    assert np.isfinite(ov["mask_emb"]).all() and cosine_min(ov["mask_emb"][0], ort["mask_emb"][0]) > 0.95


def test_backend_errors(tiny_export):
    with pytest.raises(BackendError, match="unknown backend"):
        make_runner("tensorflow", tiny_export / "image.onnx")
    with pytest.raises(BackendError, match="OpenVINO precision"):
        pytest.importorskip("openvino")
        make_runner("openvino", tiny_export / "image.onnx", precision="fp8")
    with pytest.raises(BackendError, match="has no int8 image graph"):
        Segmenter(tiny_export, backend="onnxruntime", precision="int8")


@pytest.mark.parametrize("backend,precision", [("onnxruntime", "bf16"), ("openvino", "int8dyn"), ("openvino", "fp16"),
                                               ("auto", "fp32"), ("tensorflow", "fp32")])
def test_backend_precision_pairs_that_do_not_exist_are_refused(tiny_export, backend, precision):
    """A pair outside backends.PRECISIONS is one BackendError, never a run in another precision."""
    with pytest.raises(BackendError, match="no 'bf16' path|no 'int8dyn' path|no 'fp16' path|named backend|unknown backend"):
        Segmenter(tiny_export, backend=backend, precision=precision)


@pytest.mark.parametrize("method,precision", [("dynamic", "int8dyn"), ("static", "int8")])
def test_int8_variants_are_added_and_run(tiny_export, tmp_path, method, precision):
    if method == "static":
        pytest.importorskip("nncf")
    folder = tmp_path / "q"
    shutil.copytree(tiny_export, folder)
    assert add_variant(folder, method, n_images=2, progress=lambda s: None) == precision
    m = Manifest.load(folder)  # every hash, the new file's included, checks out
    assert m.graphs["image"].variants[precision] in m.sha256
    assert precision in m.quantization
    if method == "static":  # side adapter and mask decoder stay float (INT8 there loses the [SLS] embeddings)
        import onnx

        g = onnx.load(folder / m.graphs["image"].variants[precision]).graph
        producer = {o: n.op_type for n in g.node for o in n.output}
        compute = [n for n in g.node if n.op_type in ("MatMul", "Conv")]
        int8 = {n.name for n in compute if "DequantizeLinear" in {producer.get(i) for i in n.input}}
        assert int8 and all("/side_adapter/" not in n and "/mask_decoder/" not in n for n in int8)
        assert any("/resblocks." in n for n in int8)
    s = Segmenter(folder, backend="onnxruntime", precision=precision, cache_dir=tmp_path / "c")
    r = s.segment([np.zeros((50, 70, 3), np.uint8) + 90], s.vocabulary(["cat", "dog", "grass"]))[0]
    assert r.labels.shape == (50, 70) and np.isfinite(r.mask_emb).all()


def test_smoothquant_migration_keeps_the_fp32_function_and_flattens_outlier_channels(tiny_dev, tmp_path, feed):
    """The migration run before dynamic INT8: same FP32 outputs, and on the outlier-stress variant the
    smoothed LayerNorm outputs no longer have a few channels 40x the rest."""
    import onnx
    import open_clip
    import torch
    from sanrt.export import build_model, export
    from sanrt.export.quantize import smooth_layernorm_readers
    from sanrt.model.random_init import add_outlier_channels_

    model, weights = build_model(config=tiny_dev / "tiny_config.json", random_init=True, notice=lambda s: None)
    add_outlier_channels_(model, torch.from_numpy(feed["images"]), torch.from_numpy(feed["sizes"]),
                          open_clip.tokenize(["a photo of a cat."]), normed_gain=40.0)
    export(model, tmp_path / "e", weights, progress=lambda s: None)
    g = onnx.load(tmp_path / "e" / "image.onnx")
    ln = [n.output[0] for n in g.graph.node if n.op_type == "LayerNormalization" and "/resblocks." in n.name][1]
    before = make_runner("onnxruntime", tmp_path / "e" / "image.onnx", device="cpu").infer(feed)
    probe = onnx.ModelProto()
    probe.CopyFrom(g)
    assert smooth_layernorm_readers(g, [feed]) >= 2 * model.cfg.clip_vision["layers"]  # ln_1 and ln_2 of every block
    onnx.save(g, tmp_path / "smoothed.onnx")
    after = make_runner("onnxruntime", tmp_path / "smoothed.onnx", device="cpu").infer(feed)
    for k in ("mask_logits", "mask_emb"):
        np.testing.assert_allclose(after[k], before[k], rtol=0, atol=2e-4 * np.abs(before[k]).max())

    def channel_spread(graph):  # largest channel max / median channel max of one CLIP LayerNorm output
        graph.graph.output.extend([onnx.helper.make_empty_tensor_value_info(ln)])
        onnx.save(graph, tmp_path / "probe.onnx")
        x = make_runner("onnxruntime", tmp_path / "probe.onnx", device="cpu").infer(feed)[ln]
        m = np.abs(x).reshape(-1, x.shape[-1]).max(axis=0)
        return m.max() / np.median(m)

    assert channel_spread(probe) > 20 > 3 * channel_spread(g)


def _int8_weights(path):
    import onnx
    from onnx import numpy_helper

    g = onnx.load(path).graph
    inits = {i.name: i for i in g.initializer}
    return [numpy_helper.to_array(inits[n.input[1]]) for n in g.node
            if n.op_type == "MatMulInteger" and n.input[1] in inits]


def test_int8_recipe_per_cpu_tier(tiny_export, tmp_path, monkeypatch, caplog):
    """Without VNNI, u8 x s8 kernels (vpmaddubsw) add product pairs into a saturating int16: the
    recipe for such CPUs keeps every weight within 64 so that no pair can exceed 32767, and a graph
    made for VNNI CPUs is refused nothing but warned about there."""
    import logging

    from sanrt.runtime import choice

    worst = lambda ws: max(2 * 255 * int(np.abs(w.astype(np.int32)).max()) for w in ws)  # largest u8 x s8 pair sum
    graphs = {}
    for for_cpu in ("any", "vnni"):
        folder = tmp_path / for_cpu
        shutil.copytree(tiny_export, folder)
        add_variant(folder, "dynamic", n_images=1, progress=lambda s: None, for_cpu=for_cpu)
        graphs[for_cpu] = folder
        assert Manifest.load(folder).quantization["int8dyn"]["weight_bits"] == (7 if for_cpu == "any" else 8)
    assert worst(_int8_weights(graphs["any"] / "image_int8dyn.onnx")) <= 32767
    assert worst(_int8_weights(graphs["vnni"] / "image_int8dyn.onnx")) > 32767  # would saturate without VNNI
    caplog.set_level(logging.WARNING, logger="sanrt")
    monkeypatch.setattr(choice, "matrix_tier", lambda flags: "avx2")
    Segmenter(graphs["vnni"], backend="onnxruntime", precision="int8dyn", cache_dir=tmp_path / "c")
    Segmenter(graphs["any"], backend="onnxruntime", precision="int8dyn", cache_dir=tmp_path / "c")
    said = [r.getMessage() for r in caplog.records if r.name == "sanrt"]
    assert len(said) == 2 and "saturating int16" in said[0] and "not been verified on this machine" in said[1]
    caplog.clear()
    monkeypatch.setattr(choice, "matrix_tier", lambda flags: "vnni")
    Segmenter(graphs["vnni"], backend="onnxruntime", precision="fp32", cache_dir=tmp_path / "c")
    assert not [r for r in caplog.records if r.name == "sanrt"]  # FP32 needs no verification


def test_runners_and_segmenters_close_as_context_managers(tiny_export, tmp_path):
    """close() and `with` free a runner's session; nothing is freed in __del__ (no finalizer)."""
    import sanrt.runtime.backends.trt  # noqa: F401 - imports without TensorRT; its runner counts too
    from sanrt.runtime.backends.base import Runner

    assert {c.__name__ for c in Runner.__subclasses__()} >= {"OnnxRuntimeRunner", "OpenVinoRunner", "TensorRTRunner"}
    assert "__del__" not in {n for cls in Runner.__subclasses__() for n in vars(cls)}
    with Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path) as seg:
        assert len(seg.vocabulary(["cat", "dog"])) == 2
    with make_runner("onnxruntime", tiny_export / "head.onnx", device="cpu") as r:
        assert r.outputs == ["class_logits"]


def test_openvino_runners_of_a_few_threads_are_not_pinned(tiny_export, monkeypatch):
    """OpenVINO pins its threads to the first cores: two processes of one thread each would share one
    core (measured: 1.7 s an image each instead of 1.0). A runner given fewer threads than the machine
    has leaves the placement to the OS; one given them all keeps OpenVINO's pinning."""
    pytest.importorskip("openvino")
    import os

    from sanrt.runtime.backends.ov import CompiledModelFromOnnx

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    few = CompiledModelFromOnnx(tiny_export / "image.onnx", threads=1)()
    assert few.get_property("ENABLE_CPU_PINNING") is False and few.get_property("INFERENCE_NUM_THREADS") == 1
    default = CompiledModelFromOnnx(tiny_export / "image.onnx")()
    every = CompiledModelFromOnnx(tiny_export / "image.onnx", threads=4)()
    assert every.get_property("ENABLE_CPU_PINNING") == default.get_property("ENABLE_CPU_PINNING")
