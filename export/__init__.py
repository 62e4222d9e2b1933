"""sanrt's export tools: PyTorch SAN -> ONNX folder (-> INT8 variants, TensorRT engines).

    from sanrt.export import export_model
    export_model("out/onnx/vit_b_16", "vit_b_16", checkpoint="models/san_vit_b_16.pth")  # what Segmenter reads
    # or in two steps: model, weights = build_model("vit_b_16", random_init=True); export(model, out, weights)
"""
from .models import build_model, export_model
from .onnx_export import ExportRanges, export
from .quantize import add_variant

__all__ = ["build_model", "export_model", "export", "ExportRanges", "add_variant"]
