"""SAN model configurations: the two released presets and fixture configs (tiny_config.json)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from sanrt.runtime.errors import ConfigError
from sanrt.runtime.vocabulary import VILD_TEMPLATES

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


_VIT_B_16 = dict(
    clip_embed_dim=512,
    clip_vision=dict(image_size=224, layers=12, width=768, patch_size=16),
    clip_text=dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12),
)
_VIT_L_14_336 = dict(
    clip_embed_dim=768,
    clip_vision=dict(image_size=336, layers=24, width=1024, patch_size=14),
    clip_text=dict(context_length=77, vocab_size=49408, width=768, heads=12, layers=12),
)

PRESETS = {
    # released san_vit_b_16.pth (configs/san_clip_vit_res4_coco.yaml)
    "vit_b_16": SANConfig(name="vit_b_16", **_VIT_B_16),
    # released san_vit_large_14.pth (configs/san_clip_vit_large_res4_coco.yaml)
    "vit_l_14": SANConfig(
        name="vit_l_14",
        **_VIT_L_14_336,
        feature_last_layer=18,
        clip_scale=0.7,
        fusion_map=((0, 0), (6, 1), (12, 2), (18, 3)),
        bias_heads=16,
    ),
}


def preset(name: str) -> SANConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
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
