"""Check sanrt's SAN against a folder of official reference outputs (the fixture format of
`shared/reference/tiny_dev`: tiny_config.json, checkpoint.pth, vocabulary.txt, one <image>.npz each).

Every stage is computed by sanrt from the original image and the class names alone, then compared
with what the official code recorded.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import open_clip
import torch
from sanrt.evaluation.compare import FP32, Comparison
from sanrt.runtime.errors import ExportFolderError
from sanrt.runtime.preprocess import pad_batch, prepare
from sanrt.runtime.vocabulary import read_vocabulary_file

from .checkpoint import load_checkpoint
from .config import SANConfig, from_fixture_config
from .postprocess import semantic_inference
from .san import SAN

# The fixtures keep the official tensor names; two of them mean other tensors in sanrt.
OFFICIAL_NAMES = {"mask_preds": "mask_logits", "mask_logits": "class_logits"}


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def load_fixture_model(folder: Path) -> tuple[SAN, SANConfig]:
    cfg = from_fixture_config(folder / "tiny_config.json")
    model = load_checkpoint(SAN(cfg).eval(), folder / "checkpoint.pth")
    return model, cfg


@torch.no_grad()
def text_stages(model: SAN, names: list[str]) -> dict:
    """Token ids and every text-side stage, from class names and the config's templates."""
    ids = torch.stack([open_clip.tokenize([t.format(n) for n in names]) for t in model.cfg.templates])
    per_template = model.encode_text(ids.reshape(-1, ids.shape[-1])).reshape(ids.shape[0], ids.shape[1], -1)
    class_embed = model.class_embeddings(ids)  # encodes again: this is the API the exports use, so it is what gets checked
    scale = model.clip.logit_scale.exp()
    weight = model.classifier_weight(class_embed)
    return {
        "token_ids": ids.to(torch.int32),
        "text_embed_per_template": per_template,
        "class_embed": class_embed,
        "classifier_weight": weight / scale,
        "logit_scale_exp": scale,
        "_weight": weight,  # scaled weights the head uses
    }


@torch.no_grad()
def image_stages(model: SAN, text: dict, orig: np.ndarray, extra_clip_outputs: tuple = ()) -> dict:
    """Every stage the official fixtures record, computed by sanrt from one original RGB image, under
    the official names (see OFFICIAL_NAMES)."""
    cfg = model.cfg
    chw = prepare(orig, cfg.min_size, cfg.max_size)
    batch, sizes = pad_batch([chw], cfg.size_divisibility)
    s = model.forward_stages(torch.from_numpy(batch), torch.from_numpy(sizes), extra_clip_outputs)
    logits = SAN.classify(s["mask_emb"], text["_weight"])
    sem_seg = semantic_inference(logits[0], s["mask_logits"][0], batch.shape[-2:], chw.shape[1:], orig.shape[:2])
    L = cfg.feature_last_layer
    return {
        "model_input_chw_u8": chw,
        "images_tensor": s["images_tensor"],
        "clip_input": s["clip_input"],
        **{f"clip_feat_{i}": f for i, f in s["clip_feats"].items()},
        f"clip_cls_{L}": s["clip_tokens"][:, :1].transpose(0, 1),  # official LND layout [1,B,C]
        **{k: v for k, v in text.items() if not k.startswith("_")},
        "side_query": s["side_query"],
        "side_pix": s["side_pix"],
        "mask_preds": s["mask_logits"],
        "attn_bias_side": s["attn_bias_side"],
        "attn_bias_clip": s["attn_bias_clip"],
        "mask_emb": s["mask_emb"],
        "mask_logits": logits,
        "sem_seg": sem_seg,
        "label_map": sem_seg.argmax(dim=0).to(torch.int32),
    }


def check_fixture(folder: str | Path, progress=None) -> Comparison:
    """Run sanrt on every image of a fixture folder and compare every stage its npz files hold
    (rows named image / sanrt's name of the stage), then the label maps."""
    folder = Path(folder)
    if not (folder / "tiny_config.json").is_file():
        raise ExportFolderError(f"{folder} is not a fixture folder (no tiny_config.json)")
    npz_files = sorted(folder.glob("*.npz"))
    if not npz_files:
        raise ExportFolderError(f"{folder} holds no <image>.npz files")
    model, cfg = load_fixture_model(folder)
    text = text_stages(model, read_vocabulary_file(folder / "vocabulary.txt"))
    report = Comparison(FP32, info={"title": f"sanrt's PyTorch SAN vs the official SAN: {folder.name}",
                                    "images": len(npz_files)})
    for path in npz_files:
        ref = np.load(path, allow_pickle=False)
        extra = tuple(int(m.group(1)) for k in ref.files if (m := re.fullmatch(r"clip_feat_(\d+)", k)))
        ours = image_stages(model, text, ref["orig_image_hwc_u8"], extra)
        for stage in ref.files:
            if stage in ("orig_image_hwc_u8", "label_map"):
                continue
            if stage not in ours:
                raise ExportFolderError(f"{path.name}: unknown stage {stage!r}")
            report.tensors(path.stem, OFFICIAL_NAMES.get(stage, stage), _np(ours[stage]), ref[stage])
        report.labels(path.stem, _np(ours["label_map"]), ref["label_map"], ref_scores=ref["sem_seg"])
        if progress:
            progress(path.stem)
    return report
