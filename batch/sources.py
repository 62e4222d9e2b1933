"""What `--images SRC` names: a folder, a glob, an image file, a text file of paths (one a line) or a
Parquet file with a `path` column, on this machine's file system or on any pyarrow file system by URI
(`s3://bucket/photos/`, `gs://...`, `hdfs://...`, `file:///...`). Read as a stream, never held whole:
a folder or list of millions of paths passes through in blocks. Paths only: no image is opened here (the job's
tasks read them, with `open_image`)."""
from __future__ import annotations

import fnmatch
import io
import os
import posixpath
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from sanrt.runtime.errors import ImageError, first_line
from sanrt.runtime.images import IMAGE_SUFFIXES, is_glob, scan_image_files
from sanrt.runtime.outputs import is_sanrt_output

LIST_SUFFIXES = {".txt", ".lst", ".list"}
_URI = re.compile(r"^(?P<root>[A-Za-z][A-Za-z0-9+.-]*://[^/]*)(?P<rest>.*)$")


def is_uri(path: str) -> bool:
    return _URI.match(str(path)) is not None


def stem(path: str) -> str:
    """An image's output name: its file name without the suffix (a URI's as its path's)."""
    name = posixpath.basename(str(path))  # not pathlib: it interns each name, and a listing has millions
    return posixpath.splitext(unquote(name) if is_uri(path) else name)[0]


@lru_cache(maxsize=16)
def _filesystem(root: str):
    """One pyarrow file system per scheme://host, made once a process (an object store's costs a
    request or two to make)."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(root + "/")
    except Exception as e:  # ArrowInvalid for a scheme pyarrow lacks, OSError for one it cannot reach
        raise ImageError(f"{root}/: no pyarrow file system for it ({first_line(e)})") from None
    return fs, path.rstrip("/")


def filesystem(uri: str):
    """(pyarrow FileSystem, path on it) for a URI."""
    m = _URI.match(uri)
    fs, base = _filesystem(m["root"])
    return fs, f"{base}/{unquote(m['rest']).lstrip('/')}"


def _uri(root: str, base: str, fs_path: str) -> str:
    """A listed file's URI: its path as it is but for '%' (read back by `filesystem`, which decodes it)."""
    return root + "/" + fs_path[len(base):].lstrip("/").replace("%", "%25")


def open_image(path: str):
    """A file object of an image by local path or URI, for PIL (seekable: a header read reads no more)."""
    if not is_uri(path):
        return open(path, "rb")
    fs, p = filesystem(path)
    try:
        return fs.open_input_file(p)
    except Exception as e:
        raise ImageError(f"cannot read {path}: {first_line(e)}") from None


def read_image_bytes(path: str) -> bytes:
    with open_image(path) as f:
        try:
            return f.read()
        except OSError as e:  # a connection lost mid-file
            raise ImageError(f"cannot read {path}: {first_line(e)}") from None


def _listed(lines, join, what: str):
    """The entries of a list (text lines or a Parquet column), relative ones from the list's own
    folder (a list travels with its images); ImageError when it names none."""
    n = 0
    for line in lines:
        if line is None:
            continue
        s = str(line).strip()
        if s and not s.startswith("#"):
            n += 1
            yield s if is_uri(s) or os.path.isabs(s) else join(s)
    if not n:
        raise ImageError(f"{what} lists no images")


def _parquet_lines(f, what: str):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
        if "path" not in pf.schema_arrow.names:
            raise ImageError(f"{what} has no 'path' column (it has: {', '.join(pf.schema_arrow.names) or 'none'})")
        for batch in pf.iter_batches(batch_size=65536, columns=["path"]):
            yield from batch.column(0).to_pylist()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise ImageError(f"{what} is not a readable Parquet file ({first_line(e)})") from None


def _text_lines(f, what: str):
    try:
        yield from io.TextIOWrapper(f, encoding="utf-8")
    except UnicodeDecodeError:
        raise ImageError(f"{what} is neither an image nor a text file of paths") from None
    except OSError as e:
        raise ImageError(f"cannot read {what}: {e.strerror or e}") from None


def _kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    return "list" if suffix in LIST_SUFFIXES or not suffix else "image"


def _local(src: str):
    p = Path(src)
    if p.is_file() and _kind(p.name) in ("parquet", "list"):
        parent = os.path.dirname(os.path.abspath(p))
        join = lambda s: os.path.normpath(os.path.join(parent, s))  # noqa: E731
        with open(p, "rb") as f:
            lines = _parquet_lines(f, str(p)) if _kind(p.name) == "parquet" else _text_lines(f, str(p))
            yield from _listed(lines, join, str(p))
    elif p.is_dir() or p.is_file() or is_glob(src):
        # absolute: the tasks that read them may run in another working directory, or on another machine
        for q in scan_image_files(src, skip=is_sanrt_output):
            yield os.path.abspath(q)
    else:
        raise ImageError(f"--images {src}: no such file, folder or glob")


def _remote(src: str):
    import pyarrow.fs as pafs

    root = _URI.match(src)["root"]
    fs, base = _filesystem(root)
    path = filesystem(src)[1].rstrip("/") or "/"
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File and _kind(path) in ("parquet", "list"):
            folder = posixpath.dirname(src)
            with fs.open_input_file(path) as f:
                lines = _parquet_lines(f, src) if _kind(path) == "parquet" else _text_lines(f, src)
                yield from _listed(lines, lambda s: f"{folder}/{s}", src)
            return
        if info.type == pafs.FileType.File:
            yield src
            return
        pattern = None
        if info.type == pafs.FileType.NotFound and is_glob(posixpath.basename(path)):
            path, pattern = posixpath.dirname(path), posixpath.basename(path)  # a glob in the last part only
        elif info.type == pafs.FileType.NotFound:
            raise ImageError(f"--images {src}: no such file, folder or glob")
        found = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=False))
                       if i.type == pafs.FileType.File and posixpath.splitext(i.path)[1].lower() in IMAGE_SUFFIXES
                       and (pattern is None or fnmatch.fnmatchcase(posixpath.basename(i.path), pattern)))
        if not found:
            raise ImageError(f"no images in {src}")
        for p in found:
            yield _uri(root, base, p)
    except ImageError:
        raise
    except Exception as e:  # OSError (unreachable, denied), ArrowInvalid, ...
        raise ImageError(f"cannot read {src}: {first_line(e)}") from None


class ImageList:
    """The images SRC arguments name (str or Path, one or a list), streamed: iterating yields
    absolute local paths and URIs as strings, a list's in its order, a local folder's or glob's in the
    file system's (sorting would hold them all), an image named twice twice (the job skips the
    repeat). ImageError, while iterating, when a source is missing or names no image."""

    def __init__(self, sources):
        if isinstance(sources, (str, Path)):
            sources = [sources]
        self.sources = [str(s) for s in sources]
        if not self.sources:
            raise ImageError("no images given")

    def __iter__(self):
        for src in self.sources:
            yield from (_remote(src) if is_uri(src) else _local(src))


def image_paths(sources) -> list[str]:
    """SRC arguments -> the image paths and URIs, in `ImageList`'s order, without repeats (held
    whole: for a listing of any size, iterate `ImageList`)."""
    return list(dict.fromkeys(ImageList(sources)))
