"""SAN's semantic inference in numpy, identical to the official PyTorch post-processing.

Official: masks bilinear (align_corners=False) to the padded size, cropped to the resized image,
bilinear to the original size; scores = softmax(classes)[:, :K]^T @ sigmoid(masks); label = argmax.
Each resize is linear along each axis, so the chain is one [out, in] matrix per axis, applied with
two matmuls; everything after the column resize runs in blocks of output rows, so 847 classes at
full resolution stay in bounded memory.
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


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In place: no temporaries the size of a full-resolution mask stack."""
    np.negative(x, out=x)
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -88 gives sigmoid 0, as it should
        np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


def semantic_inference(class_logits: np.ndarray, mask_logits: np.ndarray, padded_hw, image_hw, out_hw,
                       return_scores: bool = False, block_elems: int = 1 << 22):
    """One image: class logits [Q, K+1], mask logits [Q, h, w] -> labels [H0, W0] int32
    (and scores [K, H0, W0] float32 if asked).

    Streams blocks of output rows through the whole chain (resize, sigmoid, class scores, argmax):
    the [Q, H0, W0] mask stack is never held at once (0.8 GB for a 1080p photo), and each block stays
    in cache. The column resize is done once, at the side grid's few rows; each row block reads only
    the grid rows its bilinear taps touch."""
    probs = softmax(class_logits.astype(np.float32))[:, :-1]  # [Q, K], the background column dropped
    q, h, w = mask_logits.shape
    k = probs.shape[1]
    hh, ww = out_hw
    ry = resize_chain(h, padded_hw[0], image_hw[0], hh)  # [H0, h]
    cols = np.matmul(mask_logits.astype(np.float32), resize_chain(w, padded_hw[1], image_hw[1], ww).T)  # [Q, h, W0]
    labels = np.empty((hh, ww), dtype=np.int32)
    scores = np.empty((k, hh, ww), dtype=np.float32) if return_scores else None
    rows = max(1, block_elems // max(1, max(q, k) * ww))
    for r0 in range(0, hh, rows):
        r1 = min(hh, r0 + rows)
        taps = np.flatnonzero(ry[r0:r1].any(axis=0))  # the few grid rows these output rows read
        s0, s1 = taps[0], taps[-1] + 1
        masks = sigmoid_(np.matmul(ry[r0:r1, s0:s1], cols[:, s0:s1]))  # [Q, rows, W0]
        block = masks.reshape(q, -1).T @ probs  # [rows*W0, K]: argmax runs along contiguous rows
        labels[r0:r1] = block.argmax(axis=1).reshape(r1 - r0, ww)
        if return_scores:
            scores[:, r0:r1] = block.T.reshape(k, r1 - r0, ww)
    return (labels, scores) if return_scores else labels
