"""ONNX Runtime as a Runner: the CPU execution provider, or CUDA where onnxruntime-gpu finds a GPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BackendError, first_line
from .base import Runner


class SessionFromOnnx:
    """Lazy loader: an InferenceSession for one ONNX file, made when called (as Polygraphy's
    SessionFromOnnx). The CPU execution provider by default, CUDA when asked for (or "auto" finds it)."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None):
        self.path, self.device, self.threads = Path(path), device, threads

    def __call__(self):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("onnxruntime is not installed (pip install 'sanrt[cpu]' or 'sanrt[gpu]')") from None
        available = ort.get_available_providers()
        if self.device == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendError("ONNX Runtime has no CUDA provider here (install onnxruntime-gpu on a CUDA machine)")
        use_cuda = self.device == "cuda" or (self.device == "auto" and "CUDAExecutionProvider" in available)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        try:
            return ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # ORT raises its own exception types for unreadable models
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {first_line(e)}") from None


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime: the CPU execution provider by default, CUDA when asked for (or 'auto' finds it).
    `InferenceSession.run` may be called from many threads at once (ONNX Runtime documents it)."""

    backend = "onnxruntime"

    def __init__(self, source, device: str = "auto", threads: int | None = None, precision: str = "fp32",
                 shrink_arena: bool = True, io_binding: bool = False):
        """`source`: an ONNX file, or a `SessionFromOnnx` loader (precision lives in the graph file).
        `shrink_arena`: after a call whose input shapes differ from the previous call's, hand the
        memory arena's free chunks back, so a process that sees inputs of many sizes does not keep the
        largest one's buffers (benchmarks/memory.py); calls of one shape keep the arena (shrinking
        after every call costs 15-20 % of a small image graph's time). `io_binding`: inputs and
        outputs live in buffers on the session's device (on CUDA: one upload and one download per
        call, no staging copies)."""
        loader = source if isinstance(source, SessionFromOnnx) else SessionFromOnnx(source, device, threads)
        self.session = loader()
        import onnxruntime as ort

        self.outputs = [o.name for o in self.session.get_outputs()]
        self._device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.shrink_options = None
        if shrink_arena:
            self.shrink_options = ort.RunOptions()
            self.shrink_options.add_run_config_entry("memory.enable_memory_arena_shrinkage",
                                                     "cpu:0" + (";gpu:0" if self._device == "cuda" else ""))
        self._last_shapes = None  # a hint only: a race between threads costs at most one shrink
        self.io_binding = io_binding

    @property
    def device(self) -> str:
        return self._device

    def close(self):
        self.session = None  # ONNX Runtime frees the session's memory with its last reference

    def infer(self, feed):
        if self.io_binding:
            return self._infer_bound(feed)
        shapes = tuple(np.shape(v) for v in feed.values())
        changed, self._last_shapes = shapes != self._last_shapes, shapes
        return dict(zip(self.outputs, self.session.run(None, feed, self.shrink_options if changed else None)))

    def _infer_bound(self, feed):
        import onnxruntime as ort

        where = "cuda" if self._device == "cuda" else "cpu"
        binding = self.session.io_binding()  # one binding per call: calls from several threads stay apart
        for name, value in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), where, 0))
        for name in self.outputs:
            binding.bind_output(name, where, 0)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.outputs, binding.copy_outputs_to_cpu()))
