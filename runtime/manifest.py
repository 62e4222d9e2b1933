"""The export folder's contract: manifest.json as a typed `Manifest`, read, checked and saved here
only; and checks that a folder is what it claims to be."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import BackendError, ExportFolderError
from .files import read_json
from .vocabulary import template_problem

MANIFEST = "manifest.json"
FORMAT = "sanrt-export/1"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v) and 0 <= v[0] <= v[1]


# What the runtime reads from a manifest, and what each value must look like.
_REQUIRED = {
    ("graphs",): dict, ("ranges",): dict, ("input",): dict, ("templates",): list, ("tokenizer",): dict,
    ("classifier",): dict, ("sha256",): dict,
    ("ranges", "multiple"): int, ("ranges", "tokens"): int,
    ("input", "min_size"): int, ("input", "max_size"): int,
    ("tokenizer", "file"): str, ("classifier", "file"): str,
}


def validate(data) -> None:
    """ExportFolderError naming the first missing or malformed field the runtime relies on."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExportFolderError(f"not an sanrt export manifest (format {FORMAT!r} expected)")
    for keys, kind in _REQUIRED.items():
        v = data
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if type(v) is not kind and not (kind is dict and isinstance(v, dict)):
            raise ExportFolderError(f"manifest field {'.'.join(keys)} is missing or not a {kind.__name__}")
    for key, kind in (("embed_dim", int), ("queries", int), ("quantization", dict), ("config", dict), ("weights", str)):
        if key in data and type(data[key]) is not kind and not (kind is dict and isinstance(data[key], dict)):
            raise ExportFolderError(f"manifest field {key} is not a {kind.__name__}")
    for name in ("batch", "height", "width", "classes", "texts"):
        if not _pair(data["ranges"].get(name)):
            raise ExportFolderError(f"manifest field ranges.{name} must be [min, max] integers, min <= max")
    r = data["ranges"]
    if r["multiple"] < 1 or r["batch"][0] < 1 or r["classes"][0] < 1 or r["texts"][0] < 1 or r["tokens"] < 1:
        raise ExportFolderError("manifest ranges admit no input (a multiple, batch, class or text count below 1)")
    if not data["templates"]:
        raise ExportFolderError("manifest field templates is empty")
    for t in data["templates"]:
        if template_problem(t):
            raise ExportFolderError(f"manifest field templates: {template_problem(t)}")
    files = [data["tokenizer"]["file"], data["classifier"]["file"]]
    for g in ("image", "text", "head"):
        graph = data["graphs"].get(g)
        if not isinstance(graph, dict) or not isinstance(graph.get("file"), str):
            raise ExportFolderError(f"manifest field graphs.{g}.file is missing")
        variants = graph.get("variants", {})
        if not isinstance(variants, dict) or not all(isinstance(f, str) for f in variants.values()):
            raise ExportFolderError(f"manifest field graphs.{g}.variants must map precisions to files")
        files += [graph["file"], *variants.values()]
    after = data["graphs"].get("text_after")  # optional (exports before it lack it)
    if after is not None:
        if not isinstance(after, dict) or not isinstance(after.get("file"), str) or not isinstance(after.get("start_kv"), str):
            raise ExportFolderError("manifest field graphs.text_after needs a file and a start_kv file")
        files += [after["file"], after["start_kv"]]
        text = data.get("config", {}).get("clip_text") if isinstance(data.get("config"), dict) else None
        if not (isinstance(text, dict) and type(text.get("layers")) is int and type(text.get("width")) is int):
            raise ExportFolderError("manifest field config.clip_text needs integer layers and width (the text_after "
                                    "graph's start keys and values are checked against them)")
    for f in files:  # every file the runtime reads is hashed: none is taken on trust
        if not isinstance(data["sha256"].get(f), str):
            raise ExportFolderError(f"the manifest has no sha256 for {f}")
        if Path(f).name != f:
            raise ExportFolderError(f"manifest file name {f!r} is not a plain file name")


def is_export(folder: Path) -> bool:
    """The folder holds an sanrt export (its manifest.json says so): sanrt may replace it whole."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
        return isinstance(data, dict) and data.get("format") == FORMAT and "sanrt_version" in data
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Graph:
    """One graph of the export: its ONNX file, the variants made from it (precision -> file), and for
    text_after the file of the start-of-text keys and values it continues from."""

    file: str
    variants: dict
    start_kv: str | None = None


@dataclass(frozen=True)
class Ranges:
    """The inputs the graphs accept (the manifest's `ranges`): [min, max] pairs and two numbers."""

    batch: tuple[int, int]
    height: tuple[int, int]  # padded model-input height
    width: tuple[int, int]
    multiple: int  # padded sides are multiples of it
    classes: tuple[int, int]  # K, without the background row
    texts: tuple[int, int]  # texts per text-graph call
    tokens: int  # CLIP's context length


@dataclass(frozen=True)
class InputSpec:
    min_size: int  # the shorter side is resized to it ...
    max_size: int  # ... unless the longer one would pass this
    pixel_mean: tuple = ()  # what the image graph subtracts and divides by (inside it: provenance here)
    pixel_std: tuple = ()


class Manifest:
    """An export folder's manifest.json, typed. Every field a module reads is an attribute, checked when
    the manifest is read or saved; `data` keeps the whole JSON (provenance fields included). Every file
    is named relative to the folder, so an export folder can be moved or copied whole."""

    def __init__(self, data: dict, folder: Path | None = None):
        validate(data)
        self.data, self.folder = data, Path(folder) if folder is not None else None
        d = data
        self.graphs = {g: Graph(v["file"], dict(v.get("variants", {})), v.get("start_kv"))
                       for g, v in d["graphs"].items() if isinstance(v, dict)}
        r = d["ranges"]
        self.ranges = Ranges(*(tuple(r[k]) for k in ("batch", "height", "width")), r["multiple"],
                             tuple(r["classes"]), tuple(r["texts"]), r["tokens"])
        self.input = InputSpec(d["input"]["min_size"], d["input"]["max_size"], tuple(d["input"].get("pixel_mean", ())),
                               tuple(d["input"].get("pixel_std", ())))
        self.templates: list[str] = list(d["templates"])
        self.tokenizer_file: str = d["tokenizer"]["file"]
        self.classifier_file: str = d["classifier"]["file"]
        self.sha256: dict[str, str] = d["sha256"]
        self.embed_dim: int | None = d.get("embed_dim")
        self.queries: int | None = d.get("queries")
        self.config: dict = d.get("config", {})
        self.preset: str | None = d.get("preset")
        self.weights: str = d.get("weights", "?")  # where the weights came from (a description)
        self.sanrt_version: str | None = d.get("sanrt_version")
        q = d.get("quantization", {})
        self.quantization: dict = q if isinstance(q, dict) else {}

    def path(self, graph_or_file: str) -> Path:
        """Path of a graph ('image', 'text', 'head', 'text_after') or of a file named in the manifest."""
        name = self.graphs[graph_or_file].file if graph_or_file in self.graphs else graph_or_file
        return self.folder / name

    def image_graph(self, precision: str) -> str:
        """File name of the image graph a precision runs: a variant's own graph ("int8-bf16" runs the
        int8 graph), or the FP32 graph for fp32 and for bf16 (a backend setting)."""
        variants = self.graphs["image"].variants
        base = precision.split("-")[0]
        if base in variants:
            return variants[base]
        if base in ("fp32", "bf16"):
            return self.graphs["image"].file
        have = ", ".join(["fp32", *variants])
        raise BackendError(f"this export has no {precision} image graph (has: {have}; "
                           f"export/quantize.py and export/to_onnx.py --precision fp16 add them)")

    def identity(self, *files: str) -> dict:
        """{file: sha256} of the named files: what a cache entry or a measurement was made with."""
        return {f: self.sha256[f] for f in files}

    def with_variant(self, graph: str, precision: str, file: str, recipe: dict | None = None,
                     sha256: str | None = None) -> "Manifest":
        """A new manifest with `file` (in the folder) as the `precision` variant of `graph`, its sha256
        (computed unless given) and, for a quantised variant, the recipe it was made with."""
        data = json.loads(json.dumps(self.data))
        data["graphs"][graph].setdefault("variants", {})[precision] = file
        data["sha256"][file] = sha256 or sha256_file(self.folder / file)
        if recipe is not None:
            data.setdefault("quantization", {})[precision] = recipe
        return Manifest(data, self.folder)

    def without_variant(self, graph: str, precision: str) -> "Manifest":
        """A new manifest that no longer lists the `precision` variant of `graph` (nor its recipe)."""
        data = json.loads(json.dumps(self.data))
        file = data["graphs"][graph].get("variants", {}).pop(precision, None)
        data["sha256"].pop(file, None)
        data.get("quantization", {}).pop(precision, None)
        return Manifest(data, self.folder)

    def save(self, folder: str | Path | None = None) -> None:
        """Write manifest.json atomically into `folder` (default: the manifest's own), checked first."""
        from .outputs import write_atomic

        folder = Path(folder) if folder is not None else self.folder
        validate(self.data)
        text = json.dumps(self.data, indent=1, sort_keys=True) + "\n"
        write_atomic(folder / MANIFEST, lambda f: f.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, folder: str | Path, verify: bool = True) -> "Manifest":
        """Read and check an export folder; `verify` also checks every file's sha256."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ExportFolderError(f"export folder not found: {folder}")
        mpath = folder / MANIFEST
        if not mpath.is_file():
            raise ExportFolderError(f"{folder} is not an sanrt export (no {MANIFEST}; make one with export/to_onnx.py)")
        data = read_json(mpath)
        try:
            m = cls(data, folder)
        except ExportFolderError as e:
            raise ExportFolderError(f"{mpath}: {e}") from None
        for name, digest in data["sha256"].items():
            p = folder / name
            if not p.is_file():
                raise ExportFolderError(f"{folder} is incomplete: {name} is missing")
            if verify and sha256_file(p) != digest:
                raise ExportFolderError(f"{p} does not match the manifest's sha256 (changed or corrupt; re-export)")
        return m
