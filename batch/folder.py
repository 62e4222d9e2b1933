"""The job's output folder: which names it writes, the checks made before it starts (over a listing
streamed, never held: a few bytes an image stay on the driver), and the sweep of what a killed worker
left behind."""
from __future__ import annotations

import os
import re
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sanrt.runtime.errors import ImageError, OutputError
from sanrt.runtime.outputs import OUTPUT_SUFFIXES, check_replaceable

from .sources import ImageList, filesystem, is_uri, stem

RESULTS = "results.parquet"


def output_files(out: Path, name: str, overlays: bool) -> list[Path]:
    return [out / f"{name}{s}" for s in OUTPUT_SUFFIXES if overlays or s != "_overlay.png"]


def stem_of(file_name: str, overlays: bool = True) -> str | None:
    """The image stem whose output `file_name` is, or None."""
    for s in OUTPUT_SUFFIXES:
        if file_name.endswith(s) and (overlays or s != "_overlay.png"):
            return file_name[: -len(s)]
    return None


@dataclass
class Listing:
    """What the checks learnt of the images, for the job: how many entries the listing has (repeats
    included), which entries repeat an image named before (skipped), and per entry a hash of its path
    (the listing is read again when the job starts: a listing that changed meanwhile is refused) and
    the sorted hashes of the output names (for the sweep). 16 bytes an image."""

    images: ImageList
    count: int
    repeats: frozenset
    path_hashes: np.ndarray
    stem_hashes: np.ndarray

    @property
    def unique(self) -> int:
        return self.count - len(self.repeats)

    def has_stem(self, name: str) -> bool:
        h = hash(name)
        i = np.searchsorted(self.stem_hashes, h)
        return bool(i < len(self.stem_hashes) and self.stem_hashes[i] == h)

    def entries(self):
        """(index, path) of each image to run, in order; ImageError if the listing is not what was checked."""
        n = -1
        for n, p in enumerate(self.images):
            if n >= self.count or hash(p) != self.path_hashes[n]:
                raise ImageError("the images --images names changed while the job was starting; run it again")
            if n not in self.repeats:
                yield n, p
        if n + 1 != self.count:
            raise ImageError("the images --images names changed while the job was starting; run it again")


def check(images: ImageList, out: Path, overlays: bool) -> Listing:
    """SegmentationWriter.plan's checks that need no per-image file access (the plan stage does those,
    on the cluster): plain names that fit the file system, no two images with one name (an image named
    twice runs once), no input among the outputs, a folder that can be written, and results.parquet
    free to replace. ImageError / OutputError before anything is written."""
    check_replaceable([], out)  # out is not a file, can be made and written
    name_max = os.pathconf(out, "PC_NAME_MAX")
    here, parents = out.resolve(), {}
    stems, paths, inside = array("q"), array("q"), []
    for p in images:
        s = stem(p)
        if not s or s in (".", "..") or "\x00" in s:
            raise OutputError(f"{s!r} ({p}) is not a plain file name: outputs stay inside {out}")
        if len(os.fsencode(s + "_overlay.png")) + 16 > name_max:  # with write_atomic's temporary suffix
            raise OutputError(f"the output name {s[:40]}... is too long for the file system ({name_max} bytes); "
                              "rename the image")
        stems.append(hash(s))
        paths.append(hash(p))
        local = filesystem(p)[1] if p.startswith("file://") else None if is_uri(p) else p
        if local is not None:
            folder = os.path.dirname(local)
            if folder not in parents:
                parents[folder] = Path(folder).resolve()
            if parents[folder] == here and stem_of(os.path.basename(local), overlays) is not None:
                inside.append(p)
    if not stems:
        raise ImageError("no images given")
    unique, counts = np.unique(np.frombuffer(stems, np.int64), return_counts=True)
    del stems
    listing = Listing(images, int(counts.sum()), _repeats(images, set(unique[counts > 1].tolist())),
                      np.frombuffer(paths, np.int64), unique)
    for p in inside:
        if listing.has_stem(stem_of(os.path.basename(p), overlays)):
            raise OutputError(f"{p} is one of the input images and one of the outputs; choose another --out")
    results = out / RESULTS
    if results.is_dir() or (results.exists() and not _ours(results)):
        raise OutputError(f"{results} exists and was not written by sanrt; it is left alone: choose another --out "
                          "or move it")
    return listing


def _repeats(images: ImageList, twice: set) -> frozenset:
    """Entries that name an image named before; OutputError when two images share a name. Hashes of
    names seen `twice` are rare (a real clash, or an image named twice): only their entries are
    looked at again."""
    repeats, first = set(), {}
    if twice:
        for i, p in enumerate(images):
            s = stem(p)
            if hash(s) not in twice:
                continue
            if s not in first:
                first[s] = p
            elif first[s] == p:
                repeats.add(i)
            else:
                raise OutputError(f"several images share the name {s!r} ({first[s]} and {p}); their outputs would "
                                  "overwrite each other")
    return frozenset(repeats)


def _ours(path: Path) -> bool:
    """results.parquet carries sanrt's mark in its schema metadata."""
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return meta.get(b"written_by") == b"sanrt"
    except (OSError, ValueError):
        return False


_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")  # write_atomic's temporary files (mkstemp names)


def sweep(out: Path, listing: Listing | None) -> int:
    """Remove the temporary files a killed worker left beside this job's outputs (write_atomic removes
    its own otherwise); nothing else in the folder is touched. Returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(out))
    except OSError:
        return 0
    for e in entries:
        m = _TEMP.match(e.name)
        if not m or not e.is_file(follow_symlinks=False):
            continue
        name = stem_of(m["name"])
        if m["name"] == RESULTS or (listing is not None and name is not None and listing.has_stem(name)):
            try:
                os.unlink(e.path)
                removed += 1
            except OSError:
                pass
    return removed
