"""Output files: whole or absent when a write fails half-way (temporary file + rename), marked as
sanrt's, and never written over a file sanrt did not write."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from sanrt.runtime import OutputError, SegmentationWriter
from sanrt.runtime.outputs import write_atomic, written_by_sanrt
from sanrt.runtime.results import Segmentation


def _seg(h=20, w=30, k=3):
    labels = (np.arange(h * w).reshape(h, w) % k).astype(np.int32)
    return Segmentation(labels, tuple(f"c{i}" for i in range(k)), None, np.zeros((2, 1, 1)), np.zeros((2, 4)),
                        np.zeros((2, k + 1)))


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")

    def half(f):
        f.write_text("new but cut")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, half)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_outputs_broken_mid_save_are_absent_not_partial(tmp_path, monkeypatch):
    """PIL's save dies after writing half a PNG: the output name must not hold that half."""
    img = np.zeros((20, 30, 3), np.uint8)
    writer = SegmentationWriter(tmp_path)
    writer.plan(["x"])
    real_save = Image.Image.save

    def broken_save(self, fp, *a, **k):
        real_save(self, fp, *a, **k)
        with open(fp, "r+b") as f:
            f.truncate(os.path.getsize(fp) // 2)
        raise OSError("killed")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError):
        writer.write("x", img, _seg())
    assert not any(p.name.startswith("x") for p in tmp_path.iterdir()), os.listdir(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_outputs_carry_the_mark_and_read_back(tmp_path):
    writer = SegmentationWriter(tmp_path)
    writer.plan(["x"])
    paths = writer.write("x", np.zeros((20, 30, 3), np.uint8), _seg(), {"image": "x.png"})
    assert [p.name for p in paths] == ["x_labels.png", "x_overlay.png", "x.json"]
    assert all(written_by_sanrt(p) for p in paths)
    assert np.asarray(Image.open(paths[0])).max() == 2
    report = json.loads(paths[2].read_text())
    assert report["written_by"] == "sanrt" and report["image"] == "x.png" and report["vocabulary_size"] == 3
    writer.plan(["x"])  # sanrt's own earlier outputs may be replaced


@pytest.mark.parametrize("name,content", [("x.json", '{"a": 1}'), ("x_labels.png", None), ("x_overlay.png", b"junk")])
def test_files_without_the_mark_are_never_replaced(tmp_path, name, content):
    p = tmp_path / name
    if content is None:
        Image.new("L", (4, 4)).save(p)  # a PNG, but not one sanrt wrote
    elif isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    before = p.read_bytes()
    with pytest.raises(OutputError, match="not written by sanrt"):
        SegmentationWriter(tmp_path).plan(["x"])
    assert p.read_bytes() == before


def test_sixteen_bit_label_png_past_255_classes(tmp_path):
    writer = SegmentationWriter(tmp_path, overlay=False)
    writer.plan(["big"])
    seg = _seg(10, 40, 300)
    [labels_png, _] = writer.write("big", np.zeros((10, 40, 3), np.uint8), seg)
    np.testing.assert_array_equal(np.asarray(Image.open(labels_png)), seg.labels)


@pytest.mark.parametrize("top,mode", [(255, "L"), (256, "I;16"), (65535, "I;16")])
def test_label_png_depth_at_the_boundary(tmp_path, top, mode):
    from sanrt.runtime.visualize import label_png

    labels = np.array([[0, top], [top - 1, 1]], np.int32)
    label_png(labels).save(tmp_path / "l.png")
    with Image.open(tmp_path / "l.png") as im:
        assert im.mode == mode
        np.testing.assert_array_equal(np.asarray(im).astype(np.int32), labels)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_take_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "f.json", lambda f: f.write_text("{}"))
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o666 & ~umask


def test_importing_the_runtime_leaves_pillow_and_warnings_alone():
    import subprocess
    import sys

    code = ("import numpy, onnxruntime, ftfy, regex, tqdm, warnings; from PIL import Image, PngImagePlugin; "  # theirs first
            "before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters)); "
            "import sanrt.runtime, sanrt.runtime.images, sanrt.runtime.segmenter; "
            "assert (Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before, 'changed'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_write_needs_plan_and_stays_inside_the_folder(tmp_path):
    (tmp_path / "x.json").write_text('{"the user": 1}')
    writer = SegmentationWriter(tmp_path / "out")
    with pytest.raises(OutputError, match="before plan"):
        writer.write("x", np.zeros((20, 30, 3), np.uint8), _seg())
    for stem in ("../x", "a/b", "..", ""):
        with pytest.raises(OutputError, match="not a plain file name"):
            writer.plan([stem])
    assert (tmp_path / "x.json").read_text() == '{"the user": 1}'


def test_one_writer_per_folder_across_processes(tmp_path):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sanrt.runtime import SegmentationWriter; w = SegmentationWriter(sys.argv[1]); "
        "w.plan(['a']); print('held', flush=True); time.sleep(60)"), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match="another sanrt run is writing into"):
            SegmentationWriter(tmp_path).plan(["b"])
    finally:
        holder.kill()
        holder.wait(10)
    with SegmentationWriter(tmp_path) as w:  # free again once that run is gone
        w.plan(["b"])


def test_a_name_too_long_for_the_file_system_is_refused_before_writing(tmp_path):
    with pytest.raises(OutputError, match="too long for the file system"):
        SegmentationWriter(tmp_path).plan(["ok", "x" * 250])
    assert not list(tmp_path.iterdir())
