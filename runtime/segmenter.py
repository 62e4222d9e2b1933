"""SAN end to end without torch: export folder + backend -> label maps for any vocabulary.

A `Segmenter` holds only what it loaded (runners, the text side); a `Vocabulary` is an immutable
value made by `Segmenter.vocabulary(names)`. Nothing changes per request, so one Segmenter serves
many threads, each with its own vocabulary. Loading is `loader.py`'s, names -> class weights
`text.py`'s; this file holds the image path: preprocessing, batching, the head, post-processing.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .errors import ImageError, RangeError
from .loader import load
from .postprocess import semantic_inference
from .preprocess import pad_batch, padded_size, prepare, resized_shape
from .results import EncodedBatch, Segmentation
from .text import TextSide, Vocabulary


class Segmenter:
    def __init__(self, export_dir, backend: str = "auto", precision: str | None = None, *, device: str = "auto",
                 threads: int | None = None, cache_dir: Path | None = None, verify: bool = True,
                 cuda_graph: bool = False, backend_options: dict | None = None):
        """`export_dir`: an export folder (export/to_onnx.py), or a TensorRT engine folder or .engine
        file (export/build_engine.py). `backend`: "auto" (the fastest path verified on this machine
        for these graphs, else ONNX Runtime FP32), "onnxruntime" or "openvino". `precision` (named
        backends) applies to the image graph, the heavy one: fp32, bf16, int8, int8dyn, int8-bf16 or
        fp16 (`sanrt.runtime.backends.PATHS` lists what exists); the text graph and head stay FP32.
        `device`: auto, cpu or cuda. `cache_dir`: class-weight cache (default ~/.cache/sanrt/vocab or
        $SANRT_CACHE/vocab). `cuda_graph` replays the image engine as a CUDA graph (TensorRT only).
        `backend_options` go to every runner (e.g. {"shrink_arena": False} for ONNX Runtime)."""
        loaded = load(export_dir, backend, precision, device=device, threads=threads, verify=verify,
                      cuda_graph=cuda_graph, backend_options=backend_options)
        self.choice = loaded.choice  # why "auto" chose what it did
        self._setup(loaded.manifest, loaded.runners, loaded.backend, loaded.precision, cache_dir, loaded.engine_text)

    @classmethod
    def with_runners(cls, export_dir, runners: dict, cache_dir: Path | None = None, verify: bool = True) -> "Segmenter":
        """A Segmenter over runners made elsewhere ({"image", "text", "head"}: e.g. models on a Triton
        server): the same preprocessing, vocabulary cache and post-processing around them."""
        from .manifest import Manifest

        self = cls.__new__(cls)
        self.choice = None
        self._setup(Manifest.load(export_dir, verify=verify), runners, runners["image"].backend, "fp32", cache_dir)
        return self

    def _setup(self, manifest, runners: dict, backend: str, precision: str, cache_dir, engine_text=None) -> None:
        self.manifest, self.backend, self.precision = manifest, backend, precision
        self.image_graph, self.head_graph = runners["image"], runners["head"]
        self.text = TextSide(manifest, runners["text"], runners.get("text_after"), backend, engine_text, cache_dir)

    def close(self) -> None:
        """Free every runner's sessions, engines and device memory; the Segmenter is not used after."""
        for r in (self.image_graph, self.head_graph, self.text.text_graph, self.text.text_after):
            if r is not None:
                r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def vocabulary(self, names, use_cache: bool = True, expand: str | None = None) -> Vocabulary:
        """Class names -> a Vocabulary for this export (cached per name and per vocabulary: text.py).
        `expand` ("coco-all", "coco-stuff"): SAN's vocabulary expansion; its pixels are labelled K."""
        return self.text.vocabulary(names, use_cache, expand)

    def check_class_count(self, k: int) -> None:
        """RangeError when the export takes no vocabulary of k classes."""
        self.text.check_class_count(k)

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """Padded model-input size of an original (h, w) image; RangeError outside the export."""
        inp, r = self.manifest.input, self.manifest.ranges
        if h < 1 or w < 1:
            raise ImageError(f"a {w}x{h} image has no pixels")
        ph, pw = padded_size(*resized_shape(h, w, inp.min_size, inp.max_size), r.multiple)
        if not (r.height[0] <= ph <= r.height[1] and r.width[0] <= pw <= r.width[1]):
            raise RangeError(f"a {w}x{h} image needs a {pw}x{ph} input, outside the export's range "
                             f"{r.width[0]}..{r.width[1]} x {r.height[0]}..{r.height[1]}")
        return ph, pw

    def encode_images(self, images: list[np.ndarray]) -> EncodedBatch:
        """Original RGB uint8 images of one padded size -> the image graph's outputs for one batch
        (vocabulary-independent). Images of different padded sizes are refused: padding an image
        to a larger batch-mate's size changes its answer; `segment` groups them."""
        r, inp = self.manifest.ranges, self.manifest.input
        if not r.batch[0] <= len(images) <= r.batch[1]:
            raise RangeError(f"batch of {len(images)} is outside the export's range {r.batch[0]}..{r.batch[1]}")
        sizes = {self.input_size(*im.shape[:2]) for im in images}
        if len(sizes) > 1:
            raise RangeError(f"one batch holds images of padded sizes {sorted(sizes)}; batch only equal padded "
                             "sizes (Segmenter.segment groups them)")
        t0 = time.perf_counter()
        chws = [prepare(im, inp.min_size, inp.max_size) for im in images]
        batch, sizes = pad_batch(chws, r.multiple)
        t1 = time.perf_counter()
        out = self.image_graph.infer({"images": batch, "sizes": sizes})
        t2 = time.perf_counter()
        return EncodedBatch(batch.shape[-2:], [c.shape[1:] for c in chws], [im.shape[:2] for im in images],
                            out["mask_logits"], out["mask_emb"], {"preprocess_s": t1 - t0, "image_graph_s": t2 - t1})

    def classify(self, encoded: EncodedBatch, vocab: Vocabulary, return_scores: bool = False) -> list[Segmentation]:
        """Image-graph outputs + a vocabulary -> one Segmentation per image. One encoded batch may be
        classified with several vocabularies."""
        self.text.check(vocab, "classify")
        t0 = time.perf_counter()
        logits = self.head_graph.infer({"mask_emb": encoded.mask_emb, "class_weights": vocab.class_weights})["class_logits"]
        head_s = time.perf_counter() - t0
        results = []
        for i in range(len(encoded.orig_hw)):
            p0 = time.perf_counter()
            post = semantic_inference(logits[i], encoded.mask_logits[i], encoded.padded_hw, encoded.image_hw[i],
                                      encoded.orig_hw[i], return_scores=return_scores)
            labels, scores = post if return_scores else (post, None)
            if vocab.distractors:  # a distractor's pixel is "other": label K
                np.minimum(labels, len(vocab.names), out=labels)
            timings = {**encoded.timings, "head_s": head_s, "postprocess_s": time.perf_counter() - p0,
                       "batch": len(encoded.orig_hw)}
            results.append(Segmentation(labels, vocab.names, scores, encoded.mask_logits[i], encoded.mask_emb[i],
                                        logits[i], timings, bool(vocab.distractors)))
        return results

    def segment(self, images: list[np.ndarray], vocab: Vocabulary, return_scores: bool = False) -> list[Segmentation]:
        """Original RGB uint8 images -> one Segmentation each, in order. Images are batched with those
        of the same padded size only (within the export's batch range), so each answer equals that
        image segmented alone."""
        self.text.check(vocab, "segment")
        if isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
            raise ImageError("segment() takes a list of images: pass [image] for one")
        groups: dict[tuple, list[int]] = {}
        for i, im in enumerate(images):
            if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ImageError(f"image {i}: expected an RGB uint8 [H, W, 3] array (load_image or to_rgb_u8 makes one)")
            groups.setdefault(self.input_size(*im.shape[:2]), []).append(i)
        out: list[Segmentation | None] = [None] * len(images)
        step = self.manifest.ranges.batch[1]
        for idx in groups.values():
            for j in range(0, len(idx), step):
                part = idx[j : j + step]
                for i, r in zip(part, self.classify(self.encode_images([images[i] for i in part]), vocab, return_scores)):
                    out[i] = r
        return out

    def segment_stream(self, frames, vocab: Vocabulary, batch: int | None = None):
        """An iterable of RGB uint8 frames (a video, a live stream: endless is fine) -> a generator of
        one Segmentation per frame, in order. Consecutive frames of one padded size share a batch of
        up to `batch` (default: the export's largest); at most one batch is held at a time, and a
        batch goes as soon as it is full or the frame size changes."""
        self.text.check(vocab, "segment_stream")
        lo, hi = self.manifest.ranges.batch
        step = hi if batch is None else int(batch)
        if not lo <= step <= hi:
            raise RangeError(f"batch of {step} is outside the export's range {lo}..{hi}")
        pending, size = [], None
        for i, im in enumerate(frames):
            if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ImageError(f"frame {i}: expected an RGB uint8 [H, W, 3] array")
            s = self.input_size(*im.shape[:2])
            if pending and s != size:
                yield from self.classify(self.encode_images(pending), vocab)
                pending = []
            pending.append(im)
            size = s
            if len(pending) == step:  # a full batch goes now, not when the next frame comes
                yield from self.classify(self.encode_images(pending), vocab)
                pending = []
        if pending:
            yield from self.classify(self.encode_images(pending), vocab)
