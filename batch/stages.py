"""The job's three stages, each a function of one Arrow table (a Ray Data batch) -> another, so they run
as Ray Data `map_batches` stages, in a user's own pipeline too:

- `plan_batch` (Ray tasks): per image, whether its outputs are complete (skipped), missing or
  damaged (to do), or would replace a file sanrt did not write (foreign: the job stops before
  writing); for the images to do, their padded size from the file header (the grouping key).
- `decode_batch` (Ray tasks): read and decode each image (sanrt.runtime.images), RGB pixels out.
- `SegmentActor` (an actor pool): one Segmenter per actor; images of one padded size share an
  `encode_images` batch; each image's files written as infer.py writes them, one result row each.

Bad images (unreadable, cut short, outside the export's range) become `error` rows, never failures.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from sanrt.runtime.errors import SanrtError, first_line
from sanrt.runtime.images import decode_image, load_image
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.outputs import SegmentationWriter, written_by_sanrt
from sanrt.runtime.segmenter import Segmenter

from .folder import output_files
from .sources import is_uri, open_image, read_image_bytes, stem
PLAN_SCHEMA = pa.schema([
    ("index", pa.int64()), ("path", pa.string()), ("stem", pa.string()),
    ("state", pa.string()),  # todo | skipped | foreign
    ("error", pa.string()), ("classes", pa.string()), ("height", pa.int32()), ("width", pa.int32()),
    ("key", pa.string()),  # padded model-input size "HxW" from the header ("" when unreadable)
])
DECODED_SCHEMA = pa.schema([
    ("index", pa.int64()), ("path", pa.string()), ("stem", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("height", pa.int32()), ("width", pa.int32()), ("key", pa.string()),
    ("pixels", pa.large_binary()),  # RGB uint8, row-major [height, width, 3]
    ("decode_s", pa.float64()),
])
RESULT_SCHEMA = pa.schema([
    ("index", pa.int64()), ("path", pa.string()),
    ("status", pa.string()),  # ok | error | skipped
    ("classes", pa.string()),  # JSON: [{"index", "name", "fraction"}, ...], largest first (as <stem>.json)
    ("height", pa.int32()), ("width", pa.int32()),
    ("decode_s", pa.float64()), ("segment_s", pa.float64()), ("write_s", pa.float64()),
    ("batch", pa.int32()),  # images in its encode_images batch
    ("error", pa.string()),
])
LABELS_FIELD = pa.field("labels_png", pa.large_binary())  # with out=None: the label map as PNG bytes


def made_with(manifest: Manifest, vocab) -> str:
    """What a result depends on (the export's graphs and the vocabulary), recorded in each JSON: a rerun
    with another vocabulary or export recomputes instead of skipping."""
    graphs = sorted(manifest.sha256[g.file] for g in manifest.graphs.values())
    key = [graphs, vocab.source, list(vocab.names), list(vocab.distractors), vocab.expansion]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


class _Sizes:
    """Segmenter.input_size from the manifest alone: tasks that only need sizes load no graph."""

    input_size = Segmenter.input_size

    def __init__(self, export):
        self.manifest = Manifest.load(export, verify=False)


@lru_cache(maxsize=4)
def _sizes(export: str) -> _Sizes:
    return _Sizes(export)


def _key(sizes: _Sizes, h: int, w: int) -> str:
    ph, pw = sizes.input_size(h, w)
    return f"{ph}x{pw}"


def _column(table: pa.Table, name: str, default=None) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [default] * table.num_rows


def _indices(table: pa.Table) -> list:
    if "index" in table.column_names:
        return table.column("index").to_pylist()
    return list(range(table.num_rows))


def complete(files: list[Path], image: str, key: str) -> dict | None:
    """The JSON of an image whose files are all there, whole and this job's (same image, export and
    vocabulary), else None: missing, damaged or stale files are recomputed."""
    try:
        data = json.loads(files[-1].read_text(encoding="utf-8"))
        if not (isinstance(data, dict) and data.get("written_by") == "sanrt" and data.get("image") == image
                and data.get("made_with") == key and isinstance(data.get("classes"), list)):
            return None
        hw = data.get("size_hw")
        if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0 for v in hw)):
            return None
        for png in files[:-1]:
            with Image.open(png) as im:
                if not str(im.info.get("Software", "")).startswith("sanrt") or im.size != (hw[1], hw[0]):
                    return None
                im.verify()  # every chunk's CRC, the pixel data's too, without decoding it
    except Exception:  # unreadable in any way (PIL raises several kinds on damaged files): recompute it
        return None
    return data


def _header_size(path: str) -> tuple[int, int]:
    """(h, w) as load_image will decode it (EXIF orientation applied), from the header only."""
    with open_image(path) as f, Image.open(f) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated a quarter turn
            w, h = h, w
    return h, w


def plan_batch(table: pa.Table, *, out: str, overlays: bool, key: str, export: str, force: bool = False) -> pa.Table:
    """Rows {index, path} -> PLAN_SCHEMA rows (see the module docstring)."""
    out, sizes = Path(out), _sizes(str(export))
    cols = {f.name: [] for f in PLAN_SCHEMA}
    for i, path in zip(_indices(table), table.column("path").to_pylist()):
        name = stem(path)
        files = output_files(out, name, overlays)
        row = dict(index=i, path=path, stem=name, state="todo", error=None, classes=None, height=None, width=None, key="")
        # the rule of SegmentationWriter.plan: a name may be replaced only when sanrt wrote it
        foreign = next((f for f in files if f.is_dir() or (f.exists() and not written_by_sanrt(f))), None)
        done = None if force or foreign else complete(files, path, key)
        if foreign is not None:
            row.update(state="foreign", error=f"{foreign} exists and was not written by sanrt; it is left alone: "
                                              "choose another --out or move it")
        elif done is not None:
            row.update(state="skipped", classes=json.dumps(done["classes"]), height=done["size_hw"][0],
                       width=done["size_hw"][1])
        else:
            try:
                row["key"] = _key(sizes, *_header_size(path))
            except Exception:  # not an image, out of range, ...: the decode stage reports it, from the whole file
                pass
        for k, v in row.items():
            cols[k].append(v)
    return pa.Table.from_pydict(cols, schema=PLAN_SCHEMA)


def decode_batch(table: pa.Table, *, export: str) -> pa.Table:
    """Rows {path[, index, stem]} -> DECODED_SCHEMA rows: each image read and decoded whole, its padded
    size checked against the export's range; a bad image is an `error` row without pixels."""
    sizes = _sizes(str(export))
    paths = table.column("path").to_pylist()
    stems = _column(table, "stem")
    cols = {f.name: [] for f in DECODED_SCHEMA}
    for i, path, name in zip(_indices(table), paths, stems):
        t0 = time.perf_counter()
        row = dict(index=i, path=path, stem=name or stem(path), status="ok", error=None, height=None, width=None,
                   key="", pixels=b"")
        try:
            img = decode_image(read_image_bytes(path), path) if is_uri(path) else load_image(path)
            row.update(height=img.shape[0], width=img.shape[1])
            row.update(key=_key(sizes, *img.shape[:2]), pixels=img.tobytes())
        except SanrtError as e:
            row.update(status="error", error=first_line(e))
        row["decode_s"] = time.perf_counter() - t0
        for k, v in row.items():
            cols[k].append(v)
    return pa.Table.from_pydict(cols, schema=DECODED_SCHEMA)


class SharedVocabulary:
    """A Vocabulary put once into Ray's object store, for every actor to read: handed over inside this
    object, so Ray keeps it by reference and a restarted actor reads it again (a bare ObjectRef argument
    is resolved before the constructor runs, and Ray warns that such actors may fail to restart)."""

    def __init__(self, vocab):
        import ray

        self.ref = ray.put(vocab)

    def get(self):
        import ray

        return ray.get(self.ref)


class _JobWriter(SegmentationWriter):
    """SegmentationWriter's files and rules, for one actor of a job: the job's driver holds the output
    folder's lock for the whole job (taking it here would refuse the job's own actors)."""

    def _take_folder(self) -> None:
        pass


class SegmentActor:
    """The actor stage: `map_batches(SegmentActor, fn_constructor_kwargs={...}, compute=ActorPoolStrategy(...),
    batch_format="pyarrow")` over `decode_batch`'s rows. Loads one Segmenter (`threads` CPU threads: Ray
    sets OMP_NUM_THREADS=1 in its workers) and never runs the text graph: `vocabulary` is a Vocabulary
    made on the driver, or a SharedVocabulary of one (one copy in the object store for all actors).
    With `out`, each image's files are written there as infer.py writes them (the caller checks the
    names first: segment_dataset does); with out=None each row carries its label map as PNG bytes
    (`labels_png`)."""

    def __init__(self, export, vocabulary, out=None, overlays: bool = False, threads: int | None = None,
                 backend: str = "auto", batch: int | None = None, key: str | None = None):
        if isinstance(vocabulary, SharedVocabulary):
            vocabulary = vocabulary.get()
        self.seg = Segmenter(export, backend=backend, threads=threads)
        self.seg.text.check(vocabulary, "SegmentActor")  # another export's vocabulary fails here, not per image
        self.vocab = vocabulary
        self.key = key or made_with(self.seg.manifest, vocabulary)
        hi = self.seg.manifest.ranges.batch[1]
        self.step = max(1, min(int(batch or hi), hi))
        self.writer = _JobWriter(out, overlay=overlays) if out is not None else None
        self.schema = RESULT_SCHEMA if out is not None else RESULT_SCHEMA.append(LABELS_FIELD)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        status, errors = table.column("status").to_pylist(), table.column("error").to_pylist()
        hs, ws = table.column("height").to_pylist(), table.column("width").to_pylist()
        keys, paths = table.column("key").to_pylist(), table.column("path").to_pylist()
        stems = [s or stem(p) for s, p in zip(_column(table, "stem"), paths)]
        pixels = table.column("pixels").combine_chunks()
        rows = [dict(index=i, path=p, status=s, classes=None, height=h, width=w, decode_s=d, segment_s=None,
                     write_s=None, batch=None, error=e, labels_png=None)
                for i, p, s, h, w, d, e in zip(_indices(table), paths, status, hs, ws, _column(table, "decode_s"), errors)]
        groups: dict[str, list[int]] = {}
        for j in range(n):
            if status[j] == "ok":
                groups.setdefault(keys[j], []).append(j)
        images = {j: np.frombuffer(pixels[j].as_buffer(), np.uint8).reshape(hs[j], ws[j], 3)
                  for idx in groups.values() for j in idx}
        for idx in groups.values():  # one padded size: encode_images batches only those
            for k in range(0, len(idx), self.step):
                self._segment(idx[k: k + self.step], images, rows)
        ok = [j for j in range(n) if rows[j]["status"] == "ok"]
        if self.writer is not None:
            self._write(ok, images, rows, stems)
        else:
            for j in ok:
                rows[j]["labels_png"] = _png_bytes(rows[j]["seg"].labels)
        cols = {f.name: [r[f.name] for r in rows] for f in self.schema}
        return pa.Table.from_pydict(cols, schema=self.schema)

    def _segment(self, part: list[int], images: dict, rows: list[dict]) -> None:
        """Segment one batch; when it fails, each image alone, so one bad image costs only its own row."""
        try:
            t0 = time.perf_counter()
            results = self.seg.classify(self.seg.encode_images([images[j] for j in part]), self.vocab)
            share = (time.perf_counter() - t0) / len(part)
        except Exception as e:  # an image the backend cannot run: its row says so, the job goes on
            if len(part) > 1:
                for j in part:
                    self._segment([j], images, rows)
                return
            rows[part[0]].update(status="error", error=first_line(e))
            images.pop(part[0])
            return
        for j, r in zip(part, results):
            rows[j].update(segment_s=share, batch=len(part), seg=r,
                           classes=json.dumps([c._asdict() for c in r.classes_present()]))

    def _write(self, todo: list[int], images: dict, rows: list[dict], stems: list[str]) -> None:
        if not todo:
            return
        try:  # the driver checked every name; this checks them again (a file that appeared since is refused)
            self.writer.plan([stems[j] for j in todo])
        except SanrtError as e:
            if len(todo) > 1:
                for j in todo:
                    self._write([j], images, rows, stems)
            else:
                rows[todo[0]].update(status="error", error=first_line(e), classes=None)
            return
        for j in todo:
            r, t0 = rows[j]["seg"], time.perf_counter()
            timings = {"decode": rows[j]["decode_s"], **{k.removesuffix("_s"): v for k, v in r.timings.items()
                                                         if k.endswith("_s")}}
            report = {"image": rows[j]["path"], "backend": self.seg.backend, "precision": self.seg.precision,
                      "device": self.seg.image_graph.device, "expansion": self.vocab.expansion, "timings_s": timings,
                      "made_with": self.key}
            try:
                self.writer.write(stems[j], images[j], r, report)
                rows[j]["write_s"] = time.perf_counter() - t0
            except SanrtError as e:
                rows[j].update(status="error", error=first_line(e), classes=None)


def _png_bytes(labels: np.ndarray) -> bytes:
    from sanrt.runtime.visualize import label_png

    buf = io.BytesIO()
    label_png(labels).save(buf, format="PNG")
    return buf.getvalue()
