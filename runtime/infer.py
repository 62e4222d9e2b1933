"""Segment images with an sanrt export, for any vocabulary, without torch.

    python runtime/infer.py --engine out/onnx/vit_b_16 --image photos/ --dataset ade150 --out out/seg
    python runtime/infer.py --engine out/onnx/vit_b_16 --image a.jpg b.png --vocab "cat,sofa,floor" --out out/seg

Per image: <name>_labels.png (pixel value = class index in vocabulary order; 16-bit past 255
classes), <name>_overlay.png (colours + legend) and <name>.json (classes present with pixel
fractions, timings per stage). Problems are reported in one `error:` line with exit code 2; every
input is checked (images decoded whole) before anything is written, each file is written whole or
not at all, and no file that sanrt did not write is ever replaced.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv):
    from sanrt.runtime import cli
    from sanrt.runtime.backends import PATHS
    from sanrt.runtime.datasets import DATASETS

    precisions = "; ".join(f"{b} {'|'.join(dict.fromkeys(p.precision for p in PATHS if p.backend == b))}"
                           for b in ("onnxruntime", "openvino"))

    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", "--export", required=True, type=Path,
                    help="an sanrt export folder (export/to_onnx.py), or a TensorRT engine folder (export/build_engine.py)")
    ap.add_argument("--image", required=True, nargs="+", help="image files, folders or globs")
    vocab = ap.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--vocab", help='comma-separated class names, e.g. "cat,sofa,floor"')
    vocab.add_argument("--vocab-file", type=Path, help="one class name a line")
    vocab.add_argument("--dataset", help=f"built-in vocabulary: {', '.join(DATASETS)}")
    ap.add_argument("--expand", default="none", choices=["none", "coco-all", "coco-stuff"],
                    help="vocabulary expansion as SAN's demo: distractor names (COCO-Stuff's 171 classes or its 91 stuff "
                         "classes) whose pixels are labelled K, 'other' (default none)")
    ap.add_argument("--out", type=Path, default=Path("out/infer"), help="output folder (default out/infer)")
    ap.add_argument("--backend", default="auto",
                    help="auto (the fastest path benchmarks/fps.py verified on this machine), onnxruntime or openvino")
    ap.add_argument("--precision", default=None,
                    help=f"image-graph precision for a named backend (default fp32): {precisions}")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for the backend")
    ap.add_argument("--cuda-graph", action="store_true", help="TensorRT engines: replay the image engine as a CUDA graph")
    ap.add_argument("--no-overlay", action="store_true", help="skip the overlay PNGs")
    ap.add_argument("--no-cache", action="store_true", help="recompute vocabulary embeddings")
    ap.add_argument("--verbose", action="store_true", help="show the backends' own log messages")
    return ap.parse_args(argv)


def run(args) -> int:
    from tqdm import tqdm

    from sanrt.runtime import (Segmenter, SegmentationWriter, check_vocabulary, dataset_vocabulary, expand_image_args,
                               load_image, read_vocabulary_file)

    if args.vocab is not None:
        names = check_vocabulary(args.vocab.split(","))
    elif args.vocab_file is not None:
        names = read_vocabulary_file(args.vocab_file)
    else:
        names = dataset_vocabulary(args.dataset)
    from sanrt.runtime.outputs import written_by_sanrt

    paths = expand_image_args(args.image, skip=written_by_sanrt)  # re-running into the input folder works
    seg = Segmenter(args.engine, backend=args.backend, precision=args.precision, device=args.device,
                    threads=args.threads, cuda_graph=args.cuda_graph)
    if args.expand == "none":
        seg.check_class_count(len(names))
    else:  # the distractors count too
        from sanrt.runtime.vocabulary import expand_vocabulary

        m = seg.manifest
        seg.check_class_count(sum(map(len, expand_vocabulary(names, args.expand, m.templates, m.ranges.tokens,
                                                              seg.text.tokenizer))))
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

    vocab = seg.vocabulary(names, use_cache=not args.no_cache, expand=args.expand)
    if seg.choice:
        print(f"backend auto: {seg.choice}", file=sys.stderr)
    expanded = f" + {len(vocab.distractors)} distractors ({args.expand}) as 'other'" if vocab.distractors else ""
    print(f"{len(vocab.names)} classes{expanded}, text side {vocab.text_s:.2f} s{' (cached)' if vocab.cached else ''}; "
          f"backend {seg.backend} ({seg.precision}) on {seg.image_graph.device}", file=sys.stderr)
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
