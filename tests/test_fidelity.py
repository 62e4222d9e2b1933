"""The export equals the official SAN at every input size it accepts: the official formulas checked
over the whole range of padded sides, not only the fixture's sizes.

- CLIP's input: F.interpolate(scale_factor=s) as the official calls it; for ViT-L's 0.7 the output
  side is floor(side * 0.7) in double precision (1440 -> 1007), which ONNX Resize does not give.
- The side adapter's positional embedding: resized only when the token count differs from the
  table's (G*G); other grids of G*G tokens (10x160, 32x50, ...) take the table as a flat sequence.
- SAN.forward refuses padded sizes the official pipeline never makes.
"""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sanrt.model import SAN, from_fixture_config
from sanrt.model.ops import ClipResize
from sanrt.model.random_init import spread_random_init_
from sanrt.evaluation.compare import rel_err
from sanrt.runtime.errors import RangeError

SIDES = range(32, 2561, 32)  # every padded side an export accepts
ODD_SIDES = (33, 650, 651, 1001, 1439, 2559)  # what a direct caller of the image graph may send


@pytest.mark.parametrize("scale", [0.5, 0.7])
def test_clip_resize_equals_the_official_interpolate_at_every_padded_side(scale):
    resize = ClipResize(scale, 2560)
    assert resize.exact == (scale == 0.5)
    rng = np.random.default_rng(0)
    for side in (*SIDES, *ODD_SIDES):
        for shape in ((1, 2, side, 32), (1, 2, 64, side)):
            x = torch.from_numpy(rng.normal(size=shape).astype(np.float32))
            official = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            ours = resize(x)
            assert ours.shape == official.shape, (side, shape)
            assert ours.shape[-2] == math.floor(shape[-2] * scale) and ours.shape[-1] == math.floor(shape[-1] * scale)
            # PyTorch computes source coordinates in float32: one float32 step near side 1800 (1.2e-4) times
            # a neighbour difference of white noise (up to ~6) is ~7e-4; measured 7e-5 with ATen's AVX2 and
            # AVX-512 kernels, 7e-7 with its default ones
            torch.testing.assert_close(ours, official, rtol=0, atol=1e-3)
    assert resize(torch.zeros(1, 1, 1440, 32)).shape[-2] == math.floor(1440 * scale)  # 0.7: 1007, not 1008


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_exported_clip_resize_keeps_the_official_sizes(tmp_path, backend):
    """The traced resize (dynamic H, W) on a real backend, at every padded side."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    from sanrt.runtime.backends import make_runner

    resize = ClipResize(0.7, 2560)
    path = tmp_path / "resize.onnx"
    torch.onnx.export(resize, (torch.zeros(1, 3, 64, 96),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=18, dynamo=False)
    runner = make_runner(backend, path, device="cpu")
    rng = np.random.default_rng(1)
    for side in (*SIDES, *ODD_SIDES):
        # image-like data (smooth plus some noise): float32 coordinate rounding, which backends do in
        # their own order (ulp of a coordinate near 1800 is 1.2e-4), moves white noise by more
        i, j = np.ogrid[:side, :64]
        x = (np.sin(0.05 * i + np.arange(3)[:, None, None]) * np.cos(0.03 * j) + 0.1 * rng.normal(size=(3, side, 64)))
        x = x[None].astype(np.float32)
        y = runner.infer({"x": x})["y"]
        official = F.interpolate(torch.from_numpy(x), scale_factor=0.7, mode="bilinear", align_corners=False).numpy()
        assert y.shape == official.shape, side
        max_abs, max_ref = rel_err(y, official)
        # ONNX Runtime reproduces PyTorch's float32 weights bit for bit; OpenVINO reassociates the
        # coordinate arithmetic and lands one float32 ulp away (2.4e-4 in a weight near side 2048)
        assert max_abs / max_ref <= (1e-4 if backend == "onnxruntime" else 5e-4), side


def official_side_pos_embed(table: torch.Tensor, grid: int, h: int, w: int) -> torch.Tensor:
    """SAN's side_adapter.forward_features, written from the official code: resize only when the
    token count differs from the table's."""
    pos = table[None]  # [1, G*G, C]
    if pos.shape[1] != h * w:
        pos = F.interpolate(pos.reshape(1, grid, grid, -1).permute(0, 3, 1, 2), size=(h, w), mode="bicubic",
                            align_corners=False).flatten(2).transpose(1, 2)
    return pos[0]


@pytest.fixture(scope="module")
def tiny_model(tiny_dev):
    torch.manual_seed(0)
    return spread_random_init_(SAN(from_fixture_config(tiny_dev / "tiny_config.json")).eval())


def test_side_positional_embedding_follows_the_official_rule_on_every_grid(tiny_model):
    sa = tiny_model.side_adapter
    g = sa.vit_model.grid[0]
    table = sa.vit_model.pos_embed[0].detach()
    grids = [(h, (g * g) // h) for h in range(1, g * g + 1) if (g * g) % h == 0 and (g * g) // h <= 160 and h <= 160]
    grids += [(h, w) for h in (2, 20, 39, 40, 41, 100, 160) for w in (2, 40, 80, 160)]
    differs = 0
    for h, w in grids:
        with torch.no_grad():
            ours = sa.patch_pos_embed(torch.zeros(1, h * w, table.shape[1]), (h, w))
        ref = official_side_pos_embed(table, g, h, w)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
        if h * w == g * g and h != g:
            resized = official_side_pos_embed(table, g, h, w + 1)[: h * w]
            differs += not torch.allclose(ref, resized)
    assert differs > 0  # the flat grids are a real case


def test_export_matches_pytorch_on_a_flat_1600_token_grid(tiny_export, tiny_dev, tmp_path):
    """A 40x640 photo pads to 160x2560: a 10x160 side grid of 1600 tokens (the flat-table case)."""
    from sanrt.model.reference import load_fixture_model
    from sanrt.runtime import Segmenter
    from sanrt.evaluation.compare import cosine_min

    model, _ = load_fixture_model(tiny_dev)
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    img = np.load(tiny_dev / "chelsea.npz")["orig_image_hwc_u8"][:12, :192].copy()  # 12x192: 16:1
    assert seg.input_size(*img.shape[:2]) == (160, 2560)
    enc = seg.encode_images([img])
    from sanrt.model.pipeline import TorchSegmenter

    ref = TorchSegmenter(model).encode_images([img])
    assert cosine_min(enc.mask_emb[0], ref.mask_emb[0]) >= 0.99999
    err = np.abs(enc.mask_logits[0] - ref.mask_logits[0]).max() / np.abs(ref.mask_logits[0]).max()
    assert err < 1e-4


def test_vit_l_geometry_exports_with_the_official_clip_sizes(tiny_dev, tmp_path):
    """A tiny model with ViT-L/14's geometry (0.7x CLIP input, patch 14: bias pooled 40 -> 32 by
    gathers): export vs PyTorch where 0.7x of the padded side is not an integer (640 -> 448,
    1440 -> 1007, 864 -> 604)."""
    from sanrt.export import export
    from sanrt.model.pipeline import TorchSegmenter
    from sanrt.runtime import Segmenter
    from sanrt.evaluation.compare import cosine_min

    c = json.loads((tiny_dev / "tiny_config.json").read_text())
    c["input"]["clip_resolution_scale_factor"] = 0.7
    c["open_clip_model_cfg"]["vision_cfg"].update(patch_size=14, image_size=336)
    (tmp_path / "vitl_config.json").write_text(json.dumps(c))
    torch.manual_seed(0)
    model = spread_random_init_(SAN(from_fixture_config(tmp_path / "vitl_config.json")).eval())
    assert model.bias_pool.kernel == 0 and not model.clip_resize.exact
    export(model, tmp_path / "vitl", "random (seed 0)", progress=lambda s: None)
    seg = Segmenter(tmp_path / "vitl", backend="onnxruntime", cache_dir=tmp_path)
    ref = TorchSegmenter(model)
    rng = np.random.default_rng(0)
    for h, w in ((640, 640), (640, 1440), (864, 640)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        enc, r = seg.encode_images([img]), ref.encode_images([img])
        assert cosine_min(enc.mask_emb[0], r.mask_emb[0]) >= 0.99999, (h, w)
        np.testing.assert_allclose(enc.mask_logits[0], r.mask_logits[0], rtol=0,
                                   atol=1e-4 * float(np.abs(r.mask_logits[0]).max()))


@pytest.mark.parametrize("hw", [(100, 640), (640, 2592), (16, 640), (640, 650)])
def test_forward_refuses_padded_sizes_the_official_never_makes(tiny_model, hw):
    with pytest.raises(RangeError, match="multiples of 32"):
        tiny_model(torch.zeros(1, 3, *hw, dtype=torch.uint8), torch.tensor([[hw[0], hw[1]]]))
