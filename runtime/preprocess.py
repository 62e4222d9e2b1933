"""SAN's input handling in numpy/PIL (torch-free), exactly as the official detectron2 path does it."""
from __future__ import annotations

import numpy as np
from PIL import Image


def resized_shape(h: int, w: int, short: int = 640, max_size: int = 2560) -> tuple[int, int]:
    """detectron2 ResizeShortestEdge.get_output_shape: short side to `short`, long side capped."""
    size = float(short)
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def resize_shortest_edge(img_hwc_u8: np.ndarray, short: int = 640, max_size: int = 2560) -> np.ndarray:
    """Resize an RGB uint8 [H, W, 3] image with PIL bilinear, as detectron2's ResizeTransform does."""
    if img_hwc_u8.dtype != np.uint8 or img_hwc_u8.ndim != 3 or img_hwc_u8.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 [H,W,3] image, got {img_hwc_u8.dtype} {img_hwc_u8.shape}")
    h, w = img_hwc_u8.shape[:2]
    newh, neww = resized_shape(h, w, short, max_size)
    if (newh, neww) == (h, w):
        return img_hwc_u8
    pil = Image.fromarray(img_hwc_u8).resize((neww, newh), Image.BILINEAR)
    return np.asarray(pil)


def padded_size(h: int, w: int, divisibility: int = 32) -> tuple[int, int]:
    return -(-h // divisibility) * divisibility, -(-w // divisibility) * divisibility


def pad_batch(images_chw_u8: list[np.ndarray], divisibility: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad [3, h, w] uint8 images bottom/right into one [B, 3, H, W] batch (detectron2 ImageList).

    Returns the batch and the valid sizes [B, 2] (int64). The model zeroes the padding after
    normalisation, as the official code pads normalised tensors with 0.
    """
    hmax = max(im.shape[1] for im in images_chw_u8)
    wmax = max(im.shape[2] for im in images_chw_u8)
    H, W = padded_size(hmax, wmax, divisibility)
    batch = np.zeros((len(images_chw_u8), 3, H, W), dtype=np.uint8)
    sizes = np.zeros((len(images_chw_u8), 2), dtype=np.int64)
    for i, im in enumerate(images_chw_u8):
        batch[i, :, : im.shape[1], : im.shape[2]] = im
        sizes[i] = im.shape[1:]
    return batch, sizes


def prepare(img_hwc_u8: np.ndarray, short: int = 640, max_size: int = 2560) -> np.ndarray:
    """Original RGB image -> resized [3, h, w] uint8 model input (before padding)."""
    return np.ascontiguousarray(resize_shortest_edge(img_hwc_u8, short, max_size).transpose(2, 0, 1))
