"""runtime/infer.py end to end on the official fixture photos, and every bad input as one line."""
import json

import numpy as np
import pytest
from conftest import run_script
from PIL import Image
from sanrt.evaluation.compare import label_agreement


def _infer(*args):
    return run_script("runtime/infer.py", *args)


@pytest.fixture(scope="module")
def photos(tiny_dev, tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for npz in sorted(tiny_dev.glob("*.npz")):
        Image.fromarray(np.load(npz)["orig_image_hwc_u8"]).save(d / f"{npz.stem}.png")
    return d


def test_official_label_maps(tiny_export, tiny_dev, photos, tmp_path):
    code, _, err = _infer("--engine", tiny_export, "--image", photos, "--vocab-file", tiny_dev / "vocabulary.txt",
                          "--out", tmp_path)
    assert code == 0, err
    for npz in sorted(tiny_dev.glob("*.npz")):
        ref = np.load(npz)
        labels = np.asarray(Image.open(tmp_path / f"{npz.stem}_labels.png"))
        assert labels.shape == ref["label_map"].shape
        # the official label map, near-ties of its scores apart (sanrt.evaluation.compare)
        assert label_agreement(labels, ref["label_map"], ref["sem_seg"]).agreement >= 0.9999, npz.stem
        report = json.loads((tmp_path / f"{npz.stem}.json").read_text())
        assert {"decode", "preprocess", "image_graph", "head", "postprocess"} <= set(report["timings_s"])
        assert sum(c["fraction"] for c in report["classes"]) == pytest.approx(1.0, abs=1e-4)
        assert (tmp_path / f"{npz.stem}_overlay.png").is_file()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_odd_image_modes_are_converted(tiny_export, tmp_path, mode):
    rgb = (np.arange(40 * 60 * 3) % 253).reshape(40, 60, 3).astype(np.uint8)
    img = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257) if mode == "I;16" else Image.fromarray(rgb).convert(mode)
    img.save(tmp_path / "odd.png")
    from sanrt.runtime.infer import main  # in-process: the conversion is the point, not the process

    assert main(["--engine", str(tiny_export), "--image", str(tmp_path / "odd.png"), "--vocab", "cat,dog",
                 "--out", str(tmp_path / "out"), "--backend", "onnxruntime"]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "odd_labels.png")).shape == (40, 60)


def _assert_one_line_error(code, err, text, out_dir):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], err
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_bad_input_as_a_process_sees_it(tiny_export, photos, tmp_path):
    """The error path end to end in a real process (the table of every case runs in-process,
    tests/test_robustness.py): one line on stderr, exit code 2, nothing written."""
    (tmp_path / "cut.png").write_bytes((photos / "chelsea.png").read_bytes()[:200])
    code, _, err = _infer("--engine", tiny_export, "--image", photos / "astronaut.png", tmp_path / "cut.png",
                          "--vocab", "a,b", "--out", tmp_path / "out")
    _assert_one_line_error(code, err, "corrupt or truncated", tmp_path / "out")


def test_image_larger_than_export_range(small_export, tmp_path):
    Image.fromarray(np.zeros((100, 300, 3), np.uint8)).save(tmp_path / "wide.png")  # -> 640x1920
    code, _, err = _infer("--engine", small_export, "--image", tmp_path / "wide.png", "--vocab", "a", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "outside the export's range", tmp_path / "o")


def test_cuda_graph_needs_tensorrt_engines(tiny_export, photos, tmp_path):
    code, _, err = _infer("--engine", tiny_export, "--image", photos, "--vocab", "a", "--cuda-graph",
                          "--backend", "onnxruntime", "--out", tmp_path / "o")
    _assert_one_line_error(code, err, "CUDA graphs are for TensorRT engines", tmp_path / "o")


def test_scripts_use_the_suites_private_cache(tiny_export, photos, tmp_path, private_vocabulary_cache):
    """No test writes into the user's ~/.cache/sanrt: scripts inherit the suite's $SANRT_CACHE."""
    before = set(private_vocabulary_cache.rglob("*.npy"))
    code, _, err = _infer("--engine", tiny_export, "--image", photos, "--vocab", "zebra crossing,unicorn horn",
                          "--out", tmp_path, "--backend", "onnxruntime")
    assert code == 0, err
    assert len(set(private_vocabulary_cache.rglob("*.npy")) - before) == 3  # the vocabulary and each name


def test_a_run_that_fails_leaves_no_new_out_folder(tiny_export, photos, tmp_path):
    code, _, err = _infer("--engine", tiny_export, "--image", photos, "--vocab", ",".join(f"class {i}" for i in range(2000)),
                          "--out", tmp_path / "new")
    assert code == 2 and "outside the export's range" in err and not (tmp_path / "new").exists()


def test_two_runs_into_one_out_folder_do_not_interleave(tiny_export, photos, tmp_path):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sanrt.runtime import SegmentationWriter; w = SegmentationWriter(sys.argv[1]); "
        "w.plan(['other']); print('held', flush=True); time.sleep(120)"), str(tmp_path / "out")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = _infer("--engine", tiny_export, "--image", photos, "--vocab", "cat,dog", "--out", tmp_path / "out")
    finally:
        holder.kill()
        holder.wait(10)
    assert code == 2 and "another sanrt run is writing into" in err and not list((tmp_path / "out").iterdir())
