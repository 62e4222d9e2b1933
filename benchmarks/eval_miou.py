"""mIoU of an export on a dataset, through the library's Segmenter (as TensorRT's eval_coco.py reuses
infer.py's class): detectron2's SemSegEvaluator metrics, one or several precisions on the same images.

    python benchmarks/eval_miou.py --export out/onnx/vit_b_16 --dataset ade150 --root datasets
    python benchmarks/eval_miou.py --export out/onnx/vit_b_16 --dataset voc20 --root datasets --compare fp32,int8dyn
    python benchmarks/eval_miou.py --export out/onnx/vit_b_16 --images my/images --labels my/labels \\
        --vocab-file my/classes.txt [--ignore-label 255] [--reduce-zero-label]

--dataset reads the layout SAN's preparation scripts produce under --root (sanrt.runtime.datasets
.DATASETS; validation splits); label images hold class indices in vocabulary order. Prints per-class
IoU and accuracy and the totals; writes eval.json and eval.md into --out (each whole, never over a
file sanrt did not write; checked before the first image); the last stdout line is one
JSON object {"images", "miou", "pacc", "macc", "fwiou"} (percentages; with --compare, those of the
first precision, and "compare": every precision's, with its mIoU difference to the first and its
time per image).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _pct(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv=None) -> int:
    from sanrt.runtime import cli

    return cli.run(_main, argv)


def _main(argv) -> int:
    from sanrt.runtime import cli

    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, required=True, help="an sanrt export folder")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="ade150, ade847, pc59, pc459, coco_stuff171 or voc20 (with --root)")
    src.add_argument("--images", type=Path, help="an image folder (with --labels and --vocab-file)")
    ap.add_argument("--root", type=Path, default=Path("datasets"), help="datasets root (DETECTRON2_DATASETS)")
    ap.add_argument("--labels", type=Path, help="label images of class indices, named as the images")
    ap.add_argument("--vocab-file", type=Path, help="class names, one a line, in label-index order")
    ap.add_argument("--ignore-label", type=int, default=255)
    ap.add_argument("--reduce-zero-label", action="store_true", help="label 0 is ignored, the others shift down by one")
    ap.add_argument("--image-ext", default=None, help="image suffix, e.g. .jpg (default: any image sanrt reads)")
    ap.add_argument("--label-ext", default=".png")
    ap.add_argument("--expand", default="none", choices=["none", "coco-all", "coco-stuff"],
                    help="vocabulary expansion as SAN's demo; pixels labelled 'other' count as misses")
    ap.add_argument("--backend", default="auto", help="auto, onnxruntime or openvino (onnxruntime with --compare)")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--compare", help="precisions on the same images, e.g. fp32,int8dyn,fp16 (or backend:precision)")
    ap.add_argument("--limit", type=int, help="the first N images only (N >= 1)")
    ap.add_argument("--out", type=Path, default=Path("out/eval"))
    args = ap.parse_args(argv)
    from sanrt.runtime import SanrtError, logs, read_vocabulary_file
    from sanrt.evaluation.miou import DatasetError, pairs
    from sanrt.runtime.datasets import DATASETS, dataset
    from sanrt.runtime.outputs import check_replaceable

    logs.setup()
    log = logging.getLogger("sanrt")
    outputs = [args.out / "eval.json", args.out / "eval.md"]
    if args.limit is not None and args.limit < 1:
        raise DatasetError(f"--limit must be 1 or more, not {args.limit}")
    if args.dataset:
        try:
            d = dataset(args.dataset)
        except SanrtError:
            raise DatasetError(f"unknown dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}") from None
        lay = d.layout
        matched = pairs(args.root / lay.images, args.root / lay.labels, lay.image_ext, lay.label_ext)
        names, ignore = d.names, d.ignore_label
        title = f"{d.key} ({args.root / lay.labels})"
    else:
        if not (args.labels and args.vocab_file):
            raise DatasetError("--images needs --labels and --vocab-file")
        matched = pairs(args.images, args.labels, args.image_ext, args.label_ext)
        names, ignore, title = read_vocabulary_file(args.vocab_file), args.ignore_label, str(args.labels)
    if matched.orphans or (matched.unlabelled and not args.dataset):
        # an official layout's image folder also holds the other splits: only the user's own is news
        log.warning(f"{matched.unlabelled} images without a label and {matched.orphans} labels without an image "
                    "are left out")
    found = matched.pairs[: args.limit] if args.limit else matched.pairs
    if args.compare is not None:
        entries = [c.strip() for c in args.compare.split(",")]
        if not all(entries) or any(c.count(":") > 1 or c.startswith(":") or c.endswith(":") for c in entries):
            raise DatasetError(f"--compare {args.compare!r} names an empty precision: e.g. fp32,int8dyn or "
                               "onnxruntime:fp32,openvino:bf16")
        if len(set(entries)) != len(entries):
            raise DatasetError(f"--compare {args.compare!r} names a precision twice")
    runs = [(args.backend, args.precision)] if not args.compare else [
        tuple(c.split(":")) if ":" in c else ("onnxruntime" if args.backend == "auto" else args.backend, c)
        for c in entries]
    made_out = not args.out.exists()
    check_replaceable(outputs, args.out)
    try:
        return _evaluate_and_report(args, runs, found, names, ignore, title, outputs)
    except BaseException:
        if made_out and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # a run that wrote nothing leaves no new folder behind
        raise


def _evaluate_and_report(args, runs, found, names, ignore, title, outputs) -> int:
    from sanrt.evaluation import miou
    from sanrt.runtime import Segmenter
    from sanrt.runtime.outputs import save_json, save_markdown

    # every run's graphs and vocabulary before the first image: a bad precision fails now, not after a run
    segs = [Segmenter(args.export, backend=b, precision=p) for b, p in runs]
    vocabs = [s.vocabulary(names, expand=args.expand) for s in segs]
    results = {}
    for seg, vocab in zip(segs, vocabs):
        label = f"{seg.backend}:{seg.precision}"
        results[label] = miou.evaluate(seg, vocab, found, ignore, args.reduce_zero_label, label)
    first = next(iter(results.values()))
    for label, r in results.items():
        r["miou_diff"] = r["miou"] - first["miou"] if r["miou"] is not None and first["miou"] is not None else None
    expanded = f"; vocabulary expansion {args.expand} (pixels labelled 'other' are misses)" if args.expand != "none" else ""
    lines = [f"# mIoU: {title}", "", f"- export {args.export}; {len(found)} images; detectron2 SemSegEvaluator metrics, %"
             f"{expanded}",
             "", "| run | mIoU | fwIoU | mACC | pACC | mIoU - first | s / image |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {k} | {_pct(r['miou'])} | {_pct(r['fwiou'])} | {_pct(r['macc'])} | {_pct(r['pacc'])} | "
              f"{_pct(r['miou_diff'], '+.2f')} | {r['seconds_per_image']:.3f} |" for k, r in results.items()]
    lines += ["", f"## Per class ({next(iter(results))})", "", "| class | IoU | ACC |", "|---|---|---|"]
    lines += [f"| {n} | {first['iou'][n]:.2f} | {first['acc'][n]:.2f} |" for n in names if n in first["iou"]]
    save_json({"expansion": None if args.expand == "none" else args.expand, "runs": results}, outputs[0])
    save_markdown("\n".join(lines) + "\n", outputs[1])
    print("\n".join(lines))
    rnd = lambda v: None if v is None else round(v, 4)
    summary = {"images": len(found), **{k: rnd(first[k]) for k in ("miou", "pacc", "macc", "fwiou")}}
    if len(results) > 1:
        summary["compare"] = {k: {"miou": rnd(r["miou"]), "miou_diff": rnd(r["miou_diff"]),
                                  "seconds_per_image": round(r["seconds_per_image"], 4)} for k, r in results.items()}
    print(json.dumps(summary))  # null, never NaN: the line stays JSON
    return 0


if __name__ == "__main__":
    sys.exit(main())
