"""Triton Python-backend models made of sanrt.runtime code (the repository's model.py files import
these; export/to_triton.py writes them).

- `GraphModel`: one sanrt graph (image, text or head) on a sanrt Runner: the Python-backend stand-in
  for Triton's TensorRT / ONNX Runtime / OpenVINO backends, with the same inputs and outputs. Under
  dynamic batching Triton hands it several requests of equal shapes; they run as one batch.
- `PipelineModel` (the `san` model, BLS): request = encoded image bytes or uint8 HWC pixels, plus class
  names or a built-in dataset name; response = the label map and the classes present. It is a
  `Segmenter` whose three runners send BLS requests to the graph models, so decoding, preprocessing,
  the vocabulary cache and post-processing are sanrt's own code; vocabularies also sit in an LRU.

Runs inside Triton's Python backend only (`triton_python_backend_utils` exists there).
"""
from __future__ import annotations

import json
import sys
from collections import OrderedDict

import numpy as np

from sanrt.runtime.errors import SanrtError
from sanrt.runtime.backends.base import Runner

GRAPH_IO = {  # graph: (inputs, outputs), names as in the export
    "image": (("images", "sizes"), ("mask_logits", "mask_emb")),
    "text": (("token_ids",), ("text_features",)),
    "head": (("mask_emb", "class_weights"), ("class_logits",)),
}


def _pb():
    import triton_python_backend_utils as pb_utils  # only inside Triton's Python backend

    return pb_utils


def _params(args: dict) -> dict:
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


class GraphModel:
    """config parameters: export_dir, graph (image | text | head), backend, precision."""

    def initialize(self, args):
        from sanrt.runtime.backends import make_runner
        from sanrt.runtime.manifest import Manifest

        p = _params(args)
        self.graph = p["graph"]
        m = Manifest.load(p["export_dir"])
        path = m.folder / (m.image_graph(p.get("precision", "fp32")) if self.graph == "image" else m.graphs[self.graph].file)
        self.runner = make_runner(p.get("backend", "onnxruntime"), path, device="cpu",
                                  **({"precision": p["precision"]} if self.graph == "image" and "precision" in p else {}))
        self.inputs, self.outputs = GRAPH_IO[self.graph]
        self.batched = json.loads(args["model_config"]).get("max_batch_size", 0) > 0

    def execute(self, requests):
        pb = _pb()
        feeds = [{n: pb.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        try:
            if self.batched and len(feeds) > 1:  # Triton batched requests of equal shapes: one run
                out = self.runner.infer({n: np.concatenate([f[n] for f in feeds]) for n in self.inputs})
                sizes = np.cumsum([len(f[self.inputs[0]]) for f in feeds])[:-1]
                parts = [{n: a for n, a in zip(self.outputs, split)}
                         for split in zip(*(np.split(out[n], sizes) for n in self.outputs))]
            else:
                parts = [self.runner.infer(f) for f in feeds]
        except SanrtError as e:
            return [pb.InferenceResponse(error=pb.TritonError(str(e))) for _ in requests]
        return [pb.InferenceResponse([pb.Tensor(n, np.ascontiguousarray(p[n])) for n in self.outputs]) for p in parts]


class TritonModelRunner(Runner):
    """A sanrt Runner whose graph is another model on the same Triton server (a BLS request)."""

    backend = "triton"

    def __init__(self, model_name: str, outputs: tuple[str, ...]):
        self.model_name, self.outputs = model_name, outputs

    def infer(self, feed):
        pb = _pb()
        request = pb.InferenceRequest(model_name=self.model_name, requested_output_names=list(self.outputs),
                                      inputs=[pb.Tensor(n, np.ascontiguousarray(a)) for n, a in feed.items()])
        response = request.exec()
        if response.has_error():
            raise SanrtError(f"{self.model_name}: {response.error().message()}")
        return {n: pb.get_output_tensor_by_name(response, n).as_numpy() for n in self.outputs}


class PipelineModel:
    """config parameters: export_dir, image_model, text_model, head_model, cache_dir (optional),
    lru_size (vocabularies kept in memory)."""

    def initialize(self, args):
        from sanrt.runtime.segmenter import Segmenter

        p = _params(args)
        runners = {g: TritonModelRunner(p[f"{g}_model"], GRAPH_IO[g][1]) for g in GRAPH_IO}
        self.seg = Segmenter.with_runners(p["export_dir"], runners, cache_dir=p.get("cache_dir") or None)
        self.lru: OrderedDict = OrderedDict()
        self.lru_size = int(p.get("lru_size", "32"))

    def vocabulary(self, names: tuple[str, ...], expand: str | None = None):
        """From the LRU (keyed as the runtime's on-disk cache, plus the expansion), else that cache,
        else the text model."""
        key = (self.seg.text.cache_key(list(names)), expand)
        if key in self.lru:
            self.lru.move_to_end(key)
            return self.lru[key]
        vocab = self.seg.vocabulary(list(names), expand=expand)
        self.lru[key] = vocab
        while len(self.lru) > self.lru_size:
            self.lru.popitem(last=False)
        return vocab

    def execute(self, requests):
        pb = _pb()
        responses = []
        for r in requests:
            try:
                img, names, expand = self._read(pb, r)
                [res] = self.seg.segment([img], self.vocabulary(tuple(names), expand))
                present = [json.dumps(c._asdict()) for c in res.classes_present()]
                responses.append(pb.InferenceResponse([
                    pb.Tensor("LABELS", res.labels.astype(np.uint16)),
                    pb.Tensor("CLASSES_PRESENT", np.array([s.encode() for s in present], dtype=np.object_))]))
            except SanrtError as e:
                responses.append(pb.InferenceResponse(error=pb.TritonError(f"sanrt: {e}")))
            except Exception:  # noqa: BLE001 - a bug: the traceback goes to the server log, not to the client
                import traceback

                print(traceback.format_exc(), file=sys.stderr, flush=True)
                responses.append(pb.InferenceResponse(error=pb.TritonError("sanrt: internal error (see the server log)")))
        return responses

    @staticmethod
    def _read(pb, r):
        """(RGB uint8 image, class names, expansion mode or None) from a request; SanrtError for anything
        unusable. EXPAND (optional): "none", "coco-all" or "coco-stuff"; with it, pixels won by a
        distractor are labelled K (the class count) and named "other" in CLASSES_PRESENT."""
        from sanrt.runtime.errors import ImageError, VocabularyError
        from sanrt.runtime.images import decode_image, to_rgb_u8
        from sanrt.runtime.datasets import EXPANSIONS, dataset_vocabulary
        from sanrt.runtime.vocabulary import check_vocabulary

        def opt(name):
            t = pb.get_input_tensor_by_name(r, name)
            return None if t is None else t.as_numpy()

        encoded, pixels, classes, dataset = opt("IMAGE"), opt("IMAGE_RGB"), opt("CLASSES"), opt("DATASET")
        expand = opt("EXPAND")
        if (encoded is None) == (pixels is None):
            raise ImageError("send exactly one of IMAGE (encoded bytes) and IMAGE_RGB (uint8 HxWx3)")
        img = decode_image(encoded.reshape(-1)[0], "IMAGE") if encoded is not None else to_rgb_u8(pixels, "IMAGE_RGB")
        if (classes is None) == (dataset is None):
            raise VocabularyError("send exactly one of CLASSES (names) and DATASET (a built-in dataset name)")
        def text(value, what: str) -> str:
            if not isinstance(value, bytes):
                return str(value)
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise VocabularyError(f"{what} holds bytes that are not UTF-8 text") from None

        mode = None if expand is None or expand.size == 0 else text(expand.reshape(-1)[0], "EXPAND").strip()
        if mode is not None and mode not in ("none", *EXPANSIONS):
            raise VocabularyError(f"EXPAND {mode[:40]!r} is no expansion mode; send none, {', '.join(EXPANSIONS)}")
        if classes is not None:  # the runtime's rules: names as CLIP reads them (Segmenter.vocabulary)
            names = check_vocabulary([text(c, "CLASSES") for c in classes.reshape(-1)])
        else:
            names = dataset_vocabulary(text(dataset.reshape(-1)[0], "DATASET"))
        return img, names, None if mode in (None, "none") else mode

