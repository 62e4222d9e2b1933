"""One speed harness for every path, in the same run, on the same inputs, against PyTorch.

    python benchmarks/fps.py --preset vit_b_16 --random-init                 # full report (CPU)
    python benchmarks/fps.py --preset vit_b_16 --random-init --quick         # main comparison only
    python benchmarks/fps.py --config tests/data/official/tiny_dev/tiny_config.json \\
        --checkpoint tests/data/official/tiny_dev/checkpoint.pth --runs 2 --quick

Paths: PyTorch eager FP32 (the official-style baseline), PyTorch BF16 autocast (the strongest
PyTorch setting on CPUs with BF16/AMX), torch.compile (--compile; compile time reported), ONNX
Runtime FP32 and INT8, OpenVINO FP32, BF16 and INT8 (NNCF), each reading the same export; TensorRT
with --engines, enqueued and as a CUDA graph (GPU; not run yet).
Timed unit ("model"): preprocessing + image graph + vocabulary head for a batch (post-processing
is the same numpy code for every runtime path and is reported in the end-to-end split). Every
low-precision path has its accuracy measured against PyTorch FP32 on the sample photos (label
agreement, mask-embedding cosine). Timings interleave the paths (A B C A B C ...), after warm-up;
medians, p90, p99 and throughput. Writes fps.json, fps.md and fps.png under
benchmarks/results/<machine>/ (or --results).
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sanrt.benchmarks.lib.environment import machine_info
from sanrt.benchmarks.lib.peak import GEMM, gemm_peaks, graph_flops
from sanrt.benchmarks.lib.photos import input_of, sample_photos
from sanrt.benchmarks.lib.report import results_dir, write_report
from sanrt.benchmarks.lib.timing import interleaved
from sanrt.evaluation import verify
from sanrt.evaluation.verify import PROBE_NOTE
from sanrt.export.models import add_model_arguments, model_from_args, model_name
from sanrt.export.onnx_export import export
from sanrt.export.quantize import add_variant
from sanrt.model import SAN
from sanrt.model.pipeline import TorchSegmenter
from sanrt.runtime import choice, cli, logs
from sanrt.runtime.backends import BY_NAME, PATHS
from sanrt.runtime.errors import ConfigError, SanrtError
from sanrt.runtime.images import load_image
from sanrt.runtime.machine import cpu_flags, int8_weight_bits, matrix_tier
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.segmenter import Segmenter
from sanrt.runtime.visualize import label_png
from sanrt.runtime.datasets import dataset_vocabulary

ROOT = Path(__file__).resolve().parents[1]
GEMM_DESC = f"[{GEMM[0]}x{GEMM[1]}] x [{GEMM[1]}x{GEMM[2]}] (benchmarks/lib/peak.py)"
VOCABS = {20: lambda: dataset_vocabulary("voc20"), 150: lambda: dataset_vocabulary("ade150"),
          847: lambda: dataset_vocabulary("ade847")}
RUNTIME_PATHS = tuple(p.name for p in PATHS if p.device == "cpu")  # the registry's CPU paths
TORCH_PATHS = ("torch-fp32", "torch-bf16", "torch-compile")
BF16_PATHS = ("torch-bf16", "ov-bf16", "ov-int8-bf16")  # native only with AVX512-BF16 or AMX
STATIC_INT8 = ("ov-int8", "ov-int8-bf16")  # NNCF calibration: minutes to make (16 on a 2-core Zen 3)
ALL_PATHS = ("torch-fp32", "torch-bf16", "ort-fp32", "ort-int8dyn", "ov-fp32", "ov-bf16", "ov-int8", "ov-int8-bf16")


def default_paths(tier: str, quick: bool) -> tuple[list[str], dict]:
    """(paths, {left-out path: why}): the paths this CPU runs natively; --quick also leaves out the
    graphs that take minutes to make, so it stays within minutes on 2 cores of any kind."""
    skipped = {}
    for p in ALL_PATHS:
        if p in BF16_PATHS and tier not in ("amx", "bf16"):
            skipped[p] = (f"this CPU ({tier}) has no BF16 instructions: PyTorch and OpenVINO would emulate BF16 "
                          "(minutes); name it in --paths to run it, marked emulated")
        elif quick and p in STATIC_INT8:
            skipped[p] = "--quick: NNCF static INT8 takes minutes to calibrate; name it in --paths to run it"
    return [p for p in ALL_PATHS if p not in skipped], skipped


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- paths ----------------------------------------------------------------------------------------
class TorchPath:
    """PyTorch baselines: eager FP32, BF16 autocast, or torch.compile (FP32)."""

    def __init__(self, name: str, model: SAN):
        self.name = name
        self.seg = TorchSegmenter(model)
        self.autocast = name == "torch-bf16"
        self.compile_s = None
        self.extra_warmup = 0
        if name == "torch-compile":
            # one static graph per input size (dynamic shapes recompiled inside the timed runs)
            self.seg.model = torch.compile(model, dynamic=False)
            self.extra_warmup = 2  # compile_s: the first call at the timed size (compile + one run)

    def set_vocabulary(self, names):
        self.vocab = self.seg.vocabulary(names)

    def encode(self, images):
        """The image graph and the head, timed together as the runtime paths' encode."""
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            enc = self.seg.encode_images(images)
            enc.logits = SAN.classify(torch.from_numpy(enc.mask_emb), torch.from_numpy(np.array(self.vocab.class_weights)))
        return enc

    def finish(self, enc):
        return self.seg.classify(enc, self.vocab)


class RuntimePath:
    def __init__(self, name: str, export_dir: Path, threads: int):
        self.name = name
        if name.startswith("trt"):  # export_dir is then an engine folder (export/build_engine.py)
            self.seg = Segmenter(export_dir, cuda_graph=name == "trt-cudagraph")
            return
        backend, precision = BY_NAME[name].backend, BY_NAME[name].precision
        sanrt_log = logging.getLogger("sanrt")
        level = sanrt_log.level
        sanrt_log.setLevel(logging.ERROR)  # no "not verified here" warning: this run is the verification
        try:
            self.seg = Segmenter(export_dir, backend=backend, precision=precision, device="cpu", threads=threads)
        finally:
            sanrt_log.setLevel(level)

    def set_vocabulary(self, names, use_cache: bool = True):
        self.vocab = self.seg.vocabulary(names, use_cache)

    def encode(self, images):
        enc = self.seg.encode_images(images)
        enc.logits = self.seg.head_graph.infer({"mask_emb": enc.mask_emb, "class_weights": self.vocab.class_weights})
        return enc

    def finish(self, enc):
        return self.seg.classify(enc, self.vocab)


# ---- accuracy -------------------------------------------------------------------------------------
def answers(path, photos: dict) -> dict:
    """{photo: Segmentation} of one path, each photo alone."""
    return {n: path.finish(path.encode([img]))[0] for n, img in photos.items()}


def accuracy(paths: list, ref_path: TorchPath, photos: dict) -> tuple[dict, dict]:
    """sanrt.evaluation.verify.accuracy of every path against PyTorch FP32 on the photos."""
    return verify.accuracy({p.name: answers(p, photos) for p in paths}, answers(ref_path, photos))


STRESS = {"magnitude": 3000.0, "channels": 4, "normed_gain": 40.0}  # add_outlier_channels_'s settings


def stress_accuracy(model: SAN, weights_desc: str, export_dir: Path, names: list[str], photos: dict, vocab: list[str],
                    threads: int) -> dict:
    """Accuracy of the runtime paths `names` on the outlier-stress variant of `model` (residual
    outliers of 3000 and post-LayerNorm outlier channels 40x the rest, as trained CLIP has; FP32
    function unchanged), against that variant in PyTorch FP32. Its export, with the same variants
    made by the same recipes, lives beside the export as <name>_stress. Returns what accuracy() does."""
    import copy

    import open_clip
    from sanrt.model.random_init import add_outlier_channels_
    from sanrt.runtime.preprocess import pad_batch, prepare

    stressed = copy.deepcopy(model)
    batch, sizes = pad_batch([prepare(photos["astronaut"])])
    tokens = open_clip.tokenize(["a photo of a cat.", "There is a large building in the scene."])
    add_outlier_channels_(stressed, torch.from_numpy(batch), torch.from_numpy(sizes), tokens, **STRESS)
    desc = f"{weights_desc}; outlier stress ({', '.join(f'{k} {v:g}' for k, v in STRESS.items())})"
    sdir = export_dir.parent / f"{export_dir.name}_stress"
    try:
        fresh = Manifest.load(sdir).weights != desc
    except SanrtError:
        fresh = True
    if fresh:
        export(stressed, sdir, desc, progress=log)
    ensure_variants(sdir, names, like=export_dir)  # the same recipes as the export measured
    ref = TorchPath("torch-fp32", stressed)
    paths = [RuntimePath(n, sdir, threads) for n in names]
    for p in [ref, *paths]:
        p.set_vocabulary(vocab)
    log(f"accuracy on the outlier-stress variant: {', '.join(names)}")
    return accuracy(paths, ref, photos)


def ensure_variants(export_dir: Path, names: list[str], like: Path | None = None) -> None:
    """Add the INT8 image graphs the runtime paths `names` read, where the export lacks them (or,
    with `like`, where its graph was made with other quantisation settings than like's)."""
    def recipe(folder: Path, prec: str) -> dict:
        q = dict(Manifest.load(folder).quantization.get(prec, {}))
        q.pop("seconds", None)
        return q

    for p in names:
        prec = BY_NAME[p].graph if p in BY_NAME else "fp32"
        if prec not in ("int8", "int8dyn"):
            continue
        have = prec in Manifest.load(export_dir).graphs["image"].variants
        # a graph quantised for another CPU tier is made again with this tier's recipe
        other_tier = have and recipe(export_dir, prec).get("weight_bits", 8) != int8_weight_bits()
        if not have or other_tier or (like is not None and recipe(export_dir, prec) != recipe(like, prec)):
            add_variant(export_dir, "static" if prec == "int8" else "dynamic", progress=log)


def end_to_end_split(path: RuntimePath, img: np.ndarray, out_dir: Path, runs: int) -> dict:
    """decode -> preprocess -> image graph -> head -> postprocess -> PNG, per stage, medians."""
    src = out_dir / "e2e_input.png"
    Image.fromarray(img).save(src)
    rows = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        im = load_image(src)
        t1 = time.perf_counter()
        r = path.seg.segment([im], path.vocab)[0]
        t2 = time.perf_counter()
        label_png(r.labels).save(out_dir / "e2e_labels.png")
        t3 = time.perf_counter()
        rows.append({"decode": t1 - t0, **{k.removesuffix("_s"): v for k, v in r.timings.items() if k.endswith("_s")},
                     "png": t3 - t2})
    rows = rows[1:]
    (out_dir / "e2e_input.png").unlink()
    (out_dir / "e2e_labels.png").unlink()
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


# ---- report ----------------------------------------------------------------------------------------
# the precision whose GEMM peak bounds each path (ONNX Runtime's FP16 graph computes in FP32 on CPUs)
PEAK_PRECISION = {"torch-fp32": "fp32", "torch-compile": "fp32", "torch-bf16": "bf16", "ort-fp32": "fp32",
                  "ort-fp16": "fp32", "ort-int8dyn": "int8", "ov-fp32": "fp32", "ov-bf16": "bf16", "ov-int8": "int8",
                  "ov-int8-bf16": "int8"}


def choosable(name: str, acc: dict, stress: dict) -> bool:
    """Whether the automatic choice would take this path with these measurements."""
    return verify.choosable(name, acc, stress.get(name))


def strongest_torch(timings: dict) -> str | None:
    """The faster of PyTorch BF16 autocast and torch.compile, where measured."""
    cands = [n for n in ("torch-bf16", "torch-compile") if n in timings]
    return min(cands, key=lambda n: timings[n]["median_s"]) if cands else None


def to_markdown(rep: dict) -> str:
    m = rep["machine"]
    lines = [f"# Speed: {rep['title']}", "",
             f"- machine: {m['cpu']}; {os.cpu_count()} cores; flags {', '.join(rep['cpu_flags'])}; "
             f"{rep['threads']} threads; load average before {rep['loadavg_before']}, after {rep['loadavg_after']}",
             f"- versions: torch {m['torch']}, onnxruntime {m['onnxruntime']}, openvino {rep.get('openvino', '-')}",
             f"- weights: {rep['weights']}; timed unit: preprocessing + image graph + head; "
             f"{rep['runs']} interleaved runs after {rep['warmup']} warm-up",
             f"- date: {rep['date']}", ""]
    main = rep["main"]
    base = main["timings"]["torch-fp32"]["median_s"]
    strongest = strongest_torch(main["timings"])
    stress = rep.get("stress") or {}
    flops, peaks = rep.get("flops"), rep.get("peaks") or {}
    lines += [f"## {main['label']}", "",
              f"| path | median s | p90 s | p99 s | img/s | vs PyTorch FP32 | vs strongest PyTorch ({strongest or '-'}) "
              "| label agreement: vocabulary, probe | mask-emb cos (min) | stress: vocabulary, probe, cos | GFLOP/s "
              "| of FP32 peak | of its precision's peak |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    emulated = set(rep.get("emulated") or ())
    for name, t in sorted(main["timings"].items(), key=lambda kv: kv[1]["median_s"]):
        acc = rep["accuracy"].get(name, {})
        recipe = (rep.get("int8_recipes") or {}).get(BY_NAME[name].graph if name in BY_NAME else None)
        label = name + (" (emulated BF16)" if name in emulated else "") + \
            (f" ({recipe['weight_bits']}-bit weights)" if recipe and recipe.get("weight_bits") else "")
        vs = f"{main['timings'][strongest]['median_s'] / t['median_s']:.2f}x" if strongest else "-"
        ties = f" ({acc['tie_fraction']:.2%} ties apart)" if "tie_fraction" in acc else ""
        agree = f"{acc['label_agreement']:.2%}{ties}, {acc['probe_label_agreement']:.2%}" if acc else "reference"
        cos = f"{acc['mask_emb_cosine_min']:.5f}" if acc else "-"
        st = (f"{stress[name]['label_agreement']:.2%}, {stress[name]['probe_label_agreement']:.2%}, "
              f"{stress[name]['mask_emb_cosine_min']:.4f}") if name in stress else "-"
        rate = flops["total"] / t["median_s"] / 1e9 if flops else None
        own = PEAK_PRECISION.get(name)
        of_fp32 = f"{rate / peaks['fp32']['gflops']:.0%}" if rate and "fp32" in peaks else "-"
        of_own = f"{rate / peaks[own]['gflops']:.0%} ({own})" if rate and own in peaks else "-"
        lines.append(f"| {label} | {t['median_s']:.3f} | {t['p90_s']:.3f} | {t['p99_s']:.3f} | {t['images_per_s']:.2f} "
                     f"| {base / t['median_s']:.2f}x | {vs} | {agree} | {cos} | {st} | {f'{rate:.0f}' if rate else '-'} "
                     f"| {of_fp32} | {of_own} |")
    if flops:
        parts = ", ".join(f"{k} {v / 1e9:.1f}" for k, v in flops["parts"].items())
        lines.append(f"\nGraph FLOPs (PyTorch flop counter, multiply-add = 2): {flops['total'] / 1e9:.1f} GFLOP per image "
                     f"({parts}). Measured GEMM peak, {GEMM_DESC}: " + "; ".join(
                         f"{k} {v['gflops']:.0f} GFLOP/s ({', '.join(f'{lib} {g:.0f}' for lib, g in v['by'].items())})"
                         for k, v in peaks.items()) + ". An INT8 path keeps some parts float, so its own-precision "
                     "fraction is a lower bound of how close its INT8 parts run to the limit.")
    if rep.get("skipped"):
        lines.append("\nLeft out on this CPU (" + rep.get("cpu_tier", "?") + "): " +
                     "; ".join(f"{p}: {why}" for p, why in rep["skipped"].items()) + ".")
    if rep.get("int8_by_tier"):
        lines += ["", "### INT8 accuracy per CPU tier (verified.json: every machine that measured these graphs)", "",
                  "| machine | path | label agreement | mask-emb cos (min) | stress: label agreement, cos |", "|---|---|---|---|---|"]
        for slug, rows in rep["int8_by_tier"].items():
            for n, a in rows.items():
                st = a.get("stress") or {}
                lines.append(f"| {slug} | {n} | {a['label_agreement']:.2%} | {a['mask_emb_cosine_min']:.4f} | "
                             + (f"{st['label_agreement']:.2%}, {st['mask_emb_cosine_min']:.4f}" if st else "-") + " |")
    if stress:
        lines.append(f"\nOutlier stress (`add_outlier_channels_`, {rep['stress_settings']}): the same recipes on the "
                     "stressed weights, against them in PyTorch FP32. INT8 paths must pass there to be chosen.")
    if rep.get("compile_s") is not None:
        lines.append(f"\ntorch.compile (dynamic=False): {rep['compile_s']:.1f} s for the first call at the timed size "
                     "(compiling, unless the accuracy pass had compiled this size already).")
    lines.append(f"\nAccuracy bounds (against PyTorch FP32 on the sample photos): label agreement (pixels where PyTorch's two best "
                 f"class scores are within FP32 rounding, 2e-4 of the largest score, counted apart as ties) >= "
                 f"{choice.MIN_LABEL_AGREEMENT:.0%} with the K={rep.get('k', 150)} dataset vocabulary and mask-embedding "
                 f"cosine >= {choice.MIN_COSINE}; INT8 paths also on the outlier-stress variant. The probe classifier "
                 f"({PROBE_NOTE}) is reported, not bounded: with random weights the vocabulary's labels hold few "
                 f"classes, and the probe's sit on near-ties. Classes in the reference's labels per photo: vocabulary "
                 f"{rep.get('reference_classes', {}).get('labels')}, probe {rep.get('reference_classes', {}).get('probe_labels')}. "
                 f"Best path meeting the bounds: {rep.get('best_path', 'none')}.")
    for sweep in rep.get("sweeps", []):
        lines += ["", f"## {sweep['label']}", "", "| " + " | ".join(["setting", *sweep["paths"]]) + " |",
                  "|" + "---|" * (len(sweep["paths"]) + 1)]
        for row in sweep["rows"]:
            cells = [f"{row['timings'][p]['median_s']:.3f} s" if p in row["timings"] else "-" for p in sweep["paths"]]
            lines.append(f"| {row['setting']} | " + " | ".join(cells) + " |")
    if rep.get("vocabulary"):
        lines += ["", "## Vocabulary size", "", "| K | model median s (best path) | text side, new vocabulary s | text side, cached s |",
                  "|---|---|---|---|"]
        for k, v in rep["vocabulary"].items():
            lines.append(f"| {k} | {v['model_median_s']:.3f} | {v['text_new_s']:.2f} | {v['text_cached_s']:.4f} |")
    if rep.get("e2e"):
        lines += ["", f"## End to end ({rep['e2e']['path']}, one image, medians)", "",
                  "| " + " | ".join(rep["e2e"]["stages"]) + " |", "|" + "---|" * len(rep["e2e"]["stages"]),
                  "| " + " | ".join(f"{v * 1000:.0f} ms" for v in rep["e2e"]["stages"].values()) + " |"]
    return "\n".join(lines) + "\n"


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = rep["main"]["timings"]
    names = sorted(t, key=lambda n: t[n]["median_s"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    med = [t[n]["median_s"] for n in names]
    colours = ["#888888" if n.startswith("torch") else "#2a7ab9" for n in names]
    ax.barh(names, med, color=colours)
    ax.errorbar(med, names, xerr=[[0] * len(names), [t[n]["p90_s"] - t[n]["median_s"] for n in names]],
                fmt="none", ecolor="black", capsize=3)
    base = t["torch-fp32"]["median_s"]
    for i, n in enumerate(names):
        acc = rep["accuracy"].get(n)
        note = "" if acc is None or choosable(n, acc, rep.get("stress") or {}) else ", accuracy below bound"
        ax.text(t[n]["p90_s"], i, f"  {med[i]:.2f} s ({base / med[i]:.1f}x{note})", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per batch (median; bar to p90)")
    ax.set_title(f"{rep['main']['label']}\n{rep['machine']['cpu']} ({', '.join(rep['cpu_flags'])}), "
                 f"{rep['threads']} threads", fontsize=9)
    ax.set_xlim(0, max(t[n]["p90_s"] for n in names) * 1.6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- main -------------------------------------------------------------------------------------------
def parse_hw(s: str) -> tuple[int, int]:
    h, w = s.lower().split("x")
    return int(h), int(w)


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap)
    cli.add_export_argument(ap, help="export folder (default out/onnx/<name>; made if needed)")
    ap.add_argument("--engines", type=Path, help="a TensorRT engine folder: adds the 'trt' and 'trt-cudagraph' paths (GPU)")
    ap.add_argument("--paths", help=f"comma-separated, from {','.join(ALL_PATHS)} (default: those this CPU runs "
                                    "natively; --quick also leaves out NNCF static INT8)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile (slow to compile)")
    ap.add_argument("--size", default="640x640", help="main comparison input HxW")
    ap.add_argument("--k", type=int, default=150, choices=sorted(VOCABS), help="main comparison vocabulary size")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="main comparison only, no sweeps")
    ap.add_argument("--stress", action="store_true",
                    help="also measure the low-precision paths' accuracy on the outlier-stress variant (the automatic "
                         "choice takes an INT8 path only when it passed there)")
    ap.add_argument("--sweep-runs", type=int, default=3)
    ap.add_argument("--batches", type=lambda v: [int(b) for b in v.split(",")], default=[1, 2, 4, 8],
                    help="batch sizes of the batch sweep (default 1,2,4,8)")
    ap.add_argument("--results", type=Path, help="report folder (default benchmarks/results/<machine>)")
    ap.add_argument("--verbose", action="store_true", help="show NNCF's and the backends' own log messages")
    args = ap.parse_args(argv)
    logs.setup(args.verbose)
    torch.set_num_threads(args.threads)
    name = model_name(args)
    export_dir = args.export or ROOT / "out" / "onnx" / name
    results = results_dir(args.results)
    load_before = os.getloadavg()
    model, weights_desc = model_from_args(args)
    try:
        m = Manifest.load(export_dir)
        fresh = m.weights != weights_desc
    except SanrtError:
        fresh = True
    if fresh:
        export(model, export_dir, weights_desc, progress=log)
        m = Manifest.load(export_dir)
    tier = matrix_tier(cpu_flags())
    if args.paths:
        wanted, skipped = args.paths.split(","), {}
    else:
        wanted, skipped = default_paths(tier, args.quick)
    wanted += ["torch-compile"] if args.compile else []
    emulated = [p for p in wanted if p in BF16_PATHS and tier not in ("amx", "bf16")]
    for p, why in skipped.items():
        log(f"left out {p}: {why}")
    unknown = [p for p in wanted if p not in RUNTIME_PATHS and p not in TORCH_PATHS]
    if unknown:
        raise ConfigError(f"unknown paths {unknown}; choose from {[*TORCH_PATHS, *RUNTIME_PATHS]}")
    ensure_variants(export_dir, wanted)
    ref = TorchPath("torch-fp32", model)
    paths = [ref] + [TorchPath(p, model) if p in TORCH_PATHS else RuntimePath(p, export_dir, args.threads)
                     for p in wanted if p != "torch-fp32"]
    if args.engines:
        paths += [RuntimePath(p, args.engines, args.threads) for p in ("trt", "trt-cudagraph")]
    photos = sample_photos()
    vocab = VOCABS[args.k]()
    torch_vocab = None
    for p in paths:
        if isinstance(p, TorchPath) and torch_vocab is not None:
            p.vocab = torch_vocab  # one model, FP32 text side: the same class weights, made once
            continue
        p.set_vocabulary(vocab)
        if isinstance(p, TorchPath):
            torch_vocab = p.vocab
    log("accuracy against PyTorch FP32 on the sample photos")
    acc, classes = accuracy([p for p in paths if p is not ref], ref, photos)
    stressed = [p for p in wanted if p in RUNTIME_PATHS and BY_NAME[p].precision != "fp32"] if args.stress else []
    stress, stress_classes = stress_accuracy(model, weights_desc, export_dir, stressed, photos, vocab, args.threads) \
        if stressed else ({}, None)
    hw = parse_hw(args.size)
    main_label = f"{name}, {hw[0]}x{hw[1]}, batch 1, K={args.k}"
    log(f"timing: {main_label}, {len(paths)} paths x {args.runs} runs")
    main_t = interleaved(paths, input_of(photos, hw, 1), args.runs, args.warmup)
    log("graph FLOPs and the machine's GEMM peaks")
    flops = graph_flops(model, hw)
    peaks = gemm_peaks(args.threads)
    rep = {"title": f"{name} on {machine_info()['cpu']}", "k": args.k, "flops": flops, "peaks": peaks, "machine": machine_info(), "cpu_flags": cpu_flags(),
           "threads": args.threads, "weights": weights_desc, "runs": args.runs, "warmup": args.warmup,
           "date": time.strftime("%Y-%m-%d %H:%M"), "loadavg_before": [round(v, 2) for v in load_before],
           "main": {"label": main_label, "timings": main_t}, "accuracy": acc, "stress": stress,
           "stress_settings": STRESS if stress else None, "reference_classes": classes, "stress_reference_classes": stress_classes,
           "compile_s": next((p.compile_s for p in paths if p.name == "torch-compile"), None), "sweeps": [],
           "cpu_tier": tier, "skipped": skipped, "emulated": emulated,
           "int8_recipes": {k: {f: v.get(f) for f in ("weight_bits", "cpu_tier", "tool")}
                            for k, v in Manifest.load(export_dir).quantization.items()}}
    try:
        import openvino

        rep["openvino"] = openvino.__version__
    except ImportError:
        pass
    # the best sanrt path: the fastest whose accuracy meets the bounds the automatic choice uses
    verified = [p for p in paths if isinstance(p, RuntimePath) and p.name in RUNTIME_PATHS
                and choosable(p.name, acc[p.name], stress)]
    best = min(verified, key=lambda p: main_t[p.name]["median_s"]) if verified else None
    if best:
        rep["best_path"] = best.name
    if not args.quick and best:
        torch_paths = [p for p in paths if p.name in ("torch-fp32", "torch-bf16")]
        sweep_paths = torch_paths + [best]
        for label, settings in (("batch sweep, " + args.size + f", K={args.k}", [(f"batch {b}", hw, b) for b in args.batches]),
                                (f"size sweep, batch 1, K={args.k}", [(f"{h}x{w}", (h, w), 1) for h, w in ((512, 512), (640, 640), (640, 864))])):
            rows = []
            for setting, shw, b in settings:
                log(f"timing {label}: {setting}")
                rows.append({"setting": setting, "timings": interleaved(sweep_paths, input_of(photos, shw, b),
                                                                        args.sweep_runs, 1)})
            rep["sweeps"].append({"label": label, "paths": [p.name for p in sweep_paths], "rows": rows})
        rep["vocabulary"] = {}
        for k in sorted(VOCABS):
            names = VOCABS[k]()
            text_new = best.seg.vocabulary(names, use_cache=False).text_s
            best.seg.vocabulary(names)
            text_cached = best.seg.vocabulary(names).text_s
            log(f"timing vocabulary K={k}")
            t = interleaved([best], input_of(photos, hw, 1), args.sweep_runs, 1)[best.name]["median_s"]
            rep["vocabulary"][k] = {"model_median_s": t, "text_new_s": text_new, "text_cached_s": text_cached}
        rep["e2e"] = {"path": best.name, "stages": end_to_end_split(best, photos["coffee"], results, args.sweep_runs)}
    rep["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    rep["platform"] = platform.platform()
    verify.record(Manifest.load(export_dir), {  # engines are chosen by passing them, not automatically
        p.name: {"median_s": main_t[p.name]["median_s"], **acc[p.name], **({"stress": stress[p.name]} if p.name in stress else {})}
        for p in paths if isinstance(p, RuntimePath) and p.name in RUNTIME_PATHS}, source=f"benchmarks/fps.py {rep['date']}, {main_label}")
    rep["int8_by_tier"] = verify.int8_by_tier(Manifest.load(export_dir))
    stem = f"fps_{name}"
    write_report(results, stem, rep, to_markdown(rep), plot)
    print(to_markdown(rep))
    print(f"wrote {results / stem}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
