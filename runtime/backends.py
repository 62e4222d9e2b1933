"""Backends behind one small interface: a Runner turns a dict of numpy inputs into a dict of numpy
outputs for one graph. Loading (sessions, engines) is kept apart from running, as in Polygraphy.
"""
from __future__ import annotations

import queue
from pathlib import Path

import numpy as np

from .errors import BackendError
from .runner import Runner

# The backend x image-graph precision pairs that exist; anything else is refused in one line.
# "int8" is the NNCF static QDQ graph, "int8dyn" ONNX Runtime's dynamic INT8 graph, "fp16" the FP16
# graph with FP32 islands; "bf16" is OpenVINO's BF16 inference on the FP32 graph ("int8-bf16": the
# INT8 graph, its float parts in BF16). TensorRT's precision is that of its engines.
PRECISIONS = {
    "onnxruntime": ("fp32", "fp16", "int8", "int8dyn"),
    "openvino": ("fp32", "bf16", "int8", "int8-bf16"),
    "tensorrt": ("fp16", "fp32"),
}


def check_pair(backend: str, precision: str) -> None:
    """BackendError in one line for a backend or backend x precision pair that does not exist."""
    if backend not in PRECISIONS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(PRECISIONS)} (or auto)")
    if precision not in PRECISIONS[backend]:
        raise BackendError(f"{backend} has no {precision!r} path; it runs {', '.join(PRECISIONS[backend])}")


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime: the CPU execution provider by default, CUDA when asked for (or 'auto' finds it).
    `InferenceSession.run` may be called from many threads at once (ONNX Runtime documents it)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None, precision: str = "fp32",
                 shrink_arena: bool = True):
        """`shrink_arena`: after a call whose input shapes differ from the previous call's, hand the
        memory arena's free chunks back, so a process that sees inputs of many sizes does not keep the
        largest one's buffers (benchmarks/memory.py); calls of one shape keep the arena (shrinking
        after every call costs 15-20 % of a small image graph's time)."""
        # precision lives in the graph file for ONNX Runtime (FP32, FP16 or QDQ INT8 ONNX)
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
        self.shrink_options = None
        if shrink_arena:
            self.shrink_options = ort.RunOptions()
            self.shrink_options.add_run_config_entry("memory.enable_memory_arena_shrinkage",
                                                     "cpu:0" + (";gpu:0" if self._device == "cuda" else ""))
        self._last_shapes = None  # a hint only: a race between threads costs at most one shrink

    @property
    def device(self) -> str:
        return self._device

    def close(self):
        self.session = None  # ONNX Runtime frees the session's memory with its last reference

    def infer(self, feed):
        shapes = tuple(np.shape(v) for v in feed.values())
        changed, self._last_shapes = shapes != self._last_shapes, shapes
        return dict(zip(self.outputs, self.session.run(None, feed, self.shrink_options if changed else None)))


class OpenVinoRunner(Runner):
    """OpenVINO on CPU, reading the same ONNX. precision "bf16" runs BF16 where the CPU has it
    (AVX512-BF16 / AMX); an INT8 graph (QDQ ONNX from NNCF) runs its quantised parts in INT8.
    An infer request serves one call at a time: each call takes an idle one from a pool (a new one
    when all are busy), so one runner serves many threads."""

    backend = "openvino"
    # precision -> OpenVINO's hint for the ops the graph file leaves in floating point
    _HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32", "int8-bf16": "bf16"}

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None, precision: str = "fp32"):
        try:
            import openvino as ov
        except ImportError:
            raise BackendError("openvino is not installed (pip install 'sanrt[openvino]')") from None
        if device not in ("auto", "cpu"):
            raise BackendError(f"sanrt runs OpenVINO on the CPU only, not {device!r}")
        if precision not in self._HINTS:
            raise BackendError(f"OpenVINO precision must be one of {sorted(self._HINTS)}, not {precision!r}")
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self._HINTS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with long messages
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"OpenVINO cannot load {path}: {first}") from None
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._idle.put(self.compiled.create_infer_request())
        self.outputs = [o.get_any_name() for o in self.compiled.outputs]

    def close(self):
        self.compiled, self._idle = None, queue.SimpleQueue()

    def infer(self, feed):
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            res = request.infer(feed)
            # the request owns its output buffers and reuses them: copy before it serves another call
            return {name: np.array(res[self.compiled.output(name)]) for name in self.outputs}
        finally:
            self._idle.put(request)


def _tensorrt_runner(path, **options) -> Runner:
    from .tensorrt_runner import TensorRTRunner  # its own module: cuda-python and TensorRT load only here

    return TensorRTRunner(path, **options)


BACKENDS = {"onnxruntime": OnnxRuntimeRunner, "openvino": OpenVinoRunner, "tensorrt": _tensorrt_runner}


def make_runner(backend: str, path: str | Path, **options) -> Runner:
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[backend](path, **options)
