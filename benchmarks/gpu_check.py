"""GPU check: sanrt's GPU paths beside PyTorch on one CUDA GPU, in one run: speed, the distance to the
GPU's measured peak, and accuracy against PyTorch FP32.

    bash benchmarks/gpu_check.sh                              # GPU machine: carried wheels, then this
    python benchmarks/gpu_check.py --out out/gpu_check        # GPU machine with sanrt's needs installed
    python benchmarks/gpu_check.py --dry-run --out /tmp/gc    # any CPU: the same code at toy size

Rows, each at batch 1 and 32, on the same images: torch-fp32 (PyTorch eager FP32, TF32 off: the
accuracy reference), torch-fp16 (eager, FP16 autocast), torch-compile-fp16 (torch.compile,
dynamic=False, FP16 autocast); ort-cuda-fp16 (sanrt.runtime.Segmenter on ONNX Runtime's CUDA
provider, the export's FP16 image graph, IO binding on device buffers); trt-fp16 and
trt-fp16-cudagraph (Segmenter on FP16 TensorRT engines from sanrt.export.tensorrt_build, enqueued
and replayed as a CUDA graph). A row whose backend cannot run here is skipped with sanrt's reason.
Model: SAN ViT-B/16, random weights (fixture-style spread), 640x640; the sanrt rows read an FP16
export of it, made in a temporary folder where one of their backends can run.

Timed unit, as benchmarks/fps.py's: preprocessing + image graph + vocabulary head (ADE20K's 150
classes) for a batch. Per row: median and p90 after warm-up, each run synchronised, the first call
apart (compilation, autotuning, graph capture), img/s, TFLOP/s (the PyTorch graph's FLOPs x img/s)
and its fraction of the GEMM peak of the row's precision measured in the same run. Per path:
accuracy against torch-fp32 (sanrt.evaluation.verify.accuracy) on the three sample photos.

--dry-run: the CPU, one thread, the tiny fixture config and checkpoint with the shorter side resized
to 128, batches 1 and 2, the ORT row on the CPU provider (ort-fp16), torch.compile with
backend="eager" (Dynamo, no Inductor): every branch that needs no GPU, in under a minute on 2 cores.
--budget-s (default 420; dry run 100): a step that would end past it is skipped, its rows say so.
gpu_check.json and gpu_check.md under --out are rewritten after every row: a killed run keeps what
it measured. Where sanrt is not installed, the checkout's folders are mapped onto sanrt.* as
pyproject.toml's package-dir does.
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests/data/official/tiny_dev"
STEM, VOCABULARY = "gpu_check", "ade150"


def ensure_sanrt() -> str:
    """Import sanrt as installed or, where it is not, as the checkout's folders mapped onto sanrt.*
    by pyproject.toml's package-dir: symbolic links in a temporary folder first on sys.path, and a
    minimal dist-info so importlib.metadata knows sanrt's version."""
    import importlib.util
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders, version = project["tool"]["setuptools"]["package-dir"], project["project"]["version"]
    if importlib.util.find_spec("sanrt") and all(importlib.util.find_spec(name) for name in folders):
        return "installed"
    site = Path(tempfile.mkdtemp(prefix="sanrt_site_"))
    atexit.register(shutil.rmtree, site, ignore_errors=True)
    (site / "sanrt").mkdir()
    for name, folder in folders.items():  # "sanrt.model" -> site/sanrt/model -> the checkout's model/
        (site / name.replace(".", "/")).symlink_to(ROOT / folder, target_is_directory=True)
    (site / f"sanrt-{version}.dist-info").mkdir()
    (site / f"sanrt-{version}.dist-info/METADATA").write_text(f"Metadata-Version: 2.1\nName: sanrt\nVersion: {version}\n")
    sys.path.insert(0, str(site))
    for m in [m for m in sys.modules if m == "sanrt" or m.startswith("sanrt.")]:
        del sys.modules[m]
    importlib.invalidate_caches()
    return f"checkout folders mapped onto sanrt.* ({site})"


SANRT = ensure_sanrt()  # before the imports below: they may need the mapping

import numpy as np
import torch
from sanrt.benchmarks.lib.environment import machine_info, nvidia_smi
from sanrt.benchmarks.lib.peak import cuda_gemm_peaks, graph_flops
from sanrt.benchmarks.lib.photos import input_of, sample_photos
from sanrt.benchmarks.lib.report import write_report
from sanrt.benchmarks.lib.timing import measure
from sanrt.evaluation import verify
from sanrt.model import SAN
from sanrt.model.pipeline import TorchSegmenter
from sanrt.runtime import cli
from sanrt.runtime.backends import find_path
from sanrt.runtime.backends.onnxrt import SessionFromOnnx
from sanrt.runtime.backends.trt_engines import import_tensorrt
from sanrt.runtime.datasets import dataset_vocabulary
from sanrt.runtime.errors import BackendError, SanrtError
from sanrt.runtime.outputs import check_replaceable
from sanrt.runtime.segmenter import Segmenter

# seconds a step is expected to take (GPU, dry run): a step that would end past the budget is skipped
EXPECT = {"gemm": (30, 5), "flops": (15, 3), "setup": (30, 5), "compile": (150, 15), "export": (240, 40),
          "engines": (600, 30), "row": (20, 3), "accuracy": (20, 5)}


class Skip(Exception):
    """A step left out, with the reason its rows give."""


class OnDevice(torch.nn.Module):
    """SAN on `dev` behind TorchSegmenter (which feeds CPU tensors): inputs moved there, the image
    graph under autocast `amp` (and torch.compile), outputs back as FP32 CPU tensors."""

    def __init__(self, model: SAN, dev: torch.device, amp=None, compiled: bool = False):
        super().__init__()
        self.model, self.net, self.cfg, self.dev, self.amp = model, model, model.cfg, dev, amp
        if compiled:  # one static graph per batch size; on a CPU (dry run) Dynamo alone: Inductor takes minutes
            self.net = torch.compile(model, dynamic=False, **({} if dev.type == "cuda" else {"backend": "eager"}))

    def forward(self, images, sizes):
        with torch.autocast(self.dev.type, dtype=self.amp or torch.float16, enabled=self.amp is not None):
            out = self.net(images.to(self.dev), sizes.to(self.dev))
        return tuple(o.float().cpu() for o in out)

    def class_embeddings(self, token_ids):
        return self.model.class_embeddings(token_ids.to(self.dev))

    def classifier_weight(self, class_embed):
        return self.model.classifier_weight(class_embed).cpu()

    def head(self, mask_emb, class_weights):
        """The vocabulary head on the device, FP32 as the runtime's: embeddings up, class logits down."""
        weights = torch.from_numpy(np.array(class_weights)).to(self.dev)
        return SAN.classify(torch.from_numpy(mask_emb).to(self.dev), weights).cpu()


def probe(backend: str, device: str) -> None:
    """sanrt's one-line BackendError where `backend` cannot run on `device`, asked before an export
    is made for it (minutes at full size)."""
    if backend == "tensorrt":
        import_tensorrt()
        find_path(backend, "fp16", device)  # a dry run stays on the CPU, TensorRT or not
        return
    try:
        SessionFromOnnx(os.devnull, device)()
    except BackendError as e:
        if os.devnull not in str(e):  # "cannot load /dev/null": ONNX Runtime and the device are there
            raise


def plan(device: str) -> list[tuple[str, str, dict]]:
    """(row name, backend, options) of every path, in the order they run: the reference first."""
    return [("torch-fp32", "torch", {}), ("torch-fp16", "torch", {"amp": torch.float16}),
            ("torch-compile-fp16", "torch", {"amp": torch.float16, "compiled": True}),
            (find_path("onnxruntime", "fp16", device).name, "onnxruntime", {}),
            ("trt-fp16", "tensorrt", {}), ("trt-fp16-cudagraph", "tensorrt", {"cuda_graph": True})]


def reason(e: Exception) -> str:
    """A skipped row's reason: sanrt's or the budget's line; anything else by name, first line only."""
    if isinstance(e, (Skip, SanrtError)):
        return str(e)
    return f"failed: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"


def _f(v, spec: str, scale: float = 1.0) -> str:
    return "-" if v is None else format(v * scale, spec)


def _join(d: dict | None, spec: str, scale: float = 1.0) -> str:
    return ", ".join(f"{k} {v * scale:{spec}}" for k, v in (d or {}).items())


def markdown(d: dict) -> str:
    m, fl = d["machine"], d.get("flops_per_image")
    lines = [f"# GPU check{' DRY RUN (CPU, tiny config: the numbers mean nothing)' if d['dry_run'] else ''}: {d['device']}",
             "", f"- model: {d.get('model', '-')}; input {d['input']}; timed unit: preprocessing + image graph + "
             f"vocabulary head ({d['vocabulary']})",
             f"- machine: {m.get('cpu')}, {m.get('cores')} cores; GPU {d.get('gpu') or '-'}; "
             f"nvidia-smi: {m.get('nvidia_smi')}",
             f"- versions: {', '.join(f'{k} {v}' for k, v in (m.get('versions') or {}).items())}; sanrt {d['sanrt_import']}",
             f"- GEMM peak, TFLOP/s (n={d.get('gemm_n')}): {_join(d['peak_tflops'], '.4g') or d.get('gemm_skipped')}",
             f"- graph FLOPs per image, GFLOP: {fl / 1e9:.2f} ({_join(d['flops_parts'], '.2f', 1e-9)})" if fl
             else f"- graph FLOPs: {d.get('flops_skipped')}",
             f"- export: {d.get('export', '-')}", "",
             "| path | batch | backend | device | precision | median ms | p90 ms | first call s | img/s | TFLOP/s | of peak "
             "| label agreement | probe agreement | mask-emb cos (min) | skipped |", "|---" * 15 + "|"]
    for r in d["rows"]:
        a = d["accuracy"].get(r["path"]) or {}
        lines.append(" | ".join([
            f"| {r['path']}", str(r["batch"]), r.get("backend", "-"), r.get("device", "-"), r.get("precision", "-"),
            _f(r.get("median_s"), ".2f", 1e3), _f(r.get("p90_s"), ".2f", 1e3), _f(r.get("first_call_s"), ".2f"),
            _f(r.get("images_per_s"), ".1f"), _f(r.get("achieved_tflops"), ".3g"), _f(r.get("fraction_of_peak"), ".1%"),
            "reference" if a.get("reference") else _f(a.get("label_agreement"), ".2%"),
            _f(a.get("probe_label_agreement"), ".2%"), _f(a.get("mask_emb_cosine_min"), ".5f"),
            (r.get("skipped") or a.get("skipped") or "") + " |"]))
    return "\n".join([*lines, "", f"Elapsed {d.get('elapsed_s', 0):.0f} s of a {d['budget_s']:.0f} s budget.", ""])


class Check:
    """One run: its settings, the report (rewritten after every row), the time budget, and the steps
    several rows share (the export, the engines), made on first need."""

    def __init__(self, out: Path, dry: bool, budget: float, data: dict):
        self.out, self.dry, self.budget, self.data, self.batches = out, dry, budget, data, data["batches"]
        self.dev = torch.device("cpu" if dry else "cuda")
        self.side, self.gemm_n = (128, 256) if dry else (640, 8192)
        self.sync = torch.cuda.synchronize if not dry else (lambda: None)
        self.runs = {b: (3, 1) if dry else (50, 10) if b < 8 else (20, 3) for b in self.batches}  # (timed, warm-up)
        self.max_s = 5.0 if dry else 15.0  # the longest one timed loop runs (at least 3 runs)
        self.t0, self.shared = time.perf_counter(), {}
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
        atexit.register(shutil.rmtree, self.tmp, ignore_errors=True)

    def write(self) -> None:
        self.data["elapsed_s"] = time.perf_counter() - self.t0
        write_report(self.out, STEM, self.data, markdown(self.data))

    def guard(self, step: str) -> None:
        spent, expect = time.perf_counter() - self.t0, EXPECT[step][self.dry]
        if spent + expect > self.budget:
            raise Skip(f"time budget: {spent:.0f} s spent + about {expect:.0f} s for {step} > {self.budget:.0f} s")

    def row(self, row: dict) -> None:
        self.data["rows"].append(row)
        print(json.dumps(row), flush=True)
        self.write()

    def once(self, key: str, make):
        """make()'s result, made on the first call; its failure is every later caller's too."""
        if key not in self.shared:
            try:
                self.guard(key)
                self.shared[key] = make()
            except Exception as e:  # a failing step must not cost the rest of the run
                self.shared[key] = e
        if isinstance(self.shared[key], Exception):
            raise self.shared[key]
        return self.shared[key]

    def setup(self) -> None:
        """GEMM peaks, the model, its graph FLOPs."""
        from sanrt.export import build_model

        d = self.data
        try:
            self.guard("gemm")
            d["gemm"], d["gemm_n"] = cuda_gemm_peaks(torch, self.dev, self.gemm_n, self.sync, self.max_s), self.gemm_n
            d["peak_tflops"] = {k: v["tflops"] for k, v in d["gemm"].items()}
            d["machine"]["nvidia_smi_after_gemm"] = nvidia_smi("clocks.sm,clocks.mem,power.draw,temperature.gpu")
        except Skip as e:
            d["gemm_skipped"] = str(e)
        if self.dry:
            self.model, self.weights = build_model(config=TINY / "tiny_config.json", checkpoint=TINY / "checkpoint.pth")
        else:
            self.model, self.weights = build_model("vit_b_16", random_init=True)
        self.model.cfg = dataclasses.replace(self.model.cfg, min_size=self.side)  # the shorter side to the timed size
        self.model.to(self.dev)
        d["model"] = f"{'tiny_dev fixture config' if self.dry else 'SAN ViT-B/16'}, {self.weights}"
        try:
            self.guard("flops")
            fl = graph_flops(self.model, (self.side, self.side), 1, self.dev)
            d["flops_per_image"], d["flops_parts"] = fl["total"], fl["parts"]
        except Skip as e:
            d["flops_skipped"] = str(e)
        self.write()

    def export(self) -> Path:
        from sanrt.export import ExportRanges, export

        # traced on the CPU; the PyTorch rows are done (they run first), the GPU's memory goes to sanrt's
        t, top = time.perf_counter(), max(self.batches)
        export(self.model.cpu(), self.tmp / "export", self.weights, ExportRanges(batch=(1, top)), fp16=True)
        torch.cuda.empty_cache()
        self.data["export"] = f"FP32 graphs + FP16 variants, batch 1..{top}, made in {time.perf_counter() - t:.0f} s"
        return self.tmp / "export"

    def engines(self) -> Path:
        from sanrt.export.tensorrt_build import build_engines

        build_engines(self.once("export", self.export), self.tmp / "engines", precision="fp16")
        return self.tmp / "engines"

    def open(self, backend: str, opts: dict):
        """(segmenter, vocabulary head, the row's fields) of one path."""
        if backend == "torch":
            wrapped = OnDevice(self.model, self.dev, opts.get("amp"), opts.get("compiled", False))
            return TorchSegmenter(wrapped), wrapped.head, {"backend": "torch", "device": self.dev.type,
                                                           "precision": "fp16" if opts.get("amp") else "fp32"}
        probe(backend, self.dev.type)
        if backend == "tensorrt":
            seg = Segmenter(self.once("engines", self.engines), cuda_graph=opts.get("cuda_graph", False))
        else:  # one thread in a dry run: light on a shared CPU
            seg = Segmenter(self.once("export", self.export), backend=backend, precision="fp16", device=self.dev.type,
                            threads=1 if self.dry else None, backend_options={"io_binding": True})
        info = {"backend": seg.backend, "device": seg.image_graph.device, "precision": seg.precision,
                "io_binding": getattr(seg.image_graph, "io_binding", None), "cuda_graph": opts.get("cuda_graph", False)}
        return seg, lambda emb, w: seg.head_graph.infer({"mask_emb": emb, "class_weights": w})["class_logits"], info

    def time_row(self, row: dict, fn, b: int) -> None:
        """The row's timings, the first call apart (compilation, autotuning, CUDA-graph capture)."""
        t = time.perf_counter()
        fn()
        self.sync()
        row["first_call_s"] = time.perf_counter() - t
        row.update(measure(fn, *self.runs[b], sync=self.sync, max_s=self.max_s, batch=b))
        row["ms_per_image"] = 1e3 * row["median_s"] / b
        fl, peaks = self.data.get("flops_per_image"), self.data["peak_tflops"]
        if fl:
            row["achieved_tflops"] = fl * row["images_per_s"] / 1e12
            if row["precision"] in peaks:  # the peak of the row's own precision
                row["peak"], row["fraction_of_peak"] = row["precision"], row["achieved_tflops"] / peaks[row["precision"]]

    def paths(self, paths: list) -> None:
        photos = sample_photos()
        alone = {n: input_of({n: im}, (self.side, self.side), 1)[0] for n, im in photos.items()}  # each at the timed size
        names, reference, acc = dataset_vocabulary(VOCABULARY), None, self.data["accuracy"]
        for name, backend, opts in paths:
            try:
                self.guard("setup")
                seg, head, info = self.open(backend, opts)
                vocab = seg.vocabulary(names)
            except Exception as e:
                for b in self.batches:
                    self.row({"path": name, "batch": b, "skipped": reason(e)})
                continue
            for b in self.batches:
                row = {"path": name, "batch": b, **info}
                try:
                    self.guard("compile" if opts.get("compiled") else "row")
                    images = input_of(photos, (self.side, self.side), b)
                    self.time_row(row, lambda: head(seg.encode_images(images).mask_emb, vocab.class_weights), b)
                except Exception as e:
                    row["skipped"] = reason(e)
                self.row(row)
            try:  # after the timing, so that a compiled path's first call is its compile
                self.guard("accuracy")
                answers = {n: seg.classify(seg.encode_images([img]), vocab)[0] for n, img in alone.items()}
                if name == "torch-fp32":
                    reference, acc[name] = answers, {"reference": True}
                elif reference is None:
                    acc[name] = {"skipped": "no torch-fp32 reference in this run"}
                else:
                    measured, self.data["reference_classes"] = verify.accuracy({name: answers}, reference)
                    acc[name] = measured[name]
            except Exception as e:
                acc[name] = {"skipped": reason(e)}
            self.write()
            if isinstance(seg, Segmenter):
                seg.close()  # its sessions, engines and device memory, now rather than at exit
            torch._dynamo.reset()  # and the compiled graphs


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="report folder: gpu_check.json and gpu_check.md")
    ap.add_argument("--dry-run", action="store_true", help="the CPU, the tiny fixture config, 128x128, batches 1 and 2")
    ap.add_argument("--budget-s", type=float, help="skip steps that would end past this many seconds (420; dry run 100)")
    ap.add_argument("--batches", help="comma-separated batch sizes (1,32; dry run 1,2)")
    args = ap.parse_args(argv)
    dry = args.dry_run
    batches = (args.batches or ("1,2" if dry else "1,32")).split(",")
    if not all(b.isdigit() and int(b) >= 1 for b in batches):
        ap.error(f"--batches takes whole numbers from 1, separated by commas, not {args.batches!r}")
    if not dry and not torch.cuda.is_available():
        raise BackendError("no CUDA GPU here: run with --dry-run on a CPU")
    paths = plan("cpu" if dry else "cuda")
    check_replaceable([args.out / f"{STEM}.json", args.out / f"{STEM}.md"], args.out)
    if dry:
        torch.set_num_threads(1)  # light on a shared CPU
    # FP32 means FP32: the reference runs without TF32 (the GEMM peaks set it per precision)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    batches = [int(b) for b in batches]
    data = {"dry_run": dry, "date": time.strftime("%Y-%m-%d %H:%M"), "sanrt_import": SANRT,
            "machine": machine_info(gpu=True), "device": "cpu" if dry else torch.cuda.get_device_name(0),
            "gpu": None if dry else f"{torch.cuda.get_device_properties(0)}, cuDNN {torch.backends.cudnn.version()}",
            "budget_s": args.budget_s if args.budget_s is not None else (100.0 if dry else 420.0), "batches": batches,
            "vocabulary": VOCABULARY, "plan": [{"path": p[0], "batch": b} for p in paths for b in batches],
            "rows": [], "accuracy": {}, "peak_tflops": {}}
    run = Check(args.out, dry, data["budget_s"], data)
    data["input"] = f"{run.side}x{run.side} uint8"
    run.write()
    run.setup()
    run.paths(paths)
    run.write()
    print((args.out / f"{STEM}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
