"""INT8 image graphs for CPUs, added to an existing export folder (manifest updated).

    python export/quantize.py --export out/onnx/vit_b_16                 # NNCF static INT8 (QDQ ONNX)
    python export/quantize.py --export out/onnx/vit_b_16 --method dynamic  # ONNX Runtime dynamic INT8

`static`: NNCF post-training quantisation of image.onnx (transformer preset; the side adapter and
mask decoder kept in floating point) with a small calibration set -> image_int8.onnx, a QDQ ONNX
that OpenVINO runs with INT8 kernels (VNNI/AMX) and ONNX Runtime can read too. `dynamic`: ONNX Runtime's dynamic quantisation (INT8 weights of MatMuls,
activations quantised per call, after SmoothQuant's migration of the LayerNorm outputs' channel
ranges into the weights) -> image_int8dyn.onnx, for ONNX Runtime. The calibration photos are not
the ones the benchmarks score accuracy on.

The recipe depends on the CPU (`--for-cpu`): CPUs with VNNI or AMX get 8-bit weights; others
(AVX2, AVX-512 without VNNI) 7-bit weights, since their u8 x s8 kernels add product pairs into a
saturating int16 (sanrt.runtime.machine.VNNI_TIERS). The manifest records the bits and the CPU
tier the graph was made for; the runtime warns when a graph runs where its recipe does not hold.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sanrt.runtime import cli, logs
from sanrt.runtime.errors import SanrtError
from sanrt.runtime.machine import cpu_flags, int8_weight_bits, matrix_tier
from sanrt.runtime.manifest import Manifest, sha256_file
from sanrt.runtime.outputs import lock_folder, new_file_mode
from sanrt.runtime.preprocess import pad_batch, prepare

MAX_CALIBRATION = 256
VARIANT_FILES = {"static": ("int8", "image_int8.onnx"), "dynamic": ("int8dyn", "image_int8dyn.onnx")}


def calibration_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """Photos for calibration: scikit-image's that the accuracy checks do not use, plus random
    crops and flips of them (several aspect ratios, so several input sizes)."""
    from skimage import data

    sources = [data.rocket(), data.coffee()[::-1], np.stack([data.camera()] * 3, -1), data.immunohistochemistry(),
               data.hubble_deep_field(), data.retina(), np.stack([data.coins()] * 3, -1)]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y : y + ch, x : x + cw]
        out.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return out


def image_graph_inputs(manifest: Manifest, images: list[np.ndarray]) -> list[dict]:
    inp = manifest.input
    feeds = []
    for img in images:
        batch, sizes = pad_batch([prepare(img, inp.min_size, inp.max_size)], manifest.ranges.multiple)
        feeds.append({"images": batch, "sizes": sizes})
    return feeds


# Kept in floating point by static quantisation, found by measurement (benchmarks/NOTES.md section 6):
# with the side adapter in INT8 the [SLS] mask embeddings lose their direction (cosine 0.71 on full
# ViT-B/16) and no single part of it (blocks, their attention or MLPs, the fusion convolutions) is
# enough to keep float; with the side adapter and the mask decoder float, cosine >= 0.99. Both are
# narrow (240 wide on ViT-B): CLIP, most of the compute, stays INT8.
FLOAT_SCOPE = [r".*/side_adapter/.*", r".*/mask_decoder/.*"]


def quantize_static(src: Path, dst: Path, feeds: list[dict], weight_bits: int = 8) -> dict:
    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    logs.tame("nncf")  # NNCF sets its logger to INFO when imported: hundreds of lines per graph

    model = onnx.load(src)
    # NNCF's overflow fix halves every weight's integer range: its answer to vpmaddubsw saturation
    fix = nncf.OverflowFix.ENABLE if weight_bits == 7 else nncf.OverflowFix.FIRST_LAYER
    q = nncf.quantize(model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds),
                      ignored_scope=nncf.IgnoredScope(patterns=FLOAT_SCOPE, validate=False),
                      advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix))
    onnx.save(q, dst)
    return {"tool": f"nncf {nncf.__version__}", "method": "static post-training, transformer preset",
            "calibration_images": len(feeds), "kept_float": FLOAT_SCOPE, "overflow_fix": fix.value}


SMOOTH_ALPHA = 0.5  # SmoothQuant's migration strength: activation and weight ranges meet halfway


def smooth_layernorm_readers(model, feeds: list[dict], alpha: float = SMOOTH_ALPHA) -> int:
    """SmoothQuant's migration (Xiao et al. 2023), in place on an FP32 ONNX model: for each
    LayerNormalization whose output is read only by MatMuls with constant weights, divide its gain
    and bias per channel by s_j = max|x_j|^alpha / max|W_j|^(1-alpha) and multiply the weights' rows
    by s_j. Exact in real arithmetic; afterwards outlier channels of those inputs (trained CLIP's,
    the stress variant's) no longer set the per-tensor INT8 scale alone. Activation maxima come from
    running the graph on `feeds`. Returns the number of LayerNorms smoothed."""
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    pairs = []
    for node in model.graph.node:
        if node.op_type != "LayerNormalization" or len(node.input) < 3 or node.input[1] not in inits or node.input[2] not in inits:
            continue
        out = node.output[0]
        mms = [r for r in readers.get(out, []) if r.op_type != "Shape"]  # a Shape reads no values
        if mms and out not in outputs and all(r.op_type == "MatMul" and r.input[0] == out and r.input[1] in inits
                                              and len(inits[r.input[1]].dims) == 2 for r in mms):
            pairs.append((node, mms))
    if not pairs:
        return 0
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.output[0]) for n, _ in pairs)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(probe, f"{tmp}/probe.onnx")
        del probe
        sess = ort.InferenceSession(f"{tmp}/probe.onnx", providers=["CPUExecutionProvider"])
        names = [n.output[0] for n, _ in pairs]
        xmax = {n: 0.0 for n in names}
        for feed in feeds:
            for n, v in zip(names, sess.run(names, feed)):
                xmax[n] = np.maximum(xmax[n], np.abs(v).reshape(-1, v.shape[-1]).max(axis=0))

    def rescale(node, i: int, array: np.ndarray) -> None:
        """Give node input i its own initializer holding `array` (exporters share equal constants)."""
        name = f"{node.input[i]}/smoothed/{node.name}"
        model.graph.initializer.append(numpy_helper.from_array(array.astype(np.float32), name))
        node.input[i] = name

    for node, mms in pairs:
        ws = [numpy_helper.to_array(inits[r.input[1]]) for r in mms]
        wmax = np.max([np.abs(w).max(axis=1) for w in ws], axis=0)
        s = (np.maximum(xmax[node.output[0]], 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1 - alpha)).astype(np.float32)
        for i in (1, 2):
            rescale(node, i, numpy_helper.to_array(inits[node.input[i]]) / s)
        for r, w in zip(mms, ws):
            rescale(r, 1, w * s[:, None])
    used = {name for n in model.graph.node for name in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return len(pairs)


def quantize_dynamic(src: Path, dst: Path, feeds: list[dict], weight_bits: int = 8) -> dict:
    import tempfile

    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX Runtime's dynamic INT8 takes one scale per activation tensor per call: outlier channels
    # (which trained CLIP has) would set it alone, so they are migrated into the weights first.
    model = onnx.load(src)
    smoothed = smooth_layernorm_readers(model, feeds)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/smoothed.onnx")
        del model
        # reduce_range: weights in [-64, 64], ONNX Runtime's documented fix for u8s8 saturation
        quantize_dynamic(f"{tmp}/smoothed.onnx", dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         reduce_range=weight_bits == 7)
    return {"tool": f"onnxruntime {onnxruntime.__version__}", "method": "dynamic, MatMul weights int8",
            "smoothquant": {"alpha": SMOOTH_ALPHA, "layernorms": smoothed, "calibration_images": len(feeds)}}


FOR_CPU = ("this", "vnni", "any")  # the CPUs an INT8 graph is made for: this machine's tier, VNNI/AMX ones, every one


def recipe_for(for_cpu: str = "this") -> dict:
    """{"weight_bits", "cpu_tier"}: the INT8 recipe for CPUs of `for_cpu` (see the module docstring)."""
    tier = {"this": matrix_tier(cpu_flags()), "vnni": "vnni", "any": "any"}[for_cpu]
    return {"weight_bits": int8_weight_bits(tier) if tier != "any" else 7, "cpu_tier": tier}


def add_variant(export_dir: Path, method: str, n_images: int = 8, progress=print, for_cpu: str = "this") -> str:
    if not isinstance(n_images, int) or n_images < 1:
        raise SanrtError(f"quantisation needs at least one calibration image, not {n_images}")
    if n_images > MAX_CALIBRATION:
        raise SanrtError(f"{n_images} calibration images is past {MAX_CALIBRATION} (each is held in memory; 8 is the recipe)")
    export_dir = Path(export_dir)
    Manifest.load(export_dir, verify=False)  # an export at all, before taking its lock
    # one quantisation per export at a time: two would each write the manifest they read, and one
    # variant would be lost
    lock = lock_folder(export_dir, f"another quantisation is changing {export_dir}; wait for it")
    try:
        return _add_variant(export_dir, method, n_images, progress, for_cpu)
    finally:
        os.close(lock)


def _add_variant(export_dir: Path, method: str, n_images: int, progress, for_cpu: str) -> str:
    m = Manifest.load(export_dir)
    precision, name = VARIANT_FILES[method]
    recipe = recipe_for(for_cpu)
    t = time.perf_counter()
    feeds = image_graph_inputs(m, calibration_images(n_images))
    progress(f"quantising {m.path('image').name} ({method}, {recipe['weight_bits']}-bit weights for "
             f"{recipe['cpu_tier']} CPUs) ...")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=export_dir)
    os.close(fd)
    tmp = Path(tmp)
    try:
        settings = (quantize_static if method == "static" else quantize_dynamic)(m.path("image"), tmp, feeds,
                                                                               recipe["weight_bits"])
        settings.update(recipe)
        # The manifest never lists a file that is not whole: the old variant is unlisted first, then
        # replaced, then listed again. A kill at any step leaves an export that loads (FP32 and the
        # other variants; this one, at worst, absent).
        if precision in m.graphs["image"].variants:
            m = m.without_variant("image", precision)
            m.save()
        digest = sha256_file(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, export_dir / name)
        m.with_variant("image", precision, name, {**settings, "seconds": round(time.perf_counter() - t, 1)}, digest).save()
    finally:
        tmp.unlink(missing_ok=True)
    return precision


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, required=True, help="an sanrt export folder")
    ap.add_argument("--method", choices=sorted(VARIANT_FILES), default="static")
    ap.add_argument("--calibration-images", type=int, default=8)
    ap.add_argument("--for-cpu", choices=FOR_CPU, default="this",
                    help="the CPUs the graph is for: this one's kind (default), CPUs with VNNI or AMX (8-bit weights), "
                         "or any x86-64 CPU (7-bit weights: no int16 saturation without VNNI)")
    ap.add_argument("--verbose", action="store_true", help="show NNCF's and the backends' own log messages")
    args = ap.parse_args(argv)
    logs.setup(args.verbose)
    precision = add_variant(args.export, args.method, args.calibration_images,
                            progress=lambda s: print(s, file=sys.stderr), for_cpu=args.for_cpu)
    print(f"added the {precision} image graph to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
