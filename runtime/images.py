"""Reading images for SAN: any PIL-readable file or numpy array -> RGB uint8 [H, W, 3].

Grayscale, RGBA, palette and 16-bit images are converted (alpha dropped as detectron2's
`read_image` does; 16-bit scaled to 8-bit rather than clipped); EXIF orientation is applied.
"""
from __future__ import annotations

import glob
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

# Larger images are refused from the header, before decoding: a 120-megapixel RGB photo is 360 MB
# decoded. PIL's own guard (Image.MAX_IMAGE_PIXELS, the caller's to set) is left as it is: its error
# becomes an ImageError here, and its warning below twice its limit is not shown.
MAX_PIXELS = 120_000_000

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def to_rgb_u8(arr: np.ndarray, what: str = "image") -> np.ndarray:
    """Convert a numpy image (HxW, HxWx1/3/4; uint8/uint16, or float in [0, 1]) to RGB uint8."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or min(arr.shape[:2]) < 1:
        raise ImageError(f"{what}: expected an HxW, HxWx3 or HxWx4 image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = np.round(arr.astype(np.float32) / 257.0).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ImageError(f"{what}: float images must hold values in [0, 1]")
        arr = np.round(arr * 255.0).astype(np.uint8)
    else:
        raise ImageError(f"{what}: unsupported pixel type {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return to_rgb_u8(np.asarray(img).astype(np.uint16))
    if img.mode == "I":  # 32-bit integer; PNGs of 16-bit depth open this way
        a = np.asarray(img)
        return to_rgb_u8(np.clip(a, 0, 65535).astype(np.uint16))
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float32)
        return to_rgb_u8(np.clip(a, 0, 255).astype(np.uint8))
    return np.asarray(img.convert("RGB"))


def _check_pixels(what, img: Image.Image) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{what} is {w}x{h} ({w * h / 1e6:.0f} megapixels), over sanrt's limit of "
                         f"{MAX_PIXELS / 1e6:.0f}; downscale it first")


def _decode(source, what) -> np.ndarray:
    """A path or file object -> RGB uint8, decoded whole: the pixel limit from the header first, EXIF
    orientation applied; anything unreadable is an ImageError naming `what`."""
    try:
        with warnings.catch_warnings():  # only for this decode: sanrt's own limit says what matters
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                _check_pixels(what, img)
                img = ImageOps.exif_transpose(img)
                img.load()
                return _pil_to_array(img)
    except Image.DecompressionBombError as e:  # past PIL's guard: twice Image.MAX_IMAGE_PIXELS
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too large"
        limit = min(MAX_PIXELS, 2 * (Image.MAX_IMAGE_PIXELS or MAX_PIXELS))
        raise ImageError(f"{what} is {size}, over the limit of {limit / 1e6:.0f}; downscale it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageError(f"{what} is corrupt or truncated ({e})") from None


def load_image(path: str | Path) -> np.ndarray:
    """An image file -> RGB uint8 [H, W, 3], decoded whole (a truncated file is an ImageError)."""
    if not isinstance(path, (str, Path)):
        raise ImageError(f"load_image takes a file path, not {type(path).__name__} (decode_image reads bytes)")
    path = Path(path)
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if not path.is_file():
        raise ImageError(f"not a file: {path}")
    return _decode(path, path)


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, ...) -> RGB uint8 [H, W, 3], as load_image reads files."""
    import io

    return _decode(io.BytesIO(data), what)


def is_glob(arg: str) -> bool:
    return any(c in arg for c in "*?[")


def scan_image_files(arg: str, skip=None):
    """One PATH | DIR | GLOB argument -> its image files as path strings, streamed in the file
    system's order (a folder of millions of photos is never held). `skip(path)`: files a folder or
    glob finds that are not inputs (sanrt's own outputs from an earlier run into that folder); a file
    named by itself is always taken. ImageError when a folder or glob finds none."""
    if os.path.isdir(arg):
        with os.scandir(arg) as entries:
            found = (e.path for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)
            missing = f"no images in folder {arg}"
            yield from _counted((q for q in found if not (skip and skip(q))), missing)
    elif is_glob(arg):
        found = (q for q in glob.iglob(arg, recursive=True) if os.path.isfile(q) and not (skip and skip(q)))
        yield from _counted(found, f"no files match {arg}")
    else:
        yield arg


def _counted(paths, missing: str):
    n = 0
    for n, q in enumerate(paths, 1):
        yield q
    if not n:
        raise ImageError(missing)


def expand_image_args(args: list[str], skip=None) -> list[Path]:
    """PATH | DIR | GLOB arguments -> image files, each folder's and glob's sorted, without duplicates
    (held whole: for one machine's jobs; `scan_image_files` streams one argument)."""
    out: dict[Path, None] = {}
    for a in args:
        out.update(dict.fromkeys(sorted(Path(q) for q in scan_image_files(a, skip))))
    if not out:
        raise ImageError("no images given")
    return list(out)
