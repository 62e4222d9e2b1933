"""The export folder's contract: manifest.json, and checks that a folder is what it claims to be."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import ExportFolderError

MANIFEST = "manifest.json"
FORMAT = "sanrt-export/1"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Manifest:
    def __init__(self, data: dict, folder: Path | None = None):
        self.data = data
        self.folder = folder

    def __getitem__(self, key):
        return self.data[key]

    def path(self, graph_or_file: str) -> Path:
        """Path of a graph ('image', 'text', 'head') or of a file named in the manifest."""
        graphs = self.data["graphs"]
        name = graphs[graph_or_file]["file"] if graph_or_file in graphs else graph_or_file
        return self.folder / name

    @classmethod
    def load(cls, folder: str | Path, verify: bool = True) -> "Manifest":
        """Read and check an export folder; `verify` also checks every file's sha256."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ExportFolderError(f"export folder not found: {folder}")
        mpath = folder / MANIFEST
        if not mpath.is_file():
            raise ExportFolderError(f"{folder} is not an sanrt export (no {MANIFEST}; make one with export/to_onnx.py)")
        try:
            data = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ExportFolderError(f"{mpath} is corrupt: {e}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ExportFolderError(f"{mpath} is not an sanrt export manifest (format {FORMAT!r} expected)")
        m = cls(data, folder)
        for name, digest in data.get("sha256", {}).items():
            p = folder / name
            if not p.is_file():
                raise ExportFolderError(f"{folder} is incomplete: {name} is missing")
            if verify and sha256_file(p) != digest:
                raise ExportFolderError(f"{p} does not match the manifest's sha256 (changed or corrupt; re-export)")
        return m
