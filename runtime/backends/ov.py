"""OpenVINO on the CPU as a Runner, reading the export's ONNX graphs (FP32, BF16 inference, NNCF INT8)."""
from __future__ import annotations

import os
import queue
from pathlib import Path

import numpy as np

from ..errors import BackendError, first_line
from .base import Runner


# precision -> OpenVINO's hint for the ops the graph file leaves in floating point
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32", "int8-bf16": "bf16"}


class CompiledModelFromOnnx:
    """Lazy loader: an OpenVINO CompiledModel for one ONNX file on the CPU, made when called."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None, precision: str = "fp32"):
        if device not in ("auto", "cpu"):
            raise BackendError(f"sanrt runs OpenVINO on the CPU only, not {device!r}")
        if precision not in HINTS:
            raise BackendError(f"OpenVINO precision must be one of {sorted(HINTS)}, not {precision!r}")
        self.path, self.threads, self.precision = Path(path), threads, precision

    def __call__(self):
        try:
            import openvino as ov
        except ImportError:
            raise BackendError("openvino is not installed (pip install 'sanrt[openvino]')") from None
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": HINTS[self.precision]}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
            if self.threads < (os.cpu_count() or 1):
                # OpenVINO pins its threads to the first cores: runners of a few threads each in
                # several processes (Ray actors, Triton instances) would all share those cores
                config["ENABLE_CPU_PINNING"] = False
        try:
            return core.compile_model(core.read_model(str(self.path)), "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with long messages
            raise BackendError(f"OpenVINO cannot load {self.path}: {first_line(e)}") from None


class OpenVinoRunner(Runner):
    """OpenVINO on CPU, reading the same ONNX. precision "bf16" runs BF16 where the CPU has it
    (AVX512-BF16 / AMX); an INT8 graph (QDQ ONNX from NNCF) runs its quantised parts in INT8.
    An infer request serves one call at a time: each call takes an idle one from a pool (a new one
    when all are busy), so one runner serves many threads."""

    backend = "openvino"

    def __init__(self, source, device: str = "auto", threads: int | None = None, precision: str = "fp32"):
        """`source`: an ONNX file, or a `CompiledModelFromOnnx` loader."""
        loader = source if isinstance(source, CompiledModelFromOnnx) else CompiledModelFromOnnx(source, device, threads, precision)
        self.compiled = loader()
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
