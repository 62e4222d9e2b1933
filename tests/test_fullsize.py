"""Full-size presets with random weights: one forward at 640x640 and 640x864 on CPU."""
import pytest
import torch
import torch.nn.functional as F
from sanrt.model import SAN, preset


@pytest.mark.slow
@pytest.mark.parametrize("name,clip_grid", [("vit_b_16", {640: 20, 864: 27}), ("vit_l_14", {640: 32, 864: 43})])
def test_full_size_forward(name, clip_grid):
    torch.manual_seed(0)
    model = SAN(preset(name)).eval()
    d = model.cfg.clip_embed_dim
    for h, w in [(640, 640), (640, 864)]:
        x = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)
        with torch.no_grad():
            s = model.forward_stages(x, torch.tensor([[h, w]]))
        assert s["mask_logits"].shape == (1, 100, h // 16, w // 16)
        assert s["mask_emb"].shape == (1, 100, d)
        hc, wc = clip_grid[h], clip_grid[w]
        assert s["attn_bias_clip"].shape == (1, model.cfg.bias_heads, 100, hc, wc)
        # ViT-L: side grid 40 -> CLIP grid 32 (non-integer factor) must equal adaptive_max_pool2d
        side = s["attn_bias_side"][0]
        ref = F.adaptive_max_pool2d(side, (hc, wc))
        torch.testing.assert_close(s["attn_bias_clip"][0], ref, rtol=0, atol=0)
        assert torch.isfinite(s["mask_emb"]).all()
        torch.testing.assert_close(s["mask_emb"].norm(dim=-1), torch.ones(1, 100))
