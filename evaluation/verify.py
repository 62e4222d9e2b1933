"""Verification: an export's backend paths against reference answers on the same photos, and the
record of it in the export's verified.json, which `Segmenter(backend="auto")` chooses from
(sanrt.runtime.choice reads it; this module is the one writer).

    acc, classes = accuracy({"ov-int8": answers}, reference)     # {photo: Segmentation} each
    record(manifest, {"ov-int8": {"median_s": 0.52, **acc["ov-int8"]}}, source="...", device="cpu")

The reference is PyTorch FP32 (sanrt.model.pipeline.TorchSegmenter, made by the caller): this module
stays torch-free.
"""
from __future__ import annotations

import numpy as np

from sanrt.runtime import choice
from sanrt.runtime.backends import BY_NAME
from sanrt.runtime.errors import BackendError
from sanrt.runtime.manifest import Manifest

from .compare import cosine_min, label_agreement

PROBE_NOTE = "150 random class directions, SAN's semantic inference at the mask grid"


def probe_labels(mask_emb: np.ndarray, mask_logits: np.ndarray, k: int = 150, seed: int = 0) -> np.ndarray:
    """Labels at the mask grid from a probe classifier: k random unit class directions (CLIP's logit
    scale 100), SAN's semantic inference (sum over queries of class probability x mask probability).
    With random weights the text side gives nearly one class everywhere (label agreement then says
    little); the probe's labels spread over many classes and flip with small errors in either output."""
    d = mask_emb.shape[-1]
    w = np.random.default_rng(seed).standard_normal((k + 1, d)).astype(np.float32)
    w *= 100.0 / np.linalg.norm(w, axis=1, keepdims=True)
    e = mask_emb / np.linalg.norm(mask_emb, axis=-1, keepdims=True)
    logits = e @ w.T
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True))[:, :-1]  # [Q, k], background dropped as SAN does
    masks = 1.0 / (1.0 + np.exp(-mask_logits.astype(np.float32)))  # [Q, h, w]
    return np.einsum("qk,qhw->khw", probs, masks).argmax(0)


def accuracy(answers: dict, reference: dict) -> tuple[dict, dict]:
    """answers {path: {photo: Segmentation}}, reference {photo: Segmentation with scores} ->
    ({path: label agreement (near-ties of the reference's scores apart; probe classifier),
    mask-embedding cosine, over the photos}, how many classes the reference's labels hold per photo)."""
    probes = {n: probe_labels(r.mask_emb, r.mask_logits) for n, r in reference.items()}
    out = {}
    for path, by_photo in answers.items():
        agree, agree_all, ties, probe, cos = [], [], [], [], []
        for n, ref in reference.items():
            ours = by_photo[n]
            a = label_agreement(ours.labels, ref.labels, ref.scores)
            agree.append(a.agreement)
            agree_all.append(a.agreement_all)
            ties.append(a.ties / a.pixels)
            probe.append(label_agreement(probe_labels(ours.mask_emb, ours.mask_logits), probes[n]).agreement_all)
            cos.append(cosine_min(ours.mask_emb, ref.mask_emb))
        out[path] = {"label_agreement": float(np.mean(agree)), "label_agreement_min": min(agree),
                     "label_agreement_all": float(np.mean(agree_all)), "tie_fraction": float(np.mean(ties)),
                     "probe_label_agreement": float(np.mean(probe)), "probe_label_agreement_min": min(probe),
                     "mask_emb_cosine_min": min(cos)}
    classes = {"labels": [int(len(np.unique(r.labels))) for r in reference.values()],
               "probe_labels": [int(len(np.unique(v))) for v in probes.values()]}
    return out, classes


def choosable(path: str, acc: dict, stress: dict | None = None) -> bool:
    """Whether the automatic choice would take registered path `path` with these measurements."""
    return choice.choosable({**acc, "precision": BY_NAME[path].precision, **({"stress": stress} if stress else {})})


def record(manifest: Manifest, measured: dict, source: str, device: str = "cpu") -> None:
    """measured {registered path name: {"median_s", accuracy's fields, optionally "stress": the
    same on the outlier-stress variant}}, all run on `device` -> this machine's entry of verified.json."""
    unknown = [n for n in measured if n not in BY_NAME or BY_NAME[n].device != device]
    if unknown:
        raise BackendError(f"not registered {device} paths: {', '.join(unknown)} (sanrt.runtime.backends.PATHS)")
    choice.record(manifest, {n: {"backend": BY_NAME[n].backend, "precision": BY_NAME[n].precision, **m}
                             for n, m in measured.items()}, source, device)


def int8_by_tier(manifest: Manifest) -> dict:
    """{machine: {INT8 path: accuracy}} from every CPU entry in verified.json whose graphs are still
    this export's: what INT8 gave on each CPU tier measured."""
    out = {}
    for slug, entry in choice.read_verified(manifest).items():
        if not isinstance(entry, dict):
            continue
        rows = {n: {k: p.get(k) for k in ("label_agreement", "mask_emb_cosine_min", "stress")}
                for n, p in (entry.get("paths") or {}).items()
                if isinstance(p, dict) and p.get("precision") in choice.STRESS_CHECKED and choice.still_valid(manifest, p, "cpu")}
        if rows:
            out[slug] = rows
    return out
