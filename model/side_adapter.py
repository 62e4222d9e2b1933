"""SAN's side adapter network: a small timm-style ViT fused with CLIP features, and the MLP mask
decoder that predicts mask proposals and the per-head [SLS] attention bias.

Module and parameter names follow the official checkpoint (`side_adapter_network.*`), so the
released weights load by a prefix rename.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SANConfig
from .ops import attention, layer_norm_channels_first, resize_grid_embed


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        # timm's fused qkv has the same [q; k; v] row layout as nn.MultiheadAttention's in_proj.
        return attention(x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias, self.heads)


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    """timm VisionTransformer Block (pre-norm, LayerNorm eps 1e-6, exact GELU)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)


class _ViT(nn.Module):
    """The parts of timm's ViT that SAN keeps (no CLS token, no final norm)."""

    def __init__(self, cfg: SANConfig):
        super().__init__()
        g = cfg.side_image_size // cfg.side_patch
        self.grid = (g, g)
        self.patch_embed = _PatchEmbed(cfg.side_patch, cfg.side_width)
        self.pos_embed = nn.Parameter(torch.zeros(1, g * g, cfg.side_width))
        self.blocks = nn.ModuleList(
            ViTBlock(cfg.side_width, cfg.side_heads, cfg.side_mlp_ratio) for _ in range(cfg.side_depth)
        )
        nn.init.trunc_normal_(self.pos_embed, std=0.02)


class ChannelLayerNorm(nn.Module):
    """SAN's channel-first LayerNorm (eps 1e-6), computed with F.layer_norm."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        return layer_norm_channels_first(x, self.weight, self.bias, self.eps)


class AddFusion(nn.Module):
    """CLIP feature [B, C, h, w] -> LN -> 1x1 conv -> bilinear to the side grid -> added to tokens."""

    def __init__(self, clip_width: int, side_width: int):
        super().__init__()
        self.input_proj = nn.Sequential(ChannelLayerNorm(clip_width), nn.Conv2d(clip_width, side_width, 1))

    def forward(self, tokens, clip_feat, side_hw):
        y = F.interpolate(self.input_proj(clip_feat), size=side_hw, mode="bilinear", align_corners=False)
        return tokens + y.flatten(2).transpose(1, 2)


class MLP(nn.Module):
    """SAN's MLP: Linear (or 1x1 conv) layers with ReLU between them."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int, conv: bool = False):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.layers = nn.ModuleList(layer(i, o) for i, o in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MLPMaskDecoder(nn.Module):
    def __init__(self, cfg: SANConfig):
        super().__init__()
        c, e, m, n = cfg.side_width, cfg.decoder_embed, cfg.decoder_mlp, cfg.decoder_layers
        self.heads = cfg.bias_heads
        self.query_mlp = MLP(c, m, e, n)
        self.pix_mlp = MLP(c, m, e, n, conv=True)
        self.attn_mlp = MLP(c, m, e * cfg.bias_heads, n, conv=True)
        self.bias_scaling = nn.Linear(1, 1)  # a learned scale and shift of the bias

    def forward(self, query, pix):
        """query [B, Q, C], pix [B, C, h, w] -> mask_logits [B, Q, h, w], attn_bias [B, heads, Q, h, w]."""
        q = self.query_mlp(query)
        p = self.pix_mlp(pix)
        b, e, h, w = p.shape
        mask_logits = torch.matmul(q, p.flatten(2)).reshape(b, -1, h, w)
        a = self.attn_mlp(pix).reshape(b, self.heads, e, h * w)
        bias = torch.matmul(q.unsqueeze(1), a)  # [B, heads, Q, h*w]
        bias = bias * self.bias_scaling.weight[0, 0] + self.bias_scaling.bias[0]
        return mask_logits, bias.reshape(b, self.heads, -1, h, w)


class SideAdapter(nn.Module):
    def __init__(self, cfg: SANConfig):
        super().__init__()
        self.cfg = cfg
        self.vit_model = _ViT(cfg)
        self.query_embed = nn.Parameter(torch.zeros(1, cfg.num_queries, cfg.side_width))
        self.query_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_queries, cfg.side_width))
        nn.init.normal_(self.query_embed, std=0.02)
        nn.init.normal_(self.query_pos_embed, std=0.02)
        # official key: layer_{side index}; value: which CLIP output it reads
        self.fusion_src = {side: src for src, side in cfg.fusion_map}
        self.fusion_layers = nn.ModuleDict(
            {f"layer_{side}": AddFusion(cfg.clip_width, cfg.side_width) for side in sorted(self.fusion_src)}
        )
        self.mask_decoder = MLPMaskDecoder(cfg)

    def _fuse(self, i, x, clip_feats, side_hw):
        if i not in self.fusion_src:
            return x
        q = self.cfg.num_queries
        fused = self.fusion_layers[f"layer_{i}"](x[:, q:], clip_feats[self.fusion_src[i]], side_hw)
        return torch.cat([x[:, :q], fused], dim=1)

    def patch_pos_embed(self, tokens: torch.Tensor, hw: tuple) -> torch.Tensor:
        """Positional embedding of the h x w patch tokens [B, h*w, C], as the official code computes it:
        the G x G table resized (bicubic) only when the token count differs from G*G; a grid of G*G
        tokens of another shape (10x160, 32x50, ...) takes the table as a flat sequence. Both are
        computed and one is selected by the token count, so the graph stays free of branches."""
        table = self.vit_model.pos_embed[0]  # [G*G, C]
        n_table = table.shape[0]
        resized = resize_grid_embed(table, self.vit_model.grid, hw)
        idx = torch.arange(tokens.shape[1], device=tokens.device)
        flat = table[idx % n_table]  # [h*w, C]; equal to the table when h*w == G*G
        same_count = idx[-1] + 1 == n_table  # computed in the graph, not fixed at trace time
        return torch.where(same_count, flat, resized)

    def forward(self, images, clip_feats: dict):
        """images [B, 3, H, W] normalised; clip_feats {CLIP output index: [B, C, h, w]}.

        Returns the decoder inputs (queries [B, Q, C], pixels [B, C, H/16, W/16]).
        """
        x = self.vit_model.patch_embed.proj(images)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos = torch.cat([self.query_pos_embed[0], self.patch_pos_embed(x, (h, w))], dim=0).unsqueeze(0)
        x = torch.cat([self.query_embed.expand(b, -1, -1), x], dim=1) + pos
        x = self._fuse(0, x, clip_feats, (h, w))
        last = self.cfg.side_out_block
        for i, blk in enumerate(self.vit_model.blocks[:last], start=1):
            x = self._fuse(i, blk(x), clip_feats, (h, w))
            if i < last:  # the official re-adds pos after every block but the decoded one
                x = x + pos
        q = self.cfg.num_queries
        return x[:, :q], x[:, q:].transpose(1, 2).reshape(b, c, h, w)
