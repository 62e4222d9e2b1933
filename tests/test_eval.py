"""benchmarks/eval_miou.py and sanrt.runtime.evaluation: detectron2's SemSegEvaluator metrics, checked
by hand on a confusion pattern, and end to end on synthetic datasets written in the official layouts."""
import json
import math
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from sanrt.runtime.evaluation import LAYOUTS, ConfusionMatrix, DatasetError, pairs, read_label


def test_metrics_by_hand():
    """3 classes; ignore pixels; class 2 is only predicted (absent from the labels: no IoU, no NaN)."""
    gt = np.array([[0, 0, 0, 1],
                   [1, 1, 255, 255]])
    pred = np.array([[0, 0, 1, 1],
                     [1, 2, 0, 2]])
    cm = ConfusionMatrix(3, 255)
    cm.update(pred, gt)
    m = cm.metrics(["a", "b", "c"])
    # class a: gt 3 px, tp 2, predicted (on labelled px) 2 -> IoU 2/3, acc 2/3
    # class b: gt 3 px, tp 2, predicted 3 (one is a's) -> IoU 2/4, acc 2/3
    # class c: not in gt -> left out; its one prediction on a labelled pixel still costs b
    assert set(m["iou"]) == {"a", "b"} and m["classes_in_gt"] == 2
    assert m["iou"]["a"] == pytest.approx(100 * 2 / 3) and m["iou"]["b"] == pytest.approx(50.0)
    assert m["miou"] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    assert m["macc"] == pytest.approx(100 * 2 / 3) and m["pacc"] == pytest.approx(100 * 4 / 6)
    assert m["fwiou"] == pytest.approx(100 * (0.5 * 2 / 3 + 0.5 * 0.5))
    assert not any(math.isnan(v) for v in (m["miou"], m["macc"], m["fwiou"], m["pacc"]))


def test_bad_labels_are_refused():
    cm = ConfusionMatrix(3, 255)
    with pytest.raises(DatasetError, match="outside 0..2"):
        cm.update(np.zeros((2, 2), int), np.array([[0, 7], [1, 255]]))
    with pytest.raises(DatasetError, match="differ in size"):
        cm.update(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_reduce_zero_label(tmp_path):
    Image.fromarray(np.array([[0, 1, 5, 255]], np.uint8)).save(tmp_path / "l.png")
    assert read_label(tmp_path / "l.png", 255, reduce_zero_label=True).tolist() == [[255, 0, 4, 255]]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_official_layouts_pair_images_with_labels(tmp_path, name):
    lay = LAYOUTS[name]
    (tmp_path / lay.images).mkdir(parents=True)
    (tmp_path / lay.labels).mkdir(parents=True)
    for stem in ("a", "b", "c"):
        Image.new("RGB", (8, 6)).save(tmp_path / lay.images / f"{stem}{lay.image_ext}")
    for stem in ("a", "c", "z"):  # the label folder defines the split; z has no image
        arr = np.full((6, 8), lay.ignore_label, np.uint16 if lay.ignore_label > 255 else np.uint8)
        Image.fromarray(arr).save(tmp_path / lay.labels / f"{stem}{lay.label_ext}")
    found = pairs(tmp_path / lay.images, tmp_path / lay.labels, lay.image_ext, lay.label_ext)
    assert [(i.stem, l.stem) for i, l in found] == [("a", "a"), ("c", "c")]
    assert (read_label(found[0][1], lay.ignore_label) == lay.ignore_label).all()  # 16-bit TIFF ignore: 65535


def _eval_miou():
    """benchmarks/eval_miou.py as a module (the scripts folder is not a package)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    import eval_miou

    return eval_miou


def _expected(preds, gts, k, ignore):
    """The SemSegEvaluator definitions, class by class with boolean masks (a second implementation)."""
    ious, accs, weights = {}, {}, {}
    total = sum(int((g != ignore).sum()) for g in gts)
    for c in range(k):
        tp = sum(int(((p == c) & (g == c)).sum()) for p, g in zip(preds, gts))
        gt_c = sum(int((g == c).sum()) for g in gts)
        pred_c = sum(int(((p == c) & (g != ignore)).sum()) for p, g in zip(preds, gts))
        if gt_c:
            ious[c], accs[c], weights[c] = tp / (gt_c + pred_c - tp), tp / gt_c, gt_c / total
    tp_all = sum(int(((p == g) & (g != ignore)).sum()) for p, g in zip(preds, gts))
    return {"miou": 100 * np.mean(list(ious.values())), "macc": 100 * np.mean(list(accs.values())),
            "pacc": 100 * tp_all / total, "fwiou": 100 * sum(ious[c] * weights[c] for c in ious)}


@pytest.mark.parametrize("mode", ["voc20", "custom"])
def test_eval_end_to_end_on_a_synthetic_dataset(tiny_export, tiny_dev, tmp_path, capsys, monkeypatch, mode):
    """Labels made from the export's own predictions, then changed in known ways: ignored pixels,
    pixels relabelled to a class the model never predicts, a class only predicted."""
    from sanrt.runtime import Segmenter, dataset_vocabulary

    eval_miou = _eval_miou()
    monkeypatch.setenv("SANRT_CACHE", str(tmp_path / "cache"))
    names = dataset_vocabulary("voc20") if mode == "voc20" else ["cat", "tree", "sky", "person", "road", "car", "wall", "water"]
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path / "cache" / "vocab")
    vocab = seg.vocabulary(names)
    photos = [np.load(p)["orig_image_hwc_u8"] for p in sorted(tiny_dev.glob("*.npz"))]
    photos.append(photos[0][::-1].copy())
    lay = LAYOUTS["voc20"]
    root = tmp_path / "datasets"
    img_dir, lab_dir = (root / lay.images, root / lay.labels) if mode == "voc20" else (root / "img", root / "lab")
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)
    preds, gts = [], []
    for i, photo in enumerate(photos):
        Image.fromarray(photo).save(img_dir / f"{i:04d}.jpg", quality=95)
        pred = seg.segment([np.asarray(Image.open(img_dir / f"{i:04d}.jpg").convert("RGB"))], vocab)[0].labels
        never = next(c for c in range(len(names)) if not (pred == c).any())
        gt = pred.copy()
        gt[:10, :] = 255  # ignored
        gt[-12:, :20] = never  # a class the model does not predict here
        preds.append(pred)
        gts.append(gt)
        stored = gt + 1 if mode == "custom" else gt  # custom: 0 = ignore, classes from 1 (reduce-zero-label)
        if mode == "custom":
            stored[gt == 255] = 0
        Image.fromarray(stored.astype(np.uint8)).save(lab_dir / f"{i:04d}.png")
    if mode == "voc20":
        argv = ["--engine", str(tiny_export), "--dataset", "voc20", "--root", str(root), "--backend", "onnxruntime",
                "--out", str(tmp_path / "out")]
    else:
        (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
        argv = ["--engine", str(tiny_export), "--images", str(img_dir), "--labels", str(lab_dir), "--vocab-file",
                str(tmp_path / "classes.txt"), "--reduce-zero-label", "--backend", "onnxruntime", "--out", str(tmp_path / "out")]
    capsys.readouterr()
    assert eval_miou.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    want = _expected(preds, gts, len(names), 255)
    assert summary["images"] == len(photos)
    for key in ("miou", "macc", "pacc", "fwiou"):
        assert summary[key] == pytest.approx(want[key], abs=1e-3), key
    assert summary["miou"] < 100 and (tmp_path / "out" / "eval.md").is_file()


def test_eval_errors_are_one_line(tiny_export, tmp_path, capsys):
    assert _eval_miou().main(["--engine", str(tiny_export), "--dataset", "ade150", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: image folder not found")
