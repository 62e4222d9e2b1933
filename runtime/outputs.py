"""Writing results: label PNGs, overlays and per-image JSON, each file whole or not at all, and never
over a file sanrt did not write.

Every file sanrt writes carries a mark (a PNG text chunk `Software: sanrt ...`, a JSON field
`"written_by": "sanrt"`). An output name that already exists may be replaced only when it carries
that mark (an earlier sanrt result: re-running into the same folder refreshes it); anything else
there (a user's photo, an export's manifest.json, this run's own inputs) stops the run before it
writes anything.
"""
from __future__ import annotations

import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from .errors import OutputError

try:
    MARK = f"sanrt {version('sanrt')}"
except PackageNotFoundError:  # run from a source tree that was never installed
    MARK = "sanrt"


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it: a race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def new_file_mode() -> int:
    """The mode open() gives a new file: 0666 less the umask."""
    return 0o666 & ~_umask()


def write_atomic(path: Path, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`: readers and
    a killed run only ever see the old file or the whole new one. Safe from several threads. The
    file gets the mode a plain open() would give it (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def lock_folder(folder: Path, busy: str) -> int:
    """An exclusive lock on `folder` (an flock on the folder itself: no file is left), across
    processes; OutputError(busy) when another run holds it. Returns the descriptor to os.close()."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(busy) from None
    return fd


def _through_link(out) -> Path:
    """A symbolic link to a folder is the user's: the folder it names is built, the link is kept."""
    out = Path(out)
    return out.resolve() if out.is_symlink() else out


def plan_folder(out: Path, replaceable=lambda folder: False) -> None:
    """build_folder's checks, for a tool to run before its work: OutputError when `out` is a file, a
    folder of someone else's files, or cannot be written beside."""
    out = _through_link(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not replaceable(out):
        raise OutputError(f"{out} exists, holds files and is not sanrt's to replace; it is left alone: choose another --out")
    probe_writable(out.parent, out)  # the folder is built beside `out`


def build_folder(out: Path, build, replaceable=lambda folder: False):
    """Make the folder `out` whole or not at all: build(tmp) fills a temporary sibling, which then
    takes `out`'s place in one rename. A failed, interrupted or killed build leaves `out` as it was
    (an earlier export still loads). An existing `out` must be empty or `replaceable(out)` (sanrt's
    own earlier result); anything else is refused before any work. Returns what build returns."""
    import shutil

    out = _through_link(out)
    plan_folder(out, replaceable)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise OutputError(f"cannot write to {out}: {e.strerror or e}") from None
    try:
        result = build(tmp)
        if out.exists():  # swap: the old folder leaves only once the new one is complete
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        return result
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# SegmentationWriter's names: <stem> + each suffix, in this order (the overlay unless overlay=False)
OUTPUT_SUFFIXES = ("_labels.png", "_overlay.png", ".json")


def is_sanrt_output(path: Path | str) -> bool:
    """A label map or overlay of an earlier run into a folder of images: not an input when the folder
    is read again. Only PNGs named as sanrt names them are opened, to read the mark (a folder of
    photos is not read twice)."""
    return str(path).endswith(OUTPUT_SUFFIXES[:2]) and written_by_sanrt(path)


def written_by_sanrt(path: Path | str) -> bool:
    """True for a file that carries sanrt's mark (see the module docstring)."""
    path = Path(path)
    try:
        if path.suffix == ".png":
            with Image.open(path) as im:
                return str(im.info.get("Software", "")).startswith("sanrt")
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(data, dict) and data.get("written_by") == "sanrt"
        if path.suffix == ".md":
            with open(path, encoding="utf-8") as f:
                return f.readline().startswith(MD_MARK)
    except (OSError, ValueError, SyntaxError):
        pass
    return False


MD_MARK = "<!-- written by sanrt"  # the first line of a report sanrt writes


def save_markdown(text: str, path: Path) -> None:
    write_atomic(path, lambda f: Path(f).write_text(f"{MD_MARK} ({MARK}) -->\n{text}", encoding="utf-8"))


def check_replaceable(paths, out_dir: Path) -> None:
    """OutputError before any work when `out_dir` cannot be made or written, or one of `paths` exists
    without sanrt's mark (a user's file is never replaced)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file, not a folder")
    for p in paths:
        if p.is_dir() or (p.exists() and not written_by_sanrt(p)):
            raise OutputError(f"{p} exists and was not written by sanrt; it is left alone: choose another --out or move it")
    probe_writable(out_dir, out_dir)


def probe_writable(folder: Path, named: Path) -> None:
    """Make `folder` and write a file into it (then remove it): OutputError naming `named` if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".sanrt-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write to {named}: {e.strerror or e}") from None


def _png_info() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", MARK)
    return info


def save_png(img: Image.Image, path: Path) -> None:
    write_atomic(path, lambda f: img.save(f, format="PNG", pnginfo=_png_info()))


def save_json(data: dict, path: Path) -> None:
    text = json.dumps({"written_by": "sanrt", "sanrt": MARK, **data}, indent=1)
    write_atomic(path, lambda f: Path(f).write_text(text, encoding="utf-8"))


class SegmentationWriter:
    """Per image `<stem>_labels.png`, `<stem>_overlay.png` (unless overlay=False) and `<stem>.json`.
    `plan` checks every name first; `write` then writes one image's files."""

    def __init__(self, out_dir: str | Path, overlay: bool = True):
        if not isinstance(out_dir, (str, Path)):
            raise OutputError(f"an output folder is a path, not {type(out_dir).__name__}")
        self.out = Path(out_dir)
        self.overlay = overlay
        self._lock = None  # the output folder's lock, held from plan() until close()
        self._planned: set[str] = set()

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _take_folder(self) -> None:
        """One writer per output folder at a time (across processes): a second run into the same --out
        would interleave its files with this one's."""
        self._lock = lock_folder(self.out, f"another sanrt run is writing into {self.out}; wait for it or choose "
                                           "another --out")

    def names(self, stem: str) -> list[Path]:
        return [self.out / f"{stem}{s}" for s in OUTPUT_SUFFIXES if self.overlay or s != "_overlay.png"]

    def plan(self, stems: list[str], inputs=()) -> None:
        """OutputError before anything is written: stems that collide, an output folder that cannot be
        made or written, an output name that exists without sanrt's mark or is one of `inputs`."""
        if isinstance(stems, str) or not isinstance(stems, (list, tuple)):
            raise OutputError("plan() takes a list of names: pass [name] for one")
        bad = [s for s in stems if not isinstance(s, str) or s != Path(s).name or s in ("", ".", "..") or "\x00" in s]
        if bad:
            raise OutputError(f"{bad[0]!r} is not a plain file name: outputs stay inside {self.out}")
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})
            raise OutputError(f"several images share the name {dup[0]!r}; their outputs would overwrite each other")
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(f"--out {self.out} is a file, not a folder")
        inputs = {Path(p).resolve() for p in inputs}
        planned = [p for stem in stems for p in self.names(stem)]
        try:
            name_max = os.pathconf(self.out if self.out.is_dir() else self.out.parent if self.out.parent.is_dir() else ".",
                                   "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = 255
        for p in planned:
            if p.resolve() in inputs:
                raise OutputError(f"{p} is one of the input images; choose another --out")
            # a temporary file beside it is named ".<name>.<random>.tmp": that must fit too
            if len(os.fsencode(p.name)) + 16 > name_max:
                raise OutputError(f"the output name {p.name[:40]}... is too long for the file system ({name_max} bytes); "
                                  "rename the image")
        check_replaceable(planned, self.out)
        if self._lock is None:
            self._take_folder()
        self._planned.update(stems)

    def write(self, stem: str, image: np.ndarray, seg, report: dict | None = None) -> list[Path]:
        """Write one image's files (after plan(), which checked their names); `report` adds fields to
        its JSON (source path, timings, ...)."""
        from .visualize import label_png, overlay

        if stem not in self._planned:
            raise OutputError(f"SegmentationWriter.write({stem!r}) before plan() named it: plan the names first, so "
                              "that no file sanrt did not write is replaced")
        labels = getattr(seg, "labels", None)
        if not (isinstance(labels, np.ndarray) and labels.ndim == 2 and hasattr(seg, "names")):
            raise OutputError(f"write() takes a Segmentation (Segmenter.segment's answer), not {type(seg).__name__}")
        if self.overlay and (not isinstance(image, np.ndarray) or image.shape[:2] != labels.shape):
            raise OutputError(f"the image ({getattr(image, 'shape', '?')}) is not the one segmented "
                              f"({labels.shape[1]}x{labels.shape[0]}): pass the image given to segment()")
        paths = self.names(stem)
        try:
            save_png(label_png(seg.labels), paths[0])
            if self.overlay:
                save_png(overlay(image, seg.labels, list(seg.names), other=getattr(seg, "other", False)), paths[1])
            save_json({**(report or {}), "size_hw": list(seg.labels.shape), "vocabulary_size": len(seg.names),
                       "classes": [c._asdict() for c in seg.classes_present()]}, paths[-1])
        except OSError as e:
            raise OutputError(f"cannot write {stem}'s outputs in {self.out}: {e.strerror or e}") from None
        return paths
