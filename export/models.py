"""Which SAN to export: a preset or a fixture config, with official weights or random ones.

`build_model` takes values (what the benchmarks and tests call); `add_model_arguments` and
`model_from_args` are the same choice as command-line flags (what the scripts call).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from sanrt.model import PRESETS, SAN, from_fixture_config, load_checkpoint, preset
from sanrt.model.random_init import spread_random_init_
from sanrt.runtime.errors import ConfigError
from sanrt.runtime.manifest import sha256_file

RANDOM_NOTICE = """\
==============================================================================
NOTICE: SAN with RANDOM WEIGHTS (seed {seed}).
The graphs are complete and exact, but their segmentations mean nothing.
Scaled as the official fixtures do, so masks and classes spread out (model/random_init.py).
An export records weights = "random (seed {seed}, fixture-style spread)".
=============================================================================="""


def build_model(preset_name: str | None = None, config: str | Path | None = None, checkpoint: str | Path | None = None,
                random_init: bool = False, seed: int = 0, notice=lambda s: print(s, file=sys.stderr)) -> tuple[SAN, str]:
    """(SAN in eval mode, a description of its weights). Exactly one of `preset_name` ("vit_b_16",
    "vit_l_14") and `config` (a fixture's tiny_config.json); exactly one of `checkpoint` (an official
    .pth, loaded with weights_only=True) and `random_init`."""
    if (preset_name is None) == (config is None):
        raise ConfigError("name exactly one of a preset and a config")
    if (checkpoint is None) == (not random_init):
        raise ConfigError("give exactly one of a checkpoint and random_init")
    cfg = from_fixture_config(config) if config is not None else preset(preset_name)
    torch.manual_seed(seed)
    model = SAN(cfg).eval()
    if random_init:
        notice(RANDOM_NOTICE.format(seed=seed))
        return spread_random_init_(model), f"random (seed {seed}, fixture-style spread)"
    load_checkpoint(model, checkpoint)
    return model, f"{Path(checkpoint).name} sha256:{sha256_file(Path(checkpoint))}"


def add_model_arguments(ap: argparse.ArgumentParser) -> None:
    """--preset | --config, and --checkpoint | --random-init [--seed]: what model_from_args reads."""
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=sorted(PRESETS))
    which.add_argument("--config", type=Path, help="a fixture's tiny_config.json")
    weights = ap.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", type=Path, help="official SAN checkpoint (.pth)")
    weights.add_argument("--random-init", action="store_true", help="random weights (said loudly)")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random-init")


def model_from_args(args) -> tuple[SAN, str]:
    return build_model(args.preset, args.config, args.checkpoint, args.random_init, args.seed)


def model_name(args) -> str:
    """A short name for reports and default folders: the preset, or the fixture folder's name."""
    return args.preset or Path(args.config).parent.name


def export_model(out: str | Path, preset_name: str | None = None, config: str | Path | None = None,
                 checkpoint: str | Path | None = None, random_init: bool = False, seed: int = 0, ranges=None,
                 fp16: bool = False, progress=lambda s: print(s, file=sys.stderr)):
    """One call from values to an export folder: build_model(...) then export(...); returns the manifest."""
    from .onnx_export import ExportRanges, export

    model, weights = build_model(preset_name, config, checkpoint, random_init, seed)
    return export(model, out, weights, ranges or ExportRanges(), progress=progress, fp16=fp16)
