"""Export SAN to an sanrt ONNX folder: image graph, text graph, vocabulary head, classifier data,
tokenizer data and manifest.json (the contract the torch-free runtime reads).

Graphs are traced with torch.onnx's TorchScript exporter (opset 18; MatMul + Softmax attention,
LayerNormalization, Resize, MaxPool/Gather: ops TensorRT's ONNX parser takes), checked with
onnx.checker (full shape inference) and cleaned with onnxslim. The same model and settings give
byte-identical files.
"""
from __future__ import annotations

import io
import shutil
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxslim
import torch
from sanrt.model import SAN, SANConfig
from sanrt.model.ops import explicit_layer_norm
from sanrt.runtime.errors import ConfigError
from sanrt.runtime.manifest import FORMAT, Manifest, is_export, sha256_file
from sanrt.runtime.outputs import build_folder
from sanrt.runtime.tokenizer import DEFAULT_BPE
from torch import nn

from .fp16 import DEFAULT_ISLANDS, to_fp16

OPSET = 18


@dataclass(frozen=True)
class ExportRanges:
    """Input ranges the exported graphs promise (and TensorRT profiles will cover)."""

    batch: tuple[int, int] = (1, 8)
    height: tuple[int, int] = (32, 2560)  # padded model-input height, a multiple of `multiple`
    width: tuple[int, int] = (32, 2560)
    multiple: int = 32
    classes: tuple[int, int] = (1, 1024)  # K, without the background row
    texts: tuple[int, int] = (1, 4096)  # text-graph batch N

    # what the outputs can hold: label PNGs and Triton's LABELS are 16-bit, a padded side is the
    # model's at most (checked against the config at export), batches and texts are bounded by memory
    LIMITS = {"batch": 1024, "height": 8192, "width": 8192, "classes": 65535, "texts": 65536}

    def __post_init__(self):
        """Refuse ranges that admit no input (an export that would refuse everything), or more than
        the outputs can hold."""
        for name in ("batch", "height", "width", "classes", "texts"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ConfigError(f"export range {name} {lo}..{hi} admits nothing (need 1 <= min <= max)")
            if hi > self.LIMITS[name]:
                raise ConfigError(f"export range {name} up to {hi} is past what sanrt can serve ({self.LIMITS[name]})")
        if self.multiple < 1 or min(self.height[1], self.width[1]) < self.multiple:
            raise ConfigError(f"the largest side {min(self.height[1], self.width[1])} is under the size multiple {self.multiple}")


class _ImageGraph(nn.Module):
    def __init__(self, model: SAN):
        super().__init__()
        self.model = model

    def forward(self, images, sizes):
        return self.model(images, sizes)


class _TextGraph(nn.Module):
    def __init__(self, model: SAN):
        super().__init__()
        self.model = model

    def forward(self, token_ids):
        return self.model.encode_text(token_ids)


class _TextAfterGraph(nn.Module):
    def __init__(self, model: SAN):
        super().__init__()
        self.model = model

    def forward(self, token_ids, past):
        return self.model.encode_text_after(token_ids, past)


class _HeadGraph(nn.Module):
    def forward(self, mask_emb, class_weights):
        return SAN.classify(mask_emb, class_weights)


def _trace(module: nn.Module, args: tuple, inputs: list, outputs: list, dynamic: dict) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on shape arithmetic are expected here
        torch.onnx.export(
            module, args, buf, input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


def _finish(model: onnx.ModelProto, path: Path, doc: str) -> None:
    """Clean with onnxslim, check with full shape inference, write."""
    model = onnxslim.slim(model)
    model.doc_string = doc
    model.producer_name = "sanrt"
    model.producer_version = version("sanrt")
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def _graph_specs(model: SAN, ranges: ExportRanges) -> dict:
    """name -> (module, example inputs, input names, output names, dynamic axes, doc)."""
    cfg = model.cfg
    # Example inputs: a non-square size and batch 2, so no dimension can be mistaken for a constant.
    h, w = 2 * ranges.multiple, 3 * ranges.multiple
    images = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([[h, w], [h - 5, w - 7]], dtype=torch.int64)
    ids = torch.zeros(3, cfg.context_length, dtype=torch.int32)
    ids[:, 0], ids[:, 1:4], ids[:, 4] = 49406, 320, 49407
    layers, width = cfg.clip_text["layers"], cfg.clip_text["width"]
    past = torch.randn(layers, 2, 2, width, generator=torch.Generator().manual_seed(2))
    emb = torch.randn(2, cfg.num_queries, cfg.clip_embed_dim, generator=torch.Generator().manual_seed(0))
    cw = torch.randn(4, cfg.clip_embed_dim, generator=torch.Generator().manual_seed(1))
    return {
        "image": (_ImageGraph(model), (images, sizes), ["images", "sizes"], ["mask_logits", "mask_emb"],
                  {"images": {0: "batch", 2: "height", 3: "width"}, "sizes": {0: "batch"},
                   "mask_logits": {0: "batch", 2: "height_16", 3: "width_16"}, "mask_emb": {0: "batch"}},
                  "SAN image graph: uint8 padded RGB [B,3,H,W] + valid sizes [B,2] -> "
                  "mask logits [B,Q,H/16,W/16], L2-normalised mask embeddings [B,Q,D]"),
        "text": (_TextGraph(model), (ids,), ["token_ids"], ["text_features"],
                 {"token_ids": {0: "texts", 1: "tokens"}, "text_features": {0: "texts"}},
                 "CLIP text tower: token ids [N,T<=77] (int32) -> L2-normalised features [N,D]; "
                 "ids may be cut after the longest sequence's end-of-text token"),
        "text_after": (_TextAfterGraph(model), (ids[:, 2:5], past), ["token_ids", "past"], ["text_features", "present"],
                       {"token_ids": {0: "texts", 1: "tokens"}, "past": {2: "prefix"}, "text_features": {0: "texts"},
                        "present": {2: "texts", 3: "tokens"}},
                       "CLIP text tower after a shared prefix: token ids [N,S] (int32) following P tokens whose keys "
                       "and values per block are past [L,2,P,C] -> L2-normalised features [N,D] at each row's "
                       "end-of-text token, and these tokens' keys and values present [L,2,N,S,C]"),
        "head": (_HeadGraph(), (emb, cw), ["mask_emb", "class_weights"], ["class_logits"],
                 {"mask_emb": {0: "batch"}, "class_weights": {0: "classes_bg"}, "class_logits": {0: "batch", 2: "classes_bg"}},
                 "SAN vocabulary head: mask embeddings [B,Q,D] x class weights [K+1,D] -> class logits [B,Q,K+1]"),
    }


def trace_fp32_for_fp16(model: SAN, graph: str, ranges: ExportRanges = ExportRanges()) -> onnx.ModelProto:
    """The FP32 graph with every LayerNorm written out (the input of the FP16 conversion)."""
    module, args, inputs, outputs, dynamic, _ = _graph_specs(model.eval(), ranges)[graph]
    with explicit_layer_norm():
        return onnxslim.slim(_trace(module, args, inputs, outputs, dynamic))


def export(model: SAN, out: str | Path, weights: str, ranges: ExportRanges = ExportRanges(),
           progress=print, fp16: bool = False, fp16_islands=DEFAULT_ISLANDS) -> Manifest:
    """Write the export folder for `model`; returns its manifest. `weights` says where the weights
    came from ("random (seed N)" or the checkpoint file name and its sha256). `fp16` adds FP16
    image and text graphs (FP32 islands `fp16_islands`) as variants."""
    cfg: SANConfig = model.cfg
    model = model.eval()
    out = Path(out)
    s = cfg.size_divisibility
    if ranges.multiple % s:
        raise ConfigError(f"the export multiple {ranges.multiple} must be a multiple of the model's {s}")
    if max(ranges.height[1], ranges.width[1]) > cfg.max_size:
        raise ConfigError(f"the largest side {max(ranges.height[1], ranges.width[1])} is past the model's largest padded "
                          f"side {cfg.max_size}")
    # built aside and moved into place whole: a failed or interrupted export leaves the previous one
    manifest = build_folder(out, lambda tmp: _write(model, tmp, weights, ranges, progress, fp16, fp16_islands), is_export)
    manifest.folder = out
    return manifest


def _write(model: SAN, out: Path, weights: str, ranges: ExportRanges, progress, fp16: bool, fp16_islands) -> Manifest:
    cfg: SANConfig = model.cfg
    s = cfg.size_divisibility
    specs = _graph_specs(model, ranges)
    variants = {}
    for name, (module, args, inputs, outputs, dynamic, doc) in specs.items():
        progress(f"exporting the {name} graph")
        _finish(_trace(module, args, inputs, outputs, dynamic), out / f"{name}.onnx", doc)
        if fp16 and name in ("image", "text"):  # the head is one small MatMul with FP32 outputs: it stays FP32
            progress(f"converting the {name} graph to FP16 (FP32 islands: {', '.join(fp16_islands)})")
            g16 = to_fp16(trace_fp32_for_fp16(model, name, ranges), fp16_islands)
            # onnxslim also puts the converter's appended Cast nodes back in topological order
            _finish(g16, out / f"{name}_fp16.onnx", doc + f"; FP16 with FP32 islands {', '.join(fp16_islands)}")
            variants[name] = {"fp16": f"{name}_fp16.onnx"}

    # Two weights the numpy side needs to turn text features into class weights.
    with torch.no_grad():
        buf = io.BytesIO()
        np.savez(buf, bg_embed=model.bg_embed.numpy().astype(np.float32),
                 logit_scale_exp=np.float32(model.clip.logit_scale.exp().item()))
    (out / "classifier.npz").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, model.text_start_kv().numpy().astype(np.float32))
    (out / "text_start_kv.npy").write_bytes(buf.getvalue())
    shutil.copyfile(DEFAULT_BPE, out / "bpe_simple_vocab_16e6.txt.gz")

    files = ["image.onnx", "text.onnx", "text_after.onnx", "text_start_kv.npy", "head.onnx", "classifier.npz",
             "bpe_simple_vocab_16e6.txt.gz",
             *(f for v in variants.values() for f in v.values())]
    graphs = {
        "image": {"file": "image.onnx", "inputs": {"images": "uint8 [B,3,H,W]", "sizes": "int64 [B,2] valid h,w"},
                  "outputs": {"mask_logits": "float32 [B,Q,H/16,W/16]", "mask_emb": "float32 [B,Q,D]"}},
        "text": {"file": "text.onnx", "inputs": {"token_ids": "int32 [N,T], T <= 77"},
                 "outputs": {"text_features": "float32 [N,D]"}},
        # optional: the CPU runtime's faster text path (each template's shared words run once)
        "text_after": {"file": "text_after.onnx", "start_kv": "text_start_kv.npy",
                       "inputs": {"token_ids": "int32 [N,S]", "past": "float32 [L,2,P,C]"},
                       "outputs": {"text_features": "float32 [N,D]", "present": "float32 [L,2,N,S,C]"}},
        "head": {"file": "head.onnx", "inputs": {"mask_emb": "float32 [B,Q,D]", "class_weights": "float32 [K+1,D]"},
                 "outputs": {"class_logits": "float32 [B,Q,K+1]"}},
    }
    for name, v in variants.items():
        graphs[name]["variants"] = v
    manifest = Manifest({
        "format": FORMAT,
        "sanrt_version": version("sanrt"),
        "preset": cfg.name,
        "config": cfg.to_dict(),
        "weights": weights,
        "opset": OPSET,
        "precision": "fp32" + (" + fp16 variants" if fp16 else ""),
        "fp16_islands": list(fp16_islands) if fp16 else None,
        "graphs": graphs,
        "ranges": {"batch": list(ranges.batch), "height": list(ranges.height), "width": list(ranges.width),
                   "multiple": ranges.multiple, "classes": list(ranges.classes), "texts": list(ranges.texts),
                   "tokens": cfg.context_length},
        "queries": cfg.num_queries,
        "embed_dim": cfg.clip_embed_dim,
        "input": {"min_size": cfg.min_size, "max_size": cfg.max_size, "size_divisibility": s,
                  "pixel_mean": list(cfg.pixel_mean), "pixel_std": list(cfg.pixel_std)},
        "templates": list(cfg.templates),
        "tokenizer": {"file": "bpe_simple_vocab_16e6.txt.gz", "context_length": cfg.context_length},
        "classifier": {"file": "classifier.npz"},
        "export_settings": {"exporter": "torch.onnx (TorchScript)", "torch": torch.__version__,
                            "open_clip_torch": version("open_clip_torch"), "onnx": onnx.__version__,
                            "onnxslim": onnxslim.__version__},
        "sha256": {f: sha256_file(out / f) for f in files},
    })
    manifest.save(out)
    return manifest
