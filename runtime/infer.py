"""Segment images with an sanrt export, for any vocabulary, without torch.

    python runtime/infer.py --engine out/onnx/vit_b_16 --image photos/ --dataset ade150 --out out/seg
    python runtime/infer.py --engine out/onnx/vit_b_16 --image a.jpg b.png --vocab "cat,sofa,floor" --out out/seg

Per image: <name>_labels.png (pixel value = class index in vocabulary order; 16-bit past 255
classes), <name>_overlay.png (colours + legend) and <name>.json (classes present with pixel
fractions, timings per stage). Problems are reported in one line with a non-zero exit; nothing is
written until every input has been checked, and each file is written whole or not at all.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", required=True, type=Path, help="an sanrt export folder (export/to_onnx.py)")
    ap.add_argument("--image", required=True, nargs="+", help="image files, folders or globs")
    vocab = ap.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--vocab", help='comma-separated class names, e.g. "cat,sofa,floor"')
    vocab.add_argument("--vocab-file", type=Path, help="one class name a line")
    vocab.add_argument("--dataset", help="built-in vocabulary: ade150, ade847, pc59, pc459, coco_stuff171, voc20")
    ap.add_argument("--out", type=Path, default=Path("out/infer"), help="output folder (default out/infer)")
    ap.add_argument("--backend", default="auto",
                    help="auto (the fastest path verified on this machine by benchmarks/fps.py), onnxruntime or openvino")
    ap.add_argument("--precision", default="fp32", help="image-graph precision for a named backend: fp32, bf16, int8, ...")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for the backend")
    ap.add_argument("--cuda-graph", action="store_true", help="TensorRT engines: replay the image engine as a CUDA graph")
    ap.add_argument("--no-overlay", action="store_true", help="skip the overlay PNGs")
    ap.add_argument("--no-cache", action="store_true", help="recompute vocabulary embeddings")
    return ap.parse_args(argv)


def run(args) -> int:
    from sanrt.runtime.images import expand_image_args, image_size, load_image
    from sanrt.runtime.segmenter import Segmenter
    from sanrt.runtime.visualize import label_png, overlay
    from sanrt.runtime.vocabulary import check_vocabulary, dataset_vocabulary, read_vocabulary_file
    from tqdm import tqdm

    if args.vocab is not None:
        names = check_vocabulary(args.vocab.split(","))
    elif args.vocab_file is not None:
        names = read_vocabulary_file(args.vocab_file)
    else:
        names = dataset_vocabulary(args.dataset)
    paths = expand_image_args(args.image)
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"several images share the name {dup[0]!r}; their outputs would overwrite each other")

    seg = Segmenter(args.engine, backend=args.backend, precision=args.precision, device=args.device, threads=args.threads,
                    cuda_graph=args.cuda_graph)
    for p in paths:  # check every image before writing anything
        seg.check_size(*image_size(p))
    seg.set_vocabulary(names, use_cache=not args.no_cache)
    if seg.choice:
        print(f"backend auto: {seg.choice}", file=sys.stderr)
    print(f"{len(names)} classes, text side {seg.vocab_timing['text_s']:.2f} s"
          f"{' (cached)' if seg.vocab_timing['cached'] else ''}; backend {seg.backend} ({seg.precision}) "
          f"on {seg.image_graph.device}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    for p in tqdm(paths, desc="segmenting", unit="img", disable=len(paths) < 2, file=sys.stderr):
        t0 = time.perf_counter()
        img = load_image(p)
        t_decode = time.perf_counter() - t0
        r = seg.segment([img])[0]
        t1 = time.perf_counter()
        _write_atomic(args.out / f"{p.stem}_labels.png", lambda f: label_png(r.labels).save(f, format="PNG"))
        if not args.no_overlay:
            _write_atomic(args.out / f"{p.stem}_overlay.png",
                          lambda f: overlay(img, r.labels, seg.names).save(f, format="PNG"))
        t_write = time.perf_counter() - t1
        ids, counts = np.unique(r.labels, return_counts=True)
        order = np.argsort(-counts)
        report = {
            "image": str(p),
            "size_hw": list(img.shape[:2]),
            "backend": seg.backend,
            "precision": seg.precision,
            "device": seg.image_graph.device,
            "vocabulary_size": len(seg.names),
            "classes": [{"index": int(ids[i]), "name": seg.names[ids[i]], "fraction": round(float(counts[i] / r.labels.size), 6)}
                        for i in order],
            "timings_s": {"decode": t_decode, **{k.removesuffix("_s"): v for k, v in r.timings.items() if k.endswith("_s")},
                          "write": t_write},
        }
        _write_atomic(args.out / f"{p.stem}.json", lambda f: Path(f).write_text(json.dumps(report, indent=1)))
    print(f"wrote {len(paths)} segmentation(s) to {args.out}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from sanrt.runtime.errors import SanrtError

    try:
        return run(args)
    except (SanrtError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
