"""sanrt's export tools: PyTorch SAN -> ONNX folder (-> INT8 variants, TensorRT engines).

    from sanrt.export import export_model
    export_model("out/onnx/vit_b_16", "vit_b_16", checkpoint="models/san_vit_b_16.pth")  # what Segmenter reads
    # or in two steps: model, weights = build_model("vit_b_16", random_init=True); export(model, out, weights)

Only the PyTorch side (build_model, export_model, export) needs torch: the names are imported on
first use, so quantize.py, build_engine.py and to_triton.py run on a machine without it (a GPU box
with TensorRT, a serving host).

The folder's contract: scripts (to_onnx.py -> quantize.py -> build_engine.py, to_triton.py) thin over
its library modules (onnx_export, fp16, quantize, tensorrt_build, parity); it may import every
sanrt package but benchmarks, and writes every folder it makes aside, then moves it in whole.
"""
from importlib import import_module

_LAZY = {"build_model": ".models", "export_model": ".models", "export": ".onnx_export",
         "ExportRanges": ".onnx_export", "add_variant": ".quantize"}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LAZY[name], __name__), name)
