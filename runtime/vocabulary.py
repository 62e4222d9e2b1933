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


from .errors import VocabularyError


def check_vocabulary(names) -> list[str]:
    """Strip names and refuse empty vocabularies, blank names and duplicates: also names that differ
    only where CLIP's tokenizer does not look (case, spacing, HTML entities), since the model gives
    them identical class weights and the later one could never win a pixel."""
    from .tokenizer import Tokenizer

    if isinstance(names, str):
        raise VocabularyError("a vocabulary is a list of class names, not one string (split it first)")
    names = [str(n).strip() for n in names]
    if not names:
        raise VocabularyError("the vocabulary is empty: name at least one class")
    blank = [i for i, n in enumerate(names) if not n]
    if blank:
        raise VocabularyError(f"the vocabulary has blank class names at positions {blank}")
    seen: dict[str, str] = {}
    dups = []
    for n in names:
        key = Tokenizer.clean(n)
        if key in seen:
            dups.append(n if seen[key] == n else f"{seen[key]!r} = {n!r}")
        seen.setdefault(key, n)
    if dups:
        raise VocabularyError(f"the vocabulary names these classes more than once: {', '.join(dict.fromkeys(dups))} "
                              "(CLIP's tokenizer ignores case and spacing)")
    return names


def read_vocabulary_file(path) -> list[str]:
    """One class name a line, in class-index order; blank lines are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except FileNotFoundError:
        raise VocabularyError(f"vocabulary file not found: {path}") from None
    except IsADirectoryError:
        raise VocabularyError(f"vocabulary file {path} is a folder, not a text file") from None
    except UnicodeDecodeError:
        raise VocabularyError(f"vocabulary file {path} is not UTF-8 text") from None
    except OSError as e:
        raise VocabularyError(f"vocabulary file {path} cannot be read: {e.strerror or e}") from None
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
    """The class names of a dataset SAN reports (`ade150`, `ade847`, `pc59`, `pc459`, `coco_stuff171`,
    `voc20`), in the official class-index order."""
    import json
    from importlib.resources import files

    key = name.lower().replace("-", "").replace("_", "")
    table = {k.replace("_", ""): k for k in DATASET_TITLES}
    if key not in table:
        raise VocabularyError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_TITLES)}")
    data = json.loads(files(__package__).joinpath("data", "datasets.json").read_text(encoding="utf-8"))
    return check_vocabulary(data[table[key]])
