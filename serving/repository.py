"""A Triton model repository for an sanrt export (export/to_triton.py is the CLI over `write_repository`).

Models: `san_image` (the image graph; dynamic batching: Triton batches only requests of equal input
shapes, so an image is batched only with images of its padded size), `san_text` (the text graph, new
vocabularies), `san_head` (class weights as an input) and `san`, the pipeline (Python backend, BLS,
`sanrt.serving.models.PipelineModel`). The graph models run on TensorRT (`model.plan` from an
engine folder), ONNX Runtime or OpenVINO (`model.onnx`), or, where the server has none of those
backends (the Python-only `tritonserver` of nvidia-pytriton), in the Python backend on sanrt's ONNX
Runtime runner, with the same inputs and outputs.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from sanrt.runtime.text import TEXT_CHUNK
from sanrt.runtime.backends.trt_engines import resolve
from sanrt.runtime.errors import BackendError
from sanrt.runtime.outputs import build_folder, plan_folder
from sanrt.runtime.manifest import Manifest

IMAGE_BACKENDS = ("tensorrt", "onnxruntime", "openvino", "python")
NAMES = {"image": "san_image", "text": "san_text", "head": "san_head", "pipeline": "san"}

MODEL_PY = '''\
# Written by sanrt's export/to_triton.py: a sanrt model for Triton's Python backend.
import site
import sys

# The serving environment's site-packages, ahead of the stub interpreter's own (Triton's Python-backend
# stub needs numpy < 2 there). Empty: sanrt is installed in the stub's Python itself (NGC container).
SITE_DIRS = {site_dirs!r}
_before = list(sys.path)
for _d in SITE_DIRS:
    site.addsitedir(_d)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

from sanrt.serving.models import {cls} as TritonPythonModel  # noqa: E402,F401
'''


def _dims(v) -> str:
    return "[ " + ", ".join(str(d) for d in v) + " ]"


def _io(kind: str, tensors) -> str:
    rows = []
    for name, dtype, dims, *optional in tensors:
        opt = " optional: true" if optional and optional[0] else ""
        rows.append(f'  {{ name: "{name}" data_type: {dtype} dims: {_dims(dims)}{opt} }}')
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _params(params: dict) -> str:
    return "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in params.items())


def _config(name, backend_line, max_batch, inputs, outputs, instances, kind, batching="", params=None) -> str:
    return (f'name: "{name}"\n{backend_line}\nmax_batch_size: {max_batch}\n' + _io("input", inputs) + _io("output", outputs)
            + batching + f"instance_group [ {{ count: {instances} kind: {kind} }} ]\n" + _params(params or {}))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_repository(engine: str | Path, out: str | Path, image_backend: str = "onnxruntime", max_batch: int | None = None,
                     instances: int = 1, site_dirs: list[str] | None = None, queue_delay_us: int = 2000,
                     cache_dir: str | None = None, pipeline_instances: int = 4) -> dict:
    """Write the repository; returns {model name: config text}. `instances`: of the image model (per
    GPU on TensorRT); `pipeline_instances`: of `san`, which waits on the graph models, so several
    requests reach the image model together (dynamic batching). `engine`: an export folder, or a
    TensorRT engine folder (needed for image_backend "tensorrt"). `site_dirs`: the serving
    environment of the Python-backend models (see MODEL_PY)."""
    if image_backend not in IMAGE_BACKENDS:
        raise BackendError(f"unknown image backend {image_backend!r}; choose one of {', '.join(IMAGE_BACKENDS)}")
    export_dir, engines = resolve(engine)
    m = Manifest.load(export_dir)
    if image_backend == "tensorrt" and engines is None:
        raise BackendError("--image-backend tensorrt needs a TensorRT engine folder (export/build_engine.py) as --engine")
    out = Path(out)
    plan_folder(out, is_repository)  # a new or empty folder, or an earlier sanrt repository
    r = m.ranges
    b_hi = min(max_batch or r.batch[1], r.batch[1])
    if b_hi < 1:
        raise BackendError(f"--max-batch must be at least 1, not {max_batch}")
    q, d = m.queries, m.embed_dim
    text_batch = min(r.texts[1], TEXT_CHUNK)
    gpu = image_backend == "tensorrt"
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    export_abs = str(Path(export_dir).resolve())
    preferred = sorted({b for b in (1, 2, 4, 8, b_hi) if b <= b_hi})
    batching = (f"dynamic_batching {{ preferred_batch_size: {_dims(preferred)} "
                f"max_queue_delay_microseconds: {queue_delay_us} }}\n")

    def backend_line(graph):
        return {"tensorrt": 'platform: "tensorrt_plan"', "onnxruntime": 'backend: "onnxruntime"',
                "openvino": 'backend: "openvino"', "python": 'backend: "python"'}[image_backend]

    def graph_params(graph):
        return {"export_dir": export_abs, "graph": graph, "backend": "onnxruntime"} if image_backend == "python" else {}

    configs = {
        NAMES["image"]: _config(NAMES["image"], backend_line("image"), b_hi,
                                [("images", "TYPE_UINT8", (3, -1, -1)), ("sizes", "TYPE_INT64", (2,))],
                                [("mask_logits", "TYPE_FP32", (q, -1, -1)), ("mask_emb", "TYPE_FP32", (q, d))],
                                instances, kind, batching, graph_params("image")),
        NAMES["text"]: _config(NAMES["text"], backend_line("text"), text_batch, [("token_ids", "TYPE_INT32", (-1,))],
                               [("text_features", "TYPE_FP32", (d,))], 1, kind, "dynamic_batching { }\n",
                               graph_params("text")),
        NAMES["head"]: _config(NAMES["head"], backend_line("head"), 0,
                               [("mask_emb", "TYPE_FP32", (-1, q, d)), ("class_weights", "TYPE_FP32", (-1, d))],
                               [("class_logits", "TYPE_FP32", (-1, q, -1))], 1, kind, "", graph_params("head")),
        NAMES["pipeline"]: _config(
            NAMES["pipeline"], 'backend: "python"', 0,
            [("IMAGE", "TYPE_STRING", (1,), True), ("IMAGE_RGB", "TYPE_UINT8", (-1, -1, 3), True),
             ("CLASSES", "TYPE_STRING", (-1,), True), ("DATASET", "TYPE_STRING", (1,), True),
             ("EXPAND", "TYPE_STRING", (1,), True)],
            [("LABELS", "TYPE_UINT16", (-1, -1)), ("CLASSES_PRESENT", "TYPE_STRING", (-1,))],
            pipeline_instances, "KIND_CPU", "",
            {"export_dir": export_abs, "image_model": NAMES["image"], "text_model": NAMES["text"],
             "head_model": NAMES["head"], "lru_size": "32", **({"cache_dir": cache_dir} if cache_dir else {})}),
    }
    def write(repo: Path) -> None:
        for name, text in configs.items():
            (repo / name / "1").mkdir(parents=True)
            (repo / name / "config.pbtxt").write_text(text)
        for graph in ("image", "text", "head"):
            version = repo / NAMES[graph] / "1"
            if image_backend == "python":
                (version / "model.py").write_text(MODEL_PY.format(site_dirs=list(site_dirs or []), cls="GraphModel"))
            elif image_backend == "tensorrt":
                _link_or_copy(Path(engines["folder"]) / engines["engines"][graph]["file"], version / "model.plan")
            else:
                _link_or_copy(m.path(graph), version / "model.onnx")
        (repo / NAMES["pipeline"] / "1" / "model.py").write_text(MODEL_PY.format(site_dirs=list(site_dirs or []),
                                                                               cls="PipelineModel"))

    build_folder(out, write, is_repository)  # whole or not at all
    return configs


def is_repository(folder: Path) -> bool:
    """The folder holds a repository write_repository made (its san model is sanrt's pipeline)."""
    try:
        return "sanrt.serving.models" in (Path(folder) / NAMES["pipeline"] / "1" / "model.py").read_text()
    except OSError:
        return False
