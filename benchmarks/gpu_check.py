"""GPU check: SAN ViT-B/16 speed, distance to the GPU's measured peak, and low-precision accuracy, in
one device call of at most 8 minutes (issue 11, goal 5). Prepared for a lent H100/H200; not yet run
on one.

The device call (the `run` tool; the tree plus .whl is about 43 MiB of the 64 MiB a call carries):

    run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600)

Without the .sh, this one-line `run` command does the same (less the log file gpu_check.sh tees):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && timeout 570 python3 benchmarks/gpu_check.py --out $OUT

Here, on CPU, with the tiny fixture config (every branch that needs no CUDA, < 60 s on 2 cores):

    .venv/bin/python benchmarks/gpu_check.py --dry-run --out /tmp/gc

What the device lacks, carried as wheels in .whl/ (ignored by git; refill it with the device tool
README's `pip download --no-deps ... -d .whl` line): open_clip_torch 3.3.0, ftfy 6.3.1, wcwidth
0.9.4, onnxslim 0.1.98 (only the ONNX branch uses it). The device image already has torch 2.11 +
torchvision 0.26 (a matching pair), timm, huggingface_hub, safetensors, regex, tqdm, onnx and CPU
onnxruntime. The project itself is not pip-installed there: when `sanrt.model` does not import,
this script maps sanrt.model/.runtime/.export onto the checkout's model/, runtime/, export/ folders
(symbolic links in a temporary folder put first on sys.path, plus a minimal sanrt dist-info for
importlib.metadata), as pyproject.toml's package-dir does.

Measured (CUDA; --dry-run does the same on CPU at toy size, numbers meaningless):
  * environment: nvidia-smi (name, driver, memory, clocks idle and after the GEMMs, power limit),
    python, torch, CUDA, cuDNN, GPU properties, package versions, onnxruntime providers;
  * GEMM peaks on this GPU, now: 8192^3 matmul in FP16, BF16, FP32 with TF32 off and with TF32 on
    (median of timed loops after warm-up): the "measured peak" of each precision;
  * graph FLOPs of one image (torch.utils.flop_counter.FlopCounterMode on the FP32 eager graph,
    multiply-add = 2 FLOPs; about 127 GFLOP at 640x640 expected) and the compute floor
    FLOPs / peak in ms per image, per precision;
  * SAN ViT-B/16, random weights (spread_random_init_), 640x640 uint8 input, batch 1 and 32, rows:
    fp32-eager (TF32 off, matmul and cuDNN: the accuracy reference), tf32-eager, fp16-autocast-eager,
    bf16-autocast-eager, fp16-autocast-compile (torch.compile default mode: no CUDA graphs),
    fp16-autocast-compile-cudagraphs (mode="reduce-overhead"); a fresh torch.compile per row
    (dynamic=False), its compile time reported apart from the steady state (first calls minus the
    median). Each row: median and p90 ms per batch (warm-up, then many runs, torch.cuda.synchronize
    around each), img/s, achieved TFLOP/s = FLOPs x img/s, fraction of the measured peak of its
    precision;
  * accuracy of every row against fp32-eager on the same inputs (natural images from the fixtures,
    cropped, flipped and rescaled per batch element): least cosine of the mask embeddings; a fixed
    random 150-class classifier W (+ background row, rows L2-normalised x 100, the FP32 reference's
    mean embedding direction projected out so labels spread) gives class logits = mask_emb @ W^T;
    "pixel labels" = per-pixel argmax over classes of sum_q sigmoid(mask_logits) x softmax(class
    logits)[:150] at mask resolution (H/16 x W/16), SAN's semantic inference; "query classes" =
    agreement of each query's argmax class;
  * the FP16 ONNX image graph (sanrt's FP16 export: LayerNorm statistics kept FP32) under ONNX
    Runtime's CUDA provider, same measures against PyTorch fp32-eager. Skipped, with that reason in
    the report, unless onnxruntime-gpu is installed: the device has the CPU onnxruntime only, and
    onnxruntime-gpu's wheel is larger than the 64 MiB one call carries.

--budget-s (default 420): a measurement that would end past it is skipped and the report says so;
the report files are rewritten after every row, so a killed run still returns what it measured.
Writes gpu_check.json and gpu_check.md under --out (gpu_check.sh adds gpu_check.log).
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import importlib
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # peak.py beside this file
from peak import graph_flops  # noqa: E402  (the FLOP count fps.py reports too)
TINY = ROOT / "tests/data/official/tiny_dev"
NUM_CLASSES = 150

# mode -> (autocast dtype, TF32, torch.compile mode, peak precision)
MODES = {
    "fp32-eager": (None, False, None, "fp32"),
    "tf32-eager": (None, True, None, "tf32"),
    "fp16-autocast-eager": ("float16", False, None, "fp16"),
    "bf16-autocast-eager": ("bfloat16", False, None, "bf16"),
    "fp16-autocast-compile": ("float16", False, "default", "fp16"),
    "fp16-autocast-compile-cudagraphs": ("float16", False, "reduce-overhead", "fp16"),
}
ONNX_MODE = "onnx-fp16-ort"
GEMMS = {"fp16": ("float16", False), "bf16": ("bfloat16", False), "fp32": ("float32", False), "tf32": ("float32", True)}


def ensure_sanrt() -> str:
    """Import sanrt.model, mapping the checkout's folders onto sanrt.* when it is not installed."""
    try:
        importlib.import_module("sanrt.model")
        return "installed"
    except ImportError as e:
        if e.name not in ("sanrt", "sanrt.model"):
            raise  # sanrt is there but one of its needs is not: say which
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    site = Path(tempfile.mkdtemp(prefix="sanrt_site_"))
    atexit.register(shutil.rmtree, site, ignore_errors=True)
    (site / "sanrt").mkdir()
    for name in ("model", "runtime", "export"):
        (site / "sanrt" / name).symlink_to(ROOT / name, target_is_directory=True)
    dist = site / f"sanrt-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sanrt\nVersion: {version}\n")
    sys.path.insert(0, str(site))
    for m in [m for m in sys.modules if m == "sanrt" or m.startswith("sanrt.")]:
        del sys.modules[m]
    importlib.invalidate_caches()
    importlib.import_module("sanrt.model")
    return f"checkout folders mapped onto sanrt.* ({site})"


def timed(fn, runs: int, warmup: int, sync, max_s: float) -> dict:
    """Warm-up, then up to `runs` timed calls (at least 3, fewer past `max_s`), synchronised."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    t_end = time.perf_counter() + max_s
    for i in range(runs):
        t = time.perf_counter()
        last = fn()
        sync()
        times.append(time.perf_counter() - t)
        if i >= 2 and time.perf_counter() > t_end:
            break
    times.sort()
    return {"median_ms": 1e3 * statistics.median(times), "p90_ms": 1e3 * times[min(len(times) - 1, int(0.9 * len(times)))],
            "min_ms": 1e3 * times[0], "runs": len(times), "warmup": warmup, "last": last}


def nvidia_smi(fields: str) -> str | None:
    try:
        p = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=20)
        return p.stdout.strip() or p.stderr.strip() or None
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({type(e).__name__})"


def environment(torch, cuda: bool) -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
           "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or platform.machine()})",
           "cpu_threads": torch.get_num_threads()}
    if cuda:
        p = torch.cuda.get_device_properties(0)
        env["gpu"] = {"capability": f"{p.major}.{p.minor}", "sms": p.multi_processor_count,
                      "memory_gib": round(p.total_memory / 2**30, 1)}
    env["nvidia_smi"] = nvidia_smi("name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,"
                                   "clocks.max.mem,power.limit,temperature.gpu")
    for mod in ("torchvision", "open_clip", "timm", "triton", "onnx", "onnxslim", "onnxruntime", "tensorrt"):
        try:
            m = importlib.import_module(mod)
            env[mod] = getattr(m, "__version__", "?")
        except Exception as e:  # missing or not loadable: record why
            env[mod] = f"unavailable ({type(e).__name__}: {str(e)[:80]})"
    try:
        import onnxruntime as ort

        env["onnxruntime_providers"] = ort.get_available_providers()
    except Exception:
        pass
    return env


@contextlib.contextmanager
def precision_flags(torch, cuda: bool, tf32: bool):
    """FP32 matmuls and cuDNN convolutions with TF32 on or off (CUDA only), restored after."""
    if not cuda:
        yield
        return
    old = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old[0])
        torch.backends.cudnn.allow_tf32 = old[1]


def gemm_peaks(torch, dev, cuda: bool, n: int, sync, max_s: float) -> dict:
    """{precision: {"tflops": median rate, "best_tflops", "n", "ms"}} for an n^3 matmul."""
    out = {}
    flop = 2.0 * n**3
    reps = 10 if cuda else 1  # matmuls per timed sample: the sync is not part of the rate
    for key, (dtype, tf32) in GEMMS.items():
        g = torch.Generator(device=dev).manual_seed(0)
        a = torch.randn(n, n, device=dev, dtype=getattr(torch, dtype), generator=g)
        b = torch.randn(n, n, device=dev, dtype=getattr(torch, dtype), generator=g)
        c = torch.empty_like(a)

        def fn():
            for _ in range(reps):
                torch.mm(a, b, out=c)

        with precision_flags(torch, cuda, tf32):
            t = timed(fn, runs=10, warmup=3, sync=sync, max_s=max_s)
        out[key] = {"tflops": flop * reps / (t["median_ms"] / 1e3) / 1e12, "best_tflops": flop * reps / (t["min_ms"] / 1e3) / 1e12,
                    "n": n, "ms": t["median_ms"] / reps, "dtype": dtype, "tf32": tf32 if cuda else "n/a (CPU)"}
    if cuda:
        torch.cuda.empty_cache()
    return out


def sample_images(torch, batch: int, side: int):
    """[batch,3,side,side] uint8: the fixtures' two natural images, cropped, flipped and rescaled in
    brightness per element (random noise when the fixtures are missing), and sizes [batch,2]."""
    import numpy as np
    import torch.nn.functional as F

    base = []
    for name in ("astronaut", "chelsea"):
        p = TINY / f"{name}.npz"
        if p.is_file():
            base.append(torch.from_numpy(np.load(p)["model_input_chw_u8"]))
    if not base:
        g = torch.Generator().manual_seed(0)
        return (torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=g),
                torch.full((batch, 2), side, dtype=torch.int64))
    out = []
    for i in range(batch):
        img = base[i % len(base)]
        h, w = img.shape[-2:]
        s = min(h, w)
        dy, dx = (7 * i) % (h - s + 1), (13 * i) % (w - s + 1)
        x = img[:, dy:dy + s, dx:dx + s].float()[None]
        if s != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        if (i // 2) % 2:
            x = x.flip(-1)
        x = x * (0.7 + 0.6 * ((i * 0.37) % 1.0))
        out.append(x.round().clamp(0, 255).to(torch.uint8)[0])
    return torch.stack(out), torch.full((batch, 2), side, dtype=torch.int64)


class Accuracy:
    """Low-precision outputs against the FP32 eager reference of the same batch."""

    def __init__(self, torch):
        self.torch = torch
        self.refs: dict[int, tuple] = {}
        self.w = None

    def set_reference(self, batch: int, mask_logits, mask_emb) -> dict:
        torch = self.torch
        self.refs[batch] = (mask_logits.float(), mask_emb.float())
        if self.w is None:  # fixed random classifier, the reference's common direction projected out
            d = mask_emb.shape[-1]
            g = torch.Generator().manual_seed(0)
            w = torch.randn(NUM_CLASSES + 1, d, generator=g).to(mask_emb.device)
            v = torch.nn.functional.normalize(mask_emb.float().reshape(-1, d).mean(0), dim=0)
            w = w - (w @ v)[:, None] * v
            self.w = 100.0 * torch.nn.functional.normalize(w, dim=-1)
        pix, query = self.labels(*self.refs[batch])
        self.refs[batch] += (pix, query)
        return {"distinct_pixel_labels": int(pix.unique().numel()), "distinct_query_classes": int(query.unique().numel()),
                "label_grid": list(pix.shape[1:])}

    def labels(self, mask_logits, mask_emb):
        cls = (mask_emb.float() @ self.w.t()).softmax(-1)[..., :NUM_CLASSES]  # [B,Q,K]
        pix = self.torch.einsum("bqk,bqhw->bkhw", cls, mask_logits.float().sigmoid())
        return pix.argmax(1), cls.argmax(-1)

    def compare(self, batch: int, mask_logits, mask_emb) -> dict | None:
        if batch not in self.refs:
            return None
        torch = self.torch
        ref_logits, ref_emb, ref_pix, ref_query = self.refs[batch]
        mask_logits, mask_emb = mask_logits.float().to(ref_emb.device), mask_emb.float().to(ref_emb.device)
        cos = torch.nn.functional.cosine_similarity(mask_emb, ref_emb, dim=-1).nan_to_num(-1.0)
        pix, query = self.labels(mask_logits, mask_emb)
        return {"emb_cos_min": float(cos.min()), "emb_cos_mean": float(cos.mean()),
                "pixel_label_agreement": float((pix == ref_pix).float().mean()),
                "query_class_agreement": float((query == ref_query).float().mean()),
                "mask_logit_max_abs_err": float((mask_logits - ref_logits).abs().max()),
                "mask_logit_max_abs_ref": float(ref_logits.abs().max())}


class Report:
    def __init__(self, out: Path, data: dict):
        self.out, self.data = out, data

    def row(self, row: dict) -> dict:
        self.data["rows"].append(row)
        print(json.dumps(row), flush=True)
        self.write()
        return row

    def write(self) -> None:
        d = self.data
        (self.out / "gpu_check.json").write_text(json.dumps(d, indent=1, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(d))


def _f(v, spec: str, scale: float = 1.0) -> str:
    return "" if v is None else format(v * scale, spec)


def markdown(d: dict) -> str:
    env = d["env"]
    title = f"# GPU check{' DRY RUN (CPU, tiny config: numbers mean nothing)' if d['dry_run'] else ''}: {env['device']}"
    lines = [title, "",
             f"{d['date']}; {d['model']}; input {d['input']}; python {env['python']}, torch {env['torch']}, "
             f"CUDA {env['cuda']}, cuDNN {env['cudnn']}; nvidia-smi: {env.get('nvidia_smi')}; "
             f"after the GEMMs: {env.get('nvidia_smi_after_gemm')}", ""]
    fl = d.get("flops_per_image")
    lines.append(f"Graph FLOPs per image: {_f(fl, '.1f', 1e-9)} GFLOP ({', '.join(f'{k} {v / 1e9:.1f}' for k, v in (d.get('flops_parts') or {}).items())})"
                 if fl else f"Graph FLOPs per image: {d.get('flops_skipped', 'not measured')}")
    lines += ["", "| GEMM | n | ms | TFLOP/s (median) | best | compute floor ms/img |", "|---|---|---|---|---|---|"]
    for k, g in (d.get("gemm") or {}).items():
        lines.append(f"| {k} | {g['n']} | {g['ms']:.3f} | {g['tflops']:.4g} | {g['best_tflops']:.4g} | "
                     f"{_f(d['compute_floor_ms_per_image'].get(k), '.3f')} |")
    if not d.get("gemm"):
        lines.append(f"| skipped: {d.get('gemm_skipped', '?')} | | | | | |")
    lines += ["", "| mode | batch | median ms | p90 ms | img/s | ms/img | TFLOP/s | of peak | compile s | emb cos min | "
              "pixel labels | query classes | note |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        if r.get("skipped"):
            lines.append(f"| {r['mode']} | {r['batch']} | skipped: {r['skipped']} |" + " |" * 10)
            continue
        a = r.get("accuracy") or {}
        lines.append(" | ".join([
            f"| {r['mode']}", str(r["batch"]), _f(r["median_ms"], ".2f"), _f(r["p90_ms"], ".2f"),
            _f(r.get("images_per_s"), ".1f"), _f(r.get("ms_per_image"), ".3f"), _f(r.get("achieved_tflops"), ".4g"),
            _f(r.get("fraction_of_peak"), ".1%") + (f" ({r['peak']})" if r.get("peak") else ""),
            _f(r.get("compile_s"), ".1f"), _f(a.get("emb_cos_min"), ".5f"), _f(a.get("pixel_label_agreement"), ".2%"),
            _f(a.get("query_class_agreement"), ".2%"), (r.get("note") or "") + " |"]))
    refs = d.get("reference_labels") or {}
    lines += ["", f"Accuracy: against fp32-eager on the same inputs. {d['accuracy_method']}",
              "Reference spread: " + "; ".join(f"batch {b}: {v['distinct_pixel_labels']} distinct pixel labels, "
                                              f"{v['distinct_query_classes']} distinct query classes" for b, v in refs.items()),
              "", f"Elapsed {d.get('elapsed_s', 0):.0f} s of a {d['budget_s']:.0f} s budget." + "".join(f" {n}" for n in d["notes"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dry-run", action="store_true",
                    help="CPU, tiny fixture config, 128x128, batch 1 and 2, 2 runs: every non-CUDA branch, < 60 s")
    ap.add_argument("--budget-s", type=float, default=None, help="skip measurements that would end past this (420; dry-run 60)")
    ap.add_argument("--batches", default=None, help="comma-separated (1,32; dry-run 1,2)")
    ap.add_argument("--size", type=int, default=None, help="square padded input side (640; dry-run 128)")
    ap.add_argument("--modes", default=",".join([*MODES, ONNX_MODE]), help="comma-separated subset of the rows' modes")
    ap.add_argument("--gemm-n", type=int, default=None, help="GEMM side (8192; dry-run 256)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    dry = args.dry_run
    budget = args.budget_s if args.budget_s is not None else (60.0 if dry else 420.0)
    batches = [int(b) for b in (args.batches or ("1,2" if dry else "1,32")).split(",")]
    side = args.size or (128 if dry else 640)
    gemm_n = args.gemm_n or (256 if dry else 8192)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - {*MODES, ONNX_MODE}
    if unknown:
        ap.error(f"unknown modes {sorted(unknown)}")

    sanrt_import = ensure_sanrt()
    import torch
    from sanrt.model import SAN, from_fixture_config, preset
    from sanrt.model.random_init import spread_random_init_

    cuda = torch.cuda.is_available()
    if not cuda and not dry:
        print("no CUDA device: run with --dry-run on CPU", file=sys.stderr)
        return 2
    if dry:
        torch.set_num_threads(1)  # light on a shared CPU, and no thread-pool waits under contention
    dev = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(torch, cuda)
    env["sanrt"] = sanrt_import
    # warm-up / timed runs per batch, and the longest a timed loop may run
    if dry:
        runs, warmup, max_s = {b: 2 for b in batches}, {b: 1 for b in batches}, 5.0
    else:
        runs = {b: 50 if b < 8 else 20 for b in batches}
        warmup = {b: 10 if b < 8 else 3 for b in batches}
        max_s = 15.0
    cfg = from_fixture_config(TINY / "tiny_config.json") if dry else preset("vit_b_16")
    data = {
        "dry_run": dry, "date": time.strftime("%Y-%m-%d %H:%M"), "env": env, "budget_s": budget,
        "model": ("tiny_dev fixture config" if dry else "SAN ViT-B/16") + " (random weights, spread_random_init_)",
        "input": f"{side}x{side} uint8, batches {batches}", "batches": batches, "size": side,
        "plan": [{"mode": m, "batch": b} for m in modes for b in batches],
        "accuracy_method": (f"emb cos min = least cosine of the [B,Q,D] mask embeddings; a fixed random {NUM_CLASSES}-class "
                            "classifier (+ background row, rows L2-normalised x 100, the FP32 reference's mean embedding "
                            "direction projected out) gives class logits = mask_emb @ W^T; pixel labels = agreement of "
                            "argmax_k sum_q sigmoid(mask_logits) softmax(class logits)[:K] at mask resolution (H/16); "
                            "query classes = agreement of each query's argmax class."),
        "rows": [], "notes": [], "peak_tflops": {}, "gemm": {}, "compute_floor_ms_per_image": {},
        "flops_per_image": None, "flops_parts": None, "reference_labels": {},
    }
    if cuda:
        data["notes"].append("fp32-eager runs with TF32 off for matmuls and cuDNN (the reference); tf32-eager with both on.")
    else:
        data["notes"].append("CPU: TF32 flags do not apply (tf32 rows are plain FP32); compile rows use "
                             "torch.compile(backend='eager') (Dynamo only, no Inductor, no CUDA graphs) at batch 1.")
    rep = Report(args.out, data)
    rep.write()

    def elapsed() -> float:
        return time.perf_counter() - t_start

    def over_budget(expect_s: float) -> str | None:
        if elapsed() + expect_s > budget:
            return f"time budget: {elapsed():.0f} s spent + about {expect_s:.0f} s expected > {budget:.0f} s"
        return None

    # 1. GEMM peaks
    why = over_budget(5.0)
    if why:
        data["gemm_skipped"] = why
    else:
        data["gemm"] = gemm_peaks(torch, dev, cuda, gemm_n, sync, max_s)
        data["peak_tflops"] = {k: v["tflops"] for k, v in data["gemm"].items()}
        env["nvidia_smi_after_gemm"] = nvidia_smi("clocks.sm,clocks.mem,power.draw,temperature.gpu")
        print("GEMM peaks TFLOP/s:", json.dumps({k: float(f"{v:.4g}") for k, v in data["peak_tflops"].items()}), flush=True)
    rep.write()

    # 2. the model, inputs, FLOPs
    torch.manual_seed(0)
    t = time.perf_counter()
    model = spread_random_init_(SAN(cfg).eval()).to(dev)
    data["model_build_s"] = time.perf_counter() - t
    inputs = {}
    for b in batches:
        x, s = sample_images(torch, b, side)
        inputs[b] = (x.to(dev), s.to(dev))
    why = over_budget(5.0)
    if why:
        data["flops_skipped"] = why
    else:
        with precision_flags(torch, cuda, False):
            fl = graph_flops(model, tuple(inputs[batches[0]][0].shape[-2:]), device=inputs[batches[0]][0].device)
        data["flops_per_image"], data["flops_parts"] = fl["total"], fl["parts"]
        data["compute_floor_ms_per_image"] = {k: 1e3 * fl["total"] / (p * 1e12) for k, p in data["peak_tflops"].items() if p}
    rep.write()
    acc = Accuracy(torch)

    def finish_row(row: dict, mode_peak: str, batch: int, outs) -> dict:
        row["images_per_s"] = batch / (row["median_ms"] / 1e3)
        row["ms_per_image"] = row["median_ms"] / batch
        fl = data["flops_per_image"]
        peak = data["peak_tflops"].get(mode_peak)
        row["peak"] = mode_peak
        if fl:
            row["achieved_tflops"] = fl * row["images_per_s"] / 1e12
            if peak:
                row["peak_tflops"] = peak
                row["fraction_of_peak"] = row["achieved_tflops"] / peak
        if outs is not None:
            row["accuracy"] = acc.compare(batch, *outs)
        return row

    # 3. PyTorch rows
    expect_compile = 90.0 if cuda else 10.0  # seconds for one compile until one has been measured
    for mode in [m for m in MODES if m in modes]:
        amp, tf32, compile_mode, peak_key = MODES[mode]
        for b in batches:
            base = {"mode": mode, "batch": b}
            if compile_mode and dry and b != batches[0]:
                rep.row({**base, "skipped": "dry-run: compile rows at the first batch only"})
                continue
            why = over_budget(expect_compile if compile_mode else (10.0 if cuda else 2.0))
            if why:
                rep.row({**base, "skipped": why})
                continue
            x, sz = inputs[b]
            note = []
            try:
                net = model
                if compile_mode:
                    torch._dynamo.reset()
                    if cuda:
                        net = torch.compile(model, mode=None if compile_mode == "default" else compile_mode, dynamic=False)
                    else:
                        net = torch.compile(model, backend="eager", dynamic=False)
                        note.append("dry-run: backend='eager'")
                graphs = compile_mode == "reduce-overhead" and cuda

                def call():
                    if graphs:
                        torch.compiler.cudagraph_mark_step_begin()
                    with torch.no_grad(), torch.autocast(dev.type, dtype=getattr(torch, amp or "bfloat16"), enabled=amp is not None):
                        return net(x, sz)

                with precision_flags(torch, cuda, tf32):
                    compile_s = None
                    if compile_mode:  # first calls: compile (and CUDA-graph recording), timed apart
                        t = time.perf_counter()
                        for _ in range(3 if graphs else 1):
                            call()
                        sync()
                        first_s = time.perf_counter() - t
                    row = {**base, **timed(call, runs[b], warmup[b], sync, max_s)}
                    if compile_mode:
                        compile_s = first_s - (3 if graphs else 1) * row["median_ms"] / 1e3
                        row["compile_s"] = compile_s
                        expect_compile = max(30.0 if cuda else 5.0, 1.3 * first_s)
                    # the last timed call's outputs (a CUDA graph's stay valid until its next replay)
                    outs = [o.detach().clone() for o in row.pop("last")]
                    sync()
            except Exception as e:  # a failing mode must not cost the rest of the call
                rep.row({**base, "skipped": f"failed: {type(e).__name__}: {str(e)[:300]}"})
                continue
            finally:
                if compile_mode:
                    del net
                    torch._dynamo.reset()
                    if cuda:
                        torch.cuda.empty_cache()
            if mode == "fp32-eager":
                data["reference_labels"][b] = acc.set_reference(b, *outs)
                note.append("accuracy reference")
            row["amp"] = amp
            row["note"] = "; ".join(note) or None
            rep.row(finish_row(row, peak_key, b, None if mode == "fp32-eager" else outs))
            del outs

    # 4. FP16 ONNX graph under ONNX Runtime
    if ONNX_MODE in modes:
        onnx_rows(torch, model, cuda, dry, batches, inputs, runs, warmup, max_s, rep, over_budget, finish_row)

    data["elapsed_s"] = elapsed()
    rep.write()
    print((args.out / "gpu_check.md").read_text())
    return 0


def onnx_rows(torch, model, cuda, dry, batches, inputs, runs, warmup, max_s, rep, over_budget, finish_row) -> None:
    """The FP16 ONNX image graph (sanrt's FP16 export) under ONNX Runtime: CUDA provider on the GPU;
    in a dry run the CPU provider (the code path only)."""
    def skip_all(why: str) -> None:
        for b in batches:
            rep.row({"mode": ONNX_MODE, "batch": b, "skipped": why})

    try:
        import onnxruntime as ort
    except ImportError as e:
        return skip_all(f"no onnxruntime ({e})")
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        provider = "CUDAExecutionProvider"
    elif dry:
        provider = "CPUExecutionProvider"
    else:
        return skip_all(f"no onnxruntime CUDA provider (onnxruntime {ort.__version__} has {providers}; "
                        "onnxruntime-gpu's wheel is larger than one call carries)")
    why = over_budget(60.0 if cuda else 20.0)
    if why:
        return skip_all(why)
    try:
        from sanrt.export.fp16 import to_fp16
        from sanrt.export.onnx_export import ExportRanges, _finish, trace_fp32_for_fp16
    except ImportError as e:
        return skip_all(f"the FP16 export needs {e.name}")
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cpu_model = copy.deepcopy(model).cpu().float() if cuda else model
            g16 = to_fp16(trace_fp32_for_fp16(cpu_model, "image", ExportRanges(batch=(1, max(batches)))))
            del cpu_model
            path = Path(tmp) / "image_fp16.onnx"
            _finish(g16, path, "SAN image graph, FP16 (gpu_check)")
            del g16
            export_s = time.perf_counter() - t
            opts = ort.SessionOptions()
            if not cuda:
                opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), opts, providers=[provider])
        except Exception as e:
            return skip_all(f"export or session failed: {type(e).__name__}: {str(e)[:300]}")
        for b in batches:
            base = {"mode": ONNX_MODE, "batch": b}
            why = over_budget(15.0 if cuda else 3.0)
            if why:
                rep.row({**base, "skipped": why})
                continue
            feeds = {"images": inputs[b][0].cpu().numpy(), "sizes": inputs[b][1].cpu().numpy()}
            try:
                row = {**base, **timed(lambda: sess.run(["mask_logits", "mask_emb"], feeds), runs[b], warmup[b],
                                       lambda: None, max_s)}
                logits, emb = row.pop("last")
            except Exception as e:
                rep.row({**base, "skipped": f"failed: {type(e).__name__}: {str(e)[:300]}"})
                continue
            row["export_s"] = export_s
            row["note"] = (f"{provider}; times include host-device copies"
                           + ("; dry-run: CPU provider, code path only" if provider == "CPUExecutionProvider" else ""))
            rep.row(finish_row(row, "fp16", b, (torch.from_numpy(logits), torch.from_numpy(emb))))


if __name__ == "__main__":
    sys.exit(main())
