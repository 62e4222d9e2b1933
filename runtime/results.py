"""The values the segmenters return (the torch-free `Segmenter` and the PyTorch `TorchSegmenter` alike)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


@dataclass
class EncodedBatch:
    """The image graph's outputs for one batch of images of one padded size (vocabulary-independent)."""

    padded_hw: tuple  # the batch's padded input size
    image_hw: list  # each image's resized size inside the padding
    orig_hw: list  # each image's original size (the output size)
    mask_logits: np.ndarray  # [B, Q, H/16, W/16]
    mask_emb: np.ndarray  # [B, Q, D]
    timings: dict = field(default_factory=dict)


class ClassPresent(NamedTuple):
    index: int  # in vocabulary order
    name: str
    fraction: float  # of the image's pixels


@dataclass
class Segmentation:
    labels: np.ndarray  # [H0, W0] int32, class indices in vocabulary order (K: "other", with expansion)
    names: tuple[str, ...]  # the vocabulary the labels index
    scores: np.ndarray | None  # [K(+M), H0, W0] when asked for: every class the head scored
    mask_logits: np.ndarray  # [Q, H/16, W/16]
    mask_emb: np.ndarray  # [Q, D]
    class_logits: np.ndarray  # [Q, K+1]
    timings: dict = field(default_factory=dict)  # seconds per stage (batch stages shared)
    other: bool = False  # label K means "other": a distractor of the vocabulary's expansion won the pixel

    @property
    def label_names(self) -> tuple[str, ...]:
        """What each label value means: the names, and "other" at K with expansion."""
        return self.names + (("other",) if self.other else ())

    def classes_present(self) -> list[ClassPresent]:
        """The classes that label at least one pixel, largest first ("other" among them, at index K)."""
        names = self.label_names
        counts = np.bincount(self.labels.ravel(), minlength=len(names))
        return [ClassPresent(int(i), names[i], round(float(counts[i] / self.labels.size), 6))
                for i in np.argsort(-counts, kind="stable") if counts[i]]
