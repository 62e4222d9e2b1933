"""The automatic backend choice: the fastest path whose accuracy was verified on this machine, with
the very graphs the export holds now.

sanrt.evaluation.verify (run by benchmarks/fps.py) records, in the export folder's verified.json,
each path's median time, its accuracy against PyTorch FP32 (label agreement, mask-embedding cosine),
the machine and the sha256 of the graphs it ran. Entries are keyed by what ran them: the CPU kind
for CPU paths, the GPU for CUDA paths, so a CPU measurement never chooses a CUDA path. `choose` picks the fastest recorded path that meets the accuracy bounds, runs
here (its backend installed), was measured on this kind of machine and whose graphs are unchanged
(a re-export or a removed variant invalidates its entries); otherwise ONNX Runtime FP32.
"""
from __future__ import annotations

import importlib.util
import json
import logging

from .backends import PRECISIONS, find_path
from .errors import SanrtError
from .machine import cpu_flags, int8_weight_bits, machine_slug, matrix_tier
from .manifest import Manifest
from .outputs import write_atomic

VERIFIED = "verified.json"
MIN_LABEL_AGREEMENT = 0.99
MIN_COSINE = 0.99
FALLBACK = ("onnxruntime", "fp32")
log = logging.getLogger("sanrt")


# INT8 paths must also pass on the outlier-stress variant (benchmarks/fps.py --stress): random
# weights lack the outlier channels of trained CLIP that break per-tensor INT8 scales, so a pass on
# the export's own weights alone would flatter INT8.
STRESS_CHECKED = ("int8", "int8dyn", "int8-bf16")


def meets_bounds(acc: dict) -> bool:
    """A path's accuracy against PyTorch FP32 is good enough to be chosen (or called verified): label
    agreement with the dataset vocabulary and mask-embedding cosine. (fps.py also reports a probe
    classifier's label agreement; not a bound: on random weights its labels sit on near-ties, where
    even PyTorch's own BF16 autocast flips 3 % of them. benchmarks/NOTES.md section 9.)"""
    return acc["label_agreement"] >= MIN_LABEL_AGREEMENT and acc["mask_emb_cosine_min"] >= MIN_COSINE


def choosable(p: dict) -> bool:
    """Meets the bounds, and for INT8 paths also on the outlier-stress variant."""
    if not meets_bounds(p):
        return False
    return p["precision"] not in STRESS_CHECKED or (isinstance(p.get("stress"), dict) and meets_bounds(p["stress"]))


def graphs_of(manifest: Manifest, precision: str) -> dict:
    """{file: sha256} of the graphs a path of this precision runs."""
    return manifest.identity(manifest.image_graph(precision), manifest.graphs["text"].file, manifest.graphs["head"].file)


def verification_key(device: str = "cpu") -> str:
    """verified.json's key for measurements on this machine's CPU, or on its GPU (device "cuda")."""
    if device == "cpu":
        return machine_slug()
    from .backends.trt_engines import gpu_identity  # cuda-python: only when a CUDA path is asked about

    name = gpu_identity()["gpu"]
    return "cuda-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def read_verified(manifest: Manifest) -> dict:
    path = manifest.folder / VERIFIED
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except (ValueError, UnicodeDecodeError, OSError) as e:
        log.warning(f"ignoring {path} (unreadable: {e}); the automatic choice falls back to ONNX Runtime FP32")
        return {}


def record(manifest: Manifest, paths: dict, source: str, device: str = "cpu") -> None:
    """paths: {name: {"backend", "precision", "median_s", "label_agreement", "mask_emb_cosine_min",
    optionally "stress": {the same two}}}, all run on `device`. Replaces this machine's entry for that
    device; each path also records its device and the sha256 of the graphs it ran."""
    for p in paths.values():
        find_path(p["backend"], p["precision"], device)  # only registered paths are recorded
    data = read_verified(manifest)
    data[verification_key(device)] = {
        "source": source, "device": device,
        "paths": {n: {**p, "device": device, "graphs": graphs_of(manifest, p["precision"])} for n, p in paths.items()}}
    write_atomic(manifest.folder / VERIFIED, lambda f: f.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n"))


def still_valid(manifest: Manifest, p, device: str) -> bool:
    """A recorded path that still describes this export: well formed, a registered path on `device`
    (entries written before devices were recorded are CPU ones), same graphs."""
    try:
        if p.get("device", "cpu") != device:
            return False
        find_path(p["backend"], p["precision"], device)
        float(p["median_s"]), choosable(p)
        return graphs_of(manifest, p["precision"]) == p["graphs"]
    except (SanrtError, KeyError, TypeError, ValueError):
        return False


def choose(manifest: Manifest, device: str = "auto", available=None) -> tuple[str, str, str, str]:
    """(backend, precision, device, why). device "auto" and "cpu" choose among CPU measurements of
    this CPU kind; "cuda" among measurements on this GPU."""
    device = "cuda" if device == "cuda" else "cpu"
    fallback = (*FALLBACK, device)
    key = verification_key(device)
    entry = read_verified(manifest).get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("paths"), dict):
        return (*fallback, f"no verified measurements for this machine ({key}) in {VERIFIED}; "
                "ONNX Runtime FP32 (run benchmarks/fps.py to measure the others)")
    installed = available or {b for b in PRECISIONS if importlib.util.find_spec(b) is not None}
    current = {n: p for n, p in entry["paths"].items() if isinstance(p, dict) and still_valid(manifest, p, device)}
    ok = {n: p for n, p in current.items() if p["backend"] in installed and choosable(p)}
    if not ok:
        why = "no measured path met the accuracy bounds here (INT8 ones also on the outlier-stress variant)" if current else \
            "the measured graphs are no longer those of this export (re-exported or variant removed)"
        return (*fallback, f"{why}; ONNX Runtime FP32 (run benchmarks/fps.py again)")
    name, p = min(ok.items(), key=lambda kv: kv[1]["median_s"])
    return p["backend"], p["precision"], device, (
        f"{name}: fastest verified path on {key} ({p['median_s']:.3f} s median, label agreement "
        f"{p['label_agreement']:.2%}, mask-embedding cosine >= {p['mask_emb_cosine_min']:.4f}; {entry.get('source', '?')})")


def verified_here(manifest: Manifest, backend: str, precision: str) -> bool:
    """A path of this pair met the bounds (INT8: also under stress) on this kind of machine, with the
    graphs the export holds now."""
    entry = read_verified(manifest).get(machine_slug())
    paths = entry.get("paths") if isinstance(entry, dict) else None
    return isinstance(paths, dict) and any(
        isinstance(p, dict) and p.get("backend") == backend and p.get("precision") == precision and still_valid(manifest, p, "cpu")
        and choosable(p) for p in paths.values())


def int8_warning(manifest: Manifest, backend: str, precision: str) -> str | None:
    """For an INT8 path named by the user: why its answers may be wrong on this CPU, in one line, or
    None. A graph verified on one CPU tier is not assumed to hold on another."""
    if precision not in STRESS_CHECKED:
        return None
    tier = matrix_tier(cpu_flags())
    recipe = manifest.quantization.get(precision.split("-")[0], {})
    bits = recipe.get("weight_bits", 8) if isinstance(recipe, dict) else 8
    if bits > int8_weight_bits(tier):
        return (f"the {precision} image graph has {bits}-bit weights, made for CPUs with VNNI or AMX; this CPU "
                f"({tier}) adds u8 x s8 products in saturating int16, so its answers can be far off: re-quantise "
                "here with export/quantize.py (7-bit weights)")
    if not verified_here(manifest, backend, precision):
        return (f"{backend} {precision} has not been verified on this machine ({machine_slug()}) for these graphs; "
                "its accuracy here is unmeasured (benchmarks/fps.py measures it)")
    return None
