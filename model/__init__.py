"""sanrt's PyTorch SAN: a faithful, export-friendly graph on open_clip."""
from .checkpoint import CheckpointError, load_checkpoint, map_official_state_dict
from .config import PRESET_INFO, PRESETS, Preset, SANConfig, from_fixture_config, preset
from .san import SAN

__all__ = [
    "SAN", "SANConfig", "PRESETS", "PRESET_INFO", "Preset", "preset", "from_fixture_config",
    "CheckpointError", "load_checkpoint", "map_official_state_dict",
]
