"""Throughput and latency of the Triton pipeline against concurrency, beside the in-process runtime.

    python benchmarks/serve_load.py --export out/onnx/vit_b_16 [--requests 8] [--levels 1,2,4,8]

The bundled tritonserver (Python backend; the graph models on sanrt's ONNX Runtime runner) serves a
Python-backend repository of the export; for each concurrency level, --requests requests per
client thread (astronaut, K=150 ADE-20K, encoded PNG over HTTP) after a warm-up; in the same run,
the in-process Segmenter at batch 1 on the same photo (the server overhead is the ratio of the two
at concurrency 1). Writes serve_load.json / .md / .png under benchmarks/results/<machine>/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from sanrt.runtime import cli
from pathlib import Path

from sanrt.benchmarks.lib.photos import sample_photos
from sanrt.serving.client import request_inputs

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, required=True, help="an sanrt export folder")
    ap.add_argument("--requests", type=int, default=8, help="requests per client thread at each level")
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--results", type=Path, help="report folder (default benchmarks/results/<machine>)")
    args = ap.parse_args(argv)
    import tritonclient.http as httpclient
    from sanrt.runtime import Segmenter, dataset_vocabulary
    from sanrt.runtime.machine import cpu_flags, cpu_model, machine_slug
    from sanrt.serving.repository import write_repository
    from sanrt.serving.server import TritonServer, serving_env

    log = lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}", file=sys.stderr, flush=True)  # noqa: E731
    levels = [int(v) for v in args.levels.split(",")]
    img = sample_photos()["astronaut"]
    vocab = ("dataset", "ade150")
    seg = Segmenter(args.export, backend="onnxruntime", device="cpu")
    v = seg.vocabulary(dataset_vocabulary("ade150"))
    seg.segment([img], v)
    log("in-process runtime, batch 1")
    local = []
    for _ in range(args.requests):
        t = time.perf_counter()
        seg.segment([img], v)
        local.append(time.perf_counter() - t)
    rep = {"machine": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(), "model": seg.manifest.preset,
           "date": time.strftime("%Y-%m-%d %H:%M"), "photo": f"astronaut {img.shape[1]}x{img.shape[0]}", "K": 150,
           "in_process": {"p50_ms": 1000 * statistics.median(local), "images_per_s": 1 / statistics.median(local)},
           "levels": []}
    del seg
    env = serving_env()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        write_repository(args.export, repo, "python", site_dirs=[env["site_packages"]], queue_delay_us=20000,
                         cache_dir=str(Path(tmp) / "vocab"), pipeline_instances=max(levels))
        log("starting tritonserver")
        with TritonServer(repo, start_timeout=300) as server:
            warm = httpclient.InferenceServerClient(server.http_url)
            warm.infer("san", request_inputs(httpclient, img, vocab, True))
            warm.close()
            for level in levels:
                log(f"concurrency {level}")
                times, lock = [], threading.Lock()

                def client_thread():
                    c = httpclient.InferenceServerClient(server.http_url)
                    for _ in range(args.requests):
                        t = time.perf_counter()
                        c.infer("san", request_inputs(httpclient, img, vocab, True))
                        with lock:
                            times.append(time.perf_counter() - t)
                    c.close()

                threads = [threading.Thread(target=client_thread) for _ in range(level)]
                t0 = time.perf_counter()
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                wall = time.perf_counter() - t0
                times.sort()
                rep["levels"].append({"concurrency": level, "requests": len(times), "images_per_s": len(times) / wall,
                                      "p50_ms": 1000 * times[len(times) // 2],
                                      "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))]})
    base = rep["in_process"]
    c1 = next((lv for lv in rep["levels"] if lv["concurrency"] == 1), None)
    rep["server_overhead_at_1"] = c1["p50_ms"] / base["p50_ms"] if c1 else None
    results = args.results or ROOT / "benchmarks" / "results" / machine_slug()
    results.mkdir(parents=True, exist_ok=True)
    (results / "serve_load.json").write_text(json.dumps(rep, indent=1))
    lines = [f"# Serving load: {rep['model']} through Triton (bundled tritonserver, Python backend) on {rep['machine']}", "",
             f"- {rep['cores']} cores; flags {', '.join(rep['cpu_flags'])}; {rep['date']}; {rep['photo']}, K=150, "
             f"encoded PNG over HTTP; {args.requests} requests per client after a warm-up",
             f"- in-process runtime (ONNX Runtime FP32, batch 1, same run): p50 {base['p50_ms']:.0f} ms, "
             f"{base['images_per_s']:.2f} img/s",
             f"- server p50 at concurrency 1 / in-process p50: {rep['server_overhead_at_1']:.2f}x" if c1 else "", "",
             "| concurrency | requests | img/s | p50 ms | p99 ms | img/s vs in-process |", "|---|---|---|---|---|---|"]
    for lv in rep["levels"]:
        lines.append(f"| {lv['concurrency']} | {lv['requests']} | {lv['images_per_s']:.2f} | {lv['p50_ms']:.0f} | "
                     f"{lv['p99_ms']:.0f} | {lv['images_per_s'] / base['images_per_s']:.2f}x |")
    (results / "serve_load.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    conc = [lv["concurrency"] for lv in rep["levels"]]
    ax[0].plot(conc, [lv["images_per_s"] for lv in rep["levels"]], "o-", label="Triton")
    ax[0].axhline(base["images_per_s"], color="grey", ls="--", label="in-process, batch 1")
    ax[0].set_xlabel("concurrent clients"), ax[0].set_ylabel("images / s"), ax[0].legend()
    ax[1].plot(conc, [lv["p50_ms"] for lv in rep["levels"]], "o-", label="p50")
    ax[1].plot(conc, [lv["p99_ms"] for lv in rep["levels"]], "s-", label="p99")
    ax[1].axhline(base["p50_ms"], color="grey", ls="--", label="in-process p50")
    ax[1].set_xlabel("concurrent clients"), ax[1].set_ylabel("latency ms"), ax[1].legend()
    fig.suptitle(f"{rep['model']} via Triton, {rep['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(results / "serve_load.png", dpi=110)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
