"""Export folder -> what a Segmenter runs: the manifest, the backend path (named, or the automatic
choice), and one runner per graph. The only place that turns backend arguments into runners."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .backends import Runner, check_pair, find_path, make_runner
from .backends.trt_engines import check_built_from, check_compatible, gpu_identity, import_tensorrt, resolve
from .choice import choose, int8_warning
from .errors import BackendError
from .manifest import Manifest

DEVICES = ("auto", "cpu", "cuda")
log = logging.getLogger("sanrt")


@dataclass
class Loaded:
    manifest: Manifest
    runners: dict  # "image", "text", "head" and optionally "text_after" -> Runner
    backend: str
    precision: str
    choice: str | None = None  # why "auto" chose what it did
    engine_text: str | None = None  # the text engine's file name when TensorRT engines run


def check_options(backend, precision, device, threads) -> None:
    """BackendError for arguments of the wrong kind, before anything loads (a typo such as
    device="CUDA" must not run on the CPU unsaid, nor threads="2" reach ONNX Runtime's bindings)."""
    if not isinstance(backend, str):
        raise BackendError(f"backend must be a name such as 'onnxruntime', not {type(backend).__name__}")
    if precision is not None and not isinstance(precision, str):
        raise BackendError(f"precision must be a name such as 'fp32', not {type(precision).__name__}")
    if not isinstance(device, str) or device not in DEVICES:
        raise BackendError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    most = 4 * (os.cpu_count() or 1)  # more only costs memory and switching: a typo, not a setting
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= most):
        raise BackendError(f"threads must be a whole number from 1 to {most} (4 per core here; None: the backend's "
                           f"default), not {threads!r}")


def load(export_dir, backend: str = "auto", precision: str | None = None, *, device: str = "auto",
         threads: int | None = None, verify: bool = True, cuda_graph: bool = False,
         backend_options: dict | None = None) -> Loaded:
    """See `Segmenter`: the same arguments."""
    check_options(backend, precision, device, threads)
    export_dir, engines = resolve(export_dir)  # an engine folder or .engine file leads to its export
    m = Manifest.load(export_dir, verify=verify)
    why, named = None, backend != "auto"
    if engines is not None:
        backend, precision = "tensorrt", engines["precision"]
        paths = {g: Path(engines["folder"]) / e["file"] for g, e in engines["engines"].items()}
        check_built_from(engines, m)  # needs no GPU: before the CUDA checks
        check_compatible(engines, gpu_identity(), import_tensorrt().__version__)
    else:
        if backend == "auto":
            if precision is not None:
                raise BackendError("a precision needs a named backend (onnxruntime or openvino), not auto")
            backend, precision, chosen_device, why = choose(m, device)
            device = chosen_device  # a path runs on the device it was measured on
        precision = precision or "fp32"
        check_pair(backend, precision)
        if backend == "tensorrt":
            raise BackendError("TensorRT needs engines: build them with export/build_engine.py and pass --engine ENGINE_DIR")
        if device != "auto":
            find_path(backend, precision, device)
        paths = {"image": m.folder / m.image_graph(precision), "text": m.path("text"), "head": m.path("head")}
        warning = int8_warning(m, backend, precision) if named else None  # auto takes only verified paths
        if warning:
            log.warning(warning)
    if cuda_graph and backend != "tensorrt":
        raise BackendError("CUDA graphs are for TensorRT engines: pass --engine ENGINE_DIR")
    options = {"device": device, "threads": threads, **(backend_options or {})}
    runners: dict[str, Runner] = {}
    try:
        runners["image"] = make_runner(backend, paths["image"], precision=precision, **options,
                                       **({"cuda_graph": True} if cuda_graph else {}))
        for g in ("text", "head"):
            runners[g] = make_runner(backend, paths[g], **options)
        if engines is None and "text_after" in m.graphs:  # the faster text path (older exports lack it)
            runners["text_after"] = make_runner(backend, m.path("text_after"), **options)
    except BaseException:
        for r in runners.values():  # what loaded before the failure is freed now, not at exit
            r.close()
        raise
    return Loaded(m, runners, backend, precision, why, paths["text"].name if engines is not None else None)
