"""Measure an export against the PyTorch model it came from, on the same inputs.

Image graph: mask logits and mask embeddings for photos and random inputs (square and non-square,
batch 1 and 2). Text graph + head: class weights and class logits for vocabularies of several
sizes. End to end: label maps of the runtime (ORT + numpy post-processing) against PyTorch
(official post-processing), as label agreement.
"""
from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sanrt.model import SAN
from sanrt.model.pipeline import TorchSegmenter
from sanrt.runtime.machine import cpu_model
from sanrt.runtime.segmenter import Segmenter

FP32_BOUNDS = {"rel_err": 1e-4, "label_agreement": 0.9999}


@dataclass
class Row:
    case: str
    output: str
    max_abs: float
    max_ref: float
    agreement: float | None = None

    @property
    def rel(self) -> float:
        return self.max_abs / self.max_ref if self.max_ref > 0 else self.max_abs


@dataclass
class ParityResult:
    rows: list[Row] = field(default_factory=list)
    bounds: dict = field(default_factory=lambda: dict(FP32_BOUNDS))
    info: dict = field(default_factory=dict)

    def add(self, case, output, ours, ref, agreement=None):
        ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
        if ours.shape != ref.shape:
            raise ValueError(f"{case}/{output}: export shape {ours.shape} != PyTorch {ref.shape}")
        self.rows.append(Row(case, output, float(np.abs(ours - ref).max()), float(np.abs(ref).max()), agreement))

    @property
    def worst_rel(self) -> Row:
        return max((r for r in self.rows if r.agreement is None), key=lambda r: r.rel)

    @property
    def worst_agreement(self) -> Row:
        return min((r for r in self.rows if r.agreement is not None), key=lambda r: r.agreement)

    @property
    def ok(self) -> bool:
        return (self.worst_rel.rel <= self.bounds["rel_err"]
                and self.worst_agreement.agreement >= self.bounds["label_agreement"])

    def summary(self) -> dict:
        w, a = self.worst_rel, self.worst_agreement
        return {"ok": self.ok, "worst_rel_err": w.rel, "worst_rel_output": f"{w.case}/{w.output}",
                "min_label_agreement": a.agreement, "min_agreement_case": a.case, "bounds": self.bounds}

    def to_json(self) -> str:
        return json.dumps({"summary": self.summary(), "info": self.info,
                           "rows": [asdict(r) | {"rel_err": r.rel} for r in self.rows]}, indent=1)

    def to_markdown(self) -> str:
        s = self.summary()
        lines = [f"# Export parity: {self.info.get('title', '')}", "",
                 f"- machine: {self.info.get('machine', '?')}",
                 f"- weights: {self.info.get('weights', '?')}; backend: {self.info.get('backend', '?')}",
                 f"- bounds: err / max|ref| <= {self.bounds['rel_err']:g}, label agreement >= "
                 f"{self.bounds['label_agreement']:.2%}",
                 f"- result: **{'PASS' if s['ok'] else 'FAIL'}**: worst err / max|ref| {s['worst_rel_err']:.2e} "
                 f"({s['worst_rel_output']}), lowest label agreement {s['min_label_agreement']:.4%} "
                 f"({s['min_agreement_case']})", "",
                 "| case | output | max abs err | err / max\\|ref\\| | label agreement |", "|---|---|---|---|---|"]
        for r in self.rows:
            agree = f"{r.agreement:.4%}" if r.agreement is not None else ""
            lines.append(f"| {r.case} | {r.output} | {r.max_abs:.3e} | {r.rel:.3e} | {agree} |")
        return "\n".join(lines) + "\n"


def sample_photos() -> dict:
    """scikit-image's three colour photos: the inputs parity and accuracy are scored on."""
    from skimage import data

    return {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea")}


def machine_info() -> dict:
    import onnxruntime

    return {"cpu": cpu_model(), "threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "platform": platform.platform()}


def compare(model: SAN, segmenter: Segmenter, photos: dict, vocabularies: dict, random_sizes=((640, 640), (640, 864)),
            batches=(1, 2), seed: int = 0, progress=print) -> ParityResult:
    """photos {name: RGB uint8}; vocabularies {label: names}. Every case runs every vocabulary."""
    result = ParityResult()
    ref = TorchSegmenter(model)
    rng = np.random.default_rng(seed)
    cases = [(f"photo {n} {im.shape[1]}x{im.shape[0]}", [im]) for n, im in photos.items()]
    for h, w in random_sizes:
        for b in batches:
            cases.append((f"random {w}x{h} batch {b}", [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(b)]))
    weights = {}
    for label, names in vocabularies.items():
        progress(f"text: {label} ({len(names)} classes)")
        ref.set_vocabulary(names)
        segmenter.set_vocabulary(names, use_cache=False)
        result.add(f"vocabulary {label}", "class_weights", segmenter.class_weights, ref.weight.numpy())
        weights[label] = (ref.weight, segmenter.class_weights, ref.names)
    for case, images in cases:
        progress(f"image: {case}")
        enc_ref, enc_ours = ref.encode_images(images), segmenter.encode_images(images)
        for i in range(len(images)):
            tag = f"{case} [{i}]" if len(images) > 1 else case
            result.add(tag, "mask_logits", enc_ours.mask_logits[i], enc_ref["mask_preds"][i].numpy())
            result.add(tag, "mask_emb", enc_ours.mask_emb[i], enc_ref["mask_emb"][i].numpy())
        for label, (w_ref, w_ours, names) in weights.items():
            ref.weight, ref.names = w_ref, names
            segmenter.class_weights, segmenter.names = w_ours, names
            r_ref, r_ours = ref.classify(enc_ref), segmenter.classify(enc_ours)
            logits_ours = np.stack([r.class_logits for r in r_ours])
            logits_ref = np.stack([r["mask_logits"] for r in r_ref])
            result.add(f"{case} K={label}", "class_logits", logits_ours, logits_ref)
            agree = np.mean(np.concatenate([(o.labels == r["labels"]).ravel() for o, r in zip(r_ours, r_ref)]))
            result.add(f"{case} K={label}", "labels", 0.0, 0.0, agreement=float(agree))
    return result
