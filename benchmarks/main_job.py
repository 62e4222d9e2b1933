"""The main job: export SAN to ONNX, segment sample photos with the torch-free runtime (ONNX
Runtime, CPU), write overlays, and report parity and speed against PyTorch.

    python benchmarks/main_job.py [--preset vit_b_16|vit_l_14] [--checkpoint PATH] [--out out/main_job]

Uses the release's checkpoint in models/ (san_vit_b_16.pth, san_vit_large_14.pth) when it is there;
otherwise random weights, said loudly (the
segmentations are then meaningless, but every step runs and is measured).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import torch
from sanrt.benchmarks.lib.timing import median_time
from sanrt.export import build_model, export
from sanrt.benchmarks.lib.environment import machine_info
from sanrt.benchmarks.lib.photos import sample_photos
from sanrt.export.parity import compare
from sanrt.model import PRESET_INFO, SAN
from sanrt.model.pipeline import TorchSegmenter
from sanrt.runtime import SanrtError, SegmentationWriter, Segmenter, check_vocabulary, cli
from sanrt.runtime.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VOCAB = ["person", "cat", "cup", "coffee", "table", "sky", "grass", "building", "wall", "floor",
                 "plant", "rocket", "flag", "saucer", "spoon"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


CHECKPOINTS = {name: p.checkpoint for name, p in PRESET_INFO.items()}
TITLES = {name: p.title for name, p in PRESET_INFO.items()}


def load_model(preset: str, checkpoint: Path) -> tuple[SAN, str]:
    """The user's checkpoint when it is there, else random weights (build_model says so loudly)."""
    if not checkpoint.is_file():
        print(f"(no checkpoint at {checkpoint}; put the released {CHECKPOINTS[preset]} there, see models/README.md)",
              file=sys.stderr)
    if checkpoint.is_file():
        return build_model(preset, checkpoint=checkpoint)
    return build_model(preset, random_init=True)


def ensure_export(model: SAN, weights: str, folder: Path) -> None:
    """Export unless `folder` already holds an intact export of these weights by this sanrt."""
    try:
        m = Manifest.load(folder)
        same_config = m.config == json.loads(json.dumps(model.cfg.to_dict()))
        if m.weights == weights and m.sanrt_version == version("sanrt") and same_config:
            log(f"reusing the export in {folder}")
            return
    except SanrtError:
        pass
    t = time.perf_counter()
    export(model, folder, weights, progress=log)
    log(f"exported to {folder} in {time.perf_counter() - t:.0f} s")


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(CHECKPOINTS), default="vit_b_16")
    ap.add_argument("--checkpoint", type=Path, help="default: models/<the release's file name>")
    ap.add_argument("--out", type=Path, help="default out/main_job (vit_b_16), out/main_job_<preset> otherwise")
    cli.add_export_argument(ap, help="export folder (made or reused; "
                    "default out/onnx/<preset>)")
    ap.add_argument("--vocab", default=",".join(DEFAULT_VOCAB), help="comma-separated class names")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per photo and path (after one warm-up)")
    args = ap.parse_args(argv)
    args.checkpoint = args.checkpoint or ROOT / "models" / CHECKPOINTS[args.preset]
    args.export = args.export or ROOT / "out" / "onnx" / args.preset
    args.out = args.out or ROOT / "out" / ("main_job" if args.preset == "vit_b_16" else f"main_job_{args.preset}")
    title = TITLES[args.preset]
    torch.set_grad_enabled(False)
    names = check_vocabulary(args.vocab.split(","))
    writer = SegmentationWriter(args.out)
    photos = sample_photos()
    writer.plan(list(photos))
    model, weights = load_model(args.preset, args.checkpoint)
    ensure_export(model, weights, args.export)

    # 1. The runtime on photos: ONNX Runtime FP32 on the CPU, the reference path.
    seg = Segmenter(args.export, backend="onnxruntime", device="cpu")
    log("the runtime on the sample photos")
    vocab = seg.vocabulary(names, use_cache=False)
    for name, img in photos.items():
        [r] = seg.segment([img], vocab)
        writer.write(name, img, r, {"image": f"skimage.data.{name}()", "backend": seg.backend,
                                    "precision": seg.precision, "timings_s": r.timings})

    # 2. Parity: the same photos and vocabulary through PyTorch and the export.
    log("parity against PyTorch")
    parity = compare(model, seg, photos, {str(len(names)): names}, random_sizes=(), batches=(),
                     progress=lambda s: None)
    parity.info = {"machine": machine_info(), "weights": weights, "backend": "onnxruntime CPUExecutionProvider"}
    (args.out / "parity.md").write_text(
        parity.to_markdown(f"{title}, FP32, ONNX Runtime (CPU) vs PyTorch (CPU), sample photos"))
    (args.out / "parity.json").write_text(parity.to_json())

    # 3. Speed: the same photos, warm-up then median of --runs, both paths in this one run.
    ref = TorchSegmenter(model)
    ref_vocab = ref.vocabulary(names)
    rows = []
    for name, img in photos.items():
        log(f"timing {name}")
        t_torch = median_time(lambda: ref.segment([img], ref_vocab), args.runs, warmup=1)
        t_ort = median_time(lambda: seg.segment([img], vocab), args.runs, warmup=1)
        stages = seg.segment([img], vocab)[0].timings
        rows.append({"photo": name, "size": f"{img.shape[1]}x{img.shape[0]}", "pytorch_s": t_torch,
                     "runtime_s": t_ort, "speedup": t_torch / t_ort,
                     "stages_s": {k: v for k, v in stages.items() if k.endswith("_s")}})

    s = parity.summary()
    info = machine_info()
    summary = {"weights": weights, "machine": info, "parity": s, "timing": rows,
               "outputs": sorted(str(p.relative_to(args.out)) for p in args.out.glob("*_overlay.png"))}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print()
    print(f"{title} main job ({'RANDOM WEIGHTS' if weights.startswith('random') else weights})")
    print(f"machine: {info['cpu']}, {info['threads']} threads; torch {info['torch']}, onnxruntime {info['onnxruntime']}")
    print(f"parity (ONNX Runtime vs PyTorch, FP32): {'PASS' if s['ok'] else 'FAIL'}: worst err/max|ref| "
          f"{s['worst_rel_err']:.2e} ({s['worst_rel_output']}), label agreement >= {s['min_label_agreement']:.4%}")
    print(f"{'photo':<10} {'size':>8} {'PyTorch s':>10} {'runtime s':>10} {'speed-up':>9}   runtime stages (s)")
    for r in rows:
        st = " ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in r["stages_s"].items())
        print(f"{r['photo']:<10} {r['size']:>8} {r['pytorch_s']:10.2f} {r['runtime_s']:10.2f} {r['speedup']:8.2f}x   {st}")
    print(f"overlays, label PNGs, per-image JSON, parity.md and summary.json in {args.out}")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
