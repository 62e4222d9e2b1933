"""SAN end to end without torch: export folder + backend -> label maps for any vocabulary."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import make_runner
from .choice import choose
from .engines import check_compatible, gpu_identity, import_tensorrt, resolve
from .errors import BackendError, RangeError
from .manifest import Manifest
from .postprocess import semantic_inference
from .preprocess import pad_batch, padded_size, prepare, resized_shape
from .tokenizer import Tokenizer
from .vocabulary import check_vocabulary

TEXT_CHUNK = 256  # texts per text-graph call: bounds activation memory for large vocabularies


def default_cache_dir() -> Path:
    return Path(os.environ.get("SANRT_CACHE", Path.home() / ".cache" / "sanrt")) / "vocab"


@dataclass
class EncodedBatch:
    padded_hw: tuple  # the batch's padded input size
    image_hw: list  # each image's resized size inside the padding
    orig_hw: list  # each image's original size (the output size)
    mask_logits: np.ndarray  # [B, Q, H/16, W/16]
    mask_emb: np.ndarray  # [B, Q, D]
    timings: dict


@dataclass
class Segmentation:
    labels: np.ndarray  # [H0, W0] int32, class indices in vocabulary order
    scores: np.ndarray | None  # [K, H0, W0] when asked for
    mask_logits: np.ndarray  # [Q, H/16, W/16]
    mask_emb: np.ndarray  # [Q, D]
    class_logits: np.ndarray  # [Q, K+1]
    timings: dict = field(default_factory=dict)  # seconds per stage (batch stages shared)


class Segmenter:
    def __init__(self, export_dir, backend: str = "onnxruntime", precision: str = "fp32",
                 cache_dir: Path | None = None, verify: bool = True, cuda_graph: bool = False, **backend_options):
        """`precision` applies to the image graph (the heavy one): fp32; bf16 (OpenVINO); int8 or
        fp16 when the export holds that variant. The text graph and head stay FP32. `cuda_graph`
        replays the image engine as a CUDA graph (TensorRT only)."""
        export_dir, engines = resolve(export_dir)  # an engine folder or .engine file leads to its export
        self.manifest = Manifest.load(export_dir, verify=verify)
        m = self.manifest
        self.choice = None
        if engines is not None:
            backend, precision = "tensorrt", engines["precision"]
            paths = {g: Path(engines["folder"]) / e["file"] for g, e in engines["engines"].items()}
            self._check_engines(engines)
        else:
            if backend == "auto":
                backend, precision, self.choice = choose(m.folder)
            if backend == "tensorrt":
                raise BackendError("TensorRT needs engines: build them with export/build_engine.py and pass --engine ENGINE_DIR")
            paths = {"image": self.image_graph_path(precision), "text": m.path("text"), "head": m.path("head")}
        if cuda_graph and backend != "tensorrt":
            raise BackendError("CUDA graphs are for TensorRT engines: pass --engine ENGINE_DIR")
        graph_option = {"cuda_graph": True} if cuda_graph else {}
        self.image_graph = make_runner(backend, paths["image"], precision=precision, **graph_option, **backend_options)
        self.text_graph = make_runner(backend, paths["text"], **backend_options)
        self.head_graph = make_runner(backend, paths["head"], **backend_options)
        self.backend, self.precision = backend, precision
        self._text_source = f"{backend}:{paths['text'].name}"  # cached embeddings depend on what computed them
        self.tokenizer = Tokenizer(m.path(m["tokenizer"]["file"]))
        clf = np.load(m.path(m["classifier"]["file"]))
        self.bg_embed = clf["bg_embed"].astype(np.float32)
        self.logit_scale_exp = np.float32(clf["logit_scale_exp"])
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.names: list[str] = []
        self.class_weights = None
        self.vocab_timing: dict = {}

    @staticmethod
    def _check_engines(engines: dict) -> None:
        check_compatible(engines, gpu_identity(), import_tensorrt().__version__)

    def image_graph_path(self, precision: str) -> Path:
        variants = self.manifest["graphs"]["image"].get("variants", {})
        base = precision.split("-")[0]  # "int8-bf16": the int8 graph, its other ops in BF16
        if base in variants:
            return self.manifest.folder / variants[base]
        if precision in ("fp32", "bf16"):  # BF16 is a backend setting on the FP32 graph
            return self.manifest.path("image")
        have = ", ".join(["fp32", "bf16", *variants])
        raise BackendError(f"this export has no {precision} image graph (has: {have})")

    # ---- vocabulary -------------------------------------------------------------------------------
    def _cache_key(self, names: list[str]) -> str:
        m = self.manifest
        key = json.dumps([m["sha256"][m["graphs"]["text"]["file"]], self._text_source,
                          m["sha256"][m["classifier"]["file"]], m["templates"], names], ensure_ascii=False)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> L2-normalised text features [N, D], in chunks within the export's range."""
        if not texts:
            raise ValueError("no texts to encode")
        ids = self.tokenizer(texts, self.manifest["ranges"]["tokens"])
        ends = ids.argmax(axis=1)  # each text's end-of-text token (the largest id)
        order = np.argsort(ends, kind="stable")  # texts of similar length share a chunk
        step = min(self.manifest["ranges"]["texts"][1], TEXT_CHUNK)
        feats = None
        for i in range(0, len(order), step):
            rows = order[i : i + step]
            # Causal attention: nothing after a text's end-of-text token reaches its EOT feature,
            # so each chunk is cut after its longest text.
            out = self.text_graph.infer({"token_ids": ids[rows, : int(ends[rows].max()) + 1]})["text_features"]
            if feats is None:
                feats = np.empty((len(texts), out.shape[1]), dtype=out.dtype)
            feats[rows] = out
        return feats

    def class_weights_for(self, names: list[str]) -> np.ndarray:
        """Class names -> [K+1, D] classifier weights (templates averaged, background row, scale)."""
        templates = self.manifest["templates"]
        feats = self.encode_texts([t.format(n) for t in templates for n in names])
        feats = feats.reshape(len(templates), len(names), -1).mean(axis=0)
        feats = feats / np.linalg.norm(feats, axis=-1, keepdims=True)
        w = np.concatenate([feats, self.bg_embed], axis=0)
        w = w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-12)
        return (self.logit_scale_exp * w).astype(np.float32)

    def set_vocabulary(self, names, use_cache: bool = True) -> None:
        names = check_vocabulary(names)
        lo, hi = self.manifest["ranges"]["classes"]
        if not lo <= len(names) <= hi:
            raise RangeError(f"{len(names)} classes is outside the export's range {lo}..{hi}")
        t = time.perf_counter()
        path = self.cache_dir / f"{self._cache_key(names)}.npy"
        cached = use_cache and path.is_file()
        if cached:
            weights = np.load(path)
        else:
            weights = self.class_weights_for(names)
            if use_cache:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                with open(tmp, "wb") as f:
                    np.save(f, weights)
                os.replace(tmp, path)
        self.names, self.class_weights = names, weights
        self.vocab_timing = {"text_s": time.perf_counter() - t, "cached": cached}

    # ---- images -----------------------------------------------------------------------------------
    def check_size(self, h: int, w: int) -> tuple[int, int]:
        """Padded model-input size of an original (h, w) image; RangeError outside the export."""
        inp, r = self.manifest["input"], self.manifest["ranges"]
        ph, pw = padded_size(*resized_shape(h, w, inp["min_size"], inp["max_size"]), r["multiple"])
        if not (r["height"][0] <= ph <= r["height"][1] and r["width"][0] <= pw <= r["width"][1]):
            raise RangeError(f"a {w}x{h} image needs a {pw}x{ph} input, outside the export's range "
                             f"{r['width'][0]}..{r['width'][1]} x {r['height'][0]}..{r['height'][1]}")
        return ph, pw

    def encode_images(self, images: list[np.ndarray]) -> "EncodedBatch":
        """Original RGB uint8 images -> image-graph outputs for one batch (vocabulary-independent)."""
        r, inp = self.manifest["ranges"], self.manifest["input"]
        if not r["batch"][0] <= len(images) <= r["batch"][1]:
            raise RangeError(f"batch of {len(images)} is outside the export's range {r['batch'][0]}..{r['batch'][1]}")
        for im in images:
            self.check_size(*im.shape[:2])
        t0 = time.perf_counter()
        chws = [prepare(im, inp["min_size"], inp["max_size"]) for im in images]
        batch, sizes = pad_batch(chws, r["multiple"])
        t1 = time.perf_counter()
        out = self.image_graph.infer({"images": batch, "sizes": sizes})
        t2 = time.perf_counter()
        return EncodedBatch(batch.shape[-2:], [c.shape[1:] for c in chws], [im.shape[:2] for im in images],
                            out["mask_logits"], out["mask_emb"], {"preprocess_s": t1 - t0, "image_graph_s": t2 - t1})

    def classify(self, enc: "EncodedBatch", return_scores: bool = False) -> list[Segmentation]:
        """Image-graph outputs + the current vocabulary -> one Segmentation per image."""
        if self.class_weights is None:
            raise RuntimeError("set_vocabulary() first")
        t0 = time.perf_counter()
        logits = self.head_graph.infer({"mask_emb": enc.mask_emb, "class_weights": self.class_weights})["class_logits"]
        head_s = time.perf_counter() - t0
        results = []
        for i in range(len(enc.orig_hw)):
            p0 = time.perf_counter()
            post = semantic_inference(logits[i], enc.mask_logits[i], enc.padded_hw, enc.image_hw[i], enc.orig_hw[i],
                                      return_scores=return_scores)
            labels, scores = post if return_scores else (post, None)
            timings = {**enc.timings, "head_s": head_s, "postprocess_s": time.perf_counter() - p0,
                       "batch": len(enc.orig_hw)}
            results.append(Segmentation(labels, scores, enc.mask_logits[i], enc.mask_emb[i], logits[i], timings))
        return results

    def segment(self, images: list[np.ndarray], return_scores: bool = False) -> list[Segmentation]:
        """Original RGB uint8 images -> one Segmentation each (one batch through the image graph)."""
        return self.classify(self.encode_images(images), return_scores)
