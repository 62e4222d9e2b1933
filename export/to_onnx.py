"""Export SAN to an ONNX folder the torch-free runtime reads.

    python export/to_onnx.py --preset vit_b_16 --checkpoint models/san_vit_b_16.pth --out out/onnx/vit_b_16
    python export/to_onnx.py --config ../shared/reference/tiny_dev/tiny_config.json \\
        --checkpoint ../shared/reference/tiny_dev/checkpoint.pth --out out/onnx/tiny_dev
    python export/to_onnx.py --preset vit_b_16 --random-init --out out/onnx/vit_b_16_random

Writes image.onnx, text.onnx, head.onnx, classifier.npz, the tokenizer's BPE file and manifest.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from sanrt.export.onnx_export import ExportRanges, export
from sanrt.model import SAN, CheckpointError, from_fixture_config, load_checkpoint, preset
from sanrt.model.random_init import spread_random_init_
from sanrt.runtime.manifest import sha256_file

RANDOM_NOTICE = """\
==============================================================================
NOTICE: exporting SAN with RANDOM WEIGHTS (--random-init, seed {seed}).
The graphs are complete and exact, but their segmentations mean nothing.
Scaled as the official fixtures do, so masks and classes spread out (model/random_init.py).
The manifest records weights = "random (seed {seed}, fixture-style spread)".
=============================================================================="""


def build_model(args) -> tuple[SAN, str]:
    cfg = from_fixture_config(args.config) if args.config else preset(args.preset)
    torch.manual_seed(args.seed)
    model = SAN(cfg).eval()
    if args.random_init:
        print(RANDOM_NOTICE.format(seed=args.seed), file=sys.stderr)
        return spread_random_init_(model), f"random (seed {args.seed}, fixture-style spread)"
    load_checkpoint(model, args.checkpoint)
    return model, f"{Path(args.checkpoint).name} sha256:{sha256_file(Path(args.checkpoint))}"


def add_model_arguments(ap: argparse.ArgumentParser) -> None:
    """--preset | --config, and --checkpoint | --random-init [--seed]: what build_model reads."""
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=["vit_b_16", "vit_l_14"])
    which.add_argument("--config", type=Path, help="a fixture's tiny_config.json")
    weights = ap.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", type=Path, help="official SAN checkpoint (.pth)")
    weights.add_argument("--random-init", action="store_true", help="random weights (said loudly)")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random-init")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap)
    ap.add_argument("--out", type=Path, required=True, help="export folder to write")
    ap.add_argument("--max-batch", type=int, default=ExportRanges.batch[1])
    ap.add_argument("--max-side", type=int, default=ExportRanges.side[1], help="largest padded H or W")
    ap.add_argument("--max-classes", type=int, default=ExportRanges.classes[1])
    ap.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                    help="fp16 adds FP16 image and text graphs (FP32 islands) beside the FP32 ones")
    args = ap.parse_args(argv)
    ranges = ExportRanges(batch=(1, args.max_batch), side=(ExportRanges.side[0], args.max_side),
                          classes=(1, args.max_classes))
    try:
        model, weights_desc = build_model(args)
        manifest = export(model, args.out, weights_desc, ranges, progress=lambda s: print(s, "...", file=sys.stderr),
                          fp16=args.precision == "fp16")
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({manifest['preset']}, weights: {weights_desc})")
    for name, digest in manifest["sha256"].items():
        print(f"  {name:<32} {(args.out / name).stat().st_size / 1e6:9.1f} MB  sha256 {digest[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
