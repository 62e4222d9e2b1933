"""Build TensorRT engines for an sanrt export (image, text and head graphs).

    python export/to_onnx.py --preset vit_b_16 --checkpoint models/san_vit_b_16.pth --precision fp16 --out out/onnx/vit_b_16
    python export/build_engine.py --export out/onnx/vit_b_16 --out out/onnx/vit_b_16/engines
    python runtime/infer.py --engine out/onnx/vit_b_16/engines/image.engine --image photo.jpg --dataset ade150

Strongly typed on TensorRT >= 11 (from the FP16 ONNX), weak typing with the FP16 flag and FP32
normalization layers on TensorRT 10. Profiles from the manifest's ranges; a timing cache and an
engine cache keyed by (ONNX sha256, TensorRT version, GPU, compute capability, profiles, precision).
Without a GPU or TensorRT it says so in one line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sanrt.export.tensorrt_build import build_engines
from sanrt.runtime import cli


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, required=True, help="an sanrt export folder")
    ap.add_argument("--out", type=Path, help="engine folder (default <export>/engines)")
    ap.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--opt-level", type=int, default=3, choices=range(0, 6), help="builder optimisation level")
    ap.add_argument("--reuse-only", action="store_true", help="refuse instead of rebuilding mismatching engines")
    args = ap.parse_args(argv)
    meta = build_engines(args.export, args.out or args.export / "engines", args.precision, args.opt_level,
                         args.reuse_only, progress=lambda s: print(s, file=sys.stderr))
    print(f"engines for {meta['gpu']} (sm {meta['compute_capability']}), TensorRT {meta['tensorrt']}, {meta['precision']}:")
    for graph, e in meta["engines"].items():
        print(f"  {graph:<6} {e['file']}  (from {e['onnx']}, key {e['key']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
