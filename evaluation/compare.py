"""The one comparison engine (as Polygraphy's Comparator): every measure sanrt reports of one result
against another, and one report type with bounds. numpy only, so torch-free code can use it.

Measures: relative error (max |ours - ref| / max |ref|), label agreement (fraction of equal pixels),
cosine (the least cosine similarity between matching rows, e.g. the Q mask embeddings).

Label agreement knows about ties. Where the reference's two best class scores at a pixel differ by
no more than 2 eps, eps = tie_rel x max |reference score| (the rounding an FP32 path is allowed), a
result within that error of the reference may pick either class: such pixels are counted as ties and
reported apart, and the agreement bound applies to the others. Without a tie, two results within
eps of each other name the same class, so the bound still fails for any real error (a swap of two
classes, logits off by 1e-3 of their range) however the CPU's kernels round.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np


def rel_err(ours, ref) -> tuple[float, float]:
    """(max |ours - ref|, max |ref|) in float64; a shape mismatch is a ValueError."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        raise ValueError(f"shape {ours.shape} != reference {ref.shape}")
    return float(np.abs(ours - ref).max(initial=0.0)), float(np.abs(ref).max(initial=0.0))


TIE_REL = 1e-4  # FP32's error bound (Bounds.rel_err): the rounding a tie margin allows


class LabelAgreement(NamedTuple):
    agreement: float  # over the pixels that are not ties (1.0 when every pixel is a tie)
    agreement_all: float  # over every pixel
    ties: int  # pixels whose reference top-two scores are within the tie margin
    pixels: int


def tie_mask(ref_scores, tie_rel: float = TIE_REL) -> np.ndarray:
    """[..., H, W] bool from reference scores [..., K, H, W]: True where the two best classes differ by
    no more than 2 x tie_rel x max |score| (per leading index: each image has its own scale)."""
    s = np.asarray(ref_scores, np.float32)
    if s.ndim < 3:
        raise ValueError(f"scores need a class axis: [..., K, H, W], got {s.shape}")
    if s.shape[-3] < 2:
        return np.zeros(s.shape[:-3] + s.shape[-2:], bool)  # one class: nothing to tie with
    top2 = -np.partition(-s, 1, axis=-3)[..., :2, :, :]  # [..., 2, H, W], best first
    scale = np.abs(s).reshape(*s.shape[:-3], -1).max(axis=-1)[..., None, None]
    return (top2[..., 0, :, :] - top2[..., 1, :, :]) <= 2.0 * tie_rel * scale


def label_agreement(ours, ref, ref_scores=None, tie_rel: float = TIE_REL) -> LabelAgreement:
    """Equal labels, with ties (see the module docstring) counted apart when reference scores
    [..., K, H, W] are given; without them no pixel is a tie."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    if ours.shape != ref.shape:
        raise ValueError(f"label map {ours.shape} != reference {ref.shape}")
    same = ours == ref
    if ref_scores is None:
        ties = np.zeros(ref.shape, bool)
    else:
        ties = tie_mask(ref_scores, tie_rel)
        if ties.shape != ref.shape:
            raise ValueError(f"scores {np.shape(ref_scores)} do not match the label map {ref.shape}")
    decided = int(ref.size - ties.sum())
    agreement = float(same[~ties].sum() / decided) if decided else 1.0
    return LabelAgreement(agreement, float(same.mean()) if ref.size else 1.0, int(ties.sum()), int(ref.size))


def cosine_min(ours, ref, axis: int = -1) -> float:
    """The least cosine similarity between matching vectors along `axis` (NaN or zero vectors: -1)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        raise ValueError(f"shape {ours.shape} != reference {ref.shape}")
    with np.errstate(all="ignore"):
        c = (ours * ref).sum(axis) / (np.linalg.norm(ours, axis=axis) * np.linalg.norm(ref, axis=axis))
    return float(np.nan_to_num(c, nan=-1.0).min())


@dataclass
class Row:
    case: str
    output: str
    max_abs: float | None = None
    max_ref: float | None = None
    agreement: float | None = None  # over the pixels that are not ties
    pixels: int | None = None
    cosine: float | None = None
    agreement_all: float | None = None  # over every pixel, ties included
    ties: int | None = None

    @property
    def rel(self) -> float | None:
        if self.max_abs is None:
            return None
        return self.max_abs / self.max_ref if self.max_ref > 0 else self.max_abs


@dataclass
class Bounds:
    """A Comparison passes when every bound that is set holds (None: not checked)."""

    rel_err: float | None = 1e-4
    label_agreement: float | None = 0.9999
    cosine: float | None = None


FP32 = Bounds()  # exports against PyTorch, PyTorch against the official code


@dataclass
class Comparison:
    bounds: Bounds = field(default_factory=Bounds)
    rows: list[Row] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    # ---- adding measurements --------------------------------------------------------------------
    def tensors(self, case: str, output: str, ours, ref) -> Row:
        try:
            max_abs, max_ref = rel_err(ours, ref)
        except ValueError as e:
            raise ValueError(f"{case}/{output}: {e}") from None
        return self._add(Row(case, output, max_abs=max_abs, max_ref=max_ref))

    def labels(self, case: str, ours, ref, output: str = "labels", ref_scores=None) -> Row:
        """ref_scores [..., K, H, W]: the reference's class scores, for counting ties apart (tie margin
        from the rel_err bound, or FP32's when the comparison has none)."""
        tie_rel = self.bounds.rel_err if self.bounds.rel_err is not None else TIE_REL
        try:
            a = label_agreement(ours, ref, ref_scores, tie_rel)
        except ValueError as e:
            raise ValueError(f"{case}/{output}: {e}") from None
        return self._add(Row(case, output, agreement=a.agreement, pixels=a.pixels, agreement_all=a.agreement_all,
                             ties=a.ties))

    def vectors(self, case: str, output: str, ours, ref, axis: int = -1) -> Row:
        try:
            cos = cosine_min(ours, ref, axis)
        except ValueError as e:
            raise ValueError(f"{case}/{output}: {e}") from None
        return self._add(Row(case, output, cosine=cos))

    def _add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    # ---- results --------------------------------------------------------------------------------
    def _rows(self, attr):
        return [r for r in self.rows if getattr(r, attr) is not None]

    @property
    def worst_rel(self) -> Row | None:
        return max(self._rows("max_abs"), key=lambda r: r.rel, default=None)

    @property
    def worst_agreement(self) -> Row | None:
        return min(self._rows("agreement"), key=lambda r: r.agreement, default=None)

    @property
    def worst_cosine(self) -> Row | None:
        return min(self._rows("cosine"), key=lambda r: r.cosine, default=None)

    @property
    def pixel_agreement(self) -> float | None:
        """Label agreement over every pixel compared (rows weighted by their pixels)."""
        rows = self._rows("agreement")
        decided = [((r.pixels or 0) - (r.ties or 0), r.agreement) for r in rows]
        total = sum(n for n, _ in decided)
        return sum(n * a for n, a in decided) / total if total else None

    @property
    def ties(self) -> int:
        return sum(r.ties or 0 for r in self._rows("agreement"))

    def failures(self) -> list[str]:
        """What breaks a bound, in words; empty when the comparison passes (and measured something)."""
        b, out = self.bounds, []
        if not self.rows:
            return ["nothing was compared"]
        checks = ((b.rel_err, self.worst_rel, lambda r: r.rel <= b.rel_err, "err / max|ref|", lambda r: f"{r.rel:.2e}"),
                  (b.label_agreement, self.worst_agreement, lambda r: r.agreement >= b.label_agreement,
                   "label agreement", lambda r: f"{r.agreement:.4%}"),
                  (b.cosine, self.worst_cosine, lambda r: r.cosine >= b.cosine, "cosine", lambda r: f"{r.cosine:.5f}"))
        for bound, worst, holds, what, fmt in checks:
            if bound is not None and worst is not None and not holds(worst):
                out.append(f"{what} {fmt(worst)} at {worst.case}/{worst.output} (bound {bound:g})")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def summary(self) -> dict:
        w, a, c = self.worst_rel, self.worst_agreement, self.worst_cosine
        return {"ok": self.ok,
                "worst_rel_err": w.rel if w else None, "worst_rel_output": f"{w.case}/{w.output}" if w else None,
                "min_label_agreement": a.agreement if a else None, "min_agreement_case": a.case if a else None,
                "pixel_label_agreement": self.pixel_agreement,
                "label_ties": self.ties, "min_label_agreement_all": min((r.agreement_all for r in self._rows("agreement")
                                                                          if r.agreement_all is not None), default=None),
                "min_cosine": c.cosine if c else None, "min_cosine_output": f"{c.case}/{c.output}" if c else None,
                "bounds": asdict(self.bounds)}

    def to_json(self) -> str:
        return json.dumps({"summary": self.summary(), "info": self.info,
                           "rows": [asdict(r) | {"rel_err": r.rel} for r in self.rows]}, indent=1)

    def table(self) -> str:
        """Plain-text table, one row per measurement, rows over a bound flagged."""
        b = self.bounds
        lines = [f"{'case':<28} {'output':<24} {'max abs err':>12} {'err/max|ref|':>13} {'agreement':>10} {'ties':>6} "
                 f"{'all px':>9} {'cosine':>9}"]
        for r in self.rows:
            over = ((b.rel_err is not None and r.rel is not None and r.rel > b.rel_err)
                    or (b.label_agreement is not None and r.agreement is not None and r.agreement < b.label_agreement)
                    or (b.cosine is not None and r.cosine is not None and r.cosine < b.cosine))
            lines.append(f"{r.case:<28} {r.output:<24} {_f(r.max_abs, '12.3e')} {_f(r.rel, '13.3e')} "
                         f"{_f(r.agreement, '10.4%')} {_f(r.ties, '6d')} {_f(r.agreement_all, '9.4%')} "
                         f"{_f(r.cosine, '9.5f')}{'  <-- over bound' if over else ''}")
        return "\n".join(lines)

    def to_markdown(self, title: str | None = None) -> str:
        s, b, info = self.summary(), self.bounds, self.info
        bounds = [f"err / max|ref| <= {b.rel_err:g}" if b.rel_err is not None else None,
                  f"label agreement >= {b.label_agreement:.2%} (ties apart: reference top-two scores within "
                  f"2 x {b.rel_err if b.rel_err is not None else TIE_REL:g} x max score)" if b.label_agreement is not None else None,
                  f"cosine >= {b.cosine:g}" if b.cosine is not None else None]
        result = "; ".join(self.failures()) or (
            f"worst err / max|ref| {_f(s['worst_rel_err'], '.2e')} ({s['worst_rel_output']}), lowest label agreement "
            f"{_f(s['min_label_agreement'], '.4%')} ({s['min_agreement_case']}), {s['label_ties']} tie pixels")
        lines = [f"# {title or info.get('title', 'Comparison')}", ""]
        lines += [f"- {k}: {v}" for k, v in info.items() if k != "title"]
        lines += [f"- bounds: {', '.join(x for x in bounds if x)}",
                  f"- result: **{'PASS' if self.ok else 'FAIL'}**: {result}", "",
                  "| case | output | max abs err | err / max\\|ref\\| | label agreement (ties apart) | ties | "
                  "label agreement (all pixels) | cosine (min) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.case} | {r.output} | {_f(r.max_abs, '.3e')} | {_f(r.rel, '.3e')} | "
                         f"{_f(r.agreement, '.4%')} | {_f(r.ties, 'd')} | {_f(r.agreement_all, '.4%')} | "
                         f"{_f(r.cosine, '.5f')} |")
        return "\n".join(lines) + "\n"


def _f(v, spec: str) -> str:
    return format(v, spec) if v is not None else ""
