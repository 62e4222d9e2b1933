"""SAN end to end in PyTorch: original RGB image + class names -> label map (the baseline that
exports are measured against)."""
from __future__ import annotations

import numpy as np
import open_clip
import torch

from sanrt.runtime.preprocess import pad_batch, prepare
from sanrt.runtime.vocabulary import check_vocabulary

from .postprocess import semantic_inference
from .san import SAN


class TorchSegmenter:
    def __init__(self, model: SAN):
        self.model = model.eval()
        self.names: list[str] = []
        self.weight = None

    @torch.no_grad()
    def set_vocabulary(self, names) -> None:
        self.names = check_vocabulary(names)
        ids = torch.stack([open_clip.tokenize([t.format(n) for n in self.names]) for t in self.model.cfg.templates])
        self.weight = self.model.classifier_weight(self.model.class_embeddings(ids))

    @torch.no_grad()
    def segment(self, images_hwc_u8: list[np.ndarray]) -> list[dict]:
        """Batch of original RGB images -> per image {'scores' [K,H0,W0], 'labels' [H0,W0], raw outputs}."""
        cfg = self.model.cfg
        chws = [prepare(im, cfg.min_size, cfg.max_size) for im in images_hwc_u8]
        batch, sizes = pad_batch(chws, cfg.size_divisibility)
        mask_preds, mask_emb = self.model(torch.from_numpy(batch), torch.from_numpy(sizes))
        logits = SAN.classify(mask_emb, self.weight)
        out = []
        for i, im in enumerate(images_hwc_u8):
            scores = semantic_inference(logits[i], mask_preds[i], batch.shape[-2:], chws[i].shape[1:], im.shape[:2])
            out.append({"scores": scores.numpy(), "labels": scores.argmax(0).numpy().astype(np.int32),
                        "mask_preds": mask_preds[i].numpy(), "mask_emb": mask_emb[i].numpy(),
                        "mask_logits": logits[i].numpy()})
        return out
