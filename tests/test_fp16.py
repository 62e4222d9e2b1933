"""FP16 variants: valid graphs, LayerNorm statistics kept in FP32, close to PyTorch FP32 on CPU."""
import shutil

import numpy as np
import onnx
import pytest
from conftest import run_script
from sanrt.export.fp16 import drop_cast_round_trips, fp16_weight_floor, layernorm_stat_nodes, to_fp16
from sanrt.export.onnx_export import trace_fp32_for_fp16
from sanrt.model.reference import load_fixture_model
from sanrt.evaluation.compare import cosine_min, label_agreement
from sanrt.runtime.segmenter import Segmenter


@pytest.fixture(scope="module")
def fp16_export(tiny_dev, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16") / "tiny_dev"
    code, _, err = run_script("export/to_onnx.py", "--config", tiny_dev / "tiny_config.json", "--checkpoint",
                              tiny_dev / "checkpoint.pth", "--out", out, "--precision", "fp16")
    assert code == 0, err
    return out


def _types(model):
    m = onnx.shape_inference.infer_shapes(model)
    t = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.value_info, *m.graph.input, *m.graph.output]}
    t.update({i.name: i.data_type for i in m.graph.initializer})
    return m, t


def test_fp16_graphs_keep_io_types_and_layernorm_stats_in_fp32(fp16_export):
    F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    for name in ("image_fp16.onnx", "text_fp16.onnx"):
        m, types = _types(onnx.load(fp16_export / name))
        onnx.checker.check_model(m, full_check=True)
        assert all(types[i.name] != F16 for i in m.graph.input)  # uint8 / int64 / int32 stay
        assert all(types[o.name] == F32 for o in m.graph.output)
        stats = [n for n in m.graph.node if n.op_type in ("Pow", "Sqrt")]
        assert stats and all(types[n.output[0]] == F32 for n in stats)
        matmuls = [n for n in m.graph.node if n.op_type == "MatMul"]
        assert sum(types[n.output[0]] == F16 for n in matmuls) >= 0.9 * len(matmuls)


def test_no_fp16_round_trip_inside_islands(tiny_dev):
    model, _ = load_fixture_model(tiny_dev)
    g = trace_fp32_for_fp16(model, "image")
    assert len(layernorm_stat_nodes(g)) % 5 == 0
    m16 = to_fp16(g)
    producer = {o: n for n in m16.graph.node for o in n.output}
    for n in m16.graph.node:
        if n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT:
            up = producer.get(n.input[0])
            assert not (up is not None and up.op_type == "Cast" and up.attribute[0].i == onnx.TensorProto.FLOAT16)
    assert drop_cast_round_trips(m16) is m16


def test_fp16_runs_on_cpu_close_to_pytorch(fp16_export, tiny_dev, tmp_path):
    """Against the official FP32 outputs: cosine >= 0.999, and label agreement no more than 0.5 points
    below the weight-rounding floor (the FP32 graph with FP16-rounded weights). tiny_dev's amplified
    weights (logit scale 100, query MLP x20) put that floor itself under 99.5 % on chelsea
    (benchmarks/NOTES.md): no FP16 graph can reach 99.5 % there, so the floor is the fair bound."""
    floor_dir = tmp_path / "floor"
    shutil.copytree(fp16_export, floor_dir)
    onnx.save(fp16_weight_floor(onnx.load(fp16_export / "image.onnx")), floor_dir / "image.onnx")
    s16 = Segmenter(fp16_export, backend="onnxruntime", precision="fp16", cache_dir=tmp_path)
    floor = Segmenter(floor_dir, backend="onnxruntime", cache_dir=tmp_path, verify=False)
    names = (tiny_dev / "vocabulary.txt").read_text().split()
    v16, vfloor = s16.vocabulary(names), floor.vocabulary(names)
    for npz in sorted(tiny_dev.glob("*.npz")):
        ref = np.load(npz)
        r = s16.segment([ref["orig_image_hwc_u8"]], v16)[0]
        assert cosine_min(r.mask_emb, ref["mask_emb"][0]) >= 0.999
        agree = label_agreement(r.labels, ref["label_map"], ref["sem_seg"]).agreement
        floor_agree = label_agreement(floor.segment([ref["orig_image_hwc_u8"]], vfloor)[0].labels, ref["label_map"],
                                      ref["sem_seg"]).agreement
        # the floor is measured on this machine with the same kernels; the absolute 98.5 % only catches a
        # broken floor (chelsea's sits near 99.1 %: 0.5 points of margin, ~200 pixels)
        assert agree >= min(0.995, floor_agree - 0.005) and agree >= 0.985, (npz.stem, agree, floor_agree)


def test_outlier_stress_variant_reaches_the_magnitude_and_stays_informative(tiny_dev):
    import open_clip
    import torch
    from sanrt.model.random_init import add_outlier_channels_
    from sanrt.runtime.preprocess import pad_batch, prepare

    model, _ = load_fixture_model(tiny_dev)
    b, sz = pad_batch([prepare(np.load(tiny_dev / "chelsea.npz")["orig_image_hwc_u8"])])
    images, sizes = torch.from_numpy(b), torch.from_numpy(sz)
    add_outlier_channels_(model, images, sizes, open_clip.tokenize(["a photo of a cat."]), magnitude=3000.0)
    with torch.no_grad():
        s = model.forward_stages(images, sizes)
    assert s["clip_tokens"].abs().max() > 2500  # LayerNorm inputs in the 1e3-1e4 range
    emb = s["mask_emb"][0]
    assert torch.isfinite(emb).all()
    assert (emb @ emb.T).min() < 0.9  # the [SLS] embeddings still differ: FP32 stays informative


def test_naive_fp16_fails_on_outlier_stress_and_ours_does_not(tiny_dev):
    """Evaluated with ONNX's reference evaluator, which computes every op in its declared type
    (ONNX Runtime's CPU kernels widen FP16 internally and hide the overflow). The evaluator also
    accumulates FP16 MatMuls in FP16, harsher than GPUs, hence the 0.99 bound for the stressed model."""
    import onnxslim
    import open_clip
    import torch
    from onnx.reference import ReferenceEvaluator
    from sanrt.model.random_init import add_outlier_channels_
    from sanrt.runtime.preprocess import pad_batch, prepare

    model, _ = load_fixture_model(tiny_dev)
    img = np.load(tiny_dev / "chelsea.npz")["orig_image_hwc_u8"][::4, ::4].copy()
    b, sz = pad_batch([prepare(img, 64, 256)])  # small input: the reference evaluator is plain numpy
    images, sizes = torch.from_numpy(b), torch.from_numpy(sz)
    add_outlier_channels_(model, images, sizes, open_clip.tokenize(["a photo of a cat."]), magnitude=3000.0)
    with torch.no_grad():
        ref = model(images, sizes)[1][0].numpy()
    g = trace_fp32_for_fp16(model, "image")

    def cos_min(islands):
        out = ReferenceEvaluator(onnxslim.slim(to_fp16(g, islands))).run(None, {"images": b, "sizes": sz})[1][0]
        return cosine_min(out, ref)

    assert cos_min(()) < 0.9  # naive: LayerNorm squares overflow FP16 -> inf/NaN
    assert cos_min(("layernorm_stats",)) >= 0.99
