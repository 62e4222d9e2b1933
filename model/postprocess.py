"""SAN's semantic inference in PyTorch, as the official model computes it (the reference the
runtime's numpy post-processing is checked against)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def semantic_inference(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, padded_hw, image_hw, out_hw
) -> torch.Tensor:
    """One image: class logits [Q, K+1] and mask logits [Q, h, w] -> scores [K, H0, W0].

    Masks go bilinear to the padded size, are cropped to the resized image and resized to the
    original size (detectron2 sem_seg_postprocess, before inference); then
    softmax over classes without background x sigmoid(mask), summed over queries.
    """
    m = F.interpolate(mask_logits[None], size=tuple(padded_hw), mode="bilinear", align_corners=False)
    m = m[:, :, : image_hw[0], : image_hw[1]]
    m = F.interpolate(m, size=tuple(out_hw), mode="bilinear", align_corners=False)[0]
    cls = F.softmax(class_logits, dim=-1)[..., :-1]
    q, hh, ww = m.shape
    return torch.matmul(cls.t(), m.sigmoid().reshape(q, hh * ww)).reshape(-1, hh, ww)
