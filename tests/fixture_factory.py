"""Write fixture folders in the official format for configs the official fixtures (tests/data/official) do not cover.

The numbers come from sanrt itself, so such a folder proves the parity tool handles other widths,
vocabularies and image sizes, not numerical faithfulness (tiny_dev proves that).
"""
import json
import re
from pathlib import Path

import numpy as np
import torch
from sanrt.model import SAN
from sanrt.model.config import from_fixture_config
from sanrt.model.reference import image_stages, text_stages


def official_key(key: str, feature_last_layer: int) -> str:
    """sanrt key -> official key (the inverse of the importer's renaming)."""
    m = re.match(r"clip\.visual\.transformer\.resblocks\.(\d+)\.(.*)", key)
    if m:
        i = int(m.group(1))
        if i >= feature_last_layer:
            return f"clip_rec_head.resblocks.{i - feature_last_layer}.{m.group(2)}"
        return f"clip_visual_extractor.resblocks.{i}.{m.group(2)}"
    for ours, theirs in (("clip.visual.ln_post", "clip_rec_head.ln_post"), ("clip.visual.proj", "clip_rec_head.proj"),
                         ("clip.visual.", "clip_visual_extractor."), ("bg_embed", "ov_classifier.bg_embed"),
                         ("clip.", "ov_classifier."), ("side_adapter.", "side_adapter_network.")):
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise KeyError(key)


def write_fixture(folder: Path, base_config: Path, images: dict, names: list, overrides, seed=0) -> SAN:
    """A fixture folder from `base_config` (a tiny_config.json) changed by `overrides(config_dict)`."""
    folder.mkdir(parents=True)
    c = json.loads(base_config.read_text())
    overrides(c)
    c["vocabulary"] = names
    (folder / "tiny_config.json").write_text(json.dumps(c, indent=1))
    (folder / "vocabulary.txt").write_text("\n".join(names) + "\n")
    torch.manual_seed(seed)
    model = SAN(from_fixture_config(folder / "tiny_config.json")).eval()
    with torch.no_grad():  # make the outputs less degenerate than plain random init
        model.side_adapter.query_embed.mul_(100)
        model.clip.logit_scale.fill_(np.log(100.0))
    sd = {official_key(k, model.cfg.feature_last_layer): v for k, v in model.state_dict().items()}
    sd["criterion.empty_weight"] = torch.ones(len(names) + 1)
    torch.save({"model": sd}, folder / "checkpoint.pth")
    text = text_stages(model, names)
    for name, img in images.items():
        stages = image_stages(model, text, img, extra_clip_outputs=(0,))
        np.savez(folder / f"{name}.npz", orig_image_hwc_u8=img,
                 **{k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in stages.items()})
    return model
