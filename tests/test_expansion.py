"""Vocabulary expansion as SAN's own predictor does it (predict.py: augment_vocabulary, _postprocess):
the user's names first, COCO-Stuff's distractors after them, every pixel a distractor wins labelled K
("other"). Checked against a second implementation of the official rule: a plain vocabulary of the
user's names and the distractors, then the fold."""
import json

import numpy as np
import pytest
from conftest import TINY_DEV, run_script
from PIL import Image

from sanrt.runtime import Segmenter, dataset_vocabulary
from sanrt.runtime.datasets import expansion_names
from sanrt.runtime.errors import VocabularyError

USER = ["Cat", "sofa", "wooden floor"]  # "Cat": CLIP reads it as COCO's "cat", so that distractor is skipped


@pytest.fixture(scope="module")
def seg(tiny_export, tmp_path_factory):
    return Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def images():
    imgs = [np.load(p)["orig_image_hwc_u8"] for p in sorted(TINY_DEV.glob("*.npz"))]
    return imgs + [np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)]


def official(user: list[str], mode: str) -> list[str]:
    """predict.py's augment_vocabulary, written from the official code: user names, then each set name
    not among them (compared as CLIP compares them here: case-blind)."""
    coco = dataset_vocabulary("coco_stuff171")
    pool = coco if mode == "coco-all" else coco[80:]  # COCO_CATEGORIES lists its 80 things first
    taken = {u.lower() for u in user}
    return user + [c for c in pool if c.lower() not in taken]


def test_the_sets_are_the_official_ones():
    coco = dataset_vocabulary("coco_stuff171")
    assert expansion_names("coco-all") == coco and len(coco) == 171
    stuff = expansion_names("coco-stuff")
    assert len(stuff) == 91 and stuff[0] == "banner" and "person" not in stuff and stuff[-1] == "wood"
    with pytest.raises(VocabularyError, match="unknown vocabulary expansion"):
        expansion_names("coco")


@pytest.mark.parametrize("mode", ["coco-all", "coco-stuff"])
def test_expanded_labels_equal_the_official_rule_bit_for_bit(seg, images, mode):
    v = seg.vocabulary(USER, expand=mode)
    assert v.names == tuple(USER) and v.expansion == mode
    assert list(v.classes) == official(USER, mode)
    assert ("cat" in v.distractors) is False and (mode == "coco-stuff" or "dog" in v.distractors)
    plain = seg.vocabulary(official(USER, mode))
    other_pixels = 0
    for img in images:
        [ours] = seg.segment([img], v)
        [ref] = seg.segment([img], plain)
        folded = np.where(ref.labels >= len(USER), len(USER), ref.labels)
        np.testing.assert_array_equal(ours.labels, folded)
        other_pixels += int((ours.labels == len(USER)).sum())
        present = {c.name: c.fraction for c in ours.classes_present()}
        assert set(present) <= {*USER, "other"} and sum(present.values()) == pytest.approx(1, abs=1e-5)
    assert other_pixels > 0  # the fold was exercised


def test_no_user_names_means_the_whole_set_and_no_other(seg, images):
    v = seg.vocabulary([], expand="coco-stuff")
    assert v.names == tuple(expansion_names("coco-stuff")) and not v.distractors
    [r] = seg.segment(images[:1], v)
    assert not r.other and r.labels.max() < 91
    with pytest.raises(VocabularyError, match="empty"):
        seg.vocabulary([])


def test_distractor_features_come_from_the_per_name_cache(seg):
    """After one expanded vocabulary, another 3-name one runs the text graph for its 3 new names only."""
    seg.vocabulary(["red car", "tree", "sky"], expand="coco-all")
    v = seg.vocabulary(["blue kayak", "harbour", "seagull"], expand="coco-all")
    assert v.names_encoded == 3 and len(v.distractors) >= 165


def test_infer_writes_other_in_the_json_and_leaves_other_pixels_uncoloured(tiny_export, tmp_path, seg, images):
    Image.fromarray(images[0]).save(tmp_path / "photo.png")
    code, _, err = run_script("runtime/infer.py", "--engine", tiny_export, "--image", tmp_path / "photo.png",
                              "--vocab", ",".join(USER), "--expand", "coco-all", "--backend", "onnxruntime",
                              "--out", tmp_path / "out")
    assert code == 0, err
    rep = json.loads((tmp_path / "out" / "photo.json").read_text())
    assert rep["expansion"] == "coco-all" and "other" in {c["name"] for c in rep["classes"]}
    labels = np.asarray(Image.open(tmp_path / "out" / "photo_labels.png"))
    [r] = seg.segment([images[0]], seg.vocabulary(USER, expand="coco-all"))
    np.testing.assert_array_equal(labels, r.labels)
    shown = np.asarray(Image.open(tmp_path / "out" / "photo_overlay.png").convert("RGB"))[:, : images[0].shape[1]]
    other = labels == len(USER)
    np.testing.assert_array_equal(shown[other], images[0][other])  # "other" is drawn uncoloured
    assert (shown[~other] != images[0][~other]).any() or other.all()


def test_eval_miou_with_expansion_counts_other_as_a_miss(tiny_export, tmp_path, seg, images, capsys):
    """Ground truth = the plain vocabulary's labels; with --expand coco-all every pixel the expanded
    vocabulary labels "other" is a miss: pACC is the fraction of pixels where the two agree."""
    from sanrt.benchmarks import eval_miou

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    (tmp_path / "classes.txt").write_text("\n".join(USER) + "\n")
    plain, expanded = seg.vocabulary(USER), seg.vocabulary(USER, expand="coco-all")
    agree = total = 0
    for i, img in enumerate(images[:2]):
        Image.fromarray(img).save(tmp_path / "img" / f"{i}.png")
        gt = seg.segment([img], plain)[0].labels
        Image.fromarray(gt.astype(np.uint8)).save(tmp_path / "lab" / f"{i}.png")
        ours = seg.segment([img], expanded)[0].labels
        agree, total = agree + int((ours == gt).sum()), total + gt.size
    capsys.readouterr()
    argv = ["--export", str(tiny_export), "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab"),
            "--vocab-file", str(tmp_path / "classes.txt"), "--backend", "onnxruntime", "--expand", "coco-all",
            "--out", str(tmp_path / "out")]
    assert eval_miou.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["pacc"] == pytest.approx(100 * agree / total, abs=1e-3) and agree < total
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["expansion"] == "coco-all"
