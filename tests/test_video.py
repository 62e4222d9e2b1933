"""infer.py --video and Segmenter.segment_stream on real videos (PyAV writes them from scikit-image's
photos; nothing is mocked): label maps equal Segmenter.segment's on the same decoded frames, the
overlay mp4 holds one frame per segmented frame, sources cut short finish what came before, and
every bad input is one line. Frames are 48x48 (the tiny export segments each at 640x640, under a
second on 2 cores) and the clips short."""
import itertools
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import ROOT, run_script
from PIL import Image

av = pytest.importorskip("av")

RATE = 12
VOCAB = "person,sky,tree,wall"


def _pan(photo: np.ndarray, n: int, side: int = 48) -> list[np.ndarray]:
    """n frames of a camera panning across the photo (a 3x downscaled crop moving each frame)."""
    return [np.ascontiguousarray(photo[60 + 5 * i : 60 + 5 * i + 3 * side : 3, 40 + 9 * i : 40 + 9 * i + 3 * side : 3])
            for i in range(n)]


def _write(path, frames, fmt):
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=RATE)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _mp4_frames(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return len(list(c.decode(s))), s.average_rate, (s.codec_context.width, s.codec_context.height)


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cut(src, dst, fraction=0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("clips")
    return {"mkv": _write(d / "pan.mkv", _pan(data.astronaut(), 12), "matroska"),
            "mp4": _write(d / "cup.mp4", _pan(data.coffee(), 4), "mp4"),
            "ts": _write(d / "walk.ts", _pan(data.astronaut(), 8), "mpegts")}


def _video(export, src, out, *args):
    return run_script("runtime/infer.py", "--engine", export, "--video", src, "--vocab", VOCAB, "--out", out,
                      "--backend", "onnxruntime", *args)


def _one_line(code, err, text):
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], err


def test_labels_equal_segment_on_the_decoded_frames(tiny_export, clips, tmp_path):
    """--stride 3 --max-frames 4 --save-labels: frames 0, 3, 6, 9, each label map bit for bit that
    of Segmenter.segment on the frame PyAV decodes; an overlay mp4 of 4 frames at 12/3 frames/s;
    a jsonl line per frame. A second run into the same folder replaces sanrt's own outputs."""
    from sanrt.runtime import Segmenter

    out = tmp_path / "out"
    code, _, err = _video(tiny_export, clips["mkv"], out, "--stride", 3, "--max-frames", 4, "--save-labels")
    assert code == 0, err
    labels = sorted((out / "pan_labels").iterdir())
    assert [p.name for p in labels] == ["000000.png", "000003.png", "000006.png", "000009.png"]
    frames = _decode(clips["mkv"])
    with Segmenter(tiny_export, backend="onnxruntime") as seg:
        ref = seg.segment([frames[i] for i in (0, 3, 6, 9)], seg.vocabulary(VOCAB.split(",")))
    for p, r in zip(labels, ref):
        assert np.array_equal(np.asarray(Image.open(p)), r.labels), p.name
    assert _mp4_frames(out / "pan_overlay.mp4") == (4, RATE / 3, (48 + 220, 48))
    lines = _jsonl(out / "pan.jsonl")
    assert lines[0]["written_by"] == "sanrt" and lines[0]["stride"] == 3
    assert [x["index"] for x in lines] == [0, 3, 6, 9]
    assert [x["timestamp_s"] for x in lines] == pytest.approx([i / RATE for i in (0, 3, 6, 9)], abs=1e-3)
    for x, r in zip(lines, ref):
        assert {c["name"]: c["fraction"] for c in x["classes"]} == {c.name: c.fraction for c in r.classes_present()}
        assert {"decode", "preprocess", "image_graph", "head", "postprocess", "overlay", "encode"} <= set(x["timings_s"])

    code, _, err = _video(tiny_export, clips["mkv"], out, "--max-frames", 1, "--save-labels")
    assert code == 0, err
    assert [p.name for p in (out / "pan_labels").iterdir()] == ["000000.png"]  # the folder replaced whole
    assert len(_jsonl(out / "pan.jsonl")) == 1 and _mp4_frames(out / "pan_overlay.mp4")[0] == 1


def test_every_frame_of_an_mp4(tiny_export, clips, tmp_path):
    code, _, err = _video(tiny_export, clips["mp4"], tmp_path)
    assert code == 0, err
    assert "warning" not in err
    n, rate, _ = _mp4_frames(tmp_path / "cup_overlay.mp4")
    assert (n, rate) == (4, RATE)
    lines = _jsonl(tmp_path / "cup.jsonl")
    assert [x["index"] for x in lines] == list(range(4))
    times = [x["timestamp_s"] for x in lines]
    assert times == sorted(times) and times == pytest.approx([i / RATE for i in range(4)], abs=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cup.jsonl", "cup_overlay.mp4"]  # no temporary file left


@pytest.mark.parametrize("kind", ["mkv", "ts"])
def test_a_source_cut_short_finishes_the_frames_before(tiny_export, clips, tmp_path, kind):
    """Matroska and MPEG-TS read up to the cut: every frame before it is segmented (the very frames
    of the whole file), the mp4 plays, exit 0 and one warning line."""
    from sanrt.runtime.video import open_video

    cut = _cut(clips[kind], tmp_path / f"cut.{kind}")
    whole = _decode(clips[kind])
    with open_video(cut) as source:
        got = list(source.frames())
        assert source.ended_early
    assert 1 <= len(got) < len(whole)
    assert all(np.array_equal(f.image, whole[f.index]) for f in got)
    code, _, err = _video(tiny_export, cut, tmp_path / "out")
    assert code == 0, err
    assert len([line for line in err.splitlines() if line.startswith("warning: ")]) == 1 and "ended early" in err, err
    lines = _jsonl(tmp_path / "out" / "cut.jsonl")
    assert [x["index"] for x in lines] == [f.index for f in got] == list(range(len(got)))
    assert _mp4_frames(tmp_path / "out" / "cut_overlay.mp4")[0] == len(got)


def test_an_mp4_cut_before_its_index_is_an_error(tiny_export, clips, tmp_path):
    cut = _cut(clips["mp4"], tmp_path / "cut.mp4")
    code, _, err = _video(tiny_export, cut, tmp_path / "out")
    _one_line(code, err, "cut short before its index")
    assert not (tmp_path / "out").exists()


def test_not_a_video(tiny_export, clips, tmp_path):
    """A text file, a PNG, sound only, a codec FFmpeg does not know (an AVI whose codec tag was
    changed), a missing file: one line each, before the model loads."""
    (tmp_path / "notes.txt").write_text("a shopping list\n" * 50)
    Image.new("RGB", (64, 48)).save(tmp_path / "photo.png")
    with av.open(str(tmp_path / "tone.wav"), "w", format="wav") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for p in [*s.encode(f), *s.encode(None)]:
            c.mux(p)
    with av.open(str(tmp_path / "clip.avi"), "w", format="avi") as c:
        s = c.add_stream("mpeg4", rate=RATE)
        s.width, s.height, s.pix_fmt = 48, 48, "yuv420p"
        for p in [*s.encode(av.VideoFrame.from_ndarray(_decode(clips["mp4"])[0], format="rgb24")), *s.encode(None)]:
            c.mux(p)
    avi = (tmp_path / "clip.avi").read_bytes()
    assert b"FMP4" in avi
    (tmp_path / "odd.avi").write_bytes(avi.replace(b"FMP4", b"ZZZZ"))
    for name, text in [("notes.txt", "is not a video file"), ("photo.png", "is an image, not a video"),
                       ("tone.wav", "holds no video stream"), ("odd.avi", "in a codec this PyAV build cannot decode"),
                       ("missing.mp4", "video not found")]:
        code, _, err = _video(tiny_export, tmp_path / name, tmp_path / "out")
        _one_line(code, err, text)
    assert not (tmp_path / "out").exists()


def test_an_unreachable_url_is_one_line_in_bounded_time(tiny_export, tmp_path):
    """A closed port fails at once; a server that accepts and never answers fails after --timeout."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    t = time.perf_counter()
    code, _, err = _video(tiny_export, f"rtsp://127.0.0.1:{port}/x", tmp_path / "out")
    _one_line(code, err, "connection refused")
    code, _, err = _video(tiny_export, f"http://user:secret@127.0.0.1:{port}/cam", tmp_path / "out")
    _one_line(code, err, "connection refused")
    assert "secret" not in err
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        code, _, err = _video(tiny_export, f"http://127.0.0.1:{silent.getsockname()[1]}/cam", tmp_path / "out",
                              "--timeout", 1)
    _one_line(code, err, "no answer within 1 s")
    assert time.perf_counter() - t < 60
    assert not (tmp_path / "out").exists()


def test_a_foreign_file_is_refused_before_anything_is_written(tiny_export, clips, tmp_path):
    (tmp_path / "cup.jsonl").write_text("my own notes\n")
    code, _, err = _video(tiny_export, clips["mp4"], tmp_path, "--save-labels")
    _one_line(code, err, "was not written by sanrt")
    assert [p.name for p in tmp_path.iterdir()] == ["cup.jsonl"]
    assert (tmp_path / "cup.jsonl").read_text() == "my own notes\n"


def test_sigterm_finishes_the_overlay(tiny_export, clips, tmp_path):
    """SIGTERM mid-video (docker stop): exit 130, and the mp4 and jsonl hold the frames segmented."""
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, str(ROOT / "runtime/infer.py"), "--engine", str(tiny_export), "--video",
                          str(clips["mkv"]), "--vocab", VOCAB, "--out", str(out), "--backend", "onnxruntime",
                          "--batch", "1"], stderr=subprocess.PIPE, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: p.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None and not re.search(r"\b[1-9]\d*frame \[", "".join(seen)):
        time.sleep(0.05)  # until the progress bar counts a frame segmented
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    reader.join(timeout=10)
    err = "".join(seen)
    assert p.returncode == 130, err
    n = len(_jsonl(out / "pan.jsonl"))
    assert 1 <= n < 12 and _mp4_frames(out / "pan_overlay.mp4")[0] == n
    assert sorted(q.name for q in out.iterdir()) == ["pan.jsonl", "pan_overlay.mp4"]


def test_segment_stream_is_lazy(tiny_export):
    """An endless iterator of frames yields its first results: one batch is pulled at a time."""
    from sanrt.runtime import Segmenter

    pulled = []

    def camera():
        for i in itertools.count():
            pulled.append(i)
            yield np.full((48, 48, 3), (i * 40) % 256, np.uint8)

    with Segmenter(tiny_export, backend="onnxruntime") as seg:
        stream = seg.segment_stream(camera(), seg.vocabulary(["sky", "wall"]), batch=2)
        first = next(stream)
        assert first.labels.shape == (48, 48) and len(pulled) == 2
        next(stream)
        assert len(pulled) == 2  # the batch's second result: nothing more was read
        stream.close()


def test_video_benchmark_runs(tiny_export, tmp_path):
    """benchmarks/video_fps.py end to end on a few small frames (its figures are not checked here)."""
    code, _, err = run_script("benchmarks/video_fps.py", "--export", tiny_export, "--frames", 3, "--size", "48x48",
                              "--runs", 1, "--warmup", 1, "--results", tmp_path)
    assert code == 0, err
    report = json.loads((tmp_path / "video_fps.json").read_text())
    assert report["frames"] == 3 and report["pipeline_fps"] > 0 and report["graph_fps"] > 0
    assert set(report["per_frame_ms"]) >= {"decode", "preprocess", "image_graph", "head", "postprocess", "overlay",
                                           "encode"}
    assert (tmp_path / "video_fps.md").is_file()
