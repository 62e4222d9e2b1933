"""SAN (Side Adapter Network) on a frozen open_clip CLIP, written for export.

The graph is split the way sanrt deploys it:
  image graph   uint8 padded images [B,3,H,W] + valid sizes -> mask logits [B,Q,H/16,W/16],
                L2-normalised mask embeddings [B,Q,D]            (`forward`)
  text graph    token ids [N,77] -> L2-normalised text features [N,D]       (`encode_text`)
  head          mask embeddings + class weights [K+1,D] -> class logits    (`classify`)
`forward_stages` returns every intermediate the official fixtures record.
"""
from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from sanrt.runtime.errors import ConfigError, RangeError
from sanrt.runtime.text import TEXT_CHUNK  # texts per text-tower call (bounds memory only)
from torch import nn

from .config import SANConfig
from .ops import MASK_NEG, BiasPool, ClipResize, attention, clip_grid_size, resize_grid_embed
from .side_adapter import SideAdapter

SLS_MASK = -100.0  # SAN's additive mask value around the [SLS] tokens
SOT_TOKEN = 49406  # CLIP's start-of-text id: every tokenized text begins with it


class ClipBlock(ResidualAttentionBlock):
    """open_clip's ResidualAttentionBlock (same parameters) with sanrt's forward: batch-first,
    attention as MatMul + Softmax with an optional additive bias. The blocks open_clip builds are
    switched to this class, so each block is called as a module and its ONNX nodes carry its name
    (".../resblocks.9/..."), which quantisation scopes and FP32 islands can address."""

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        a = self.attn
        h = attention(self.ln_1(x), a.in_proj_weight, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias,
                      a.num_heads, bias)
        x = x + self.ls_1(h)
        return x + self.ls_2(self.mlp(self.ln_2(x)))

    def forward_with_past(self, x: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor, mask: torch.Tensor):
        """x [B,S,C] after P earlier tokens whose keys and values ([P,C], shared by the batch) are
        given: (x after the block, this block's keys and values of x, each [B,S,C]). With `mask`
        [S,P+S] causal this is `forward` on the P+S tokens, restricted to the last S."""
        a = self.attn
        b, s, c = x.shape
        heads = a.num_heads
        hd = c // heads
        q, k, v = F.linear(self.ln_1(x), a.in_proj_weight, a.in_proj_bias).split(c, dim=-1)
        keys = torch.cat([past_k.unsqueeze(0).expand(b, -1, -1), k], dim=1).reshape(b, -1, heads, hd).transpose(1, 2)
        values = torch.cat([past_v.unsqueeze(0).expand(b, -1, -1), v], dim=1).reshape(b, -1, heads, hd).transpose(1, 2)
        q = q.reshape(b, s, heads, hd).transpose(1, 2)
        scores = torch.matmul(q * (hd ** -0.5), keys.transpose(-2, -1)) + mask
        out = torch.matmul(scores.softmax(dim=-1), values).transpose(1, 2).reshape(b, s, c)
        x = x + self.ls_1(F.linear(out, a.out_proj.weight, a.out_proj.bias))
        return x + self.ls_2(self.mlp(self.ln_2(x))), k, v


class SAN(nn.Module):
    def __init__(self, cfg: SANConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.text_width != cfg.clip_embed_dim:  # SAN sizes its background row by the text width
            raise ConfigError(f"text width ({cfg.text_width}) must equal the CLIP embedding size ({cfg.clip_embed_dim})")
        if cfg.bias_heads not in (1, cfg.clip_heads):
            raise ConfigError(f"bias heads ({cfg.bias_heads}) must be 1 or CLIP's heads ({cfg.clip_heads})")
        # The whole CLIP (both towers) is built by open_clip; every weight comes from the SAN checkpoint.
        self.clip = open_clip.model.CLIP(
            embed_dim=cfg.clip_embed_dim, vision_cfg=dict(cfg.clip_vision), text_cfg=dict(cfg.clip_text),
            quick_gelu=True,
        )
        for blk in [*self.clip.visual.transformer.resblocks, *self.clip.transformer.resblocks]:
            blk.__class__ = ClipBlock
        self.side_adapter = SideAdapter(cfg)
        self.bg_embed = nn.Parameter(torch.randn(1, cfg.text_width) * cfg.text_width ** -0.5)
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1), persistent=False)
        n = cfg.context_length
        causal = torch.full((n, n), MASK_NEG).triu(1)  # finite, unlike open_clip's -inf mask
        self.register_buffer("text_causal_mask", causal, persistent=False)
        g = cfg.clip_vision["image_size"] // cfg.clip_patch
        self.clip_pos_grid = (g, g)
        self.bias_pool = BiasPool(
            side_grid_of=lambda s: s // cfg.side_patch,
            clip_grid_of=lambda s: clip_grid_size(s, cfg.clip_scale, cfg.clip_patch),
            max_pixels=cfg.max_size,
            step=cfg.size_divisibility,
        )
        self.clip_resize = ClipResize(cfg.clip_scale, cfg.max_size)
        self.clip.visual.requires_grad_(False)

    # ---- image path -------------------------------------------------------------------------------
    def normalize(self, images_u8: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,H,W] padded batch + valid sizes [B,2] -> normalised float with zero padding."""
        x = (images_u8.float() - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        rows = torch.arange(h, device=x.device)[None, :] < sizes[:, 0:1]
        cols = torch.arange(w, device=x.device)[None, :] < sizes[:, 1:2]
        valid = (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)
        return x * valid.to(x.dtype)

    def clip_input(self, images: torch.Tensor) -> torch.Tensor:
        """The padded, normalised images as CLIP sees them (scaled by clip_scale, as the official)."""
        return self.clip_resize(images)

    def clip_features(self, x: torch.Tensor, extra_outputs: tuple = ()):
        """Run CLIP up to FEATURE_LAST_LAYER_IDX.

        Returns ({output index: [B,C,h,w]} for the fused indices and `extra_outputs`, tokens
        [B,1+h*w,C] after the last block (CLS first), (h, w)).
        """
        v = self.clip.visual
        x = v.conv1(x)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.reshape(1, 1, c).expand(b, -1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = v.positional_embedding
        pos = torch.cat([pos[:1], resize_grid_embed(pos[1:], self.clip_pos_grid, (h, w))], dim=0)
        x = v.ln_pre(x + pos.unsqueeze(0))
        wanted = {src for src, _ in self.cfg.fusion_map} | set(extra_outputs)
        feats = {}

        def save(i, t):
            if i in wanted:
                feats[i] = t[:, 1:].transpose(1, 2).reshape(b, c, h, w)

        save(0, x)
        for i, blk in enumerate(v.transformer.resblocks[: self.cfg.feature_last_layer], start=1):
            x = blk(x)
            save(i, x)
        return feats, x, (h, w)

    def pool_attn_bias(self, bias: torch.Tensor, clip_hw) -> torch.Tensor:
        """[B, heads, Q, hs, ws] at the side grid -> [B, heads, Q, hc, wc] (adaptive max pool)."""
        b, n, q, hs, ws = bias.shape
        pooled = self.bias_pool(bias.reshape(b, n * q, hs, ws), clip_hw)
        return pooled.reshape(b, n, q, clip_hw[0], clip_hw[1])

    def rec_attn_bias(self, pooled: torch.Tensor) -> torch.Tensor:
        """The additive mask of the recognition blocks over [Q SLS, CLS, L patches], [B,heads,N,N].

        SLS rows: 0 on itself, -100 on other SLS and on CLS, the pooled bias on patches. CLS and
        patch rows: -100 on every SLS column, 0 elsewhere (nobody reads the SLS tokens). Built by
        concatenation (no ScatterND).
        """
        b, n, q, hc, wc = pooled.shape
        if self.cfg.bias_heads == 1:  # one bias shared by all heads (config, not data)
            n = self.cfg.clip_heads
            pooled = pooled.expand(b, n, q, hc, wc)
        pooled = pooled.reshape(b, n, q, hc * wc)
        eye = torch.eye(q, device=pooled.device, dtype=pooled.dtype)
        sls_block = (SLS_MASK * (1.0 - eye)).expand(b, n, q, q)
        sls_cls = torch.full_like(pooled[..., :1], SLS_MASK)
        top = torch.cat([sls_block, sls_cls, pooled], dim=-1)  # [B, n, Q, Q+1+L]
        # one row for CLS and patches: -100 on SLS columns, 0 on the rest
        row = torch.cat([torch.full_like(top[:, :, :1, :q], SLS_MASK), torch.zeros_like(top[:, :, :1, q:])], -1)
        bottom = row.expand(b, n, hc * wc + 1, top.shape[-1])
        return torch.cat([top, bottom], dim=2)

    def recognize(self, tokens: torch.Tensor, pooled_bias: torch.Tensor) -> torch.Tensor:
        """Remaining CLIP blocks with Q [SLS] tokens (copies of CLS) reading through the bias.

        tokens [B, 1+L, C] after FEATURE_LAST_LAYER_IDX blocks -> mask embeddings [B, Q, D] (unit norm).
        """
        v = self.clip.visual
        q = self.cfg.num_queries
        bias = self.rec_attn_bias(pooled_bias)
        x = torch.cat([tokens[:, :1].expand(-1, q, -1), tokens], dim=1)
        for blk in v.transformer.resblocks[self.cfg.feature_last_layer :]:
            x = blk(x, bias)
        x = v.ln_post(x[:, :q]) @ v.proj
        return F.normalize(x, dim=-1)

    def check_input_size(self, images_u8: torch.Tensor) -> None:
        """RangeError for padded sizes the official pipeline never makes (not multiples of the size
        divisibility, or past the largest padded side); skipped while tracing (the export's ranges and
        the runtime guard those)."""
        if torch.jit.is_tracing():
            return
        d, top = self.cfg.size_divisibility, self.cfg.max_size
        h, w = images_u8.shape[-2:]
        if h % d or w % d or not (d <= h <= top and d <= w <= top):
            raise RangeError(f"padded input {h}x{w}: both sides must be multiples of {d} from {d} to {top}")

    def forward_stages(self, images_u8: torch.Tensor, sizes: torch.Tensor, extra_clip_outputs: tuple = ()) -> dict:
        self.check_input_size(images_u8)
        images = self.normalize(images_u8, sizes)
        clip_in = self.clip_input(images)
        feats, tokens, clip_hw = self.clip_features(clip_in, extra_clip_outputs)
        query, pix = self.side_adapter(images, feats)
        mask_logits, bias = self.side_adapter.mask_decoder(query, pix)
        pooled = self.pool_attn_bias(bias, clip_hw)
        mask_emb = self.recognize(tokens, pooled)
        return dict(
            images_tensor=images, clip_input=clip_in, clip_feats=feats, clip_tokens=tokens,
            side_query=query, side_pix=pix, mask_logits=mask_logits, attn_bias_side=bias, attn_bias_clip=pooled,
            mask_emb=mask_emb,
        )

    def forward(self, images_u8: torch.Tensor, sizes: torch.Tensor):
        """The image graph: (mask logits [B,Q,H/16,W/16], mask embeddings [B,Q,D])."""
        s = self.forward_stages(images_u8, sizes)
        return s["mask_logits"], s["mask_emb"]

    # ---- text path --------------------------------------------------------------------------------
    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        """The text graph: token ids [N, T] -> L2-normalised features [N, D] (EOT token = max id).

        T is 77 as tokenized, or fewer: with causal attention the EOT token never sees the padding
        after it, so ids cut after the longest sequence's EOT give the same features for less work.
        """
        c = self.clip
        t = token_ids.shape[1]
        x = c.token_embedding(token_ids.long()) + c.positional_embedding[:t]
        mask = self.text_causal_mask[:t, :t]
        for blk in c.transformer.resblocks:
            x = blk(x, mask)
        x = c.ln_final(x)
        eot = token_ids.argmax(dim=-1)
        x = torch.gather(x, 1, eot.reshape(-1, 1, 1).expand(-1, 1, x.shape[-1]))[:, 0]
        return F.normalize(x @ c.text_projection, dim=-1)

    def encode_text_after(self, token_ids: torch.Tensor, past: torch.Tensor):
        """The text tower on token ids [N,S] that all follow the same P tokens, whose keys and values
        per block are `past` [L,2,P,C] (from `text_start_kv` and earlier calls): (L2-normalised
        features [N,D] at each row's end-of-text token, if it has one, and the keys and values of
        these tokens [L,2,N,S,C]). Exact under causal attention: a template's words before the class
        name are the same for every class, so their states are computed once, not once a class."""
        c = self.clip
        s, p = token_ids.shape[1], past.shape[2]
        x = c.token_embedding(token_ids.long()) + c.positional_embedding[p : p + s]
        causal = self.text_causal_mask[:s, :s]
        mask = torch.cat([torch.zeros(s, p, dtype=x.dtype), causal], dim=1)
        present = []
        for i, blk in enumerate(c.transformer.resblocks):
            x, k, v = blk.forward_with_past(x, past[i, 0], past[i, 1], mask)
            present.append(torch.stack([k, v]))
        x = c.ln_final(x)
        eot = token_ids.argmax(dim=-1)
        x = torch.gather(x, 1, eot.reshape(-1, 1, 1).expand(-1, 1, x.shape[-1]))[:, 0]
        return F.normalize(x @ c.text_projection, dim=-1), torch.stack(present)

    @torch.no_grad()
    def text_start_kv(self) -> torch.Tensor:
        """Keys and values [L,2,1,C] of the start-of-text token, which begins every text at position
        0 and attends only to itself: the same for every text, so stored with the export."""
        c = self.clip
        x = c.token_embedding(torch.tensor([[SOT_TOKEN]])) + c.positional_embedding[:1]
        kv = []
        for blk in c.transformer.resblocks:
            a = blk.attn
            w = a.in_proj_weight.shape[1]
            k, v = F.linear(blk.ln_1(x), a.in_proj_weight, a.in_proj_bias)[0].split(w, dim=-1)[1:]
            kv.append(torch.stack([k, v]))
            x = blk(x)
        return torch.stack(kv)

    def class_embeddings(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token ids [T, K, 77] (templates x classes) -> template-averaged, renormalised [K, D]."""
        t, k, n = token_ids.shape
        flat = token_ids.reshape(t * k, n)
        # in chunks: 847 classes x 14 templates at once would need tens of GB of activations
        per_template = torch.cat([self.encode_text(c) for c in flat.split(TEXT_CHUNK)]).reshape(t, k, -1)
        return F.normalize(per_template.mean(dim=0), dim=-1)

    def classifier_weight(self, class_embed: torch.Tensor) -> torch.Tensor:
        """[K, D] class embeddings -> [K+1, D] weights: learned background row, renormalised, scaled."""
        w = F.normalize(torch.cat([class_embed, self.bg_embed], dim=0), dim=-1)
        return self.clip.logit_scale.exp() * w

    # ---- vocabulary head ------------------------------------------------------------------------------
    @staticmethod
    def classify(mask_emb: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
        """mask embeddings [B, Q, D] x class weights [K+1, D] -> class logits [B, Q, K+1]."""
        return torch.matmul(mask_emb, class_weight.t())
