"""The main job: SAN ViT-B/16 on sample photos, end to end, with overlays.

    python benchmarks/main_job.py [--checkpoint models/san_vit_b_16.pth] [--out out/main_job]

Uses models/san_vit_b_16.pth when it is there; otherwise random weights, said loudly (the
segmentations are then meaningless, but every step runs and is measured).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sanrt.model import SAN, CheckpointError, load_checkpoint, preset
from sanrt.model.pipeline import TorchSegmenter
from sanrt.runtime.visualize import label_png, overlay

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VOCAB = ["person", "cat", "cup", "coffee", "table", "sky", "grass", "building", "wall", "floor",
                 "plant", "rocket", "flag", "saucer", "spoon"]


def sample_photos() -> dict:
    from skimage import data

    return {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea")}


def load_model(checkpoint: Path | None) -> tuple[SAN, str]:
    torch.manual_seed(0)
    model = SAN(preset("vit_b_16")).eval()
    if checkpoint is not None and checkpoint.is_file():
        load_checkpoint(model, checkpoint)
        return model, str(checkpoint)
    print("=" * 78, file=sys.stderr)
    print(f"NOTICE: no checkpoint at {checkpoint}: using RANDOM WEIGHTS.", file=sys.stderr)
    print("The pipeline runs and is measured, but the segmentations mean nothing.", file=sys.stderr)
    print("Put the released san_vit_b_16.pth in models/ (see models/README.md).", file=sys.stderr)
    print("=" * 78, file=sys.stderr)
    return model, "random"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "san_vit_b_16.pth")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "main_job")
    ap.add_argument("--vocab", default=",".join(DEFAULT_VOCAB), help="comma-separated class names")
    args = ap.parse_args(argv)
    try:
        model, weights = load_model(args.checkpoint)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seg = TorchSegmenter(model)
    names = [n for n in args.vocab.split(",")]
    seg.set_vocabulary(names)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"weights": weights, "vocabulary": seg.names, "images": {}}
    for name, img in sample_photos().items():
        t = time.perf_counter()
        r = seg.segment([img])[0]
        dt = time.perf_counter() - t
        label_png(r["labels"]).save(args.out / f"{name}_labels.png")
        overlay(img, r["labels"], seg.names).save(args.out / f"{name}_overlay.png")
        present = {seg.names[c]: round(float((r["labels"] == c).mean()), 4) for c in np.unique(r["labels"])}
        summary["images"][name] = {"pytorch_s": round(dt, 3), "classes": present}
        print(f"{name}: {img.shape[1]}x{img.shape[0]} in {dt:.2f} s (PyTorch FP32, CPU) -> {args.out / (name + '_overlay.png')}")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
