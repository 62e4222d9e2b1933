"""What a figure was measured on: the CPU (model, flags, matrix tier), the GPU where there is one,
and the versions of every library a path runs."""
from __future__ import annotations

import importlib
import os
import platform
import subprocess

from sanrt.runtime.machine import cpu_flags, cpu_model, machine_slug, matrix_tier

LIBRARIES = ("torch", "torchvision", "open_clip", "onnx", "onnxslim", "onnxruntime", "openvino", "nncf", "tensorrt",
             "polygraphy", "numpy")


def versions(names=LIBRARIES) -> dict:
    """{library: version, or why it is unavailable}."""
    out = {}
    for mod in names:
        try:
            out[mod] = getattr(importlib.import_module(mod), "__version__", "?")
        except Exception as e:  # missing or not loadable: record why
            out[mod] = f"unavailable ({type(e).__name__})"
    return out


def nvidia_smi(fields: str = "name,driver_version,memory.total,clocks.max.sm,power.limit") -> str | None:
    try:
        p = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=20)
        return p.stdout.strip() or p.stderr.strip() or None
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({type(e).__name__})"


def machine_info(gpu: bool = False) -> dict:
    """The machine and software of a report."""
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_tier": matrix_tier(cpu_flags()), "slug": machine_slug(),
            "python": platform.python_version(), "platform": platform.platform(), **versions(("torch", "onnxruntime"))}
    try:
        import torch

        info["threads"] = torch.get_num_threads()
    except ImportError:
        info["threads"] = os.cpu_count()
    if gpu:
        info["nvidia_smi"] = nvidia_smi()
        info["versions"] = versions()
    return info
