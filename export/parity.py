"""Measure an export against the PyTorch model it came from, on the same inputs.

Image graph: mask logits and mask embeddings for photos and random inputs (square and non-square,
batch 1 and 2). Text graph + head: class weights and class logits for vocabularies of several
sizes. End to end: label maps of the runtime (ORT + numpy post-processing) against PyTorch
(official post-processing), as label agreement with near-ties of the reference's scores counted
apart (sanrt.evaluation.compare).
"""
from __future__ import annotations

import numpy as np
from sanrt.model import SAN
from sanrt.model.pipeline import TorchSegmenter
from sanrt.evaluation.compare import FP32, Comparison
from sanrt.runtime.segmenter import Segmenter


def compare(model: SAN, segmenter: Segmenter, photos: dict, vocabularies: dict, random_sizes=((640, 640), (640, 864)),
            batches=(1, 2), seed: int = 0, progress=print) -> Comparison:
    """photos {name: RGB uint8}; vocabularies {label: names}. Every case runs every vocabulary.
    Random inputs of one size form the batches (a batch holds one padded size)."""
    result = Comparison(FP32)
    ref = TorchSegmenter(model)
    rng = np.random.default_rng(seed)
    cases = [(f"photo {n} {im.shape[1]}x{im.shape[0]}", [im]) for n, im in photos.items()]
    for h, w in random_sizes:
        for b in batches:
            cases.append((f"random {w}x{h} batch {b}", [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(b)]))
    vocabs = {}
    for label, names in vocabularies.items():
        progress(f"text: {label} ({len(names)} classes)")
        v_ref, v_ours = ref.vocabulary(names), segmenter.vocabulary(names, use_cache=False)
        result.tensors(f"vocabulary {label}", "class_weights", v_ours.class_weights, v_ref.class_weights)
        vocabs[label] = (v_ref, v_ours)
    for case, images in cases:
        progress(f"image: {case}")
        enc_ref, enc_ours = ref.encode_images(images), segmenter.encode_images(images)
        for i in range(len(images)):
            tag = f"{case} [{i}]" if len(images) > 1 else case
            result.tensors(tag, "mask_logits", enc_ours.mask_logits[i], enc_ref.mask_logits[i])
            result.tensors(tag, "mask_emb", enc_ours.mask_emb[i], enc_ref.mask_emb[i])
        for label, (v_ref, v_ours) in vocabs.items():
            r_ref, r_ours = ref.classify(enc_ref, v_ref), segmenter.classify(enc_ours, v_ours)
            result.tensors(f"{case} K={label}", "class_logits", np.stack([r.class_logits for r in r_ours]),
                           np.stack([r.class_logits for r in r_ref]))
            result.labels(f"{case} K={label}", np.stack([o.labels for o in r_ours]), np.stack([r.labels for r in r_ref]),
                          ref_scores=np.stack([r.scores for r in r_ref]))
    return result
