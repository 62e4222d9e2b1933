"""The export tools under faults: nothing of a user's replaced, a failed, interrupted or killed run
leaves the previous export loadable and no partial folder behind."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_script
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.segmenter import Segmenter


def _start(script, *args):
    return subprocess.Popen([sys.executable, str(ROOT / script), *map(str, args)], stderr=subprocess.PIPE, text=True)


def _wait_for(proc, text, timeout=240):
    """Read the tool's stderr until `text` appears; returns what was read."""
    seen, t0 = [], time.time()
    while time.time() - t0 < timeout:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never came: {''.join(seen)[-2000:]}")


def _no_partials(folder):
    return not [p.name for p in folder.parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def _loads(export, tmp_path):
    m = Manifest.load(export)  # every listed file whole (sha256 checked)
    seg = Segmenter(export, backend="onnxruntime", cache_dir=tmp_path / "cache")
    return m, seg.vocabulary(["cat", "dog"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_re_export_leaves_the_old_export(tiny_export, tiny_dev, tmp_path, sig):
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    proc = _start("export/to_onnx.py", "--config", tiny_dev / "tiny_config.json", "--random-init", "--out", export)
    _wait_for(proc, "exporting the text graph")
    proc.send_signal(sig)
    err = proc.stderr.read()
    assert proc.wait(60) == 130, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("=", "NOTICE", "The graphs",
                                                                                          "Scaled", "An export"))]
    assert lines == ["interrupted: nothing half-written was left"], err
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before and _no_partials(export)


def test_a_re_export_replaces_the_old_one_whole(tiny_export, tiny_dev, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    (export / "image_int8dyn.onnx").write_bytes(b"an old variant")  # listed nowhere after the re-export
    code, _, err = run_script("export/to_onnx.py", "--config", tiny_dev / "tiny_config.json", "--random-init",
                              "--out", export)
    assert code == 0, err
    m, _ = _loads(export, tmp_path)
    assert m.weights.startswith("random") and not (export / "image_int8dyn.onnx").exists() and _no_partials(export)
    assert os.stat(export).st_mode & 0o777 == 0o777 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_killed_quantisation_leaves_a_loadable_export(tiny_export, tmp_path):
    """SIGKILL (no cleanup at all) at some point of a re-quantisation: the manifest never lists a file
    that is not whole, so the export still loads, FP32 included."""
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    code, _, err = run_script("export/quantize.py", "--export", export, "--method", "dynamic", "--calibration-images", "1")
    assert code == 0, err
    for delay in (0.0, 1.0, 3.0):
        proc = _start("export/quantize.py", "--export", export, "--method", "dynamic", "--calibration-images", "1")
        _wait_for(proc, "quantising")
        time.sleep(delay)
        proc.kill()
        proc.wait(30)
        m, vocab = _loads(export, tmp_path)
        assert len(vocab) == 2
        variants = m.graphs["image"].variants
        if "int8dyn" in variants:  # listed: whole and matching its hash (checked by load)
            Segmenter(export, backend="onnxruntime", precision="int8dyn", cache_dir=tmp_path / "cache")
    assert json.loads((export / "manifest.json").read_text())["format"] == "sanrt-export/1"


@pytest.mark.parametrize("script,args,expect", [
    ("export/to_onnx.py", ["--random-init", "--out", "{user}"], "not sanrt's to replace"),
    ("export/to_onnx.py", ["--random-init", "--out", "/proc/sanrt_out"], "cannot write to /proc/sanrt_out"),
    ("export/to_triton.py", ["--export", "{export}", "--out", "/proc/sanrt_repo"], "cannot write to /proc/sanrt_repo"),
    ("export/quantize.py", ["--export", "{export}", "--calibration-images", "0"], "at least one calibration image"),
])
def test_export_tools_refuse_in_one_line_and_write_nothing(tiny_export, tiny_dev, tmp_path, script, args, expect):
    user = tmp_path / "user"
    user.mkdir()
    (user / "manifest.json").write_text('{"the user": "own"}')
    args = [a.format(user=user, export=tiny_export) for a in args]
    if script == "export/to_onnx.py":
        args = ["--config", str(tiny_dev / "tiny_config.json"), *args]
    before = sorted(tiny_export.iterdir())
    code, out, err = run_script(script, *args)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and expect in errors[0] and "Traceback" not in err, err
    assert (user / "manifest.json").read_text() == '{"the user": "own"}' and sorted(tiny_export.iterdir()) == before
