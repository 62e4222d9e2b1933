"""The distance to the physical limit: FLOPs of the SAN image graph and the machine's measured GEMM
peak per precision, so each speed row can say what fraction of the machine it uses.

    python -m sanrt.benchmarks.lib.peak          # GEMM peaks of this machine, as JSON

FLOPs are counted on the PyTorch graph (torch.utils.flop_counter: matmuls, convolutions; a
multiply-add is 2 FLOPs), by part (CLIP, side adapter, mask decoder). The peak is measured, not
taken from a datasheet: one large GEMM shaped like the model's MLP ([M=1600 tokens] x [768] x
[3072]), run by every library that runs a path of that precision (PyTorch and OpenVINO for FP32,
PyTorch for BF16, OpenVINO and ONNX Runtime for INT8), best of them. A path's "fraction of peak"
is graph FLOPs / median time / that peak. `cuda_gemm_peaks` is the same on a GPU through torch
(an n^3 matmul in FP16, BF16, FP32 and TF32, TFLOP/s).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from .timing import measure, median_time

GEMM = (1600, 768, 3072)  # tokens x width x MLP width: the side adapter's grid at 640x640, CLIP's MLP


def _gemm_onnx(path: Path, int8: bool) -> None:
    """[M,K] x const [K,N]; with int8, QDQ on both (what NNCF writes, what OpenVINO runs in INT8)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m, k, n = GEMM
    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32) * 0.05
    nodes, inits = [], []
    if int8:
        inits += [numpy_helper.from_array(np.round(w / 0.002).clip(-127, 127).astype(np.int8), "w_q"),
                  numpy_helper.from_array(np.array(0.002, np.float32), "w_s"),
                  numpy_helper.from_array(np.array(0, np.int8), "w_z"),
                  numpy_helper.from_array(np.array(0.02, np.float32), "x_s"),
                  numpy_helper.from_array(np.array(128, np.uint8), "x_z")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"]),
                  helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"]),
                  helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"]),
                  helper.make_node("MatMul", ["x_dq", "w"], ["y"])]
    else:
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["y"]))
    graph = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def gemm_peaks(threads: int) -> dict:
    """{precision: {"by": {library: GFLOP/s}, "gflops": best}} on this machine, now."""
    import torch

    m, k, n = GEMM
    flop = 2.0 * m * k * n
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    out: dict[str, dict] = {"fp32": {}, "bf16": {}, "int8": {}}
    torch.set_num_threads(threads)
    a, b = torch.from_numpy(x), torch.randn(k, n)
    with torch.no_grad():
        out["fp32"]["torch"] = flop / median_time(lambda: a @ b) / 1e9
        a16, b16 = a.bfloat16(), b.bfloat16()
        out["bf16"]["torch"] = flop / median_time(lambda: a16 @ b16, runs=5, warmup=1) / 1e9
    with tempfile.TemporaryDirectory() as tmp:
        for precision, int8 in (("fp32", False), ("int8", True)):
            path = Path(tmp) / f"gemm_{precision}.onnx"
            _gemm_onnx(path, int8)
            try:
                import openvino as ov

                compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                                      "INFERENCE_NUM_THREADS": threads,
                                                                      "INFERENCE_PRECISION_HINT": "f32"})
                req = compiled.create_infer_request()
                out[precision]["openvino"] = flop / median_time(lambda: req.infer({"x": x})) / 1e9
            except ImportError:
                pass
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        dyn = Path(tmp) / "gemm_int8dyn.onnx"
        quantize_dynamic(Path(tmp) / "gemm_fp32.onnx", dyn, weight_type=QuantType.QInt8)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(dyn), opts, providers=["CPUExecutionProvider"])
        out["int8"]["onnxruntime"] = flop / median_time(lambda: sess.run(None, {"x": x})) / 1e9
    return {p: {"by": {k2: round(v, 1) for k2, v in by.items()}, "gflops": round(max(by.values()), 1)}
            for p, by in out.items() if by}


def graph_flops(model, hw: tuple[int, int], batch: int = 1, device="cpu") -> dict:
    """{"total": FLOPs of one image-graph call, "parts": {part: FLOPs}} at this padded size (the
    count does not depend on the pixels)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    images = torch.zeros(batch, 3, *hw, dtype=torch.uint8, device=device)
    sizes = torch.tensor([list(hw)] * batch, device=device)
    with torch.no_grad(), FlopCounterMode(display=False, depth=None) as fc:
        model(images, sizes)
    counts = {name: sum(ops.values()) for name, ops in fc.get_flop_counts().items()}
    total = counts.get("Global", 0)
    side = counts.get("SAN.side_adapter", 0)
    decoder = counts.get("SAN.side_adapter.mask_decoder", 0)
    return {"total": total, "parts": {"side adapter (without decoder)": side - decoder, "mask decoder": decoder,
                                      "CLIP and the rest": total - side}}


# precision -> (torch dtype name, TF32 for FP32 matmuls)
CUDA_GEMMS = {"fp16": ("float16", False), "bf16": ("bfloat16", False), "fp32": ("float32", False), "tf32": ("float32", True)}


def cuda_gemm_peaks(torch, device, n: int = 8192, sync=None, max_s: float | None = 10.0) -> dict:
    """{precision: {"tflops": median rate, "best_tflops": best sample's rate, "ms": median ms per
    matmul, "n": n}} of an n x n x n torch matmul on `device` in FP16, BF16, FP32 (TF32 off) and TF32,
    in TFLOP/s (10^12 FLOP/s, multiply-add = 2): the GPU's measured peak of each precision, now.
    `sync`: the device synchronisation (torch.cuda.synchronize). On a CPU (dry runs) TF32 is plain
    FP32. The TF32 setting is restored after."""
    flop = 2.0 * n**3
    cuda = torch.device(device).type == "cuda"
    reps = 10 if cuda else 1  # matmuls per timed sample: the sync is not part of the rate
    out = {}
    for key, (dtype, tf32) in CUDA_GEMMS.items():
        g = torch.Generator(device=device).manual_seed(0)
        a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype), generator=g) for _ in range(2))
        c = torch.empty_like(a)
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            t = measure(lambda: [torch.mm(a, b, out=c) for _ in range(reps)], runs=10, warmup=3, sync=sync, max_s=max_s)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
        out[key] = {"tflops": flop * reps / t["median_s"] / 1e12, "best_tflops": flop * reps / t["min_s"] / 1e12,
                    "ms": 1e3 * t["median_s"] / reps, "n": n}
    if cuda:
        torch.cuda.empty_cache()
    return out


if __name__ == "__main__":
    import os

    print(json.dumps(gemm_peaks(int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()), indent=1))
