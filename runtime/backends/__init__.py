"""sanrt's backends: one module per backend, each a `Runner` (base.py) built from a lazy loader.

Contract: a backend module imports only runtime's leaves (`errors`, `files`, `machine`) and its own library,
the latter inside its loader, so importing sanrt.runtime.backends loads no backend. `PATHS` below
is the one registry of what runs: backend x image-graph precision x device, the export's graph each
path runs, its short name in reports and in verified.json. To add a backend: write `<name>.py`
with a loader and a Runner, add its paths here, and its module to `RUNNERS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from ..errors import BackendError
from .base import Runner


@dataclass(frozen=True)
class BackendPath:
    """One way to run the image graph. The text graph and head run FP32 on the same backend."""

    name: str  # short name in reports and verified.json, e.g. "ort-int8dyn"
    backend: str
    precision: str
    device: str  # "cpu" or "cuda": a path measured on one never stands for the other
    graph: str  # the export's image graph it runs: "fp32" (the base graph) or a variant name
    note: str = ""


# "int8" is the NNCF static QDQ graph, "int8dyn" ONNX Runtime's dynamic INT8 graph, "fp16" the FP16
# graph with FP32 islands; "bf16" is OpenVINO's BF16 inference on the FP32 graph ("int8-bf16": the
# INT8 graph, its float parts in BF16). TensorRT's precision is that of its engines.
PATHS = (
    BackendPath("ort-fp32", "onnxruntime", "fp32", "cpu", "fp32"),
    BackendPath("ort-fp16", "onnxruntime", "fp16", "cpu", "fp16", "the GPU graph, proven on the CPU"),
    BackendPath("ort-int8", "onnxruntime", "int8", "cpu", "int8"),
    BackendPath("ort-int8dyn", "onnxruntime", "int8dyn", "cpu", "int8dyn"),
    BackendPath("ov-fp32", "openvino", "fp32", "cpu", "fp32"),
    BackendPath("ov-bf16", "openvino", "bf16", "cpu", "fp32", "native with AVX512-BF16 or AMX"),
    BackendPath("ov-int8", "openvino", "int8", "cpu", "int8"),
    BackendPath("ov-int8-bf16", "openvino", "int8-bf16", "cpu", "int8", "native with AVX512-BF16 or AMX"),
    BackendPath("ort-cuda-fp32", "onnxruntime", "fp32", "cuda", "fp32"),
    BackendPath("ort-cuda-fp16", "onnxruntime", "fp16", "cuda", "fp16", "IO binding on device buffers"),
    BackendPath("trt-fp16", "tensorrt", "fp16", "cuda", "fp16", "engines from export/build_engine.py"),
    BackendPath("trt-fp32", "tensorrt", "fp32", "cuda", "fp32", "engines from export/build_engine.py"),
)
BY_NAME = {p.name: p for p in PATHS}
# backend -> the image-graph precisions it runs (on some device)
PRECISIONS = {b: tuple(dict.fromkeys(p.precision for p in PATHS if p.backend == b)) for b in dict.fromkeys(p.backend for p in PATHS)}
# backend -> "module.Runner" (imported on first use: cuda-python and TensorRT load only for TensorRT)
RUNNERS = {"onnxruntime": "onnxrt.OnnxRuntimeRunner", "openvino": "ov.OpenVinoRunner", "tensorrt": "trt.TensorRTRunner"}


def check_pair(backend: str, precision: str) -> None:
    """BackendError in one line for a backend or backend x precision pair that does not exist."""
    if backend not in PRECISIONS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(PRECISIONS)} (or auto)")
    if precision not in PRECISIONS[backend]:
        raise BackendError(f"{backend} has no {precision!r} path; it runs {', '.join(PRECISIONS[backend])}")


def find_path(backend: str, precision: str, device: str) -> BackendPath:
    """The registry entry of a backend x precision on a device ("cpu" or "cuda"); BackendError if none."""
    check_pair(backend, precision)
    for p in PATHS:
        if (p.backend, p.precision, p.device) == (backend, precision, device):
            return p
    devices = sorted({p.device for p in PATHS if (p.backend, p.precision) == (backend, precision)})
    raise BackendError(f"{backend} {precision} runs on {' or '.join(devices)}, not {device}")


def runner_class(backend: str) -> type[Runner]:
    if backend not in RUNNERS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(RUNNERS)}")
    module, cls = RUNNERS[backend].split(".")
    return getattr(import_module(f".{module}", __name__), cls)


def make_runner(backend: str, path: str | Path, **options) -> Runner:
    """A Runner for one graph file: `options` are the backend's (device, threads, precision, ...)."""
    return runner_class(backend)(path, **options)


__all__ = ["Runner", "BackendPath", "PATHS", "BY_NAME", "PRECISIONS", "RUNNERS", "check_pair", "find_path",
           "runner_class", "make_runner"]
