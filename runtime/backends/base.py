"""The one small interface every backend implements (as Polygraphy's runners do)."""
from __future__ import annotations

import numpy as np


class Runner:
    """One graph on one backend: a dict of numpy inputs -> a dict of numpy outputs. `infer` may be
    called from several threads at once (each backend makes sure of it). `close()` (or leaving a
    `with` block) frees what the runner holds; a runner is not used after it. Nothing is freed in
    __del__: the order in which the interpreter collects objects at exit (a CUDA context before its
    buffers) is not ours to rely on."""

    backend = "?"

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def device(self) -> str:
        return "cpu"

    def close(self) -> None:
        """Free sessions, engines and device memory (the CPU backends let their sessions go)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
