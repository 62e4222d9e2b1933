"""Import the official SAN checkpoints (`{'model': state_dict}`, detectron2 format, or a bare state
dict) into sanrt's SAN, safely (`weights_only=True`) and strictly."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from sanrt.runtime.errors import SanrtError

# Official keys that carry nothing for inference.
_DROPPED_PREFIXES = (
    "criterion.",  # training loss buffers
)
# open_clip's causal text mask (-inf); sanrt builds a finite one of its own.
_DROPPED_KEYS = ("ov_classifier.attn_mask",)


class CheckpointError(SanrtError, ValueError):
    """The checkpoint cannot be read or does not fit the model."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a SAN checkpoint ({{'model': state_dict}} or a state dict)")
    return obj


def _rename(key: str, feature_last_layer: int) -> str | None:
    """Official key -> sanrt key; None for keys that are dropped."""
    if key in _DROPPED_KEYS or key.startswith(_DROPPED_PREFIXES):
        return None
    m = re.match(r"clip_rec_head\.resblocks\.(\d+)\.(.*)", key)
    if m:  # the recognition head holds CLIP blocks FEATURE_LAST_LAYER_IDX.. renumbered from 0
        return f"clip.visual.transformer.resblocks.{int(m.group(1)) + feature_last_layer}.{m.group(2)}"
    for old, new in (
        ("clip_visual_extractor.resblocks.", "clip.visual.transformer.resblocks."),
        ("clip_visual_extractor.", "clip.visual."),
        ("clip_rec_head.", "clip.visual."),
        ("ov_classifier.bg_embed", "bg_embed"),
        ("ov_classifier.", "clip."),
        ("side_adapter_network.", "side_adapter."),
    ):
        if key.startswith(old):
            return new + key[len(old):]
    return key  # unknown: reported as unexpected


def map_official_state_dict(official: dict, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename official keys onto `model` and check that keys and shapes match exactly.

    Raises CheckpointError naming the missing keys, the unexpected keys and the wrong shapes.
    """
    mapped, origin = {}, {}
    for k, v in official.items():
        new = _rename(k, model.cfg.feature_last_layer)
        if new is not None:
            mapped[new] = v
            origin[new] = k
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in mapped)
    unexpected = sorted(origin[k] for k in mapped if k not in expected)
    wrong = sorted(
        f"{origin[k]} {list(mapped[k].shape)} (model wants {list(expected[k].shape)})"
        for k in mapped
        if k in expected and tuple(mapped[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"checkpoint does not fit SAN config {model.cfg.name!r}: " + "; ".join(problems))
    # a NaN or infinite weight would export and run, then label every pixel alike
    bad = [origin[k] for k, v in mapped.items()
           if v.is_floating_point() and not v.is_meta and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"checkpoint holds NaN or infinite values in {', '.join(bad[:5])}"
                              + (f" ... ({len(bad)} tensors)" if len(bad) > 5 else ""))
    return mapped


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load an official SAN checkpoint file into `model` (strict), returning the model."""
    model.load_state_dict(map_official_state_dict(read_state_dict(path), model), strict=True)
    return model
