"""Every backend behind the one Runner interface gives the same image-graph outputs."""
import shutil

import numpy as np
import pytest
from sanrt.export.quantize import add_variant
from sanrt.runtime.backends import make_runner
from sanrt.runtime.errors import BackendError
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.preprocess import pad_batch, prepare
from sanrt.runtime.segmenter import Segmenter


@pytest.fixture(scope="module")
def feed(tiny_dev):
    img = np.load(tiny_dev / "chelsea.npz")["orig_image_hwc_u8"]
    batch, sizes = pad_batch([prepare(img)])
    return {"images": batch, "sizes": sizes}


def _cos_min(a, b):
    return float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).min())


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
    assert np.isfinite(ov["mask_emb"]).all() and _cos_min(ov["mask_emb"][0], ort["mask_emb"][0]) > 0.95


def test_backend_errors(tiny_export):
    with pytest.raises(BackendError, match="unknown backend"):
        make_runner("tensorflow", tiny_export / "image.onnx")
    with pytest.raises(BackendError, match="OpenVINO precision"):
        pytest.importorskip("openvino")
        make_runner("openvino", tiny_export / "image.onnx", precision="fp8")
    with pytest.raises(BackendError, match="has no int8 image graph"):
        Segmenter(tiny_export, precision="int8")


@pytest.mark.parametrize("method,precision", [("dynamic", "int8dyn"), ("static", "int8")])
def test_int8_variants_are_added_and_run(tiny_export, tmp_path, method, precision):
    if method == "static":
        pytest.importorskip("nncf")
    folder = tmp_path / "q"
    shutil.copytree(tiny_export, folder)
    assert add_variant(folder, method, n_images=2, progress=lambda s: None) == precision
    m = Manifest.load(folder)  # every hash, the new file's included, checks out
    assert m["graphs"]["image"]["variants"][precision] in m["sha256"]
    assert precision in m["quantization"]
    if method == "static":  # side adapter and mask decoder stay float (INT8 there loses the [SLS] embeddings)
        import onnx

        g = onnx.load(folder / m["graphs"]["image"]["variants"][precision]).graph
        producer = {o: n.op_type for n in g.node for o in n.output}
        compute = [n for n in g.node if n.op_type in ("MatMul", "Conv")]
        int8 = {n.name for n in compute if "DequantizeLinear" in {producer.get(i) for i in n.input}}
        assert int8 and all("/side_adapter/" not in n and "/mask_decoder/" not in n for n in int8)
        assert any("/resblocks." in n for n in int8)
    s = Segmenter(folder, precision=precision, cache_dir=tmp_path / "c")
    s.set_vocabulary(["cat", "dog", "grass"])
    r = s.segment([np.zeros((50, 70, 3), np.uint8) + 90])[0]
    assert r.labels.shape == (50, 70) and np.isfinite(r.mask_emb).all()
