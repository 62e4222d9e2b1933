"""SAN model configurations: the released presets (model/presets/*.json) and fixture configs (tiny_config.json)."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import NamedTuple
from pathlib import Path

from sanrt.runtime.errors import ConfigError
from sanrt.runtime.vocabulary import VILD_TEMPLATES, template_problem

# OpenAI CLIP normalisation; SAN multiplies it by 255 because it normalises 0..255 pixels.
CLIP_MEAN_0_255 = tuple(255.0 * m for m in (0.48145466, 0.4578275, 0.40821073))
CLIP_STD_0_255 = tuple(255.0 * s for s in (0.26862954, 0.26130258, 0.27577711))


@dataclass(frozen=True)
class SANConfig:
    name: str
    # open_clip CLIP model (vision_cfg / text_cfg as open_clip spells them); QuickGELU as OpenAI CLIP.
    clip_embed_dim: int
    clip_vision: dict
    clip_text: dict
    feature_last_layer: int = 9  # CLIP blocks run before the side adapter reads CLIP
    clip_scale: float = 0.5  # CLIP sees the padded image resized by this factor
    # side adapter (timm-style ViT, no CLS token, no final norm)
    side_width: int = 240
    side_depth: int = 8
    side_heads: int = 6
    side_patch: int = 16
    side_image_size: int = 640  # its positional-embedding grid is side_image_size / side_patch
    side_mlp_ratio: float = 4.0
    side_out_block: int = 8  # last deep-supervision index: the block whose output is decoded
    num_queries: int = 100
    fusion_map: tuple = ((0, 0), (3, 1), (6, 2), (9, 3))  # (CLIP output index, side index)
    # mask decoder
    bias_heads: int = 12
    decoder_embed: int = 256
    decoder_mlp: int = 256
    decoder_layers: int = 3
    # input handling
    pixel_mean: tuple = CLIP_MEAN_0_255
    pixel_std: tuple = CLIP_STD_0_255
    min_size: int = 640
    max_size: int = 2560
    size_divisibility: int = 32
    templates: tuple = VILD_TEMPLATES
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        check_config(self)

    @property
    def clip_width(self) -> int:
        return self.clip_vision["width"]

    @property
    def clip_heads(self) -> int:
        v = self.clip_vision
        return v["width"] // v.get("head_width", 64)  # open_clip's rule

    @property
    def clip_layers(self) -> int:
        return self.clip_vision["layers"]

    @property
    def clip_patch(self) -> int:
        return self.clip_vision["patch_size"]

    @property
    def text_width(self) -> int:
        return self.clip_text["width"]

    @property
    def context_length(self) -> int:
        return self.clip_text.get("context_length", 77)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fusion_map"] = [list(p) for p in self.fusion_map]
        d["templates"] = list(self.templates)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SANConfig":
        d = dict(d)
        d["fusion_map"] = tuple(tuple(p) for p in d["fusion_map"])
        d["templates"] = tuple(d["templates"])
        d["pixel_mean"] = tuple(d["pixel_mean"])
        d["pixel_std"] = tuple(d["pixel_std"])
        return cls(**d)


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_config(c: SANConfig) -> None:
    """ConfigError naming the first field that no SAN can have (a count below 1, an index past the
    layers it indexes, a width its heads do not divide, a template without its one {} slot, ...):
    found before a model is built, never as a broken export."""
    def need(ok, what):
        if not ok:
            raise ConfigError(f"config {c.name!r}: {what}")

    for f in ("clip_embed_dim", "side_width", "side_depth", "side_heads", "side_patch", "side_image_size", "num_queries",
              "bias_heads", "decoder_embed", "decoder_mlp", "decoder_layers", "min_size", "max_size", "size_divisibility"):
        need(_count(getattr(c, f)), f"{f} must be a whole number of 1 or more, not {getattr(c, f)!r}")
    for part, keys in (("clip_vision", ("image_size", "layers", "width", "patch_size")),
                       ("clip_text", ("context_length", "vocab_size", "width", "heads", "layers"))):
        d = getattr(c, part)
        need(isinstance(d, dict), f"{part} must be a mapping")
        for k in keys:
            need(_count(d.get(k)), f"{part}.{k} must be a whole number of 1 or more, not {d.get(k)!r}")
    hw = c.clip_vision.get("head_width", 64)
    need(_count(hw) and c.clip_width % hw == 0, f"clip_vision.width {c.clip_width} is not a multiple of its head_width {hw!r}")
    need(c.clip_text["width"] % c.clip_text["heads"] == 0,
         f"clip_text.width {c.clip_text['width']} is not a multiple of clip_text.heads {c.clip_text['heads']}")
    need(c.side_width % c.side_heads == 0, f"side_width {c.side_width} is not a multiple of side_heads {c.side_heads}")
    need(c.text_width == c.clip_embed_dim,  # SAN sizes its background row by the text width
         f"clip_text.width ({c.text_width}) differs from clip_embed_dim ({c.clip_embed_dim}); SAN needs them equal")
    need(c.bias_heads in (1, c.clip_heads), f"bias_heads ({c.bias_heads}) must be 1 or CLIP's heads ({c.clip_heads})")
    need(isinstance(c.feature_last_layer, int) and 1 <= c.feature_last_layer < c.clip_layers,
         f"feature_last_layer {c.feature_last_layer!r} must lie in 1..{c.clip_layers - 1} (CLIP has {c.clip_layers} blocks)")
    need(isinstance(c.side_out_block, int) and 1 <= c.side_out_block <= c.side_depth,
         f"side_out_block {c.side_out_block!r} must lie in 1..{c.side_depth} (the side adapter's blocks)")
    need(c.side_image_size % c.side_patch == 0, f"side_image_size {c.side_image_size} is not a multiple of side_patch {c.side_patch}")
    need(c.min_size <= c.max_size, f"min_size {c.min_size} is larger than max_size {c.max_size}")
    need(_real(c.clip_scale) and 0 < c.clip_scale <= 1, f"clip_scale {c.clip_scale!r} must lie in (0, 1]")
    need(_real(c.side_mlp_ratio) and c.side_mlp_ratio > 0, f"side_mlp_ratio {c.side_mlp_ratio!r} must be above 0")
    fm = c.fusion_map
    need(isinstance(fm, tuple) and len(fm) > 0 and all(isinstance(p, tuple) and len(p) == 2 for p in fm),
         "fusion_map must hold (CLIP output index, side block index) pairs")
    for src, dst in fm:
        need(isinstance(src, int) and 0 <= src <= c.feature_last_layer,
             f"fusion_map reads CLIP output {src!r}, outside 0..{c.feature_last_layer} (feature_last_layer)")
        need(isinstance(dst, int) and 0 <= dst <= c.side_out_block,
             f"fusion_map feeds side block {dst!r}, outside 0..{c.side_out_block} (side_out_block)")
    need(len({d for _, d in fm}) == len(fm), "fusion_map feeds one side block twice")
    for f in ("pixel_mean", "pixel_std"):
        v = getattr(c, f)
        need(isinstance(v, tuple) and len(v) == 3 and all(_real(x) for x in v), f"{f} must be 3 finite numbers, not {v!r}")
    need(all(x > 0 for x in c.pixel_std), f"pixel_std {c.pixel_std} must be above 0")
    need(isinstance(c.templates, tuple) and len(c.templates) > 0, "templates must hold at least one prompt template")
    for t in c.templates:
        problem = template_problem(t)
        need(problem is None, problem)


class Preset(NamedTuple):
    """A released SAN, as data (model/presets/<name>.json, open_clip's model_configs style)."""

    name: str
    title: str  # for reports
    checkpoint: str  # the released file's name (models/README.md)
    source: str  # the official config it follows
    config: SANConfig


def _read_preset(path) -> Preset:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        c = dict(d["config"])
        if "fusion_map" in c:
            c["fusion_map"] = tuple(tuple(p) for p in c["fusion_map"])
        return Preset(d["name"], d["title"], d["checkpoint"], d["source"], SANConfig(name=d["name"], **c))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"preset file {path} is damaged: {e}") from None


def _presets() -> dict[str, Preset]:
    from importlib.resources import files

    folder = files(__package__).joinpath("presets")
    found = [_read_preset(p) for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".json")]
    return {p.name: p for p in found}


PRESET_INFO = _presets()  # every released SAN sanrt knows: one JSON file each
PRESETS = {name: p.config for name, p in PRESET_INFO.items()}


def preset(name: str) -> SANConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def _parse_fusion_map(entries) -> tuple:
    pairs = []
    for e in entries:
        src, dst = e.split("->")
        pairs.append((int(src), int(dst)))
    return tuple(pairs)


def from_fixture_config(path: str | Path) -> SANConfig:
    """Build a config from a reference fixture's tiny_config.json (the official settings, spelled out).
    A missing, unreadable or incomplete file is one ConfigError naming the file and the field."""
    path = Path(path)
    try:
        c = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror or e}") from None
    try:
        return _config_from_dict(c, path)
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    except KeyError as e:
        raise ConfigError(f"config file {path} lacks the field {e}") from None
    except (TypeError, AttributeError, ValueError) as e:
        raise ConfigError(f"config file {path} does not hold a SAN fixture config: {e}") from None


def _config_from_dict(c: dict, path: Path) -> SANConfig:
    oc = c["open_clip_model_cfg"]
    sa = c["side_adapter"]
    vit = sa["timm_vit"]
    bias = sa["ATTN_BIAS"]
    if bias.get("NUM_LAYERS", 1) != 1:
        raise ConfigError("only ATTN_BIAS.NUM_LAYERS = 1 (as in both releases) is supported")
    inp = c["input"]
    san = c["san"]
    vision = dict(oc["vision_cfg"])
    heads = vision["width"] // vision.get("head_width", 64)  # open_clip's rule
    if c.get("clip_vision_heads", heads) != heads:
        raise ConfigError(f"clip_vision_heads {c['clip_vision_heads']} != width / head_width = {heads}")
    return SANConfig(
        name=c.get("open_clip_model_name", path.parent.name),
        clip_embed_dim=oc["embed_dim"],
        clip_vision=vision,
        clip_text=dict(oc["text_cfg"]),
        feature_last_layer=san["FEATURE_LAST_LAYER_IDX"],
        clip_scale=inp["clip_resolution_scale_factor"],
        side_width=vit["embed_dim"],
        side_depth=vit["depth"],
        side_heads=vit["num_heads"],
        side_patch=vit["patch_size"],
        side_image_size=sa["IMAGE_SIZE"],
        side_mlp_ratio=sa.get("mlp_ratio", 4.0),
        side_out_block=max(sa["DEEP_SUPERVISION_IDXS"]),
        num_queries=sa["NUM_QUERIES"],
        fusion_map=_parse_fusion_map(sa["FUSION_MAP"]),
        bias_heads=bias["NUM_HEADS"],
        decoder_embed=bias["EMBED_CHANNELS"],
        decoder_mlp=bias["MLP_CHANNELS"],
        decoder_layers=bias["MLP_NUM_LAYERS"],
        pixel_mean=tuple(c["pixel_mean_0_255"]),
        pixel_std=tuple(c["pixel_std_0_255"]),
        min_size=inp["min_size_test"],
        max_size=inp["max_size_test"],
        size_divisibility=inp["size_divisibility"],
        templates=tuple(c["templates"]),
        meta={"source": str(path)},
    )
