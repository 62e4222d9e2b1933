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
