"""Engine folders: TensorRT engines built from an export, with the metadata that ties them to it."""
from __future__ import annotations

from pathlib import Path

from .cuda_api import check, cudart
from ..errors import BackendError, ExportFolderError
from ..files import read_json

ENGINE_META = "engine.json"


def resolve(path: str | Path) -> tuple[Path, dict | None]:
    """An export folder, an engine folder, or one of its .engine files -> (export folder, engine
    metadata or None)."""
    if not isinstance(path, (str, Path)):
        raise ExportFolderError(f"an export is a folder path, not {type(path).__name__}")
    path = Path(path)
    folder = path.parent if path.suffix == ".engine" else path
    meta_path = folder / ENGINE_META
    if path.suffix == ".engine" and not path.is_file():
        raise ExportFolderError(f"engine not found: {path}")
    if not meta_path.is_file():
        if path.suffix == ".engine":
            raise ExportFolderError(f"{path} has no {ENGINE_META} beside it (build engines with export/build_engine.py)")
        return folder, None
    meta = read_json(meta_path)
    _validate(meta, meta_path)
    meta["folder"] = str(folder)
    return _export_of(meta, folder, meta_path), meta


def _export_of(meta: dict, folder: Path, meta_path: Path) -> Path:
    """The export the engines were built from: beside them as recorded (the folders moved together),
    else at its recorded absolute path."""
    rel = meta.get("export_relative")
    candidates = ([folder / rel] if isinstance(rel, str) else []) + [Path(meta["export"])]
    for c in candidates:
        if (c / "manifest.json").is_file():
            return c
    raise ExportFolderError(f"{meta_path}: the export these engines were built from is gone ({meta['export']}); "
                            "build engines from the export you have with export/build_engine.py")


def check_built_from(meta: dict, manifest) -> None:
    """BackendError unless every engine was built from the graph file this export holds now (an
    engine folder beside a re-exported model would run the old weights)."""
    for graph, e in meta["engines"].items():
        recorded, onnx = e.get("onnx_sha256"), e.get("onnx")
        current = manifest.sha256.get(onnx) if isinstance(onnx, str) else None
        if recorded is None or current is None or recorded != current:
            raise BackendError(f"the {graph} engine in {meta['folder']} was not built from this export's {onnx or 'graphs'} "
                               "(re-exported since, or built by an older sanrt): rebuild with export/build_engine.py")


def _validate(meta, path: Path) -> None:
    """ExportFolderError naming the first field of engine.json that is missing or malformed."""
    if not isinstance(meta, dict):
        raise ExportFolderError(f"{path} is not an engine description (a JSON object expected)")
    for key in ("export", "precision", "tensorrt", "gpu", "compute_capability"):
        if not isinstance(meta.get(key), str):
            raise ExportFolderError(f"{path}: field {key} is missing or not a string")
    engines = meta.get("engines")
    if not isinstance(engines, dict) or set(engines) != {"image", "text", "head"}:
        raise ExportFolderError(f"{path}: field engines must name the image, text and head engines")
    for graph, e in engines.items():
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or Path(e["file"]).name != e["file"]:
            raise ExportFolderError(f"{path}: engines.{graph}.file is missing or not a plain file name")
        if not (path.parent / e["file"]).is_file():
            raise ExportFolderError(f"{path.parent} is incomplete: {e['file']} is missing")


def import_tensorrt():
    """The tensorrt module, or BackendError in one line where it is missing or cannot load."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError("TensorRT is not installed: its libraries come from NVIDIA (pip install 'sanrt[gpu]' "
                           "on a CUDA machine, or NVIDIA's TensorRT packages)") from None
    except OSError as e:  # the wheel installs but its CUDA libraries do not load
        raise BackendError(f"TensorRT cannot load here: {e}") from None
    return trt


def gpu_identity() -> dict:
    """Name and compute capability of GPU 0 (cuda-python), or BackendError without one."""
    props = check(cudart().cudaGetDeviceProperties(0), "query of GPU 0")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}


def check_compatible(meta: dict, here: dict, trt_version: str) -> None:
    """Refuse engines built for another GPU or TensorRT version, in one line."""
    if meta["tensorrt"] != trt_version or meta["gpu"] != here["gpu"] or meta["compute_capability"] != here["compute_capability"]:
        raise BackendError(f"engines in {meta['folder']} were built for {meta['gpu']} (sm {meta['compute_capability']}) "
                           f"with TensorRT {meta['tensorrt']}; this is {here['gpu']} (sm {here['compute_capability']}) "
                           f"with TensorRT {trt_version}: rebuild them with export/build_engine.py")
