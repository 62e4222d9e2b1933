"""A serialized TensorRT engine as a Runner: device buffers and streams from cuda-python (no torch),
inputs uploaded in their own dtype (the image graph takes uint8: a quarter of FP32's bytes), and an
optional CUDA graph per input-shape set, replayed instead of enqueueing every layer.

Every TensorRT and CUDA call follows the TensorRT 10/11 Python bindings and cuda-bindings 13; the
tests cover what needs no GPU (import and driver errors), benchmarks/gpu_check.py the rest.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .cuda_api import check, cudart
from .trt_engines import import_tensorrt
from ..errors import BackendError, RangeError
from .base import Runner


class _DeviceBuffer:
    """Device memory that grows to the largest size asked for and is otherwise reused."""

    def __init__(self, rt):
        self.rt, self.ptr, self.nbytes = rt, 0, 0

    def ensure(self, nbytes: int) -> bool:
        """Make room for `nbytes`; True when the address changed (CUDA graphs must be recaptured)."""
        if nbytes <= self.nbytes:
            return False
        self.free()
        self.ptr = int(check(self.rt.cudaMalloc(max(nbytes, 1)), f"allocation of {nbytes} bytes"))
        self.nbytes = nbytes
        return True

    def free(self):
        if self.ptr:
            self.rt.cudaFree(self.ptr)
        self.ptr, self.nbytes = 0, 0


class EngineFromFile:
    """Lazy loader: a serialized engine file deserialized when called -> (ICudaEngine, its logger)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __call__(self):
        if not self.path.is_file():
            raise BackendError(f"engine not found: {self.path}")
        trt = import_tensorrt()
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise BackendError(f"{self.path} cannot be deserialized: built for another GPU or TensorRT version, or corrupt")
        return engine, logger


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, source, device: str = "auto", threads: int | None = None, precision: str = "fp16",
                 cuda_graph: bool = False):
        if device == "cpu":
            raise BackendError("TensorRT runs on a CUDA GPU, not the CPU")
        loader = source if isinstance(source, EngineFromFile) else EngineFromFile(source)
        if not loader.path.is_file():  # the user's mistake first, then what the machine lacks
            raise BackendError(f"engine not found: {loader.path}")
        trt = import_tensorrt()
        self.rt = cudart()
        self.stream = check(self.rt.cudaStreamCreate(), "stream creation (is there a CUDA GPU and driver?)")
        self.engine, self.logger = loader()
        path = loader.path
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"{path}: no execution context (out of GPU memory?)")
        e = self.engine
        names = [e.get_tensor_name(i) for i in range(e.num_io_tensors)]
        self.inputs = [n for n in names if e.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: np.dtype(trt.nptype(e.get_tensor_dtype(n))) for n in names}
        # (min, max) shapes of optimisation profile 0, the only one build_engine.py makes
        self.ranges = {n: tuple(tuple(s) for s in e.get_tensor_profile_shape(n, 0))[::2] for n in self.inputs}
        self.buffers = {n: _DeviceBuffer(self.rt) for n in names}
        self.cuda_graph = cuda_graph
        self.graphs: dict[tuple, tuple] = {}  # input shapes -> (graph, executable graph)
        self.path = path
        self._lock = threading.Lock()  # one execution context, buffers and stream: one call at a time

    @property
    def device(self) -> str:
        return "cuda"

    def _check_feed(self, feed: dict) -> None:
        if sorted(feed) != sorted(self.inputs):
            raise BackendError(f"{self.path.name} takes inputs {self.inputs}, got {sorted(feed)}")
        for n in self.inputs:
            a, (lo, hi) = feed[n], self.ranges[n]
            # integer widths may differ (engines may hold int64 inputs as int32); anything else is a bug
            if a.dtype != self.dtypes[n] and not (a.dtype.kind == self.dtypes[n].kind == "i"):
                raise BackendError(f"{self.path.name}: input {n} must be {self.dtypes[n]}, got {a.dtype}")
            if len(a.shape) != len(lo) or any(not (l <= s <= h) for s, l, h in zip(a.shape, lo, hi)):
                raise RangeError(f"{self.path.name}: input {n} of shape {tuple(a.shape)} is outside the engine's "
                                 f"profile {lo}..{hi}")

    def infer(self, feed):
        self._check_feed(feed)
        with self._lock:
            return self._infer(feed)

    def _infer(self, feed):
        rt, ctx = self.rt, self.context
        key = tuple(feed[n].shape for n in self.inputs)
        for n, shape in zip(self.inputs, key):
            if not ctx.set_input_shape(n, shape):
                raise RangeError(f"{self.path.name}: TensorRT refused input {n} of shape {shape}")
        unresolved = ctx.infer_shapes()
        if unresolved:
            raise BackendError(f"{self.path.name}: output shapes unresolved for {unresolved}")
        shapes = {**{n: feed[n].shape for n in self.inputs}, **{n: tuple(ctx.get_tensor_shape(n)) for n in self.outputs}}
        moved = False
        for n, shape in shapes.items():
            moved |= self.buffers[n].ensure(int(np.prod(shape)) * self.dtypes[n].itemsize)
            ctx.set_tensor_address(n, self.buffers[n].ptr)
        if moved:  # captured graphs hold the old addresses
            self._drop_graphs()
        h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for n in self.inputs:
            a = np.ascontiguousarray(feed[n], dtype=self.dtypes[n])
            check(rt.cudaMemcpyAsync(self.buffers[n].ptr, a.ctypes.data, a.nbytes, h2d, self.stream), f"upload of {n}")
        if self.cuda_graph:
            graph_exec = self.graphs[key][1] if key in self.graphs else self._capture(key)
            check(rt.cudaGraphLaunch(graph_exec, self.stream), "graph launch")
        elif not ctx.execute_async_v3(int(self.stream)):
            raise BackendError(f"{self.path.name}: TensorRT execution failed (see the messages above)")
        out = {n: np.empty(shapes[n], self.dtypes[n]) for n in self.outputs}
        for n, a in out.items():
            check(rt.cudaMemcpyAsync(a.ctypes.data, self.buffers[n].ptr, a.nbytes, d2h, self.stream), f"download of {n}")
        check(rt.cudaStreamSynchronize(self.stream), "inference")
        return out

    def _capture(self, key: tuple):
        """Capture one enqueue for the current shapes and addresses as a CUDA graph. TensorRT needs one
        ordinary enqueue after a shape change before capture (it updates internal state then)."""
        rt, stream = self.rt, self.stream
        if not self.context.execute_async_v3(int(stream)):
            raise BackendError(f"{self.path.name}: TensorRT execution failed (see the messages above)")
        check(rt.cudaStreamSynchronize(stream), "inference")
        check(rt.cudaStreamBeginCapture(stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal), "graph capture")
        ok = self.context.execute_async_v3(int(stream))
        graph = check(rt.cudaStreamEndCapture(stream), "graph capture")
        if not ok:
            rt.cudaGraphDestroy(graph)
            raise BackendError(f"{self.path.name}: TensorRT could not be captured in a CUDA graph; run without --cuda-graph")
        graph_exec = check(rt.cudaGraphInstantiate(graph, 0), "graph instantiation")
        self.graphs[key] = (graph, graph_exec)
        return graph_exec

    def _drop_graphs(self):
        for graph, graph_exec in self.graphs.values():
            self.rt.cudaGraphExecDestroy(graph_exec)
            self.rt.cudaGraphDestroy(graph)
        self.graphs.clear()

    def close(self):
        with self._lock:  # not while a call runs
            if getattr(self, "graphs", None):
                self._drop_graphs()
            for b in getattr(self, "buffers", {}).values():
                b.free()
            if getattr(self, "stream", None) is not None:
                self.rt.cudaStreamDestroy(self.stream)
                self.stream = None
            self.context = self.engine = None
