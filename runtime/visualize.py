"""Pictures of segmentations: label PNGs, colour overlays with a legend (numpy + PIL only)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours (golden-angle hues), stable for a given class index."""
    i = np.arange(n)
    h = (i * 0.618033988749895) % 1.0
    s = 0.55 + 0.35 * ((i // 7) % 2)
    v = 0.95 - 0.25 * ((i // 3) % 2)
    k = (np.stack([5 + h * 6, 3 + h * 6, 1 + h * 6], -1)) % 6
    rgb = v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    return (rgb * 255).round().astype(np.uint8)


def label_png(labels: np.ndarray) -> Image.Image:
    """Single-channel PNG whose pixel values are class indices (16-bit past 255 classes)."""
    top = int(labels.max(initial=0))
    if top < 256:
        return Image.fromarray(labels.astype(np.uint8), mode="L")
    if top > 65535:  # would wrap silently in 16 bits
        from .errors import OutputError

        raise OutputError(f"class index {top} does not fit a 16-bit label PNG (at most 65536 classes)")
    return Image.fromarray(labels.astype(np.uint16))


def overlay(image_hwc_u8: np.ndarray, labels: np.ndarray, names: list[str], alpha: float = 0.5,
            other: bool = False) -> Image.Image:
    """Blend class colours over the photo and add a legend of the classes present, largest first.
    `other`: label len(names) is "other" (vocabulary expansion): its pixels keep the photo's colours."""
    names = [*names, "other"] if other else list(names)
    colours = palette(len(names))
    weight = np.full(len(names), alpha, np.float32)
    if other:
        colours[-1], weight[-1] = 255, 0.0  # uncoloured; a white legend box
    blend = np.empty_like(image_hwc_u8)
    rows = max(1, (1 << 20) // max(1, labels.shape[1]))  # blocks of ~1 M pixels: bounded memory for huge photos
    for r0 in range(0, labels.shape[0], rows):
        lab = labels[r0 : r0 + rows]
        a = weight[lab][..., None]
        blend[r0 : r0 + rows] = (image_hwc_u8[r0 : r0 + rows] * (1 - a) + colours[lab] * a).round()
    img = Image.fromarray(blend)
    counts = np.bincount(labels.ravel(), minlength=len(names))  # linear time, no sorted copy of the labels
    order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c]]
    total = labels.size
    font = ImageFont.load_default()
    row = 16
    legend_w = 220
    canvas = Image.new("RGB", (img.width + legend_w, max(img.height, row * len(order) + 8)), (255, 255, 255))
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for j, c in enumerate(order):
        y = 4 + j * row
        draw.rectangle([img.width + 6, y, img.width + 18, y + 12], fill=tuple(int(v) for v in colours[c]),
                       outline=(0, 0, 0) if other and c == len(names) - 1 else None)
        frac = counts[c] / total
        draw.text((img.width + 24, y), f"{names[c][:24]} {frac:.1%}", fill=(0, 0, 0), font=font)
    return canvas
