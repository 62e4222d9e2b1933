"""sanrt's export tools: PyTorch SAN -> ONNX folder (-> INT8 variants, TensorRT engines).

    from sanrt.export import build_model, export
    model, weights = build_model("vit_b_16", checkpoint="models/san_vit_b_16.pth")
    export(model, "out/onnx/vit_b_16", weights)            # the folder sanrt.runtime.Segmenter reads
"""
from .models import build_model
from .onnx_export import ExportRanges, export
from .quantize import add_variant

__all__ = ["build_model", "export", "ExportRanges", "add_variant"]
