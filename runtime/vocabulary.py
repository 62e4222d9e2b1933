"""Prompt templates and class vocabularies (torch-free)."""
from __future__ import annotations

# The 14 "vild" templates SAN averages over (CLIP_TEMPLATE_SET = "vild"), in SAN's order.
VILD_TEMPLATES = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


class VocabularyError(ValueError):
    """A vocabulary that cannot be used (empty, duplicate or blank names)."""


def check_vocabulary(names) -> list[str]:
    """Strip names and refuse empty vocabularies, blank names and duplicates."""
    names = [str(n).strip() for n in names]
    if not names:
        raise VocabularyError("the vocabulary is empty: name at least one class")
    blank = [i for i, n in enumerate(names) if not n]
    if blank:
        raise VocabularyError(f"the vocabulary has blank class names at positions {blank}")
    seen, dups = set(), []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise VocabularyError(f"the vocabulary names these classes more than once: {', '.join(dups)}")
    return names


def read_vocabulary_file(path) -> list[str]:
    """One class name a line, in class-index order; blank lines are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except FileNotFoundError:
        raise VocabularyError(f"vocabulary file not found: {path}") from None
    except UnicodeDecodeError:
        raise VocabularyError(f"vocabulary file {path} is not UTF-8 text") from None
    return check_vocabulary([line for line in lines if line])


# Class names of the datasets SAN reports, as the official repo names them (detectron2's
# ADE20K-150; SAN's registrations of ADE20K-847, PASCAL Context 59/459, COCO-Stuff 171, VOC 20).
DATASET_TITLES = {
    "ade150": "ADE20K-150",
    "ade847": "ADE20K-847",
    "pc59": "PASCAL Context 59",
    "pc459": "PASCAL Context 459",
    "coco_stuff171": "COCO-Stuff 171",
    "voc20": "PASCAL VOC 20",
}


def dataset_vocabulary(name: str) -> list[str]:
    import json
    from pathlib import Path

    key = name.lower().replace("-", "").replace("_", "")
    table = {k.replace("_", ""): k for k in DATASET_TITLES}
    if key not in table:
        raise VocabularyError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_TITLES)}")
    data = json.loads((Path(__file__).with_name("data") / "datasets.json").read_text(encoding="utf-8"))
    return check_vocabulary(data[table[key]])
