"""benchmarks/eval_miou.py and sanrt.evaluation.miou: detectron2's SemSegEvaluator metrics, checked
by hand on a confusion pattern, and end to end on synthetic datasets written in the official layouts."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from sanrt.evaluation.miou import ConfusionMatrix, DatasetError, pairs, read_label
from sanrt.runtime.datasets import DATASETS


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
    with pytest.raises(DatasetError, match=r"^x/0001.png: label values \[3\] are outside 0..2"):
        cm.update(np.zeros((1, 2), int), np.array([[3, 255]]), "x/0001.png")  # K is not the ignore label
    with pytest.raises(DatasetError, match=r"label values \[-1\]"):
        cm.update(np.zeros((1, 2), int), np.array([[-1, 0]]))


def test_a_set_without_labelled_pixels_gives_null_not_nan():
    cm = ConfusionMatrix(3, 255)
    cm.update(np.zeros((2, 2), int), np.full((2, 2), 255))
    m = cm.metrics()
    assert m["miou"] is None and m["pacc"] is None and json.loads(json.dumps(m))["macc"] is None


def test_reduce_zero_label(tmp_path):
    Image.fromarray(np.array([[0, 1, 5, 255]], np.uint8)).save(tmp_path / "l.png")
    assert read_label(tmp_path / "l.png", 255, reduce_zero_label=True).tolist() == [[255, 0, 4, 255]]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_official_layouts_pair_images_with_labels(tmp_path, name):
    lay, ignore = DATASETS[name].layout, DATASETS[name].ignore_label
    (tmp_path / lay.images).mkdir(parents=True)
    (tmp_path / lay.labels).mkdir(parents=True)
    for stem in ("a", "b", "c"):
        Image.new("RGB", (8, 6)).save(tmp_path / lay.images / f"{stem}{lay.image_ext}")
    for stem in ("a", "c", "z"):  # the label folder defines the split; z has no image
        arr = np.full((6, 8), ignore, np.uint16 if ignore > 255 else np.uint8)
        Image.fromarray(arr).save(tmp_path / lay.labels / f"{stem}{lay.label_ext}")
    found = pairs(tmp_path / lay.images, tmp_path / lay.labels, lay.image_ext, lay.label_ext)
    assert [(i.stem, l.stem) for i, l in found.pairs] == [("a", "a"), ("c", "c")]
    assert (found.unlabelled, found.orphans) == (1, 1)  # b has no label, z no image
    assert (read_label(found.pairs[0][1], ignore) == ignore).all()  # 16-bit TIFF ignore: 65535


def _eval_miou():
    """benchmarks/eval_miou.py as a module (sanrt.benchmarks.eval_miou)."""
    from sanrt.benchmarks import eval_miou

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
    lay = DATASETS["voc20"].layout
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
        argv = ["--export", str(tiny_export), "--dataset", "voc20", "--root", str(root), "--backend", "onnxruntime",
                "--out", str(tmp_path / "out")]
    else:
        (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
        argv = ["--export", str(tiny_export), "--images", str(img_dir), "--labels", str(lab_dir), "--vocab-file",
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
    assert _eval_miou().main(["--export", str(tiny_export), "--dataset", "ade150", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: image folder not found")


def _tiny_set(root, n=2, ext=".png"):
    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    for i in range(n):
        Image.fromarray(np.full((40, 60, 3), 60 * i, np.uint8)).save(root / "img" / f"{i}{ext}")
        Image.fromarray(np.zeros((40, 60), np.uint8)).save(root / "lab" / f"{i}.png")
    (root / "classes.txt").write_text("cat\ndog\n")
    return ["--images", str(root / "img"), "--labels", str(root / "lab"), "--vocab-file", str(root / "classes.txt")]


@pytest.mark.parametrize("case", ["limit0", "limit-1", "user_eval_json", "user_eval_md", "out_file", "bad_precision",
                                  "value_k"])
def test_eval_refuses_before_any_work(tiny_export, tmp_path, capsys, case):
    """One error line, exit 2, nothing written, found before the first image."""
    argv = ["--export", str(tiny_export), *_tiny_set(tmp_path), "--backend", "onnxruntime", "--out", str(tmp_path / "out")]
    (tmp_path / "out").mkdir()
    expect = {"limit0": "--limit must be 1 or more", "limit-1": "--limit must be 1 or more",
              "user_eval_json": "eval.json exists and was not written by sanrt",
              "user_eval_md": "eval.md exists and was not written by sanrt", "out_file": "is a file, not a folder",
              "bad_precision": "has no int8 image graph", "value_k": "label values [2] are outside 0..1"}[case]
    if case.startswith("limit"):
        argv += ["--limit", case.removeprefix("limit")]
    elif case.startswith("user_"):
        (tmp_path / "out" / case.removeprefix("user_").replace("_", ".")).write_text("the user's own")
    elif case == "out_file":
        (tmp_path / "f").write_text("x")
        argv[-1] = str(tmp_path / "f")
    elif case == "bad_precision":
        argv += ["--compare", "fp32,int8"]
    elif case == "value_k":
        Image.fromarray(np.full((40, 60), 2, np.uint8)).save(tmp_path / "lab" / "1.png")
    before = sorted((p, p.read_bytes()) for p in (tmp_path / "out").rglob("*") if p.is_file())
    capsys.readouterr()
    assert _eval_miou().main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error:", "warning:"))]
    assert len(err) == 1 and err[0].startswith("error:") and expect in err[0], err
    if case == "value_k":
        assert "1.png" in err[0]  # the file is named
    else:
        assert sorted((p, p.read_bytes()) for p in (tmp_path / "out").rglob("*") if p.is_file()) == before


def test_eval_finds_any_image_suffix_and_says_what_it_left_out(tiny_export, tmp_path, capsys):
    argv = ["--export", str(tiny_export), *_tiny_set(tmp_path, ext=".webp"), "--backend", "onnxruntime",
            "--out", str(tmp_path / "out")]
    Image.new("RGB", (8, 8)).save(tmp_path / "img" / "no_label.jpg")
    capsys.readouterr()
    assert _eval_miou().main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["images"] == 2
    assert "warning: 1 images without a label and 0 labels without an image are left out" in captured.err
    # a rerun refreshes sanrt's own reports
    assert _eval_miou().main(argv) == 0
