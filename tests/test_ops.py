"""The export-friendly primitives equal the PyTorch / official operations they replace."""
import pytest
import torch
import torch.nn.functional as F
from sanrt.model.config import preset
from sanrt.model.ops import BiasPool, attention, clip_grid_size, layer_norm_channels_first, resize_grid_embed
from sanrt.model.san import SAN


def _pool_for(name):
    cfg = preset(name)
    return BiasPool(lambda s: s // cfg.side_patch, lambda s: clip_grid_size(s, cfg.clip_scale, cfg.clip_patch),
                    cfg.max_size, cfg.size_divisibility), cfg


@pytest.mark.parametrize("name", ["vit_b_16", "vit_l_14"])
@pytest.mark.parametrize("hw", [(640, 640), (640, 864), (32, 2560), (1184, 640), (96, 160)])
def test_bias_pool_equals_adaptive_max_pool(name, hw):
    pool, cfg = _pool_for(name)
    side = (hw[0] // 16, hw[1] // 16)
    clip = tuple(clip_grid_size(s, cfg.clip_scale, cfg.clip_patch) for s in hw)
    x = torch.randn(2, 5, *side)
    torch.testing.assert_close(pool(x, clip), F.adaptive_max_pool2d(x, clip), rtol=0, atol=0)


def test_bias_pool_strategy_follows_geometry():
    assert _pool_for("vit_b_16")[0].kernel == 2  # 40 -> 20 everywhere: a plain MaxPool
    pool_l = _pool_for("vit_l_14")[0]
    assert pool_l.kernel == 0 and pool_l.window >= 2  # 40 -> 32: gathered windows


def test_resize_grid_embed_identity_and_bicubic():
    g = torch.randn(14 * 14, 8)
    torch.testing.assert_close(resize_grid_embed(g, (14, 14), (14, 14)), g, rtol=0, atol=0)
    out = resize_grid_embed(g, (14, 14), (20, 27))
    ref = F.interpolate(g.reshape(1, 14, 14, 8).permute(0, 3, 1, 2), size=(20, 27), mode="bicubic",
                        align_corners=False).flatten(2).transpose(1, 2)[0]
    torch.testing.assert_close(out, ref)


def test_channel_layer_norm_matches_official_formula():
    x = torch.randn(2, 16, 5, 7) * 3 + 1
    w, b = torch.randn(16), torch.randn(16)
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    ref = w[:, None, None] * ((x - u) / torch.sqrt(s + 1e-6)) + b[:, None, None]
    torch.testing.assert_close(layer_norm_channels_first(x, w, b, 1e-6), ref, rtol=1e-5, atol=1e-5)


def test_attention_matches_multihead_attention():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    x = torch.randn(2, 11, 32)
    bias = torch.randn(2, 4, 11, 11)
    ref = mha(x, x, x, attn_mask=bias.reshape(8, 11, 11), need_weights=False)[0]
    out = attention(x, mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias, 4, bias)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_rec_attn_bias_matches_official_index_assignment(tiny_dev):
    from sanrt.model.config import from_fixture_config

    model = SAN(from_fixture_config(tiny_dev / "tiny_config.json"))
    q, heads, hc, wc = model.cfg.num_queries, model.cfg.clip_heads, 3, 4
    pooled = torch.randn(1, heads, q, hc, wc)
    L = hc * wc
    # The official RecWithAttnbiasHead._build_attn_biases, written out.
    ref = torch.zeros(q + 1 + L, q + 1 + L)
    ref[:, :q] = -100
    ref[torch.arange(q), torch.arange(q)] = 0
    ref[:q, q] = -100
    ref = ref[None].expand(heads, -1, -1).clone()
    ref[..., :q, -L:] = pooled.reshape(heads, q, L)
    out = model.rec_attn_bias(pooled)
    assert out.shape == (1, heads, q + 1 + L, q + 1 + L)
    torch.testing.assert_close(out[0], ref, rtol=0, atol=0)


def test_masks_are_finite(tiny_dev):
    from sanrt.model.config import from_fixture_config

    model = SAN(from_fixture_config(tiny_dev / "tiny_config.json"))
    assert torch.isfinite(model.text_causal_mask).all()
    assert torch.isfinite(model.rec_attn_bias(torch.randn(1, model.cfg.clip_heads, model.cfg.num_queries, 2, 2))).all()
