"""The one registry of datasets: what sanrt knows of each dataset SAN reports. An entry holds its
class names (in the official class-index order), the prompt templates, where SAN's preparation
scripts put its validation split, and its ignore label. To add a dataset: its names to
data/datasets.json, one `Dataset` here."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from .errors import VocabularyError
from .vocabulary import VILD_TEMPLATES


@dataclass(frozen=True)
class Layout:
    """Where a dataset's validation images and label images lie under the datasets root."""

    images: str  # folder under --root
    labels: str
    image_ext: str
    label_ext: str


@dataclass(frozen=True)
class Dataset:
    key: str  # "ade150"
    title: str  # "ADE20K-150"
    layout: Layout
    ignore_label: int  # label value of unlabelled pixels (255; 65535 in the 16-bit label sets)
    templates: tuple[str, ...] = VILD_TEMPLATES
    things: int = 0  # the first `things` names are thing classes (COCO-Stuff lists its 80 first)

    @property
    def names(self) -> list[str]:
        return list(_names()[self.key])


# Names as the official repo has them (detectron2's ADE20K-150; SAN's registrations of ADE20K-847,
# PASCAL Context 59/459, COCO-Stuff 171, VOC 20); layouts as SAN's datasets/prepare_*.py and
# san/data/datasets/register_*.py lay them out under DETECTRON2_DATASETS.
DATASETS = {d.key: d for d in (
    Dataset("ade150", "ADE20K-150", Layout("ADEChallengeData2016/images/validation",
                                           "ADEChallengeData2016/annotations_detectron2/validation", ".jpg", ".png"), 255),
    Dataset("ade847", "ADE20K-847", Layout("ADE20K_2021_17_01/images_detectron2/validation",
                                           "ADE20K_2021_17_01/annotations_detectron2/validation", ".jpg", ".tif"), 65535),
    Dataset("pc59", "PASCAL Context 59", Layout("pcontext/val/image", "pcontext/val/label", ".jpg", ".png"), 255),
    Dataset("pc459", "PASCAL Context 459", Layout("pcontext_full/val/image", "pcontext_full/val/label", ".jpg", ".tif"), 65535),
    Dataset("coco_stuff171", "COCO-Stuff 171", Layout("coco/val2017", "coco/stuffthingmaps_detectron2/val2017", ".jpg", ".png"), 255,
            things=80),
    Dataset("voc20", "PASCAL VOC 20", Layout("VOC2012/JPEGImages", "VOC2012/annotations_detectron2/val", ".jpg", ".png"), 255),
)}
DATASET_TITLES = {k: d.title for k, d in DATASETS.items()}
# Vocabulary expansion, as SAN's own predictor does it: the distractor names a short vocabulary is
# completed with (COCO-Stuff's 171 classes, or its 91 stuff classes), whose pixels fold into "other".
EXPANSIONS = {"coco-all": ("coco_stuff171", False), "coco-stuff": ("coco_stuff171", True)}  # (dataset, stuff only)


@lru_cache(maxsize=1)
def _names() -> dict:
    data = json.loads(files(__package__).joinpath("data", "datasets.json").read_text(encoding="utf-8"))
    # each passes check_vocabulary as it is (tests/test_vocabulary_names.py)
    return {k: tuple(n.strip() for n in data[k]) for k in DATASETS}


def dataset(name: str) -> Dataset:
    """A dataset by key, as users spell it: case, "-" and "_" do not matter ("ADE-150", "coco_stuff171")."""
    if not isinstance(name, str):
        raise VocabularyError(f"a dataset is named by text, such as 'ade150', not {type(name).__name__}")
    table = {k.replace("_", ""): k for k in DATASETS}
    key = name.lower().replace("-", "").replace("_", "")
    if key not in table:
        raise VocabularyError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[table[key]]


def expansion_names(mode: str) -> list[str]:
    """The distractor names of an expansion mode (`coco-all`, `coco-stuff`), in the official order."""
    if mode not in EXPANSIONS:
        raise VocabularyError(f"unknown vocabulary expansion {mode!r}; choose one of none, {', '.join(EXPANSIONS)}")
    key, stuff_only = EXPANSIONS[mode]
    d = DATASETS[key]
    return d.names[d.things:] if stuff_only else d.names


def dataset_vocabulary(name: str) -> list[str]:
    """The class names of a dataset SAN reports (`ade150`, `ade847`, `pc59`, `pc459`, `coco_stuff171`,
    `voc20`), in the official class-index order."""
    return dataset(name).names
