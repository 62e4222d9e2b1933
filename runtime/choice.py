"""The automatic backend choice: the fastest path whose accuracy was verified on this machine.

benchmarks/fps.py records, in the export folder's verified.json, each path's median time and its
accuracy against PyTorch FP32 (label agreement, mask-embedding cosine) together with the machine.
`choose` picks the fastest recorded path that meets the accuracy bounds, runs here (its backend
installed) and was measured on this kind of machine; otherwise ONNX Runtime FP32, the reference.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .machine import machine_slug

VERIFIED = "verified.json"
MIN_LABEL_AGREEMENT = 0.99
MIN_COSINE = 0.99
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


def meets_bounds(acc: dict) -> bool:
    """A path's accuracy against PyTorch FP32 is good enough to be chosen (or called verified)."""
    return acc["label_agreement"] >= MIN_LABEL_AGREEMENT and acc["mask_emb_cosine_min"] >= MIN_COSINE


def record(export_dir: Path, paths: dict, source: str) -> None:
    """paths: {name: {"backend", "precision", "median_s", "label_agreement", "mask_emb_cosine_min"}}."""
    path = Path(export_dir) / VERIFIED
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[machine_slug()] = {"source": source, "paths": paths}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def choose(export_dir: Path, available=None) -> tuple[str, str, str]:
    """(backend, precision, why)."""
    fallback = ("onnxruntime", "fp32")
    path = Path(export_dir) / VERIFIED
    entry = json.loads(path.read_text()).get(machine_slug()) if path.is_file() else None
    if not entry:
        return (*fallback, f"no verified measurements for this machine ({machine_slug()}) in {path.name}; "
                "ONNX Runtime FP32 (run benchmarks/fps.py to measure the others)")
    installed = available or {b for b, mod in _MODULES.items() if importlib.util.find_spec(mod) is not None}
    ok = {n: p for n, p in entry["paths"].items() if p["backend"] in installed and meets_bounds(p)}
    if not ok:
        return (*fallback, "no measured path met the accuracy bounds here; ONNX Runtime FP32")
    name, p = min(ok.items(), key=lambda kv: kv[1]["median_s"])
    return p["backend"], p["precision"], (
        f"{name}: fastest verified path on {machine_slug()} ({p['median_s']:.3f} s median, label agreement "
        f"{p['label_agreement']:.2%}, mask-embedding cosine >= {p['mask_emb_cosine_min']:.4f}; {entry['source']})")
