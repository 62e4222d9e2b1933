"""Peak memory of the runtime (not a timed test): a huge photo through the CLI, and one Segmenter fed
images of many random sizes, each scenario in a fresh process, peak and steady RSS measured.

    python benchmarks/memory.py --export out/onnx/vit_b_16 [--images 400] [--huge 10000]

Scenarios: `huge`: a --huge x --huge photo (a sample photo scaled up, JPEG) through runtime/infer.py
(decoded, segmented with ADE-150, label PNG, overlay and JSON written, as
runtime/infer.py does); `sizes`: --images images of random sizes (sides 64..--max-side) through one
Segmenter, RSS after each; both with ONNX Runtime's arena shrinkage on (the default) and off.
Writes memory.json / memory.md / memory.png under benchmarks/results/<machine>/ (or --results).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sanrt.runtime import cli

ROOT = Path(__file__).resolve().parents[1]

CHILD_SIZES = r"""
import json, sys, time
import numpy as np
from sanrt.runtime import Segmenter
engine, n, max_side, shrink, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
seg = Segmenter(engine, backend="onnxruntime", device="cpu", backend_options={"shrink_arena": shrink})
vocab = seg.vocabulary(["person", "cat", "sky", "tree", "road"])
rng = np.random.default_rng(seed)
trace, t0 = [], time.perf_counter()
for i in range(n):
    h, w = (int(v) for v in rng.integers(64, max_side + 1, 2))
    seg.segment([rng.integers(0, 256, (h, w, 3), dtype=np.uint8)], vocab)
    trace.append(round(rss_mb(), 1))
print(json.dumps({"trace_mb": trace, "seconds": time.perf_counter() - t0}))
"""

CHILD_HUGE = r"""
import json, sys, time
from pathlib import Path
from sanrt.runtime import Segmenter, SegmentationWriter, dataset_vocabulary, load_image
engine, photo, out, shrink = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
t0 = time.perf_counter()
seg = Segmenter(engine, backend="onnxruntime", device="cpu", backend_options={"shrink_arena": shrink})
writer = SegmentationWriter(out)  # what runtime/infer.py does, through the same API
img = load_image(photo)
writer.plan([photo.stem], inputs=[photo])
[r] = seg.segment([img], seg.vocabulary(dataset_vocabulary("ade150")))
writer.write(photo.stem, img, r)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def run_isolated(cmd: list[str], env: dict | None = None) -> tuple[dict | None, float]:
    """Run in a fresh process (RUSAGE_CHILDREN's peak covers only processes waited for, so each
    scenario runs under its own measuring parent): (its stdout's last JSON line or None, peak MB)."""
    probe = (f"import json, resource, subprocess, sys; p = subprocess.run({cmd!r}, capture_output=True, text=True); "
             "sys.stderr.write(p.stderr[-2000:]); last = (p.stdout.strip().splitlines() or ['null'])[-1]; "
             "print(json.dumps({'rc': p.returncode, 'last': last, "
             "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if out["rc"]:
        raise RuntimeError(f"{cmd[:3]} failed: {p.stderr[-2000:]}")
    try:
        payload = json.loads(out["last"])
    except json.JSONDecodeError:
        payload = None
    return payload, out["peak_mb"]


def huge_photo(path: Path, side: int) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    Image.fromarray(np.asarray(data.astronaut())).resize((side, side), Image.BILINEAR).save(path, quality=90)


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, required=True, help="an sanrt export folder")
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--max-side", type=int, default=2000, help="largest random side of the `sizes` images")
    ap.add_argument("--huge", type=int, default=10000, help="side of the huge photo")
    ap.add_argument("--results", type=Path, help="report folder (default benchmarks/results/<machine>)")
    args = ap.parse_args(argv)
    from sanrt.runtime.machine import cpu_flags, cpu_model, machine_slug

    results = args.results or ROOT / "benchmarks" / "results" / machine_slug()
    results.mkdir(parents=True, exist_ok=True)
    rep = {"machine": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(), "engine": str(args.export),
           "date": time.strftime("%Y-%m-%d %H:%M"), "huge": {}, "sizes": {}}
    manifest = json.loads((args.export / "manifest.json").read_text())
    rep["model"] = manifest.get("preset")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = tmp / f"huge_{args.huge}.jpg"
        huge_photo(photo, args.huge)
        for shrink in (True, False):
            label = "arena shrinkage on" if shrink else "arena shrinkage off"
            print(f"[{time.strftime('%H:%M:%S')}] huge {args.huge}x{args.huge} photo, {label}", file=sys.stderr)
            env = dict(os.environ, SANRT_CACHE=str(tmp / "cache"))
            out = tmp / ("out_on" if shrink else "out_off")
            payload, peak = run_isolated([sys.executable, "-c", CHILD_HUGE, str(args.export), str(photo), str(out),
                                          "1" if shrink else "0"], env)
            rep["huge"][label] = {"peak_mb": round(peak), "seconds": round(payload["seconds"], 1),
                                  "outputs": sorted(p.name for p in out.iterdir())}
            print(f"[{time.strftime('%H:%M:%S')}] {args.images} random sizes, {label}", file=sys.stderr)
            payload, peak = run_isolated([sys.executable, "-c", CHILD_SIZES, str(args.export), str(args.images),
                                          str(args.max_side), "1" if shrink else "0", "0"], env)
            trace = payload["trace_mb"]
            rep["sizes"][label] = {"peak_mb": round(peak), "last_mb": trace[-1], "max_traced_mb": max(trace),
                                   "seconds": round(payload["seconds"], 1), "trace_mb": trace}
    (results / "memory.json").write_text(json.dumps(rep, indent=1))
    lines = [f"# Memory: {rep['model']} on {rep['machine']}", "",
             f"- {rep['cores']} cores; flags {', '.join(rep['cpu_flags'])}; {rep['date']}; export {rep['engine']}",
             "- peak RSS of a fresh process per scenario (getrusage); ONNX Runtime FP32 on the CPU", "",
             "| scenario | arena | peak RSS MB | RSS after the last image MB | seconds |", "|---|---|---|---|---|"]
    for label, r in rep["huge"].items():
        lines.append(f"| {args.huge}x{args.huge} photo, K=150, all outputs written | {label} | {r['peak_mb']} | - | {r['seconds']} |")
    for label, r in rep["sizes"].items():
        lines.append(f"| {args.images} images, random sides 64..{args.max_side} | {label} | {r['peak_mb']} | {r['last_mb']} | {r['seconds']} |")
    (results / "memory.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for label, r in rep["sizes"].items():
        ax.plot(r["trace_mb"], label=label)
    ax.set_xlabel("image (random size)")
    ax.set_ylabel("RSS MB after the image")
    ax.set_title(f"{rep['model']}: one Segmenter, {args.images} random sizes\n{rep['machine']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(results / "memory.png", dpi=110)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
