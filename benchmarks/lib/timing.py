"""Timing as every benchmark does it: warm-up calls first, then many timed calls, medians."""
from __future__ import annotations

import time

import numpy as np


def stats(times: list[float], batch: int = 1) -> dict:
    t = np.array(times)
    return {"median_s": float(np.median(t)), "p90_s": float(np.percentile(t, 90)), "p99_s": float(np.percentile(t, 99)),
            "min_s": float(t.min()), "mean_s": float(t.mean()), "runs": len(times),
            "images_per_s": batch / float(np.median(t))}


def measure(fn, runs: int = 10, warmup: int = 2, sync=None, max_s: float | None = None, batch: int = 1) -> dict:
    """`warmup` calls of fn(), then up to `runs` timed ones (at least 3 once `max_s` seconds have
    passed), each followed by sync() (a device synchronisation: the work is done when timed)."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times, end = [], None if max_s is None else time.perf_counter() + max_s
    for i in range(runs):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
        if end is not None and i >= 2 and time.perf_counter() > end:
            break
    return {**stats(times, batch), "warmup": warmup}


def median_time(fn, runs: int = 15, warmup: int = 3) -> float:
    """Median seconds of `runs` calls of fn() after `warmup` calls."""
    return measure(fn, runs, warmup)["median_s"]


def interleaved(paths: list, images, runs: int, warmup: int) -> dict:
    """Time path.encode(images) for every path, A B C A B C ..., after `warmup` calls each (a path's
    `extra_warmup` adds calls; the first one's time is its `compile_s`, as torch.compile compiles in it)."""
    for p in paths:
        for i in range(warmup + getattr(p, "extra_warmup", 0)):
            t = time.perf_counter()
            p.encode(images)
            if i == 0 and getattr(p, "extra_warmup", 0):
                p.compile_s = time.perf_counter() - t
    times = {p.name: [] for p in paths}
    for _ in range(runs):
        for p in paths:
            t = time.perf_counter()
            p.encode(images)
            times[p.name].append(time.perf_counter() - t)
    return {name: stats(ts, len(images)) for name, ts in times.items()}
