"""PyTorch vs the exported graphs (ONNX Runtime) on the same inputs: photos and random inputs,
square and non-square, batch 1 and 2, vocabularies of K = 1, 10, 171, 847 classes.

    python benchmarks/parity.py --preset vit_b_16 --random-init          # full ViT-B/16
    python benchmarks/parity.py --config tests/data/official/tiny_dev/tiny_config.json \\
        --checkpoint tests/data/official/tiny_dev/checkpoint.pth

Exports into --export (default out/onnx/<name>) unless --reuse-export, then writes
parity_<name>.md and .json under --results (default benchmarks/results/<machine>/). Exit 1 when
any output's err / max|ref| > 1e-4 or label agreement < 99.99 %.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from sanrt.runtime import cli
from sanrt.export.models import add_model_arguments, model_from_args, model_name
from sanrt.export.onnx_export import export
from sanrt.benchmarks.lib.environment import machine_info
from sanrt.benchmarks.lib.photos import sample_photos
from sanrt.export.parity import compare
from sanrt.runtime.errors import ConfigError
from sanrt.runtime.machine import machine_slug
from sanrt.runtime.segmenter import Segmenter
from sanrt.runtime.datasets import dataset_vocabulary

ROOT = Path(__file__).resolve().parents[1]
TEN = ["person", "sky", "tree", "grass", "building", "cup", "table", "wall", "car", "dog"]


def vocabularies(ks) -> dict:
    table = {1: ("1", ["person"]), 10: ("10", TEN), 150: ("150 ade150", dataset_vocabulary("ade150")),
             171: ("171 coco_stuff171", dataset_vocabulary("coco_stuff171")),
             847: ("847 ade847", dataset_vocabulary("ade847"))}
    out = {}
    for k in ks:
        if k not in table:
            raise ConfigError(f"no vocabulary of {k} classes; choose from {sorted(table)}")
        out[table[k][0]] = table[k][1]
    return out


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap)
    cli.add_export_argument(ap, help="export folder (default out/onnx/<name>)")
    ap.add_argument("--reuse-export", action="store_true", help="use --export as it is")
    ap.add_argument("--results", type=Path, help="report folder (default benchmarks/results/<machine>)")
    ap.add_argument("--ks", default="1,10,171,847", help="vocabulary sizes")
    ap.add_argument("--sizes", default="640x640,640x864", help="random-input sizes HxW")
    ap.add_argument("--batches", default="1,2")
    ap.add_argument("--no-photos", action="store_true")
    args = ap.parse_args(argv)
    name = model_name(args)
    export_dir = args.export or ROOT / "out" / "onnx" / name
    results = args.results or ROOT / "benchmarks" / "results" / machine_slug()
    log = lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}", file=sys.stderr, flush=True)  # noqa: E731
    model, weights_desc = model_from_args(args)
    if not args.reuse_export:
        export(model, export_dir, weights_desc, progress=log)
    seg = Segmenter(export_dir, backend="onnxruntime", device="cpu")
    if seg.manifest.weights != weights_desc:
        raise ConfigError(f"{export_dir} holds weights {seg.manifest.weights!r}, not {weights_desc!r}")
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
    res = compare(model, seg, {} if args.no_photos else sample_photos(),
                  vocabularies([int(k) for k in args.ks.split(",")]), sizes,
                  [int(b) for b in args.batches.split(",")], progress=log)
    res.info = {"title": f"{name}, FP32, ONNX Runtime (CPU) vs PyTorch (CPU)", "machine": machine_info(),
                "weights": weights_desc, "backend": "onnxruntime CPUExecutionProvider", "export": str(export_dir)}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"parity_{name}.json").write_text(res.to_json())
    (results / f"parity_{name}.md").write_text(res.to_markdown(f"Export parity: {res.info['title']}"))
    s = res.summary()
    print(f"parity {name}: {'PASS' if s['ok'] else 'FAIL'}; worst err/max|ref| {s['worst_rel_err']:.2e} "
          f"({s['worst_rel_output']}); lowest label agreement {s['min_label_agreement']:.4%} "
          f"({s['min_agreement_case']}); report {results / f'parity_{name}.md'}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
