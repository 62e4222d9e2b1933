"""Random weights that give non-degenerate segmentations, for runs without a checkpoint.

Plain random init makes SAN's outputs near-constant (one class everywhere), which hides errors and
makes label agreement meaningless. These are the data-independent re-scalings the official
reference fixtures apply after random init (shared/reference/tiny_dev/tiny_config.json,
"init_adjustments"), so queries, masks and class scores spread out as trained ones do.
"""
from __future__ import annotations

import math

import torch

from .san import SAN


@torch.no_grad()
def spread_random_init_(model: SAN) -> SAN:
    sa = model.side_adapter
    sa.query_embed.mul_(100.0)
    last = sa.mask_decoder.query_mlp.layers[-1]
    last.weight.mul_(20.0)
    last.bias.mul_(20.0)
    sa.mask_decoder.pix_mlp.layers[-1].bias.zero_()
    sa.mask_decoder.bias_scaling.weight.fill_(3.0)
    sa.mask_decoder.bias_scaling.bias.zero_()
    for blk in model.clip.visual.transformer.resblocks[model.cfg.feature_last_layer :]:
        blk.attn.out_proj.weight.mul_(5.0)
    model.clip.logit_scale.fill_(math.log(100.0))
    return model


@torch.no_grad()
def add_outlier_channels_(model: SAN, images_u8: torch.Tensor, sizes: torch.Tensor, token_ids: torch.Tensor,
                          magnitude: float = 3000.0, channels: int = 4, seed: int = 0, normed_gain: float = 1.0) -> SAN:
    """The "outlier stress" variant. As in trained CLIP, a few residual-stream channels of both
    towers carry values of about `magnitude`, and the LayerNorms reading the stream give those
    channels no weight and scale the others so their outputs stay what they were (an even number
    of channels, alternating in sign, so means do not move): every LayerNorm
    input (CLIP blocks, ln_post, ln_final, the side adapter's fusion norms) reaches ~`magnitude`
    while the FP32 model still works. LayerNorm statistics computed in FP16 overflow here (squares
    above 65504 once a value passes 256). The scales come from the LayerNorm input variances
    measured on the given sample inputs before the change.

    `normed_gain` > 1 adds what breaks INT8 (LLM.int8, SmoothQuant): trained transformers' LayerNorm
    gains are large in a few channels, so the tensors the linear layers read carry outlier channels
    too. `channels` output channels of every CLIP block LayerNorm (both towers) are multiplied by
    `normed_gain` and the weights reading them divided by it: the FP32 function stays the same, but a
    per-tensor INT8 scale of those inputs must span `normed_gain` times their usual range."""
    g = torch.Generator().manual_seed(seed)
    v, t = model.clip.visual, model.clip
    fusion = [f.input_proj[0] for f in model.side_adapter.fusion_layers.values()]
    visual_norms = [n for b in v.transformer.resblocks for n in (b.ln_1, b.ln_2)] + [v.ln_post] + fusion
    text_norms = [n for b in t.transformer.resblocks for n in (b.ln_1, b.ln_2)] + [t.ln_final]
    variance = {}

    def hook(module, args, _out):
        x = args[0]
        dim = 1 if x.dim() == 4 and module in fusion else -1  # the fusion norms are channel-first
        variance[module] = x.var(dim=dim, unbiased=False).mean().item()

    handles = [n.register_forward_hook(hook) for n in visual_norms + text_norms]
    model.forward_stages(images_u8, sizes)
    model.encode_text(token_ids)
    for h in handles:
        h.remove()

    def stress(start_bias, norms, width):
        idx = torch.randperm(width, generator=g)[:channels]
        # alternating signs: the outliers leave every token's mean where it was
        start_bias[..., idx] += magnitude * torch.tensor([(-1.0) ** i for i in range(channels)])
        for norm in norms:  # std with the outliers / std without, on the measured inputs
            norm.weight.mul_((1.0 + channels * magnitude**2 / (width * variance[norm])) ** 0.5)
            norm.weight[idx] = 0.0

    stress(v.ln_pre.bias, visual_norms, v.ln_pre.bias.numel())
    stress(t.positional_embedding, text_norms, t.positional_embedding.shape[1])
    if normed_gain != 1.0:
        for blk in [*v.transformer.resblocks, *t.transformer.resblocks]:
            for norm, reader in ((blk.ln_1, blk.attn.in_proj_weight), (blk.ln_2, blk.mlp.c_fc.weight)):
                live = (norm.weight != 0).nonzero()[:, 0]  # not the stream outliers' own (zeroed) channels
                idx = live[torch.randperm(live.numel(), generator=g)[:channels]]
                norm.weight[idx] *= normed_gain
                norm.bias[idx] *= normed_gain
                reader[:, idx] /= normed_gain
    return model
