"""Post-processing speed: the runtime's numpy semantic inference against the official-style PyTorch
one (F.interpolate twice, sigmoid, class scores; `sanrt.model.postprocess`), same inputs, same run.

    python benchmarks/postprocess_speed.py             # writes postprocess.{json,md,png}
    python benchmarks/postprocess_speed.py --quick     # fewer runs, no 847-class cases

Inputs are seeded random class logits [Q, K+1] and mask logits [Q, H/16, W/16] (Q = 100, as both
released models): the cost does not depend on the values. Output sizes: a 600x400 photo (coffee),
512x512 (astronaut) and 1920x1080. Timed: logits -> label map (argmax), interleaved, medians after a
warm-up. Label agreement between the two is reported for every case.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sanrt.benchmarks.lib.environment import machine_info
from sanrt.model.postprocess import semantic_inference as torch_semantic_inference
from sanrt.runtime.machine import machine_slug
from sanrt.runtime.postprocess import semantic_inference
from sanrt.runtime.preprocess import padded_size, resized_shape

ROOT = Path(__file__).resolve().parents[1]
QUERIES = 100
SIZES = {"600x400": (400, 600), "512x512": (512, 512), "1920x1080": (1080, 1920)}  # name: (H0, W0)


def case_inputs(out_hw, k: int, seed: int):
    """Shapes as the runtime sees them for an original image of out_hw (ResizeShortestEdge 640, pad 32)."""
    image_hw = resized_shape(*out_hw, 640, 2560)
    padded_hw = padded_size(*image_hw, 32)
    rng = np.random.default_rng(seed)
    class_logits = rng.normal(0, 3, (QUERIES, k + 1)).astype(np.float32)
    mask_logits = rng.normal(0, 5, (QUERIES, padded_hw[0] // 16, padded_hw[1] // 16)).astype(np.float32)
    return class_logits, mask_logits, padded_hw, image_hw


def run_case(out_hw, k: int, runs: int, seed: int) -> dict:
    cl, ml, padded_hw, image_hw = case_inputs(out_hw, k, seed)
    tcl, tml = torch.from_numpy(cl), torch.from_numpy(ml)
    fns = {
        "numpy": lambda: semantic_inference(cl, ml, padded_hw, image_hw, out_hw),
        "torch": lambda: torch_semantic_inference(tcl, tml, padded_hw, image_hw, out_hw).argmax(0).numpy(),
    }
    labels = {name: fn() for name, fn in fns.items()}  # warm-up, and the labels compared
    times = {name: [] for name in fns}
    for _ in range(runs):  # interleaved: both see the same machine state
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(t) for name, t in times.items()}
    return {"size": f"{out_hw[1]}x{out_hw[0]}", "k": k, "padded_hw": list(padded_hw), "runs": runs,
            "numpy_s": med["numpy"], "torch_s": med["torch"], "speedup": med["torch"] / med["numpy"],
            "label_agreement": float((labels["numpy"] == labels["torch"]).mean())}


def to_markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = [f"# Post-processing: numpy runtime vs official-style PyTorch ({rep['date']})", "",
             (f"Machine: {m['cpu']}, {m['threads']} threads; torch {m['torch']}, numpy {rep['numpy']}. "
              f"Q = {QUERIES}, seeded random logits; logits -> label map; medians of {rep['rows'][0]['runs']} "
              "interleaved runs after a warm-up."), "",
             "| output size | K | PyTorch (official-style) | numpy (sanrt.runtime) | speed-up | label agreement |",
             "|---|---|---|---|---|---|"]
    for r in rep["rows"]:
        lines.append(f"| {r['size']} | {r['k']} | {r['torch_s'] * 1e3:.0f} ms | {r['numpy_s'] * 1e3:.0f} ms | "
                     f"{r['speedup']:.2f}x | {100 * r['label_agreement']:.4f} % |")
    return "\n".join(lines) + "\n"


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rep["rows"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(x - 0.2, [r["torch_s"] * 1e3 for r in rows], 0.4, label="PyTorch (official-style)")
    ax.bar(x + 0.2, [r["numpy_s"] * 1e3 for r in rows], 0.4, label="numpy (sanrt.runtime)")
    ax.set_xticks(x, [f"{r['size']}\nK={r['k']}" for r in rows])
    ax.set_ylabel("median ms, logits -> labels")
    ax.set_yscale("log")
    ax.set_title(f"SAN post-processing, {rep['machine']['cpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="3 runs, K=150 only")
    ap.add_argument("--results", type=Path, help="output folder (default benchmarks/results/<machine>)")
    args = ap.parse_args(argv)
    runs = 3 if args.quick else args.runs
    ks = (150,) if args.quick else (150, 847)
    rows = []
    for k in ks:
        for name, hw in SIZES.items():
            rows.append(run_case(hw, k, runs, seed=k))
            r = rows[-1]
            print(f"{name} K={k}: torch {r['torch_s'] * 1e3:.0f} ms, numpy {r['numpy_s'] * 1e3:.0f} ms "
                  f"({r['speedup']:.2f}x), labels {100 * r['label_agreement']:.4f} %", file=sys.stderr, flush=True)
    rep = {"date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "numpy": np.__version__, "rows": rows}
    out = args.results or ROOT / "benchmarks" / "results" / machine_slug()
    out.mkdir(parents=True, exist_ok=True)
    (out / "postprocess.json").write_text(json.dumps(rep, indent=1) + "\n")
    (out / "postprocess.md").write_text(to_markdown(rep))
    plot(rep, out / "postprocess.png")
    print(f"wrote {out}/postprocess.{{json,md,png}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
