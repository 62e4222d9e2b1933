"""GPU check, prepared for one call of at most 8 minutes on a lent GPU machine (H100).

    python benchmarks/gpu_check.py --out $OUT            # on the device machine
    python benchmarks/gpu_check.py --out /tmp/gc --quick # smoke run (also works on CPU)

Measures what only a GPU can: PyTorch CUDA FP32 eager, FP16 autocast eager and torch.compile on
full SAN ViT-B/16 (random weights) at 640x640, batch 1 and 8; ONNX Runtime / TensorRT when
importable. Captures the environment (nvidia-smi, versions). Writes gpu_check.json and .md.

The lent machine has torch, onnx and CPU onnxruntime but not open_clip_torch and its needs
(ftfy, regex, timm, huggingface_hub, safetensors, torchvision matching its torch): carry them as
wheels (see the device tool's README) and install them with --no-deps first.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(fn, runs: int, warmup: int, sync) -> dict:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="batch 1, few runs, no compile")
    ap.add_argument("--budget-s", type=float, default=420, help="stop starting new measurements after this")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    import torch
    from sanrt.model import SAN, preset
    from sanrt.model.random_init import spread_random_init_

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": torch.cuda.get_device_name(0) if cuda else "cpu", "platform": platform.platform()}
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        env["nvidia_smi"] = None
    for mod in ("onnxruntime", "tensorrt", "open_clip"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:  # missing or not loadable: record why
            env[mod] = f"unavailable ({type(e).__name__})"
    torch.manual_seed(0)
    model = spread_random_init_(SAN(preset("vit_b_16"))).eval().to(dev)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    runs, warmup = (3, 1) if args.quick else (20, 5)
    rows = []
    batches = (1,) if args.quick else (1, 8)
    modes = ["fp32-eager", "fp16-autocast-eager"] + ([] if args.quick or not cuda else ["fp16-autocast-compile"])
    compiled = None
    for mode in modes:
        for b in batches:
            if time.perf_counter() - t_start > args.budget_s:
                rows.append({"mode": mode, "batch": b, "skipped": "time budget"})
                continue
            x = torch.randint(0, 256, (b, 3, 640, 640), dtype=torch.uint8, device=dev)
            sizes = torch.full((b, 2), 640, dtype=torch.int64, device=dev)
            net = model
            if mode.endswith("compile"):
                t = time.perf_counter()
                compiled = compiled or torch.compile(model)
                net = compiled
            amp = mode.startswith("fp16")

            def run():
                with torch.no_grad(), torch.autocast(dev.type, dtype=torch.float16 if cuda else torch.bfloat16, enabled=amp):
                    net(x, sizes)

            row = {"mode": mode, "batch": b, **timed(run, runs, warmup, sync)}
            if mode.endswith("compile"):
                row["compile_and_warmup_s"] = time.perf_counter() - t - row["median_s"] * runs
            row["images_per_s"] = b / row["median_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    rep = {"env": env, "model": "SAN ViT-B/16 (random weights, fixture-style spread), 640x640 uint8 input",
           "rows": rows, "date": time.strftime("%Y-%m-%d %H:%M")}
    (args.out / "gpu_check.json").write_text(json.dumps(rep, indent=1))
    lines = [f"# GPU check: {env['device']}", "", f"- {env}", "", "| mode | batch | median ms | img/s |", "|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['mode']} | {r['batch']} | skipped ({r['skipped']}) | |")
        else:
            lines.append(f"| {r['mode']} | {r['batch']} | {r['median_s'] * 1000:.1f} | {r['images_per_s']:.1f} |")
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
