"""The one small interface every backend implements (as Polygraphy's runners do)."""
from __future__ import annotations

import numpy as np


class Runner:
    """One graph on one backend: a dict of numpy inputs -> a dict of numpy outputs. `infer` may be
    called from several threads at once (each backend makes sure of it)."""

    backend = "?"

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def device(self) -> str:
        return "cpu"
