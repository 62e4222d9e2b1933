"""Semantic-segmentation accuracy on a dataset: detectron2's SemSegEvaluator metrics in numpy, over
(image, label) pairs matched by name (the layouts of SAN's datasets: sanrt.runtime.datasets).

Metrics (detectron2 `SemSegEvaluator`): one confusion matrix over the whole dataset, ignore label
excluded; per-class IoU and accuracy over the classes that occur in the ground truth; mIoU and mACC
their means (no NaN in a mean), fwIoU weighted by ground-truth frequency, pACC over all labelled
pixels; percentages, as detectron2 prints them.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from sanrt.runtime.errors import SanrtError


class DatasetError(SanrtError):
    """A dataset folder that is missing, empty or holds labels the vocabulary cannot have."""


class Matched(NamedTuple):
    pairs: list  # (image, label) paths, by name
    unlabelled: int  # images without a label (other splits, for the official layouts)
    orphans: int  # labels without an image


def pairs(images: Path, labels: Path, image_ext: str | None, label_ext: str) -> Matched:
    """(image, label) files matched by name, as detectron2's load_sem_seg does (the label folder
    defines the split: VOC's JPEGImages holds every split). image_ext None: any image suffix sanrt
    reads (.jpg, .png, .webp, ...); two images of one name with different suffixes are refused."""
    from sanrt.runtime.images import IMAGE_SUFFIXES

    for d, what in ((images, "image"), (labels, "label")):
        if not d.is_dir():
            raise DatasetError(f"{what} folder not found: {d}")
    label_files = {p.name[: -len(label_ext)]: p for p in labels.iterdir() if p.name.endswith(label_ext)}
    image_files: dict[str, Path] = {}
    for p in sorted(images.iterdir()):
        if image_ext is not None and not p.name.endswith(image_ext):
            continue
        if image_ext is None and p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = p.name[: -len(image_ext)] if image_ext else p.stem
        if stem in image_files:
            raise DatasetError(f"{image_files[stem].name} and {p.name} in {images} share the name {stem!r}: which one "
                               "a label belongs to is unclear (pass --image-ext)")
        image_files[stem] = p
    common = sorted(set(label_files) & set(image_files))
    if not common:
        raise DatasetError(f"no {image_ext or 'image'} in {images} has a {label_ext} label in {labels}")
    return Matched([(image_files[k], label_files[k]) for k in common], len(image_files) - len(common),
                   len(label_files) - len(common))


def read_label(path: Path, ignore_label: int, reduce_zero_label: bool = False) -> np.ndarray:
    """A label image -> int64 class indices (ignore_label kept); reduce_zero_label maps 0 to the
    ignore label and every other index down by one (mmsegmentation's convention)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            gt = np.asarray(im).astype(np.int64)
    except OSError as e:
        raise DatasetError(f"label {path} cannot be read ({e})") from None
    if gt.ndim != 2:
        raise DatasetError(f"label {path} has shape {gt.shape}: a single-channel image of class indices expected")
    if reduce_zero_label:
        gt = np.where((gt == 0) | (gt == ignore_label), ignore_label, gt - 1)
    return gt


class ConfusionMatrix:
    """detectron2's SemSegEvaluator: conf[pred, gt] over K classes plus one row/column for ignored pixels."""

    def __init__(self, num_classes: int, ignore_label: int, gt_classes: int | None = None):
        """`gt_classes`: how many of the classes labels may hold (fewer than predictions may: with
        vocabulary expansion the last class, "other", is predicted only)."""
        self.k, self.ignore = num_classes, ignore_label
        self.gt_k = num_classes if gt_classes is None else gt_classes
        self.conf = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray, what: str = "label") -> None:
        """`what` names the label file in errors."""
        pred, gt = np.asarray(pred, np.int64), np.asarray(gt, np.int64)
        if pred.shape != gt.shape:
            raise DatasetError(f"{what}: prediction {pred.shape[::-1]} and label {gt.shape[::-1]} (width x height) "
                               "differ in size")
        bad = ((gt < 0) | (gt >= self.gt_k)) & (gt != self.ignore)  # K itself is a class index too far, not "ignore"
        if bad.any():
            raise DatasetError(f"{what}: label values {np.unique(gt[bad]).tolist()[:5]} are outside 0..{self.gt_k - 1} "
                               f"and not the ignore label {self.ignore}")
        gt = np.where(gt == self.ignore, self.k, gt)
        pred = np.where(gt == self.k, self.k, pred)  # ignored pixels count nowhere
        self.conf += np.bincount(((self.k + 1) * pred + gt).ravel(), minlength=(self.k + 1) ** 2).reshape(self.conf.shape)

    def metrics(self, names: list[str] | None = None) -> dict:
        """{"miou", "fwiou", "macc", "pacc", "iou": {name: x}, "acc": {name: x}} in percent; classes
        absent from the ground truth have no IoU or accuracy (left out, never NaN in a mean). With no
        labelled pixel at all the totals are None (JSON null), not NaN."""
        k = self.k
        tp = self.conf.diagonal()[:-1].astype(np.float64)
        pos_gt = self.conf[:-1, :-1].sum(axis=0).astype(np.float64)
        pos_pred = self.conf[:-1, :-1].sum(axis=1).astype(np.float64)
        valid = pos_gt > 0
        union = pos_gt + pos_pred - tp
        acc = np.where(valid, tp / np.maximum(pos_gt, 1), np.nan)
        iou_valid = valid & (union > 0)
        iou = np.where(iou_valid, tp / np.maximum(union, 1), np.nan)
        weights = pos_gt / max(pos_gt.sum(), 1)
        names = names or [str(i) for i in range(k)]
        labelled = bool(valid.any())
        return {"miou": 100 * float(iou[iou_valid].mean()) if iou_valid.any() else None,
                "fwiou": 100 * float((iou[iou_valid] * weights[iou_valid]).sum()) if labelled else None,
                "macc": 100 * float(acc[valid].mean()) if labelled else None,
                "pacc": 100 * float(tp.sum() / pos_gt.sum()) if labelled else None,
                "iou": {names[i]: 100 * float(iou[i]) for i in range(k) if iou_valid[i]},
                "acc": {names[i]: 100 * float(acc[i]) for i in range(k) if valid[i]},
                "classes_in_gt": int(valid.sum())}


def evaluate(seg, vocab, pairs: list, ignore_label: int, reduce_zero_label: bool = False, desc: str = "") -> dict:
    """Segment every image of `pairs` with `seg` (a Segmenter) and `vocab`; the metrics over the whole
    set, the image count and the mean seconds per image (segmentation only), with a progress bar."""
    import sys
    import time

    from tqdm import tqdm

    from sanrt.runtime.images import load_image

    # with expansion, label K ("other") is a prediction no ground truth holds: a miss for every class
    names = list(vocab.label_names)
    cm = ConfusionMatrix(len(names), ignore_label, gt_classes=len(vocab.names))
    seconds = 0.0
    bar = tqdm(pairs, desc=desc, unit="img", file=sys.stderr)
    for i, (image_path, label_path) in enumerate(bar, 1):
        img = load_image(image_path)
        t = time.perf_counter()
        [res] = seg.segment([img], vocab)
        seconds += time.perf_counter() - t
        cm.update(res.labels, read_label(label_path, ignore_label, reduce_zero_label), str(label_path))
        bar.set_postfix(img_s=f"{i / seconds:.2f}")
    return {**cm.metrics(names), "images": len(pairs), "seconds_per_image": seconds / len(pairs)}
