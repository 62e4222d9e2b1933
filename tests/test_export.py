"""ONNX export: valid, deterministic graphs with a complete manifest, equal to PyTorch."""

import numpy as np
import onnx
import pytest
import torch
from conftest import TINY_DEV, run_script
from sanrt.export.parity import compare
from sanrt.model.reference import load_fixture_model
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.segmenter import Segmenter
from sanrt.runtime.datasets import dataset_vocabulary

GRAPHS = ("image.onnx", "text.onnx", "head.onnx")


def test_graphs_pass_checker_with_shape_inference(tiny_export):
    for g in GRAPHS:
        model = onnx.load(tiny_export / g)
        onnx.checker.check_model(model, full_check=True)
        ops = {n.op_type for n in model.graph.node}
        assert not ops & {"ScatterND", "Einsum", "If", "Loop"}, (g, ops)
        assert model.opset_import[0].version == 18


def test_graph_interfaces(tiny_export):
    def io(g):
        m = onnx.load(tiny_export / g)
        t = lambda v: (v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
        return [t(v) for v in m.graph.input], [t(v) for v in m.graph.output]

    U8, I32, I64, F32 = onnx.TensorProto.UINT8, onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    ins, outs = io("image.onnx")
    assert ins == [("images", U8, ["batch", 3, "height", "width"]), ("sizes", I64, ["batch", 2])]
    assert [(n, t) for n, t, _ in outs] == [("mask_logits", F32), ("mask_emb", F32)]
    ins, outs = io("text.onnx")
    assert ins == [("token_ids", I32, ["texts", "tokens"])] and outs[0][:2] == ("text_features", F32)
    ins, outs = io("head.onnx")
    assert [n for n, _, _ in ins] == ["mask_emb", "class_weights"] and outs[0][0] == "class_logits"
    ins, outs = io("text_after.onnx")
    assert [n for n, _, _ in ins] == ["token_ids", "past"] and [n for n, _, _ in outs] == ["text_features", "present"]


def test_manifest_is_complete(tiny_export):
    m = Manifest.load(tiny_export)
    for key in ("preset", "config", "weights", "opset", "ranges", "input", "templates", "tokenizer", "sha256",
                "sanrt_version", "export_settings", "queries", "embed_dim"):
        assert key in m.data, key
    assert set(m.sha256) == {*GRAPHS, "text_after.onnx", "text_start_kv.npy", "classifier.npz",
                                "bpe_simple_vocab_16e6.txt.gz"}
    assert len(m.templates) == 14 and m.input.pixel_mean[0] == pytest.approx(122.7709383)
    assert m.weights.startswith("checkpoint.pth sha256:")


def test_export_is_deterministic(tiny_export, tiny_dev, tmp_path):
    code, _, err = run_script("export/to_onnx.py", "--config", tiny_dev / "tiny_config.json",
                              "--checkpoint", tiny_dev / "checkpoint.pth", "--out", tmp_path / "again")
    assert code == 0, err
    for f in (*GRAPHS, "classifier.npz", "manifest.json"):
        assert (tmp_path / "again" / f).read_bytes() == (tiny_export / f).read_bytes(), f


def test_random_init_is_said_loudly(capsys):
    """The notice the export CLI prints (to_onnx.py calls build_model); tests/test_api.py exports
    random weights and checks the manifest says so."""
    from sanrt.export import build_model

    _, weights = build_model(config=TINY_DEV / "tiny_config.json", random_init=True)
    assert "RANDOM WEIGHTS" in capsys.readouterr().err and weights == "random (seed 0, fixture-style spread)"


def test_fp32_parity_with_pytorch(tiny_export, tiny_dev, tmp_path):
    """K = 1, 10, 171, 847; photos; square and non-square random inputs at batch 1 and 2."""
    model, _ = load_fixture_model(tiny_dev)
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    photos = {p.stem: np.load(p)["orig_image_hwc_u8"] for p in sorted(tiny_dev.glob("*.npz"))}
    vocabs = {"1": ["person"], "10": dataset_vocabulary("voc20")[:10],
              "171": dataset_vocabulary("coco_stuff171"), "847": dataset_vocabulary("ade847")}
    with torch.no_grad():
        res = compare(model, seg, photos, vocabs, random_sizes=((64, 64), (48, 80)), batches=(1, 2), progress=lambda s: None)
    s = res.summary()
    assert s["ok"], s
    assert s["worst_rel_err"] <= 1e-4 and s["min_label_agreement"] >= 0.9999
    cases = {r.case for r in res.rows}
    assert any("batch 2" in c for c in cases) and any("K=847" in c for c in cases)
    md = res.to_markdown()
    assert "PASS" in md and md.count("\n|") == len(res.rows) + 2  # header and rule rows too


def test_parity_report_fails_out_of_bounds():
    from sanrt.evaluation.compare import FP32, Comparison

    r = Comparison(FP32)
    r.tensors("c", "mask_emb", np.array([1.0, 2.0]), np.array([1.0, 2.001]))
    r.labels("c", np.array([1, 2]), np.array([1, 2]))
    assert not r.ok and r.summary()["worst_rel_output"] == "c/mask_emb"
    assert "err / max|ref| 5.00e-04 at c/mask_emb" in r.failures()[0]
    r.rows.pop(0)
    assert r.ok
    r.labels("d", np.array([1, 2]), np.array([1, 3]))
    assert not r.ok and r.summary()["min_agreement_case"] == "d"
    assert not Comparison(FP32).ok  # nothing compared is no pass
