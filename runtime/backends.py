"""Backends behind one small interface: a Runner turns a dict of numpy inputs into a dict of numpy
outputs for one graph. Loading (sessions, engines) is kept apart from running, as in Polygraphy.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import BackendError


class Runner:
    """One graph on one backend."""

    backend = "?"

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def device(self) -> str:
        return "cpu"


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime: the CPU execution provider by default, CUDA when asked for (or 'auto' finds it)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("onnxruntime is not installed (pip install 'sanrt[cpu]' or 'sanrt[gpu]')") from None
        available = ort.get_available_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendError("ONNX Runtime has no CUDA provider here (install onnxruntime-gpu on a CUDA machine)")
        use_cuda = device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # ORT raises its own exception types for unreadable models
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"ONNX Runtime cannot load {path}: {first}") from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    @property
    def device(self) -> str:
        return self._device

    def infer(self, feed):
        return dict(zip(self.outputs, self.session.run(None, feed)))


BACKENDS = {"onnxruntime": OnnxRuntimeRunner}


def default_threads() -> int | None:
    v = os.environ.get("SANRT_THREADS")
    return int(v) if v else None


def make_runner(backend: str, path: str | Path, **options) -> Runner:
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[backend](path, **options)
