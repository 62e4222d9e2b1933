"""sanrt's PyTorch SAN: a faithful, export-friendly graph on open_clip, and what it is measured by.

config.py and presets/*.json (the released models, one file each) describe a SAN; checkpoint.py
loads the official checkpoints (weights only); san.py, side_adapter.py and ops.py are the graph;
pipeline.py is `TorchSegmenter`, the PyTorch baseline with the runtime's types; reference.py runs
the official formulas against the fixtures.

The folder's contract: the only sanrt package that needs torch and open_clip besides export and
benchmarks; it imports sanrt.runtime (preprocessing, tokenizer, result types) and
sanrt.evaluation (comparisons), never export, serving or benchmarks.
"""
from .checkpoint import CheckpointError, load_checkpoint, map_official_state_dict
from .config import PRESET_INFO, PRESETS, Preset, SANConfig, from_fixture_config, preset
from .san import SAN

__all__ = [
    "SAN", "SANConfig", "PRESETS", "PRESET_INFO", "Preset", "preset", "from_fixture_config",
    "CheckpointError", "load_checkpoint", "map_official_state_dict",
]
