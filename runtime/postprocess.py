"""SAN's semantic inference in numpy, identical to the official PyTorch post-processing.

Official: masks bilinear (align_corners=False) to the padded size, cropped to the resized image,
bilinear to the original size; scores = softmax(classes)[:, :K]^T @ sigmoid(masks); label = argmax.
Each resize is linear along each axis, so the chain is one [out, in] matrix per axis, applied with
two matmuls; scores are formed in row blocks so 847 classes at full resolution stay in bounded memory.
"""
from __future__ import annotations

import numpy as np


def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """[out, in] weights of PyTorch's 1-D bilinear resize (align_corners=False, no antialias)."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = src - i0
    m = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - w1)
    np.add.at(m, (rows, i1), w1)
    return m


def resize_chain(grid: int, padded: int, valid: int, out: int) -> np.ndarray:
    """One axis of grid -> padded (bilinear), crop to valid, -> out (bilinear): [out, grid] float32."""
    return (bilinear_matrix(out, valid) @ bilinear_matrix(padded, grid)[:valid]).astype(np.float32)


def upsample_masks(mask_logits: np.ndarray, padded_hw, image_hw, out_hw) -> np.ndarray:
    """[Q, h, w] mask logits at the side grid -> [Q, H0, W0] at the original image size."""
    q, h, w = mask_logits.shape
    ry = resize_chain(h, padded_hw[0], image_hw[0], out_hw[0])
    rx = resize_chain(w, padded_hw[1], image_hw[1], out_hw[1])
    return np.matmul(np.matmul(ry, mask_logits.astype(np.float32)), rx.T)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def semantic_inference(class_logits: np.ndarray, mask_logits: np.ndarray, padded_hw, image_hw, out_hw,
                       return_scores: bool = False, block_elems: int = 1 << 24):
    """One image: class logits [Q, K+1], mask logits [Q, h, w] -> labels [H0, W0] int32
    (and scores [K, H0, W0] float32 if asked)."""
    probs = softmax(class_logits.astype(np.float32))[:, :-1]  # drop the background column
    masks = sigmoid(upsample_masks(mask_logits, padded_hw, image_hw, out_hw))
    q, hh, ww = masks.shape
    k = probs.shape[1]
    labels = np.empty((hh, ww), dtype=np.int32)
    scores = np.empty((k, hh, ww), dtype=np.float32) if return_scores else None
    rows = max(1, block_elems // max(1, k * ww))
    pt = np.ascontiguousarray(probs.T)
    for r0 in range(0, hh, rows):
        block = pt @ masks[:, r0 : r0 + rows].reshape(q, -1)  # [K, rows*W0]
        labels[r0 : r0 + rows] = block.argmax(axis=0).reshape(-1, ww)
        if return_scores:
            scores[:, r0 : r0 + rows] = block.reshape(k, -1, ww)
    return (labels, scores) if return_scores else labels
