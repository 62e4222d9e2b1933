"""TensorRT engines from an sanrt export, through Polygraphy's loaders.

TensorRT >= 11 builds strongly typed only: the precision is the ONNX's, so FP16 engines are built
from the FP16 variants (FP32 islands inside). TensorRT 10 falls back to weak typing: the FP32 ONNX,
the FP16 builder flag, and FP32 constraints on the normalization layers (the LayerNorm-statistics
island). Optimisation profiles come from the manifest's ranges. A timing cache is kept beside the
engines; engines are cached by (ONNX sha256, TensorRT version, GPU name and compute capability,
profiles, precision): a matching engine is reused, a mismatching one is rebuilt (or refused with
`reuse_only`).

The calls follow the TensorRT 10/11 and Polygraphy 0.53 Python APIs; the key, profile and error logic
is tested without a GPU, the build itself by benchmarks/gpu_check.py on one.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sanrt.runtime.backends.trt_engines import ENGINE_META, gpu_identity, import_tensorrt
from sanrt.runtime.errors import BackendError, OutputError
from sanrt.runtime.outputs import write_atomic
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.text import TEXT_CHUNK

GRAPHS = ("image", "text", "head")


def profiles_for(manifest: Manifest, graph: str, opt_side: int = 640) -> dict:
    """{input name: (min, opt, max)} shapes for one graph from the manifest's ranges."""
    r = manifest.ranges
    b0, b1 = r.batch
    if graph == "image":
        h0, h1 = r.height
        w0, w1 = r.width
        opt = min(max(opt_side, h0), h1), min(max(opt_side, w0), w1)
        return {"images": ((b0, 3, h0, w0), (b0, 3, *opt), (b1, 3, h1, w1)), "sizes": ((b0, 2), (b0, 2), (b1, 2))}
    if graph == "text":
        n0, n1 = r.texts
        n1 = min(n1, TEXT_CHUNK)  # the runtime sends at most TEXT_CHUNK texts a call
        return {"token_ids": ((n0, 1), (min(n1, 64), 16), (n1, r.tokens))}
    if graph == "head":
        q, d = manifest.queries, manifest.embed_dim
        k0, k1 = r.classes
        return {"mask_emb": ((b0, q, d), (b0, q, d), (b1, q, d)),
                "class_weights": ((k0 + 1, d), (151, d), (k1 + 1, d))}
    raise ValueError(graph)


def engine_key(onnx_sha256: str, trt_version: str, gpu: dict, profiles: dict, precision: str) -> str:
    blob = json.dumps([onnx_sha256, trt_version, gpu["gpu"], gpu["compute_capability"],
                       {k: [list(map(list, v))] for k, v in sorted(profiles.items())}, precision], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def source_onnx(manifest: Manifest, graph: str, precision: str, strongly_typed: bool) -> str:
    """Which ONNX file a graph's engine is built from."""
    variants = manifest.graphs[graph].variants
    if precision == "fp16" and strongly_typed and graph != "head":
        if "fp16" not in variants:
            raise BackendError(f"TensorRT >= 11 builds strongly typed: export with --precision fp16 first "
                               f"(no FP16 {graph} graph in {manifest.folder})")
        return variants["fp16"]
    return manifest.graphs[graph].file


def build_engines(export_dir: Path, out: Path, precision: str = "fp16", opt_level: int = 3,
                  reuse_only: bool = False, progress=print) -> dict:
    """Build (or reuse) the image, text and head engines of an export into `out`."""
    trt = import_tensorrt()
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile, SetLayerPrecisions

    manifest = Manifest.load(export_dir)
    gpu = gpu_identity()
    major = int(trt.__version__.split(".")[0])
    strongly_typed = major >= 11 or precision == "fp32"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write to {out}: {e.strerror or e}") from None
    meta_path = out / ENGINE_META
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        old = old if isinstance(old, dict) else {}
    except (OSError, ValueError):
        old = {}  # a damaged engine.json: its engines are rebuilt
    export_abs = Path(export_dir).resolve()
    # both spellings: the relative one still finds the export when the two folders move together
    meta = {"export": str(export_abs), "export_relative": os.path.relpath(export_abs, out.resolve()),
            "tensorrt": trt.__version__, **gpu, "precision": precision, "strongly_typed": strongly_typed, "engines": {}}
    cache = out / "timing.cache"
    for graph in GRAPHS:
        onnx_file = source_onnx(manifest, graph, precision, strongly_typed)
        profiles = profiles_for(manifest, graph)
        key = engine_key(manifest.sha256[onnx_file], trt.__version__, gpu, profiles, precision)
        engine_file = out / f"{graph}.engine"
        if old.get("engines", {}).get(graph, {}).get("key") == key and engine_file.is_file():
            progress(f"{graph}: reusing {engine_file} (key {key})")
        elif reuse_only and engine_file.is_file():
            raise BackendError(f"{engine_file} was built for another ONNX, TensorRT, GPU, profile or precision "
                               f"({old.get('tensorrt')}, {old.get('gpu')}); rebuild it with export/build_engine.py")
        else:
            progress(f"{graph}: building from {onnx_file} ({precision}, "
                     f"{'strongly typed' if strongly_typed else 'weakly typed, FP32 normalization layers'})")
            network = NetworkFromOnnxPath(str(manifest.folder / onnx_file), strongly_typed=strongly_typed or None)
            if not strongly_typed:  # TensorRT 10: FP16 flag, LayerNorm kept in FP32 by constraint
                network = SetLayerPrecisions(network, layer_precisions=_normalization_layers_fp32(trt, network))
            profile = Profile()
            for name, (lo, opt, hi) in profiles.items():
                profile.add(name, min=lo, opt=opt, max=hi)
            config = CreateConfig(fp16=(precision == "fp16" and not strongly_typed) or None,
                                  precision_constraints=None if strongly_typed else "obey",
                                  profiles=[profile], builder_optimization_level=opt_level,
                                  load_timing_cache=str(cache) if cache.is_file() else None)
            plan = bytes(EngineBytesFromNetwork(network, config, save_timing_cache=str(cache))())
            write_atomic(engine_file, lambda f: f.write_bytes(plan))
        meta["engines"][graph] = {"file": engine_file.name, "onnx": onnx_file, "onnx_sha256": manifest.sha256[onnx_file],
                                  "key": key, "profiles": {k: [list(s) for s in v] for k, v in profiles.items()}}
    write_atomic(meta_path, lambda f: f.write_text(json.dumps(meta, indent=1) + "\n"))
    return meta


def _normalization_layers_fp32(trt, network_loader) -> dict:
    """{layer name: trt.float32} for every normalization layer of the parsed network."""
    _builder, network, *_ = network_loader()
    return {network.get_layer(i).name: trt.float32 for i in range(network.num_layers)
            if network.get_layer(i).type == trt.LayerType.NORMALIZATION}
