"""The text side: class names -> classifier weights, without torch.

`class_weights` is the one formula (a pure function of text features, as open_clip's
`build_zero_shot_classifier`); `TextSide` gets the features: the tokenizer, texts of similar length
chunked together, each template's shared words run once (the text_after graph), and two caches on
disk (one per name, one per whole vocabulary).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ExportFolderError, RangeError, VocabularyError, first_line
from .manifest import Manifest
from .outputs import write_atomic
from .tokenizer import EOT, SOT, Tokenizer
from .vocabulary import check_vocabulary, expand_vocabulary

TEXT_CHUNK = 256  # the most texts per text-graph call (bounds activation memory; GPU engines are sized by it)
# On CPUs smaller calls are faster: each call's activations stay in cache and each is cut after its own
# longest text (ADE-150 through ViT-B/16's text graph, 2-core Cascade Lake: 12.4 s at 256, 10.3-10.5 s
# at 32-64, 18.1 s at 1024; benchmarks/NOTES.md section 9)
CPU_TEXT_CHUNK = 64
log = logging.getLogger("sanrt")


def default_cache_dir() -> Path:
    return Path(os.environ.get("SANRT_CACHE") or Path.home() / ".cache" / "sanrt") / "vocab"  # empty: unset


@dataclass(frozen=True)
class Vocabulary:
    """Class names and their classifier weights for one export: an immutable value, safe to share.
    With expansion, `distractors` follow the K names in the weights, and the pixels they win are
    labelled K ("other")."""

    names: tuple[str, ...]  # the K classes labels index
    class_weights: np.ndarray  # [K+M+1, D] float32 (read-only): templates averaged, background row, logit scale
    source: str  # which export's text side made it (sha256 of its text graph and classifier data)
    cached: bool = False  # read from the on-disk cache
    text_s: float = 0.0  # seconds it took
    names_encoded: int = 0  # names whose texts the text graph ran for (the others came from the cache)
    expansion: str | None = None  # "coco-all", "coco-stuff" or None
    distractors: tuple[str, ...] = ()  # the M names appended by the expansion

    def __len__(self) -> int:
        return len(self.names)

    @property
    def classes(self) -> tuple[str, ...]:
        """Every name the head scores, in weight order: the K names, then the distractors."""
        return self.names + self.distractors

    @property
    def label_names(self) -> tuple[str, ...]:
        """What each label value means: the K names, and "other" at K when distractors fold into it."""
        return self.names + (("other",) if self.distractors else ())


def class_weights(template_features: np.ndarray, bg_embed: np.ndarray, logit_scale: float) -> np.ndarray:
    """[T, K, D] L2-normalised features of every template filled with every name -> [K+1, D] classifier
    weights: templates averaged and renormalised, the background row appended, every row L2-normalised,
    times CLIP's logit scale (SAN's `classifier_weight`)."""
    feats = template_features.mean(axis=0)
    feats = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
    w = np.concatenate([feats, bg_embed], axis=0)
    w = w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-12)
    return (np.float32(logit_scale) * w).astype(np.float32)


def read_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ExportFolderError(f"{path} is not a readable numpy file ({first_line(e)})") from None


def read_classifier(path: Path, embed_dim) -> tuple[np.ndarray, np.float32]:
    """classifier.npz as the runtime reads it: bg_embed [1, D] and logit_scale_exp, both finite."""
    try:
        with np.load(path, allow_pickle=False) as clf:
            data = {k: clf[k] for k in clf.files}
    except (OSError, ValueError, EOFError) as e:
        raise ExportFolderError(f"{path} is not a readable npz file ({first_line(e)})") from None
    bg, scale = data.get("bg_embed"), data.get("logit_scale_exp")
    d = embed_dim if isinstance(embed_dim, int) else getattr(bg, "shape", (0, 0))[-1]
    if not (isinstance(bg, np.ndarray) and bg.shape == (1, d) and bg.dtype.kind == "f" and np.isfinite(bg).all()
            and isinstance(scale, np.ndarray) and scale.shape == () and np.isfinite(scale) and float(scale) > 0):
        raise ExportFolderError(f"{path} does not hold the classifier data the runtime reads (bg_embed [1, {d}] and a "
                                f"positive logit_scale_exp; it holds {sorted(data)})")
    return bg.astype(np.float32), np.float32(scale)


class TextSide:
    """An export's text graph(s) with its tokenizer and classifier data: names -> `Vocabulary`."""

    def __init__(self, manifest: Manifest, text, text_after=None, backend: str = "?", engine_text: str | None = None,
                 cache_dir: Path | None = None):
        """`text`, `text_after`: runners of the export's text graphs (text_after optional: older exports
        lack it, engines do not build it). `engine_text`: the text engine's file name, when it ran
        instead of the ONNX (cache entries depend on what computed them)."""
        m = self.manifest = manifest
        self.text_graph, self.text_after, self.start_kv = text, text_after, None
        if text_after is not None:
            kv_file = m.graphs["text_after"].start_kv
            kv = read_array(m.path(kv_file))
            layers, width = m.config["clip_text"]["layers"], m.config["clip_text"]["width"]
            if kv.dtype != np.float32 or kv.shape != (layers, 2, 1, width) or not np.isfinite(kv).all():
                raise ExportFolderError(f"{kv_file} holds {kv.dtype} {kv.shape}, not the text tower's start-of-text "
                                        "keys and values")
            self.start_kv = kv
        # cached embeddings depend on what computed them: the graph, its sha256 and the backend
        self._text_file = m.graphs["text_after" if text_after is not None else "text"].file
        self._text_source = f"{backend}:{engine_text or self._text_file}"
        try:
            self.tokenizer = Tokenizer(m.path(m.tokenizer_file))
        except ValueError as e:
            raise ExportFolderError(str(e)) from None
        self.bg_embed, self.logit_scale_exp = read_classifier(m.path(m.classifier_file), m.embed_dim)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        ids = m.identity(m.graphs["text"].file, m.classifier_file)
        self.source = hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def dim(self) -> int:
        return self.bg_embed.shape[-1]

    def check_class_count(self, k: int) -> None:
        """RangeError when the export takes no vocabulary of k classes."""
        lo, hi = self.manifest.ranges.classes
        if not lo <= k <= hi:
            raise RangeError(f"{k} classes is outside the export's range {lo}..{hi}")

    # ---- features ---------------------------------------------------------------------------------
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> L2-normalised text features [N, D], in chunks within the export's range."""
        if not texts:
            raise VocabularyError("no texts to encode")
        ids = self.tokenizer(texts, self.manifest.ranges.tokens, specials=False)
        return self._encode_chunks(ids, 0, lambda t: self.text_graph.infer({"token_ids": t}))

    def _encode_chunks(self, ids: np.ndarray, start: int, run) -> np.ndarray:
        """Features of every row of `ids` from token `start` on, texts of similar length in a chunk."""
        ends = ids.argmax(axis=1)  # each text's end-of-text token (the largest id)
        order = np.argsort(ends, kind="stable")  # texts of similar length share a chunk
        step = min(self.manifest.ranges.texts[1], CPU_TEXT_CHUNK if self.text_graph.device == "cpu" else TEXT_CHUNK)
        feats = None
        for i in range(0, len(order), step):
            rows = order[i : i + step]
            # Causal attention: nothing after a text's end-of-text token reaches its EOT feature,
            # so each chunk is cut after its longest text.
            out = run(ids[rows, start : int(ends[rows].max()) + 1])["text_features"]
            if feats is None:
                feats = np.empty((len(ids), out.shape[1]), dtype=out.dtype)
            feats[rows] = out
        return feats

    def encode_template_texts(self, templates: list[str], names: list[str]) -> np.ndarray:
        """[T, M, D] L2-normalised features of every template filled with every name. With the
        export's text_after graph, each template's words before the name (the same tokens for every
        name, so under causal attention the same states) run once, not once a name."""
        if self.text_after is None:
            return self.encode_texts([t.format(n) for t in templates for n in names]).reshape(len(templates), len(names), -1)
        out = []
        for t in templates:
            ids = self.tokenizer([t.format(n) for n in names], self.manifest.ranges.tokens, specials=False)
            # the longest prefix all texts share, up to the shortest text's end-of-text token
            shortest, p = int(ids.argmax(axis=1).min()), 1
            while p < shortest and (ids[:, p] == ids[0, p]).all():
                p += 1
            past = self.start_kv  # position 0, the start-of-text token: the same for every text
            if p > 1:
                present = self.text_after.infer({"token_ids": np.ascontiguousarray(ids[:1, 1:p]), "past": past})["present"]
                past = np.concatenate([past, present[:, :, 0]], axis=2)
            out.append(self._encode_chunks(ids, p, lambda x: self.text_after.infer({"token_ids": x, "past": past})))
        return np.stack(out)

    # ---- caches -----------------------------------------------------------------------------------
    def cache_key(self, names: list[str]) -> str:
        """The vocabulary cache's key: text graph sha256, what ran it, classifier data, templates, names."""
        m = self.manifest
        key = json.dumps([m.sha256[self._text_file], self._text_source, m.sha256[m.classifier_file], m.templates, names],
                         ensure_ascii=False)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def name_key(self, name: str) -> str:
        """A class name's cache key: its template texts' features depend on nothing else."""
        m = self.manifest
        parts = [m.sha256[self._text_file], self._text_source, m.templates, name]
        if any(marker in self.tokenizer.clean(name) for marker in (SOT, EOT)):
            parts.append("markers-as-text")  # tokenized otherwise before names read marker texts as words
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()

    def class_weights_for(self, names: list[str], use_cache: bool = True) -> tuple[np.ndarray, int, bool]:
        """Class names -> ([K+1, D] classifier weights, how many names the text graph ran for, whether
        the cache took every write). Each name's template features are cached on their own, so a
        vocabulary that shares names with earlier ones encodes only its new names."""
        templates = self.manifest.templates
        shape = (len(templates), self.dim)
        paths = {n: self.cache_dir / "names" / f"{self.name_key(n)}.npy" for n in names}
        per_name = {n: self.read_cached(paths[n], shape) for n in names} if use_cache else {}
        missing = [n for n in names if per_name.get(n) is None]
        writable = use_cache
        if missing:
            feats = self.encode_template_texts(templates, missing)
            for i, n in enumerate(missing):
                per_name[n] = np.ascontiguousarray(feats[:, i])
                if writable:  # after one failed write, no more tries (one warning, not one per name)
                    writable = self.write_cached(paths[n], per_name[n])
        weights = class_weights(np.stack([per_name[n] for n in names], axis=1), self.bg_embed, self.logit_scale_exp)
        return weights, len(missing), writable

    def read_cached(self, path: Path, expected: tuple[int, int]) -> np.ndarray | None:
        """A cache entry of this shape, or None when it is absent; a damaged entry (truncated, wrong
        shape or type, not finite) is reported in one warning line and recomputed."""
        if not path.is_file():
            return None
        try:
            w = np.load(path, allow_pickle=False)
            if not isinstance(w, np.ndarray) or w.dtype != np.float32 or w.shape != expected:
                raise ValueError(f"holds {getattr(w, 'dtype', '?')} {getattr(w, 'shape', '?')}, not float32 {expected}")
            if not np.isfinite(w).all():
                raise ValueError("holds values that are not finite")
            return w
        except (OSError, ValueError, EOFError) as e:
            log.warning(f"vocabulary cache entry {path} is damaged ({first_line(e)}); recomputing it")
            return None

    def write_cached(self, path: Path, weights: np.ndarray) -> bool:
        """Store an entry; a cache that cannot be written costs a warning, never the answer."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, weights)  # np.save on a path would add its own ".npy" to the temporary name
            write_atomic(path, lambda f: f.write_bytes(buf.getvalue()))
            return True
        except OSError as e:
            log.warning(f"vocabulary cache {self.cache_dir} is not writable ({e.strerror or e}); continuing without it")
            return False

    def vocabulary(self, names, use_cache: bool = True, expand: str | None = None) -> Vocabulary:
        """Class names -> a Vocabulary: from the cache when it holds these names for this text graph and
        backend, else from the cached features of the names it knows and one text-graph run for the
        others (then cached). `expand` ("coco-all", "coco-stuff"): SAN's vocabulary expansion
        (vocabulary.expand_vocabulary); the distractors' features come from the per-name cache."""
        m = self.manifest
        if expand is None or expand == "none":
            names, distractors, expand = check_vocabulary(names, m.templates, m.ranges.tokens, self.tokenizer), [], None
        else:
            names, distractors = expand_vocabulary(names, expand, m.templates, m.ranges.tokens, self.tokenizer)
        every = names + distractors
        self.check_class_count(len(every))
        t = time.perf_counter()
        path = self.cache_dir / f"{self.cache_key(every)}.npy"
        weights = self.read_cached(path, (len(every) + 1, self.dim)) if use_cache else None
        cached, encoded = weights is not None, 0
        if not cached:
            weights, encoded, writable = self.class_weights_for(every, use_cache)
            if writable:
                self.write_cached(path, weights)
        weights.flags.writeable = False
        return Vocabulary(tuple(names), weights, self.source, cached, time.perf_counter() - t, encoded, expand,
                          tuple(distractors))

    def check(self, vocab, what: str) -> None:
        """A Vocabulary this export made, whole: a hand-made or dataclasses.replace'd one with names and
        weights that do not match would index past its names or feed the head a wrong shape."""
        if not isinstance(vocab, Vocabulary):
            raise VocabularyError(f"{what}() takes a Vocabulary: make one with Segmenter.vocabulary(names)")
        if vocab.source != self.source:
            raise VocabularyError("this vocabulary was made by another export's text graph; make it with this "
                                  "Segmenter's vocabulary()")
        w, d = vocab.class_weights, self.dim
        every = vocab.names + vocab.distractors if isinstance(vocab.distractors, tuple) else None
        if not (isinstance(vocab.names, tuple) and vocab.names and every is not None
                and all(isinstance(n, str) for n in every)
                and isinstance(w, np.ndarray) and w.dtype == np.float32 and w.shape == (len(every) + 1, d)
                and np.isfinite(w).all()):
            raise VocabularyError(f"this Vocabulary's names and class weights do not belong together (weights "
                                  f"{getattr(w, 'dtype', '?')} {getattr(w, 'shape', '?')} for "
                                  f"{len(every) if every is not None else '?'} names; float32 [K+1, {d}] expected): "
                                  "make it with Segmenter.vocabulary(names)")
        self.check_class_count(len(every))
