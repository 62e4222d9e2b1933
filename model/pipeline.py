"""SAN end to end in PyTorch: original RGB image + class names -> label map (the baseline that
exports are measured against). The same stateless shape and the same types as
sanrt.runtime.Segmenter: a `Vocabulary` is a value, made once and passed to each call; answers are
`EncodedBatch` and `Segmentation` values (numpy arrays), with the scores always kept."""
from __future__ import annotations

import numpy as np
import torch
from sanrt.runtime.preprocess import pad_batch, prepare
from sanrt.runtime.results import EncodedBatch, Segmentation
from sanrt.runtime.text import Vocabulary
from sanrt.runtime.tokenizer import tokenize
from sanrt.runtime.vocabulary import check_vocabulary

from .postprocess import semantic_inference
from .san import SAN


class TorchSegmenter:
    source = "torch"  # the Vocabulary.source of vocabularies it makes

    def __init__(self, model: SAN):
        self.model = model.eval()

    @torch.no_grad()
    def vocabulary(self, names) -> Vocabulary:
        cfg = self.model.cfg
        names = check_vocabulary(names, cfg.templates, cfg.context_length)
        # sanrt's tokenizer: open_clip's ids, except that marker texts typed in a name are words
        ids = torch.stack([torch.from_numpy(tokenize([t.format(n) for n in names], cfg.context_length, specials=False))
                           for t in cfg.templates]).long()
        weights = self.model.classifier_weight(self.model.class_embeddings(ids)).float().numpy()
        weights.flags.writeable = False
        return Vocabulary(tuple(names), weights, self.source)

    @torch.no_grad()
    def encode_images(self, images_hwc_u8: list[np.ndarray]) -> EncodedBatch:
        """Batch of original RGB images -> the image graph's outputs (vocabulary-independent)."""
        cfg = self.model.cfg
        chws = [prepare(im, cfg.min_size, cfg.max_size) for im in images_hwc_u8]
        batch, sizes = pad_batch(chws, cfg.size_divisibility)
        mask_logits, mask_emb = self.model(torch.from_numpy(batch), torch.from_numpy(sizes))
        return EncodedBatch(batch.shape[-2:], [c.shape[1:] for c in chws], [im.shape[:2] for im in images_hwc_u8],
                            mask_logits.float().numpy(), mask_emb.float().numpy())

    @torch.no_grad()
    def classify(self, enc: EncodedBatch, vocab: Vocabulary) -> list[Segmentation]:
        """Image-graph outputs + a vocabulary -> one Segmentation per image (official post-processing)."""
        logits = SAN.classify(torch.from_numpy(enc.mask_emb), torch.from_numpy(np.array(vocab.class_weights)))
        out = []
        for i, orig_hw in enumerate(enc.orig_hw):
            scores = semantic_inference(logits[i], torch.from_numpy(enc.mask_logits[i]), enc.padded_hw, enc.image_hw[i],
                                        orig_hw)
            out.append(Segmentation(scores.argmax(0).numpy().astype(np.int32), vocab.names, scores.numpy(),
                                    enc.mask_logits[i], enc.mask_emb[i], logits[i].numpy()))
        return out

    def segment(self, images_hwc_u8: list[np.ndarray], vocab: Vocabulary) -> list[Segmentation]:
        """Batch of original RGB images -> one Segmentation each (scores [K, H0, W0] kept)."""
        return self.classify(self.encode_images(images_hwc_u8), vocab)
