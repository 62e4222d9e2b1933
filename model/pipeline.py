"""SAN end to end in PyTorch: original RGB image + class names -> label map (the baseline that
exports are measured against). The same stateless shape as sanrt.runtime.Segmenter: a vocabulary
is a value, made once and passed to each call."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from sanrt.runtime.preprocess import pad_batch, prepare
from sanrt.runtime.tokenizer import tokenize
from sanrt.runtime.vocabulary import check_vocabulary

from .postprocess import semantic_inference
from .san import SAN


class TorchVocabulary(NamedTuple):
    names: tuple[str, ...]
    class_weights: torch.Tensor  # [K+1, D]: templates averaged, background row, logit scale


class TorchSegmenter:
    def __init__(self, model: SAN):
        self.model = model.eval()

    @torch.no_grad()
    def vocabulary(self, names) -> TorchVocabulary:
        cfg = self.model.cfg
        names = check_vocabulary(names, cfg.templates, cfg.context_length)
        # sanrt's tokenizer: open_clip's ids, except that marker texts typed in a name are words
        ids = torch.stack([torch.from_numpy(tokenize([t.format(n) for n in names], cfg.context_length, specials=False))
                           for t in cfg.templates]).long()
        return TorchVocabulary(tuple(names), self.model.classifier_weight(self.model.class_embeddings(ids)))

    @torch.no_grad()
    def encode_images(self, images_hwc_u8: list[np.ndarray]) -> dict:
        """Batch of original RGB images -> the image graph's outputs (vocabulary-independent)."""
        cfg = self.model.cfg
        chws = [prepare(im, cfg.min_size, cfg.max_size) for im in images_hwc_u8]
        batch, sizes = pad_batch(chws, cfg.size_divisibility)
        mask_logits, mask_emb = self.model(torch.from_numpy(batch), torch.from_numpy(sizes))
        return {"padded_hw": batch.shape[-2:], "image_hw": [c.shape[1:] for c in chws],
                "orig_hw": [im.shape[:2] for im in images_hwc_u8], "mask_logits": mask_logits, "mask_emb": mask_emb}

    @torch.no_grad()
    def classify(self, enc: dict, vocab: TorchVocabulary) -> list[dict]:
        """Image-graph outputs + a vocabulary -> per image scores, labels and raw outputs."""
        logits = SAN.classify(enc["mask_emb"], vocab.class_weights)
        out = []
        for i, orig_hw in enumerate(enc["orig_hw"]):
            scores = semantic_inference(logits[i], enc["mask_logits"][i], enc["padded_hw"], enc["image_hw"][i], orig_hw)
            out.append({"scores": scores.numpy(), "labels": scores.argmax(0).numpy().astype(np.int32),
                        "mask_logits": enc["mask_logits"][i].numpy(), "mask_emb": enc["mask_emb"][i].numpy(),
                        "class_logits": logits[i].numpy()})
        return out

    def segment(self, images_hwc_u8: list[np.ndarray], vocab: TorchVocabulary) -> list[dict]:
        """Batch of original RGB images -> per image {'scores' [K,H0,W0], 'labels' [H0,W0], raw outputs}."""
        return self.classify(self.encode_images(images_hwc_u8), vocab)
