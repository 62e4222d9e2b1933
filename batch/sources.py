"""What `--images SRC` names -> absolute image paths, in order, without duplicates: a folder, a glob,
an image file, a text file of paths (one a line) or a Parquet file with a `path` column. Paths only:
no image is opened here (the job's tasks read them)."""
from __future__ import annotations

import os
from pathlib import Path

from sanrt.runtime.errors import ImageError, OutputError
from sanrt.runtime.images import IMAGE_SUFFIXES, expand_image_args
from sanrt.runtime.outputs import written_by_sanrt

LIST_SUFFIXES = {".txt", ".lst", ".list"}


def _sanrt_output(p: Path) -> bool:
    """A label map or overlay of an earlier run into the input folder is not an input; only names
    sanrt gives its PNGs are opened to read the mark (a folder of photos is not read twice)."""
    return p.name.endswith(("_labels.png", "_overlay.png")) and written_by_sanrt(p)


def _listed(lines, base: Path, what: str) -> list[Path]:
    """Paths of a list file, relative ones from the list's own folder (a list travels with its images)."""
    out = []
    for line in lines:
        if line is None:
            continue
        s = str(line).strip()
        if s and not s.startswith("#"):
            out.append(Path(s) if os.path.isabs(s) else base / s)
    if not out:
        raise ImageError(f"{what} lists no images")
    return out


def _parquet_paths(path: Path) -> list[Path]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImageError("reading a Parquet list needs pyarrow: pip install 'sanrt[batch]'") from None
    try:
        schema = pq.read_schema(path)
        if "path" not in schema.names:
            raise ImageError(f"{path} has no 'path' column (it has: {', '.join(schema.names) or 'none'})")
        column = pq.read_table(path, columns=["path"]).column("path")
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{path} is not a readable Parquet file ({why})") from None
    return _listed(column.to_pylist(), path.parent, str(path))


def _text_paths(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ImageError(f"{path} is neither an image nor a text file of paths") from None
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}") from None
    return _listed(text.splitlines(), path.parent, str(path))


def image_paths(sources) -> list[Path]:
    """SRC arguments (str or Path, one or a list) -> absolute image paths, in order, without duplicates.
    ImageError when a source is missing or names no image."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    found: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_file() and p.suffix.lower() == ".parquet":
            found += _parquet_paths(p)
        elif p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES and (p.suffix.lower() in LIST_SUFFIXES or not p.suffix):
            found += _text_paths(p)
        elif p.is_dir() or p.is_file() or any(c in str(src) for c in "*?["):
            found += expand_image_args([str(src)], skip=_sanrt_output)
        else:
            raise ImageError(f"--images {src}: no such file, folder or glob")
    # absolute: the tasks that read them may run in another working directory, or on another machine
    out = list(dict.fromkeys(Path(os.path.abspath(q)) for q in found))
    if not out:
        raise ImageError("no images given")
    return out


def check_stems(paths: list[Path]) -> list[str]:
    """Each image's output stem; OutputError when two images share one (their files would collide), as
    SegmentationWriter.plan refuses it."""
    stems = [p.stem for p in paths]
    seen: dict[str, Path] = {}
    for p, s in zip(paths, stems):
        if s in seen:
            raise OutputError(f"several images share the name {s!r} ({seen[s]} and {p}); their outputs would "
                              "overwrite each other")
        seen[s] = p
    return stems
