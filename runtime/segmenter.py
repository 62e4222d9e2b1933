"""SAN end to end without torch: export folder + backend -> label maps for any vocabulary.

A `Segmenter` holds only what it loaded (graphs, tokenizer, classifier data); a `Vocabulary` is an
immutable value made by `Segmenter.vocabulary(names)`. Nothing changes per request, so one Segmenter
serves many threads, each with its own vocabulary.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .backends import check_pair, make_runner
from .choice import choose, int8_warning
from .engines import check_built_from, check_compatible, gpu_identity, import_tensorrt, resolve
from .errors import BackendError, ExportFolderError, ImageError, RangeError, VocabularyError
from .manifest import Manifest
from .outputs import write_atomic
from .postprocess import semantic_inference
from .preprocess import pad_batch, padded_size, prepare, resized_shape
from .tokenizer import EOT, SOT, Tokenizer
from .vocabulary import check_vocabulary

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
    """Class names and their classifier weights for one export: an immutable value, safe to share."""

    names: tuple[str, ...]
    class_weights: np.ndarray  # [K+1, D] float32 (read-only): templates averaged, background row, logit scale
    source: str  # which export's text side made it (sha256 of its text graph and classifier data)
    cached: bool = False  # read from the on-disk cache
    text_s: float = 0.0  # seconds it took
    names_encoded: int = 0  # names whose texts the text graph ran for (the others came from the cache)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class EncodedBatch:
    """The image graph's outputs for one batch of images of one padded size (vocabulary-independent)."""

    padded_hw: tuple  # the batch's padded input size
    image_hw: list  # each image's resized size inside the padding
    orig_hw: list  # each image's original size (the output size)
    mask_logits: np.ndarray  # [B, Q, H/16, W/16]
    mask_emb: np.ndarray  # [B, Q, D]
    timings: dict


class ClassPresent(NamedTuple):
    index: int  # in vocabulary order
    name: str
    fraction: float  # of the image's pixels


@dataclass
class Segmentation:
    labels: np.ndarray  # [H0, W0] int32, class indices in vocabulary order
    names: tuple[str, ...]  # the vocabulary the labels index
    scores: np.ndarray | None  # [K, H0, W0] when asked for
    mask_logits: np.ndarray  # [Q, H/16, W/16]
    mask_emb: np.ndarray  # [Q, D]
    class_logits: np.ndarray  # [Q, K+1]
    timings: dict = field(default_factory=dict)  # seconds per stage (batch stages shared)

    def classes_present(self) -> list[ClassPresent]:
        """The classes that label at least one pixel, largest first."""
        counts = np.bincount(self.labels.ravel(), minlength=len(self.names))
        return [ClassPresent(int(i), self.names[i], round(float(counts[i] / self.labels.size), 6))
                for i in np.argsort(-counts, kind="stable") if counts[i]]


def _read_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ExportFolderError(f"{path} is not a readable numpy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _read_classifier(path: Path, embed_dim) -> tuple[np.ndarray, np.float32]:
    """classifier.npz as the runtime reads it: bg_embed [1, D] and logit_scale_exp, both finite."""
    try:
        with np.load(path, allow_pickle=False) as clf:
            data = {k: clf[k] for k in clf.files}
    except (OSError, ValueError, EOFError) as e:
        raise ExportFolderError(f"{path} is not a readable npz file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    bg, scale = data.get("bg_embed"), data.get("logit_scale_exp")
    d = embed_dim if isinstance(embed_dim, int) else getattr(bg, "shape", (0, 0))[-1]
    if not (isinstance(bg, np.ndarray) and bg.shape == (1, d) and bg.dtype.kind == "f" and np.isfinite(bg).all()
            and isinstance(scale, np.ndarray) and scale.shape == () and np.isfinite(scale) and float(scale) > 0):
        raise ExportFolderError(f"{path} does not hold the classifier data the runtime reads (bg_embed [1, {d}] and a "
                                f"positive logit_scale_exp; it holds {sorted(data)})")
    return bg.astype(np.float32), np.float32(scale)


DEVICES = ("auto", "cpu", "cuda")


def _check_options(backend, precision, device, threads) -> None:
    """BackendError for arguments of the wrong kind, before anything loads (a typo such as
    device="CUDA" must not run on the CPU unsaid, nor threads="2" reach ONNX Runtime's bindings)."""
    if not isinstance(backend, str):
        raise BackendError(f"backend must be a name such as 'onnxruntime', not {type(backend).__name__}")
    if precision is not None and not isinstance(precision, str):
        raise BackendError(f"precision must be a name such as 'fp32', not {type(precision).__name__}")
    if not isinstance(device, str) or device not in DEVICES:
        raise BackendError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    most = 4 * (os.cpu_count() or 1)  # more only costs memory and switching: a typo, not a setting
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= most):
        raise BackendError(f"threads must be a whole number from 1 to {most} (4 per core here; None: the backend's "
                           f"default), not {threads!r}")


class Segmenter:
    def __init__(self, export_dir, backend: str = "auto", precision: str | None = None, *, device: str = "auto",
                 threads: int | None = None, cache_dir: Path | None = None, verify: bool = True,
                 cuda_graph: bool = False, backend_options: dict | None = None):
        """`export_dir`: an export folder (export/to_onnx.py), or a TensorRT engine folder or .engine
        file (export/build_engine.py). `backend`: "auto" (the fastest path benchmarks/fps.py verified
        on this machine for these graphs, else ONNX Runtime FP32), "onnxruntime" or "openvino".
        `precision` (named backends) applies to the image graph, the heavy one: fp32, bf16, int8,
        int8dyn, int8-bf16 or fp16 (`backends.PRECISIONS` lists the pairs that exist); the text graph
        and head stay FP32. `cache_dir`: class-weight cache (default ~/.cache/sanrt/vocab or
        $SANRT_CACHE/vocab). `cuda_graph` replays the image engine as a CUDA graph (TensorRT only).
        `backend_options` go to every runner (e.g. {"shrink_arena": False} for ONNX Runtime)."""
        _check_options(backend, precision, device, threads)
        export_dir, engines = resolve(export_dir)  # an engine folder or .engine file leads to its export
        self.manifest = Manifest.load(export_dir, verify=verify)
        m = self.manifest
        self.choice = None  # why "auto" chose what it did
        if engines is not None:
            backend, precision = "tensorrt", engines["precision"]
            paths = {g: Path(engines["folder"]) / e["file"] for g, e in engines["engines"].items()}
            check_built_from(engines, m)  # needs no GPU: before the CUDA checks
            check_compatible(engines, gpu_identity(), import_tensorrt().__version__)
        else:
            if backend == "auto":
                if precision is not None:
                    raise BackendError("a precision needs a named backend (onnxruntime or openvino), not auto")
                backend, precision, self.choice = choose(m)
            named, precision = self.choice is None, precision or "fp32"
            check_pair(backend, precision)
            if backend == "tensorrt":
                raise BackendError("TensorRT needs engines: build them with export/build_engine.py and pass --engine ENGINE_DIR")
            paths = {"image": m.folder / m.image_graph(precision), "text": m.path("text"), "head": m.path("head")}
            warning = int8_warning(m, backend, precision) if named else None  # auto takes only verified paths
            if warning:
                log.warning(warning)
        if cuda_graph and backend != "tensorrt":
            raise BackendError("CUDA graphs are for TensorRT engines: pass --engine ENGINE_DIR")
        options = {"device": device, "threads": threads, **(backend_options or {})}
        runners = {"image": make_runner(backend, paths["image"], precision=precision, **options,
                                        **({"cuda_graph": True} if cuda_graph else {})),
                   "text": make_runner(backend, paths["text"], **options),
                   "head": make_runner(backend, paths["head"], **options)}
        if engines is None and "text_after" in m["graphs"]:  # the faster text path (older exports lack it)
            runners["text_after"] = make_runner(backend, m.path("text_after"), **options)
        self._setup(runners, backend, precision, cache_dir, engine_text=paths["text"].name if engines is not None else None)

    @classmethod
    def with_runners(cls, export_dir, runners: dict, cache_dir: Path | None = None, verify: bool = True) -> "Segmenter":
        """A Segmenter over runners made elsewhere ({"image", "text", "head"}: e.g. models on a Triton
        server): the same preprocessing, vocabulary cache and post-processing around them."""
        self = cls.__new__(cls)
        self.manifest = Manifest.load(export_dir, verify=verify)
        self.choice = None
        backend = runners["image"].backend
        self._setup(runners, backend, "fp32", cache_dir)
        return self

    def _setup(self, runners: dict, backend: str, precision: str, cache_dir, engine_text: str | None = None) -> None:
        m = self.manifest
        self.image_graph, self.text_graph, self.head_graph = runners["image"], runners["text"], runners["head"]
        self.text_after = runners.get("text_after")
        self.start_kv = None
        if self.text_after is not None:
            kv = _read_array(m.path(m["graphs"]["text_after"]["start_kv"]))
            text = m["config"]["clip_text"]
            if kv.dtype != np.float32 or kv.shape != (text["layers"], 2, 1, text["width"]) or not np.isfinite(kv).all():
                raise ExportFolderError(f"{m['graphs']['text_after']['start_kv']} holds {kv.dtype} {kv.shape}, not the "
                                        f"text tower's start-of-text keys and values")
            self.start_kv = kv
        self.backend, self.precision = backend, precision
        # cached embeddings depend on what computed them: the graph, its sha256 and the backend
        self._text_file = m["graphs"]["text_after" if self.text_after is not None else "text"]["file"]
        self._text_source = f"{backend}:{engine_text or self._text_file}"
        try:
            self.tokenizer = Tokenizer(m.path(m["tokenizer"]["file"]))
        except ValueError as e:
            raise ExportFolderError(str(e)) from None
        self.bg_embed, self.logit_scale_exp = _read_classifier(m.path(m["classifier"]["file"]), m.data.get("embed_dim"))
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        ids = m.identity(m["graphs"]["text"]["file"], m["classifier"]["file"])
        self.source = hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()[:16]

    def close(self) -> None:
        """Free every runner's sessions, engines and device memory; the Segmenter is not used after."""
        for r in (self.image_graph, self.text_graph, self.head_graph, self.text_after):
            if r is not None:
                r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- vocabulary -------------------------------------------------------------------------------
    def check_class_count(self, k: int) -> None:
        """RangeError when the export takes no vocabulary of k classes."""
        lo, hi = self.manifest["ranges"]["classes"]
        if not lo <= k <= hi:
            raise RangeError(f"{k} classes is outside the export's range {lo}..{hi}")

    def cache_key(self, names: list[str]) -> str:
        """The vocabulary cache's key: text graph sha256, what ran it, classifier data, templates, names."""
        m = self.manifest
        key = json.dumps([m["sha256"][self._text_file], self._text_source,
                          m["sha256"][m["classifier"]["file"]], m["templates"], names], ensure_ascii=False)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> L2-normalised text features [N, D], in chunks within the export's range."""
        if not texts:
            raise VocabularyError("no texts to encode")
        ids = self.tokenizer(texts, self.manifest["ranges"]["tokens"], specials=False)
        return self._encode_chunks(ids, 0, lambda t: self.text_graph.infer({"token_ids": t}))

    def _encode_chunks(self, ids: np.ndarray, start: int, run) -> np.ndarray:
        """Features of every row of `ids` from token `start` on, texts of similar length in a chunk."""
        ends = ids.argmax(axis=1)  # each text's end-of-text token (the largest id)
        order = np.argsort(ends, kind="stable")  # texts of similar length share a chunk
        step = min(self.manifest["ranges"]["texts"][1], CPU_TEXT_CHUNK if self.text_graph.device == "cpu" else TEXT_CHUNK)
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
            ids = self.tokenizer([t.format(n) for n in names], self.manifest["ranges"]["tokens"], specials=False)
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

    def name_key(self, name: str) -> str:
        """A class name's cache key: its template texts' features depend on nothing else."""
        m = self.manifest
        parts = [m["sha256"][self._text_file], self._text_source, m["templates"], name]
        if any(marker in self.tokenizer.clean(name) for marker in (SOT, EOT)):
            parts.append("markers-as-text")  # tokenized otherwise before names read marker texts as words
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()

    def class_weights_for(self, names: list[str], use_cache: bool = True) -> tuple[np.ndarray, int, bool]:
        """Class names -> ([K+1, D] classifier weights (templates averaged, background row, scale),
        how many names the text graph ran for, whether the cache took every write). Each name's
        template features are cached on their own, so a vocabulary that shares names with earlier
        ones encodes only its new names."""
        templates = self.manifest["templates"]
        shape = (len(templates), self.bg_embed.shape[-1])
        paths = {n: self.cache_dir / "names" / f"{self.name_key(n)}.npy" for n in names}
        per_name = {n: self._read_cached(paths[n], shape) for n in names} if use_cache else {}
        missing = [n for n in names if per_name.get(n) is None]
        writable = use_cache
        if missing:
            feats = self.encode_template_texts(templates, missing)
            for i, n in enumerate(missing):
                per_name[n] = np.ascontiguousarray(feats[:, i])
                if writable:  # after one failed write, no more tries (one warning, not one per name)
                    writable = self._write_cached(paths[n], per_name[n])
        feats = np.stack([per_name[n] for n in names], axis=1).mean(axis=0)
        feats = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
        w = np.concatenate([feats, self.bg_embed], axis=0)
        w = w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-12)
        return (self.logit_scale_exp * w).astype(np.float32), len(missing), writable

    def _read_cached(self, path: Path, expected: tuple[int, int]) -> np.ndarray | None:
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
            log.warning(f"vocabulary cache entry {path} is damaged ({str(e).splitlines()[0] if str(e) else type(e).__name__}); recomputing it")
            return None

    def _write_cached(self, path: Path, weights: np.ndarray) -> bool:
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

    def vocabulary(self, names, use_cache: bool = True) -> Vocabulary:
        """Class names -> a Vocabulary for this export: from the cache when it holds these names for
        this text graph and backend, else from the cached features of the names it knows and one
        text-graph run for the others (then cached)."""
        names = check_vocabulary(names, self.manifest["templates"], self.manifest["ranges"]["tokens"], self.tokenizer)
        self.check_class_count(len(names))
        t = time.perf_counter()
        path = self.cache_dir / f"{self.cache_key(names)}.npy"
        weights = self._read_cached(path, (len(names) + 1, self.bg_embed.shape[-1])) if use_cache else None
        cached, encoded = weights is not None, 0
        if not cached:
            weights, encoded, writable = self.class_weights_for(names, use_cache)
            if writable:
                self._write_cached(path, weights)
        weights.flags.writeable = False
        return Vocabulary(tuple(names), weights, self.source, cached, time.perf_counter() - t, encoded)

    # ---- images -----------------------------------------------------------------------------------
    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """Padded model-input size of an original (h, w) image; RangeError outside the export."""
        inp, r = self.manifest["input"], self.manifest["ranges"]
        if h < 1 or w < 1:
            raise ImageError(f"a {w}x{h} image has no pixels")
        ph, pw = padded_size(*resized_shape(h, w, inp["min_size"], inp["max_size"]), r["multiple"])
        if not (r["height"][0] <= ph <= r["height"][1] and r["width"][0] <= pw <= r["width"][1]):
            raise RangeError(f"a {w}x{h} image needs a {pw}x{ph} input, outside the export's range "
                             f"{r['width'][0]}..{r['width'][1]} x {r['height'][0]}..{r['height'][1]}")
        return ph, pw

    def encode_images(self, images: list[np.ndarray]) -> EncodedBatch:
        """Original RGB uint8 images of one padded size -> the image graph's outputs for one batch
        (vocabulary-independent). Images of different padded sizes are refused: padding an image
        to a larger batch-mate's size changes its answer; `segment` groups them."""
        r, inp = self.manifest["ranges"], self.manifest["input"]
        if not r["batch"][0] <= len(images) <= r["batch"][1]:
            raise RangeError(f"batch of {len(images)} is outside the export's range {r['batch'][0]}..{r['batch'][1]}")
        sizes = {self.input_size(*im.shape[:2]) for im in images}
        if len(sizes) > 1:
            raise RangeError(f"one batch holds images of padded sizes {sorted(sizes)}; batch only equal padded "
                             "sizes (Segmenter.segment groups them)")
        t0 = time.perf_counter()
        chws = [prepare(im, inp["min_size"], inp["max_size"]) for im in images]
        batch, sizes = pad_batch(chws, r["multiple"])
        t1 = time.perf_counter()
        out = self.image_graph.infer({"images": batch, "sizes": sizes})
        t2 = time.perf_counter()
        return EncodedBatch(batch.shape[-2:], [c.shape[1:] for c in chws], [im.shape[:2] for im in images],
                            out["mask_logits"], out["mask_emb"], {"preprocess_s": t1 - t0, "image_graph_s": t2 - t1})

    def _check_vocab(self, vocab, what: str) -> None:
        """A Vocabulary this export made, whole: a hand-made or dataclasses.replace'd one with names and
        weights that do not match would index past its names or feed the head a wrong shape."""
        if not isinstance(vocab, Vocabulary):
            raise VocabularyError(f"{what}() takes a Vocabulary: make one with Segmenter.vocabulary(names)")
        if vocab.source != self.source:
            raise VocabularyError("this vocabulary was made by another export's text graph; make it with this "
                                  "Segmenter's vocabulary()")
        w, d = vocab.class_weights, self.bg_embed.shape[-1]
        if not (isinstance(vocab.names, tuple) and vocab.names and all(isinstance(n, str) for n in vocab.names)
                and isinstance(w, np.ndarray) and w.dtype == np.float32 and w.shape == (len(vocab.names) + 1, d)
                and np.isfinite(w).all()):
            raise VocabularyError(f"this Vocabulary's names and class weights do not belong together (weights "
                                  f"{getattr(w, 'dtype', '?')} {getattr(w, 'shape', '?')} for {len(vocab.names)} names; "
                                  f"float32 [K+1, {d}] expected): make it with Segmenter.vocabulary(names)")
        self.check_class_count(len(vocab.names))

    def classify(self, encoded: EncodedBatch, vocab: Vocabulary, return_scores: bool = False) -> list[Segmentation]:
        """Image-graph outputs + a vocabulary -> one Segmentation per image. One encoded batch may be
        classified with several vocabularies."""
        self._check_vocab(vocab, "classify")
        t0 = time.perf_counter()
        logits = self.head_graph.infer({"mask_emb": encoded.mask_emb, "class_weights": vocab.class_weights})["class_logits"]
        head_s = time.perf_counter() - t0
        results = []
        for i in range(len(encoded.orig_hw)):
            p0 = time.perf_counter()
            post = semantic_inference(logits[i], encoded.mask_logits[i], encoded.padded_hw, encoded.image_hw[i],
                                      encoded.orig_hw[i], return_scores=return_scores)
            labels, scores = post if return_scores else (post, None)
            timings = {**encoded.timings, "head_s": head_s, "postprocess_s": time.perf_counter() - p0,
                       "batch": len(encoded.orig_hw)}
            results.append(Segmentation(labels, vocab.names, scores, encoded.mask_logits[i], encoded.mask_emb[i],
                                        logits[i], timings))
        return results

    def segment(self, images: list[np.ndarray], vocab: Vocabulary, return_scores: bool = False) -> list[Segmentation]:
        """Original RGB uint8 images -> one Segmentation each, in order. Images are batched with those
        of the same padded size only (within the export's batch range), so each answer equals that
        image segmented alone."""
        self._check_vocab(vocab, "segment")
        if isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
            raise ImageError("segment() takes a list of images: pass [image] for one")
        groups: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):
            if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ImageError(f"image {i}: expected an RGB uint8 [H, W, 3] array (load_image or to_rgb_u8 makes one)")
            groups.setdefault(self.input_size(*im.shape[:2]), []).append(i)
        out: list[Segmentation | None] = [None] * len(images)
        step = self.manifest["ranges"]["batch"][1]
        for idx in groups.values():
            for j in range(0, len(idx), step):
                part = idx[j : j + step]
                for i, r in zip(part, self.classify(self.encode_images([images[i] for i in part]), vocab, return_scores)):
                    out[i] = r
        return out
