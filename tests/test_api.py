"""The library API (sanrt.runtime): the README's example run as written, with torch blocked; one
Segmenter shared by threads with different vocabularies; vocabularies as values; mixed image sizes;
the one exception family; and the wheel installed without the source tree."""
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

import sanrt.runtime as rt
from sanrt.runtime import Segmenter


def readme_blocks(marker: str) -> list[str]:
    """The fenced python blocks that follow `<!-- marker -->` lines in the README."""
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"<!-- {re.escape(marker)} -->\s*```python\n(.*?)```", text, re.S)


@pytest.fixture(scope="module")
def photo_files(tiny_dev, tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    imgs = {p.stem: np.load(p)["orig_image_hwc_u8"] for p in sorted(tiny_dev.glob("*.npz"))}
    Image.fromarray(imgs["astronaut"]).save(d / "a.jpg", quality=95)
    Image.fromarray(imgs["chelsea"]).save(d / "b.png")
    return d


def test_readme_example_runs_with_torch_blocked(tiny_export, photo_files, tmp_path):
    """The README's library example, unchanged, in a folder where its paths exist."""
    [block] = readme_blocks("example: library")
    work = tmp_path / "work"
    (work / "out" / "onnx").mkdir(parents=True)
    shutil.copytree(tiny_export, work / "out" / "onnx" / "vit_b_16")  # an export this test made fresh
    for f in photo_files.iterdir():
        shutil.copy(f, work / f.name)
    code = ("import sys\nsys.modules['torch'] = None\nsys.modules['open_clip'] = None\n" + block +
            "\nassert 'torch' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
            "assert res.labels.shape == load_image('a.jpg').shape[:2] and len(more) == 2\n"
            "assert more[0].names == tuple(dataset_vocabulary('ade150'))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, SANRT_CACHE=str(tmp_path / "cache")))
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture(scope="module")
def images(tiny_dev):
    rng = np.random.default_rng(1)
    photos = [np.load(p)["orig_image_hwc_u8"] for p in sorted(tiny_dev.glob("*.npz"))]
    return photos + [rng.integers(0, 256, (70, 90, 3), dtype=np.uint8), photos[0][::-1, :150].copy()]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_one_segmenter_many_threads_many_vocabularies(tiny_export, images, tmp_path, backend):
    """2 vocabularies x 4 threads at once on one Segmenter (8 threads, 4 images each, released
    together): every answer identical to the serial one."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    seg = Segmenter(tiny_export, backend=backend, cache_dir=tmp_path)
    vocabs = [seg.vocabulary(["cat", "grass", "sky", "person"]), seg.vocabulary(rt.dataset_vocabulary("voc20"))]
    serial = {(v, i): seg.segment([images[i]], vocabs[v])[0] for v in range(2) for i in range(len(images))}
    results, errors = {}, []
    start = threading.Barrier(8)

    def work(t):
        try:
            start.wait()
            for i in range(len(images)):
                results[(t, i)] = seg.segment([images[i]], vocabs[t % 2])[0]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    assert not errors, errors[:3]
    assert len(results) == 8 * len(images)
    for (t, i), r in results.items():
        ref = serial[(t % 2, i)]
        assert r.names == ref.names
        np.testing.assert_array_equal(r.labels, ref.labels)
        np.testing.assert_array_equal(r.class_logits, ref.class_logits)


def test_encode_once_classify_with_several_vocabularies(tiny_export, images, tmp_path):
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    v1, v2 = seg.vocabulary(["cat", "tree"]), seg.vocabulary(["person", "sky", "road"])
    enc = seg.encode_images(images[:1])
    for v in (v1, v2):
        [a] = seg.classify(enc, v)
        [b] = seg.segment(images[:1], v)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.labels.max() < len(v) and a.class_logits.shape[-1] == len(v) + 1
        present = a.classes_present()
        assert sum(c.fraction for c in present) == pytest.approx(1.0, abs=1e-4)
        assert [c.fraction for c in present] == sorted((c.fraction for c in present), reverse=True)
        assert all(v.names[c.index] == c.name for c in present)


def test_a_vocabulary_is_an_immutable_value(tiny_export, tmp_path):
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    v = seg.vocabulary(["cat", "dog"])
    assert isinstance(v, rt.Vocabulary) and v.names == ("cat", "dog") and len(v) == 2
    with pytest.raises(ValueError):
        v.class_weights[0, 0] = 1.0
    with pytest.raises(AttributeError):
        v.names = ("x",)
    other = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    assert other.vocabulary(["cat", "dog"]).source == v.source  # same export: interchangeable


def test_a_vocabulary_sharing_names_encodes_only_its_new_names(tiny_export, tmp_path):
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    first = seg.vocabulary(["cat", "dog", "tree", "sky"])
    assert first.names_encoded == 4 and not first.cached
    mixed = seg.vocabulary(["sky", "road", "cat"])  # two known names, one new, in another order
    assert mixed.names_encoded == 1 and not mixed.cached
    fresh = seg.vocabulary(["sky", "road", "cat"], use_cache=False)  # every text through the text graph
    assert fresh.names_encoded == 3
    # the same texts through the same graphs; only their grouping into calls differs (float rounding)
    np.testing.assert_allclose(mixed.class_weights, fresh.class_weights, rtol=0,
                               atol=1e-5 * np.abs(fresh.class_weights).max())
    assert seg.vocabulary(["sky", "road", "cat"]).cached  # now the whole vocabulary's entry


def test_a_vocabulary_from_another_export_is_refused(tiny_export, tiny_dev, tmp_path):
    from sanrt.export import build_model, export

    model, weights = build_model(config=tiny_dev / "tiny_config.json", random_init=True, seed=3, notice=lambda s: None)
    export(model, tmp_path / "other", weights, progress=lambda s: None)
    assert rt.Segmenter(tmp_path / "other").manifest.weights == "random (seed 3, fixture-style spread)"
    mine = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    theirs = Segmenter(tmp_path / "other", backend="onnxruntime", cache_dir=tmp_path)
    with pytest.raises(rt.VocabularyError, match="another export"):
        mine.segment([np.zeros((40, 40, 3), np.uint8)], theirs.vocabulary(["cat"]))
    with pytest.raises(rt.VocabularyError, match="takes a Vocabulary"):
        mine.segment([np.zeros((40, 40, 3), np.uint8)], ["cat"])


def test_images_of_different_sizes_answer_as_if_alone(tiny_export, images, tmp_path):
    """segment() batches only images of one padded size: each answer equals that image alone."""
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    v = seg.vocabulary(["cat", "tree", "sky"])
    together = seg.segment(images, v)
    assert len({seg.input_size(*im.shape[:2]) for im in images}) > 1
    for im, r in zip(images, together):
        [alone] = seg.segment([im], v)
        np.testing.assert_allclose(r.mask_emb, alone.mask_emb, rtol=0, atol=1e-5)
        assert (r.labels == alone.labels).mean() >= 0.9999
    with pytest.raises(rt.RangeError, match="padded sizes"):
        seg.encode_images(images)


def test_every_user_error_is_a_sanrt_error(tiny_export, tmp_path):
    for name in ("ExportFolderError", "ImageError", "BackendError", "RangeError", "VocabularyError", "OutputError"):
        assert issubclass(getattr(rt, name), rt.SanrtError)
    from sanrt.model import CheckpointError

    assert issubclass(CheckpointError, rt.SanrtError)
    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    cases = [lambda: seg.vocabulary([]), lambda: seg.vocabulary("cat,dog"), lambda: seg.vocabulary(["a", "A"]),
             lambda: seg.segment([np.zeros((4, 4), np.uint8)], seg.vocabulary(["a"])),
             lambda: rt.load_image(tmp_path / "missing.png"), lambda: Segmenter(tmp_path / "nope"),
             lambda: rt.dataset_vocabulary("imagenet"), lambda: rt.read_vocabulary_file(tmp_path)]
    for case in cases:
        with pytest.raises(rt.SanrtError):
            case()


def test_the_wheel_works_without_the_source_tree(tiny_export, photo_files, tmp_path):
    """Build the wheel, install it with only the runtime extra into a fresh venv, run the console
    script on a built-in dataset vocabulary (package data inside the wheel) from another folder."""
    dist = tmp_path / "dist"
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                        str(ROOT)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    [wheel] = dist.glob("sanrt-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{wheel}[cpu]"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    p = subprocess.run([str(venv / "bin" / "sanrt-infer"), "--engine", str(tiny_export), "--image", str(photo_files / "b.png"),
                        "--dataset", "voc20", "--out", "seg"], cwd=run_dir, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, SANRT_CACHE=str(tmp_path / "cache")))
    assert p.returncode == 0, p.stderr
    assert (run_dir / "seg" / "b_labels.png").is_file() and (run_dir / "seg" / "b.json").is_file()
    p = subprocess.run([str(py), "-c", "import torch"], capture_output=True, text=True)
    assert p.returncode != 0  # the runtime install brought no torch
