"""The inputs benchmarks and parity checks run on: scikit-image's colour photos, and originals of a
given size made from them."""
from __future__ import annotations

import numpy as np
from PIL import Image


def sample_photos(long_side: int | None = None) -> dict:
    """scikit-image's three colour photos (the inputs parity and accuracy are scored on), optionally
    scaled so the long side is `long_side`."""
    from skimage import data

    out = {}
    for name in ("astronaut", "coffee", "chelsea"):
        img = getattr(data, name)()
        if long_side:
            s = long_side / max(img.shape[:2])
            img = np.asarray(Image.fromarray(img).resize((round(img.shape[1] * s), round(img.shape[0] * s)), Image.BILINEAR))
        out[name] = img
    return out


def input_of(photos: dict, hw: tuple[int, int], batch: int) -> list[np.ndarray]:
    """`batch` originals that ResizeShortestEdge maps to exactly hw (photos resized with PIL)."""
    imgs = list(photos.values())
    return [np.asarray(Image.fromarray(imgs[i % len(imgs)]).resize((hw[1], hw[0]), Image.BILINEAR)) for i in range(batch)]
