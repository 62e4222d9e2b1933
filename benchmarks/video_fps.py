"""Frames per second of `infer.py --video` against the image graph's own frames per second at the
clip's frame size: same machine, same run, same Segmenter.

    python benchmarks/video_fps.py                              # vit_b_16 (out/onnx/vit_b_16), 60 frames of 640x360
    python benchmarks/video_fps.py --export out/onnx/vit_b_16 --frames 120 --batch 1

The clip: H.264 in mp4 at 30 frames/s, scikit-image's sample photos panned across (made with PyAV),
`--frames` / `--chunks` frames long. Timed, after a warm-up of both: (1) the image graph alone,
Segmenter.encode_images on `--batch` frames of the clip (preprocessing + image graph), the median of
`--runs` calls; (2) the pipeline infer.py --video runs (sanrt.runtime.video.segment_video: decoding,
the model, overlay + H.264 encoding in three threads) over the clip `--chunks` times, the median of
their frames / wall seconds (model loading and the text side excluded). The two alternate (A B A B
... A), so both see the same machine whatever else runs on it. Where the rest goes: each stage's
median per frame, from the pipeline's own jsonl (decoding and overlay + encoding run beside the
model, on the same cores).
Without --export, out/onnx/vit_b_16 is used, or made there with random weights (PyTorch: the
`export` extra) when it is missing. Writes video_fps.json and video_fps.md under
benchmarks/results/<machine>/ (or --results).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sanrt.benchmarks.lib.environment import machine_info
from sanrt.benchmarks.lib.photos import sample_photos
from sanrt.benchmarks.lib.report import results_dir, write_report
from sanrt.benchmarks.lib.timing import measure, stats
from sanrt.runtime import Segmenter, cli, dataset_vocabulary, logs
from sanrt.runtime.errors import SanrtError
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.video import open_video, plan_video, segment_video

ROOT = Path(__file__).resolve().parents[1]
RATE = 30
STAGES = ("decode", "preprocess", "image_graph", "head", "postprocess", "overlay", "encode")
THREAD = {"decode": "decoding", "overlay": "encoding", "encode": "encoding"}  # the rest: the model's thread


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def clip_frames(w: int, h: int, n: int):
    """n frames of w x h: each sample photo in turn, scaled to cover 1.25x the frame, panned across."""
    photos = list(sample_photos().values())
    per = max(1, -(-n // len(photos)))
    for i in range(n):
        photo = photos[(i // per) % len(photos)]
        s = 1.25 * max(w / photo.shape[1], h / photo.shape[0])
        big = np.asarray(Image.fromarray(photo).resize((round(photo.shape[1] * s), round(photo.shape[0] * s)),
                                                       Image.BILINEAR))
        t = (i % per) / max(1, per - 1)
        y, x = round(t * (big.shape[0] - h)), round(t * (big.shape[1] - w))
        yield np.ascontiguousarray(big[y : y + h, x : x + w])


def write_clip(path: Path, w: int, h: int, n: int) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=RATE)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for f in clip_frames(w, h, n):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def default_export() -> Path:
    out = ROOT / "out" / "onnx" / "vit_b_16"
    try:
        Manifest.load(out)
    except SanrtError:
        from sanrt.export.models import export_model  # PyTorch: only to make the missing export

        log(f"exporting vit_b_16 with random weights to {out} ...")
        export_model(out, "vit_b_16", random_init=True, progress=log)
    return out


def run_pipeline(seg, vocab, clip: Path, out: Path, batch: int, max_frames=None):
    """infer.py --video's steps after the model has loaded: open, plan the outputs, segment."""
    t = time.perf_counter()
    with open_video(clip) as source:
        lock = plan_video(out, "clip", False, clip)
        try:
            done = segment_video(seg, vocab, source, out, "clip", max_frames=max_frames, batch=batch, progress=False)
        finally:
            os.close(lock)
    return done, time.perf_counter() - t


def to_markdown(r: dict) -> str:
    m = r["machine"]
    ms = r["per_frame_ms"]
    lines = [f"# Video: infer.py --video against the image graph alone ({r['date']})", "",
             f"- machine: {m['cpu']}, {m['cores']} cores; load average before {r['load_before']}, after {r['load_after']}",
             f"- export: {r['export']} ({r['weights']}); backend {r['backend']} ({r['precision']}) on {r['device']}; "
             f"{r['classes']} classes",
             f"- clip: {r['frames']} frames of {r['size']} (model input {r['input_hw'][1]}x{r['input_hw'][0]}), H.264 mp4 "
             f"at {RATE} frames/s; batch {r['batch']}; overlay encoder {r['encoder']}", "",
             "| | frames/s | ms per frame |", "|---|---|---|",
             f"| image graph alone (encode_images: preprocessing + graph; median of {r['graph']['runs']} calls) | "
             f"{r['graph_fps']:.2f} | {1e3 / r['graph_fps']:.0f} |",
             f"| infer.py --video (decode, model, overlay, encode; {r['frames']} frames in {r['chunks']} runs, "
             f"their median) | {r['pipeline_fps']:.2f} | {1e3 / r['pipeline_fps']:.0f} |", "",
             f"The pipeline runs at **{100 * r['ratio']:.0f} %** of the image graph's own frames/s.", "",
             "Where each frame's time goes (medians over the pipeline's frames; batch stages shared out per frame):", "",
             "| stage | thread | ms per frame |", "|---|---|---|"]
    for s in STAGES:
        lines.append(f"| {s} | {THREAD.get(s, 'model')} | {ms[s]:.1f} |")
    lines += ["", f"The image graph takes {ms['image_graph']:.0f} ms per frame inside the pipeline and "
              f"{r['graph_image_graph_ms']:.0f} ms alone (the decoding and encoding threads share the {m['cores']} cores "
              "with it, and so does anything else running then: see the load averages). "
              f"The model's thread spends {r['model_thread_ms']:.0f} ms of the {1e3 / r['pipeline_fps']:.0f} ms per "
              "frame; the rest is waiting for decoded frames, for room in the encoder's queue, and the hand-overs."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, default=None, help="an sanrt export folder (default out/onnx/vit_b_16, made if missing)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="640x360", help="the clip's WxH (default 640x360)")
    ap.add_argument("--batch", type=int, default=4, help="frames per image-graph call, as infer.py --video (default 4)")
    ap.add_argument("--dataset", default="ade150", help="the vocabulary (default ade150)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runs", type=int, default=10, help="timed encode_images calls (default 10)")
    ap.add_argument("--chunks", type=int, default=5,
                    help="the pipeline's frames in this many runs, interleaved with the encode_images calls (default 5)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--results", type=Path, help="report folder (default benchmarks/results/<machine>)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    logs.setup(args.verbose)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size {args.size!r} is not WxH")
    if min(args.frames, args.runs, args.batch, args.chunks) < 1:
        ap.error("--frames, --runs, --batch and --chunks take at least 1")
    export = args.export or default_export()
    results = results_dir(args.results)
    load_before = [round(v, 2) for v in os.getloadavg()]
    seg = Segmenter(export, backend=args.backend, precision=args.precision, threads=args.threads)
    batch = min(args.batch, args.frames, seg.manifest.ranges.batch[1])
    vocab = seg.vocabulary(dataset_vocabulary(args.dataset))
    log(f"{seg.backend} ({seg.precision}) on {seg.image_graph.device}; {len(vocab.names)} classes; batch {batch}")
    with tempfile.TemporaryDirectory(prefix="sanrt-video-fps-") as tmp:
        tmp = Path(tmp)
        chunks = max(1, min(args.chunks, args.frames // batch))
        clip = write_clip(tmp / "clip.mp4", w, h, args.frames // chunks)  # each chunk segments it whole
        with open_video(clip) as source:
            first = [f.image for f in source.frames(max_frames=batch)]
        times, graph_s = [], []  # per call: encode_images, and the graph's own part of it

        def encode():
            t = time.perf_counter()
            graph_s.append(seg.encode_images(first).timings["image_graph_s"])
            times.append(time.perf_counter() - t)

        log(f"warm-up: {args.warmup} image-graph calls, the pipeline on one batch")
        for _ in range(args.warmup):
            encode()
        run_pipeline(seg, vocab, clip, tmp / "warm", batch, max_frames=batch)
        times.clear()
        graph_s.clear()
        # interleaved (A B A B ... A): both see the same machine, whatever else runs on it meanwhile
        slots = [args.runs // (chunks + 1) + (i < args.runs % (chunks + 1)) for i in range(chunks + 1)]
        wall, frames, lines, chunk_fps = 0.0, 0, [], []
        for i in range(chunks + 1):
            if slots[i]:
                measure(encode, runs=slots[i], warmup=0)
            if i == chunks:
                break
            log(f"pipeline {i + 1}/{chunks}: {args.frames // chunks} frames")
            done, t = run_pipeline(seg, vocab, clip, tmp / f"run{i}", batch)
            wall, frames = wall + t, frames + done.frames
            chunk_fps.append(done.frames / t)
            lines += [json.loads(x) for x in (tmp / f"run{i}" / "clip.jsonl").read_text().splitlines()]
        graph = stats(times, batch)
        graph_ig = statistics.median(graph_s) / batch
        with open_video(tmp / "run0" / "clip_overlay.mp4") as overlay:
            encoder = overlay.stream.codec_context.name
    per_frame = {s: 1e3 * statistics.median(x["timings_s"][s] for x in lines) for s in STAGES}
    pipeline_fps = statistics.median(chunk_fps)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info(), "export": str(export),
        "weights": seg.manifest.weights, "backend": seg.backend, "precision": seg.precision,
        "device": seg.image_graph.device, "classes": len(vocab.names), "frames": frames, "chunks": chunks,
        "size": f"{w}x{h}",
        "input_hw": list(seg.input_size(h, w)), "batch": batch, "encoder": encoder, "wall_s": wall,
        "chunk_fps": chunk_fps,
        "pipeline_fps": pipeline_fps, "graph_fps": graph["images_per_s"], "ratio": pipeline_fps / graph["images_per_s"],
        "graph": graph, "graph_image_graph_ms": 1e3 * graph_ig, "per_frame_ms": per_frame,
        "model_thread_ms": sum(per_frame[s] for s in STAGES if s not in THREAD),
        "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    written = write_report(results, "video_fps", report, to_markdown(report))
    log(f"pipeline {pipeline_fps:.2f} frames/s, image graph alone {graph['images_per_s']:.2f} frames/s "
        f"({100 * report['ratio']:.0f} %); wrote {', '.join(str(p) for p in written)}")
    seg.close()
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
