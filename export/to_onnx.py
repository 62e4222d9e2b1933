"""Export SAN to an ONNX folder the torch-free runtime reads.

    python export/to_onnx.py --preset vit_b_16 --checkpoint models/san_vit_b_16.pth --out out/onnx/vit_b_16
    python export/to_onnx.py --config tests/data/official/tiny_dev/tiny_config.json \\
        --checkpoint tests/data/official/tiny_dev/checkpoint.pth --out out/onnx/tiny_dev
    python export/to_onnx.py --preset vit_b_16 --random-init --out out/onnx/vit_b_16_random

Writes image.onnx, text.onnx, head.onnx, classifier.npz, the tokenizer's BPE file and manifest.json,
built in a temporary folder beside --out and moved into place whole: a failed or interrupted export
leaves --out as it was, and only an earlier sanrt export (or an empty folder) is ever replaced.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sanrt.runtime import cli
from sanrt.runtime.manifest import is_export
from sanrt.runtime.outputs import plan_folder


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    # torch and open_clip load here, inside cli.run: Ctrl-C while they load is one line too
    from sanrt.export.models import add_model_arguments, export_model
    from sanrt.export.onnx_export import ExportRanges

    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap)
    ap.add_argument("--out", type=Path, required=True, help="export folder to write")
    ap.add_argument("--max-batch", type=int, default=ExportRanges.batch[1])
    ap.add_argument("--max-side", type=int, default=ExportRanges.height[1], help="largest padded H or W")
    ap.add_argument("--max-classes", type=int, default=ExportRanges.classes[1])
    ap.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                    help="fp16 adds FP16 image and text graphs (FP32 islands) beside the FP32 ones")
    args = ap.parse_args(argv)
    ranges = ExportRanges(batch=(1, args.max_batch), height=(ExportRanges.height[0], args.max_side),
                          width=(ExportRanges.width[0], args.max_side), classes=(1, args.max_classes))
    plan_folder(args.out, is_export)  # before the model is built: a user's folder is refused at once
    manifest = export_model(args.out, args.preset, args.config, args.checkpoint, args.random_init, args.seed, ranges,
                            fp16=args.precision == "fp16", progress=lambda s: print(s, "...", file=sys.stderr))
    weights = manifest.weights
    print(f"wrote {args.out} ({manifest.preset}, weights: {weights})")
    for name, digest in manifest.sha256.items():
        print(f"  {name:<32} {(args.out / name).stat().st_size / 1e6:9.1f} MB  sha256 {digest[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
