"""Segment images, videos and live streams with an sanrt export, for any vocabulary, without torch.

    python runtime/infer.py --engine out/onnx/vit_b_16 --image photos/ --dataset ade150 --out out/seg
    python runtime/infer.py --engine out/onnx/vit_b_16 --image a.jpg b.png --vocab "cat,sofa,floor" --out out/seg
    python runtime/infer.py --engine out/onnx/vit_b_16 --video clip.mp4 --vocab "person,car,road" --out out/seg
    python runtime/infer.py --engine out/onnx/vit_b_16 --video rtsp://cam.local/stream --max-frames 300 ...

Per image: <name>_labels.png (pixel value = class index in vocabulary order; 16-bit past 255
classes), <name>_overlay.png (colours + legend) and <name>.json (classes present with pixel
fractions, timings per stage). Per video (a file, an RTSP/HTTP(S) URL or a capture device, PyAV:
the `video` extra): <name>_overlay.mp4, <name>.jsonl (one line per segmented frame) and with
--save-labels <name>_labels/NNNNNN.png (NNNNNN: the frame's index in the source). Problems are
reported in one `error:` line with exit code 2; every input is checked (images decoded whole, a
video opened) before anything is written, each file is written whole or not at all, and no file
that sanrt did not write is ever replaced.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv):
    from sanrt.runtime import cli
    from sanrt.runtime.backends import PATHS

    precisions = "; ".join(f"{b} {'|'.join(dict.fromkeys(p.precision for p in PATHS if p.backend == b))}"
                           for b in ("onnxruntime", "openvino"))

    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", "--export", required=True, type=Path,
                    help="an sanrt export folder (export/to_onnx.py), or a TensorRT engine folder (export/build_engine.py)")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", nargs="+", help="image files, folders or globs")
    source.add_argument("--video", help="a video file, an RTSP/HTTP(S) URL or a capture device (/dev/video0)")
    cli.add_vocabulary_arguments(ap)
    ap.add_argument("--out", type=Path, default=Path("out/infer"), help="output folder (default out/infer)")
    ap.add_argument("--backend", default="auto",
                    help="auto (the fastest path benchmarks/fps.py verified on this machine), onnxruntime or openvino")
    ap.add_argument("--precision", default=None,
                    help=f"image-graph precision for a named backend (default fp32): {precisions}")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for the backend")
    ap.add_argument("--cuda-graph", action="store_true", help="TensorRT engines: replay the image engine as a CUDA graph")
    ap.add_argument("--no-overlay", action="store_true", help="skip the overlay PNGs (images)")
    video = ap.add_argument_group("video (--video)")
    video.add_argument("--stride", type=_positive, default=1, help="segment every Nth frame (default 1)")
    video.add_argument("--max-frames", type=_positive, default=None, help="stop after segmenting M frames")
    video.add_argument("--save-labels", action="store_true", help="also a label PNG per segmented frame in <name>_labels/")
    video.add_argument("--batch", type=_positive, default=4,
                       help="frames per image-graph call, within the export's batch range (default 4)")
    video.add_argument("--timeout", type=float, default=10.0,
                       help="seconds to wait for a stream or device to open, and for each read (default 10)")
    video.add_argument("--video-format", help="FFmpeg input format for a capture device (v4l2, avfoundation, dshow)")
    video.add_argument("--video-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an FFmpeg input option (rtsp_transport=tcp, video_size=1280x720, framerate=30); repeatable")
    ap.add_argument("--no-cache", action="store_true", help="recompute vocabulary embeddings")
    ap.add_argument("--verbose", action="store_true", help="show the backends' own log messages")
    args = ap.parse_args(argv)
    video_only = [name for name, given in (("--stride", args.stride != 1), ("--max-frames", args.max_frames),
                                           ("--save-labels", args.save_labels), ("--batch", args.batch != 4),
                                           ("--timeout", args.timeout != 10.0), ("--video-format", args.video_format),
                                           ("--video-option", args.video_option)) if given]
    if args.video is None and video_only:
        ap.error(f"{', '.join(video_only)}: for --video only")
    if not args.timeout > 0:
        ap.error("--timeout must be more than 0 seconds")
    return args


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return n


def _segmenter(args, names):
    """The Segmenter, with the vocabulary's size checked against the export (distractors counted)."""
    from sanrt.runtime import Segmenter

    seg = Segmenter(args.engine, backend=args.backend, precision=args.precision, device=args.device,
                    threads=args.threads, cuda_graph=args.cuda_graph)
    if args.expand == "none":
        seg.check_class_count(len(names))
    else:  # the distractors count too
        from sanrt.runtime.vocabulary import expand_vocabulary

        m = seg.manifest
        seg.check_class_count(sum(map(len, expand_vocabulary(names, args.expand, m.templates, m.ranges.tokens,
                                                              seg.text.tokenizer))))
    return seg


def _vocabulary(args, seg, names):
    vocab = seg.vocabulary(names, use_cache=not args.no_cache, expand=args.expand)
    if seg.choice:
        print(f"backend auto: {seg.choice}", file=sys.stderr)
    expanded = f" + {len(vocab.distractors)} distractors ({args.expand}) as 'other'" if vocab.distractors else ""
    print(f"{len(vocab.names)} classes{expanded}, text side {vocab.text_s:.2f} s{' (cached)' if vocab.cached else ''}; "
          f"backend {seg.backend} ({seg.precision}) on {seg.image_graph.device}", file=sys.stderr)
    return vocab


def run(args) -> int:
    if args.video is not None:
        return run_video(args)
    from tqdm import tqdm

    from sanrt.runtime import SegmentationWriter, cli, expand_image_args, load_image
    from sanrt.runtime.outputs import is_sanrt_output

    names = cli.vocabulary_names(args)
    paths = expand_image_args(args.image, skip=is_sanrt_output)  # re-running into the input folder works
    seg = _segmenter(args, names)
    # Every input is checked whole before anything is written: each image decoded once here (a file
    # cut short fails now, not after earlier outputs exist), then every output name.
    for p in tqdm(paths, desc="checking", unit="img", disable=len(paths) < 20, file=sys.stderr, leave=False):
        seg.input_size(*load_image(p).shape[:2])
    made_out = not args.out.exists()
    with SegmentationWriter(args.out, overlay=not args.no_overlay) as writer:
        writer.plan([p.stem for p in paths], inputs=paths)
        try:
            return _segment(args, seg, names, paths, writer)
        except BaseException:
            if made_out and args.out.is_dir() and not any(args.out.iterdir()):
                args.out.rmdir()  # a run that wrote nothing leaves no new folder behind
            raise


def _segment(args, seg, names, paths, writer) -> int:
    from tqdm import tqdm

    from sanrt.runtime import load_image

    vocab = _vocabulary(args, seg, names)
    for p in tqdm(paths, desc="segmenting", unit="img", disable=len(paths) < 2, file=sys.stderr):
        t0 = time.perf_counter()
        img = load_image(p)
        t_decode = time.perf_counter() - t0
        [r] = seg.segment([img], vocab)
        timings = {"decode": t_decode, **{k.removesuffix("_s"): v for k, v in r.timings.items() if k.endswith("_s")}}
        writer.write(p.stem, img, r, {"image": str(p), "backend": seg.backend, "precision": seg.precision,
                                      "device": seg.image_graph.device, "expansion": vocab.expansion,
                                      "timings_s": timings})
    print(f"wrote {len(paths)} segmentation(s) to {args.out}", file=sys.stderr)
    return 0


def run_video(args) -> int:
    """--video: the source opened and every output name checked before the model loads; the
    outputs are finished (the mp4 plays) on Ctrl-C / SIGTERM and on a source that ends early."""
    import os

    from sanrt.runtime import cli
    from sanrt.runtime.errors import VideoError
    from sanrt.runtime.video import open_video, plan_video, segment_video, shown, source_stem

    names = cli.vocabulary_names(args)
    options = {}
    for opt in args.video_option:
        key, eq, value = opt.partition("=")
        if not (key and eq):
            raise VideoError(f"--video-option {opt!r} is not KEY=VALUE")
        options[key] = value
    with open_video(args.video, timeout=args.timeout, format=args.video_format, options=options) as source:
        if args.verbose:
            import av.logging

            av.logging.set_level(av.logging.WARNING)  # FFmpeg's own messages: off unless asked for
        stem = source_stem(args.video)
        made_out = not args.out.exists()
        lock = plan_video(args.out, stem, args.save_labels, args.video)
        try:
            seg = _segmenter(args, names)
            if all(source.size_hw):  # a stream that states its size: checked before any work
                seg.input_size(*source.size_hw)
            lo, hi = seg.manifest.ranges.batch
            vocab = _vocabulary(args, seg, names)
            done = segment_video(seg, vocab, source, args.out, stem, stride=args.stride, max_frames=args.max_frames,
                                 batch=max(lo, min(args.batch, hi)), save_labels=args.save_labels,
                                 report={"backend": seg.backend, "precision": seg.precision,
                                         "device": seg.image_graph.device, "expansion": vocab.expansion})
        except BaseException:
            if made_out and args.out.is_dir() and not any(args.out.iterdir()):
                args.out.rmdir()  # a run that wrote nothing leaves no new folder behind
            raise
        finally:
            os.close(lock)
    if done.ended_early:
        print(f"warning: {shown(args.video)} ended early ({done.ended_early}): the {done.frames} frame(s) before were "
              "segmented and written", file=sys.stderr)
    print(f"wrote {done.frames} segmented frame(s) of {shown(args.video)} to {args.out}", file=sys.stderr)
    if done.interrupted:
        raise KeyboardInterrupt  # exit code 130, with the outputs finished
    return 0


def main(argv=None) -> int:
    try:
        from sanrt.runtime import cli  # loads numpy, PIL and the runtime: Ctrl-C may come meanwhile
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left", file=sys.stderr)
        return 130
    return cli.run(_main, argv)


def _main(argv) -> int:
    from sanrt.runtime import logs

    args = parse_args(argv)
    logs.setup(args.verbose)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
