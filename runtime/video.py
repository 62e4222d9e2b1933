"""Video files, live streams and capture devices -> one label map per frame, through PyAV (the
`video` extra: pip install 'sanrt[video]'; imported only when a video is opened).

    from sanrt.runtime import Segmenter
    from sanrt.runtime.video import open_video
    seg = Segmenter("out/onnx/vit_b_16")
    vocab = seg.vocabulary(["person", "car", "road"])
    with open_video("clip.mp4") as source:                  # or "rtsp://...", "/dev/video0"
        frames = (f.image for f in source.frames(stride=5))  # lazy: decoded as they are segmented
        for res in seg.segment_stream(frames, vocab, batch=1):
            print(res.classes_present())

`open_video` opens a file, an RTSP/HTTP(S) URL or a capture device within a timeout and turns each
failure into one VideoError line. `VideoSource.frames` decodes lazily and stops at the first damaged
frame of a source that was cut short, saying why in `ended_early`. `segment_video` is
`infer.py --video`: decoding in one thread, the model in the caller's, overlay, encoding and files in
a third, bounded queues between them (memory does not grow with the length), each output written
per sanrt.runtime.outputs' rules.
"""
from __future__ import annotations

import json
import os
import queue
import re
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import OutputError, VideoError
from .outputs import MARK, build_folder, lock_folder, new_file_mode, probe_writable, save_png, written_by_sanrt
from .visualize import label_png, overlay

TIMEOUT_S = 10.0  # opening a source, and each read from it
DEFAULT_RATE = Fraction(25)  # a live stream that states no frame rate


def _av():
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV: pip install 'sanrt[video]'") from None
    return av


def is_url(src: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", str(src)) is not None


def shown(src: str) -> str:
    """`src` as messages and reports show it: a URL's user name and password left out."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", str(src))


def source_stem(src: str) -> str:
    """The outputs' stem: a file's stem; for a URL or a device, its host, port and path as one safe name."""
    src = str(src)
    if not is_url(src) and Path(src).name:
        return Path(src).stem
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", shown(src).split("://", 1)[-1]).strip("._-")[:80]
    return name or "stream"


@dataclass
class Frame:
    index: int  # in the source: the decoded frame's position, skipped (--stride) frames counted
    time_s: float  # from the stream's start
    image: np.ndarray  # RGB uint8 [H, W, 3]
    decode_s: float  # demuxing + decoding since the previous frame handed out (skipped frames included)


class VideoSource:
    """An opened source and its first video stream; `frames()` reads it (once, from one thread)."""

    def __init__(self, container, src: str, read_timeout: float):
        self.container, self.src, self.read_timeout = container, src, read_timeout
        self.stream = container.streams.video[0]
        s = self.stream
        self.rate = Fraction(s.average_rate or s.guessed_rate or DEFAULT_RATE)
        self.size_hw = (s.codec_context.height, s.codec_context.width)  # (0, 0) where only decoding tells
        self.frame_count = s.frames or None  # the header's count (mp4), else unknown
        self.ended_early: str | None = None  # why the source ended before its end, once frames() has run
        self._reading = self._closing = False

    def close(self) -> None:
        """Close the source; while frames() is reading it (another thread, a read that waits for
        its timeout), that read closes it when it ends."""
        if self._reading:
            self._closing = True
        else:
            self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _stated_end_s(self) -> float | None:
        """The stream's length as its header states it (mp4, Matroska); MPEG-TS estimates it from the
        data there is, so a cut there shows only as a damaged frame."""
        s = self.stream
        if self.container.format.name.startswith("mpegts"):
            return None
        if s.duration:
            return float(s.duration * s.time_base)
        m = re.match(r"^(\d+):(\d+):(\d+(?:\.\d+)?)$", s.metadata.get("DURATION", ""))
        return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None

    def _decoded(self):
        """The stream's frames in display order, up to the first sign of damage (`ended_early`)."""
        av = _av()
        s = self.stream
        s.thread_type = "AUTO"
        packets, last_end, prev_end, prev_t, flushing = 0, None, None, 0.0, False
        try:
            for packet in self.container.demux(s):
                if packet.size:
                    packets += 1
                    if packet.pts is not None:
                        last_end = max(last_end or 0, packet.pts + (packet.duration or 0))
                elif not flushing:  # the end of the data: was that the end of the stream?
                    flushing = True
                    self.ended_early = self._cut_short(packets, last_end)
                for f in packet.decode():
                    if f.is_corrupt:
                        self.ended_early = self.ended_early or f"a damaged frame at {self._time(f):.2f} s"
                        return
                    # The frames the decoder still holds at the end come in display order: one that
                    # skips past the next expected time means the frames between never arrived (a cut).
                    if flushing and prev_end is not None and f.pts is not None and f.pts > prev_end:
                        self.ended_early = self.ended_early or f"frames are missing after {prev_t:.2f} s"
                        return
                    if f.pts is not None:
                        step = f.duration or int(1 / (self.rate * s.time_base)) or 1
                        prev_end, prev_t = f.pts + step + step // 2, self._time(f)
                    yield f
        except (av.error.FFmpegError, OSError) as e:
            self.ended_early = (f"no data for {self.read_timeout:g} s" if isinstance(e, av.error.ExitError)
                                else getattr(e, "strerror", None) or str(e))

    def _cut_short(self, packets: int, last_end) -> str | None:
        if self.frame_count and packets < self.frame_count:
            return f"the data stops after {packets} of the {self.frame_count} frames its header lists"
        end = self._stated_end_s()
        if end is not None and last_end is not None:
            got = float((last_end - (self.stream.start_time or 0)) * self.stream.time_base)
            if got < end - 1.5 / float(self.rate):
                return f"its data ends at {got:.2f} s of the {end:.2f} s its header states"
        return None

    def _time(self, f) -> float:
        start = self.stream.start_time or 0
        return float((f.pts - start) * f.time_base) if f.pts is not None and f.time_base else 0.0

    def frames(self, stride: int = 1, max_frames: int | None = None):
        """Every `stride`th frame (0, stride, 2*stride, ...), at most `max_frames` of them, as Frame
        values. A source that ends early (cut short, damaged, no data within the read timeout) ends
        the frames there and `ended_early` says why; VideoError when not one frame could be decoded."""
        made, index = 0, -1
        self._reading = True
        try:
            t0 = time.perf_counter()
            for f in self._decoded():
                index += 1
                if index % stride:
                    continue
                image = f.to_ndarray(format="rgb24")
                yield Frame(index, self._time(f), image, time.perf_counter() - t0)
                made += 1
                if max_frames is not None and made >= max_frames:
                    return
                t0 = time.perf_counter()
            if index < 0:
                why = f" ({self.ended_early})" if self.ended_early else ""
                raise VideoError(f"{shown(self.src)} has no frame that can be decoded{why}: it is corrupt, truncated "
                                 "or empty")
        finally:
            self._reading = False
            if self._closing:
                self.container.close()


def open_video(src, *, timeout: float = TIMEOUT_S, format: str | None = None, options: dict | None = None) -> VideoSource:
    """A file, an RTSP/HTTP(S) URL or a capture device (/dev/video0, or any FFmpeg input `format`
    with its `options`, e.g. format="v4l2", options={"video_size": "1280x720"}) -> a VideoSource.
    `timeout` bounds the connection and each read. VideoError (one line) when it is not a video,
    holds no video stream, needs a codec this PyAV cannot decode, cannot be reached, or is cut short
    where nothing can be read."""
    av = _av()
    src = str(src)
    url = is_url(src)
    if not url and format is None:
        p = Path(src)
        if not p.exists():
            raise VideoError(f"video not found: {src}")
        if p.is_dir():
            raise VideoError(f"{src} is a folder, not a video")
        if sys.platform.startswith("linux") and re.match(r"^/dev/video\d+$", src):
            format = "v4l2"  # a capture device: FFmpeg does not probe devices
    t0 = time.perf_counter()
    try:
        container = av.open(src, "r", format=format, options={k: str(v) for k, v in (options or {}).items()},
                            timeout=(timeout, timeout))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(_open_failure(src, url or format is not None, e, time.perf_counter() - t0, timeout)) from None
    try:
        name = container.format.name
        if name == "image2" or name.endswith("_pipe"):
            raise VideoError(f"{src} is an image, not a video: segment it with --image")
        if name == "tty" or not container.streams.video:  # FFmpeg reads a .txt file as text art
            raise VideoError(f"{shown(src)} holds no video stream" if name != "tty" else
                             f"{src} is not a video file PyAV can read")
        if container.streams.video[0].codec_context is None:
            raise VideoError(f"{shown(src)}: its video stream is in a codec this PyAV build cannot decode")
        return VideoSource(container, src, timeout)
    except BaseException:
        container.close()
        raise


def _open_failure(src: str, remote: bool, e, waited: float, timeout: float) -> str:
    why = getattr(e, "strerror", None) or str(e)
    if remote:
        if waited >= 0.9 * timeout:
            return f"cannot open {shown(src)}: no answer within {timeout:g} s"
        return f"cannot open {shown(src)}: {why[:1].lower() + why[1:]}"
    if _mp4_without_index(Path(src)):
        return f"{src} is an MP4 file cut short before its index (the moov box): no frame of it can be read"
    return f"{src} is not a video file PyAV can read ({why[:1].lower() + why[1:]})"


def _mp4_without_index(path: Path) -> bool:
    """An MP4/MOV file (ftyp first) whose top-level boxes end before a moov box."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos, first = 0, True
            while pos + 8 <= size:
                f.seek(pos)
                head = f.read(16)
                n, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if first and kind != b"ftyp":
                    return False
                if kind == b"moov":
                    return False
                n = int.from_bytes(head[8:16], "big") if n == 1 else (size - pos if n == 0 else n)
                if n < 8:
                    return True
                pos, first = pos + n, False
            return not first
    except OSError:
        return False


# ---- outputs --------------------------------------------------------------------------------------
def video_outputs(out_dir, stem: str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {"mp4": out_dir / f"{stem}_overlay.mp4", "jsonl": out_dir / f"{stem}.jsonl",
            "labels": out_dir / f"{stem}_labels"}


def _sanrts(path: Path) -> bool:
    """written_by_sanrt for the video outputs: sanrt's mark in the mp4's comment tag, in the jsonl's
    first line."""
    try:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                first = json.loads(f.readline())
            return isinstance(first, dict) and first.get("written_by") == "sanrt"
        with _av().open(str(path)) as c:
            return str(c.metadata.get("comment", "")).startswith("sanrt")
    except Exception:  # unreadable, not JSON, not a video PyAV reads: not sanrt's
        return False


def _sanrts_labels(folder: Path) -> bool:
    """A label folder sanrt may replace: only label PNGs sanrt wrote (or nothing) in it."""
    return all(p.is_file() and p.suffix == ".png" and written_by_sanrt(p) for p in folder.iterdir())


def plan_video(out_dir, stem: str, save_labels: bool, source=None) -> int:
    """Check every output name before anything is written (a file sanrt did not write is never
    replaced; S_labels/ only if absent or sanrt's), make `out_dir`, and lock it (one writer per
    folder). Returns the lock's descriptor, for os.close()."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file, not a folder")
    paths = video_outputs(out_dir, stem)
    src = Path(source).resolve() if source is not None and not is_url(source) else None
    for key, p in paths.items():
        if len(os.fsencode(p.name)) + 24 > 255:  # its temporary file is ".<name>.<random>.tmp"
            raise OutputError(f"the output name {p.name[:40]}... is too long for a file name; rename the video")
        if key == "labels":
            if save_labels and (p.is_symlink() or p.exists()) and not (p.is_dir() and _sanrts_labels(p)):
                raise OutputError(f"{p} exists and holds files sanrt did not write; it is left alone: choose another "
                                  "--out or move it")
            continue
        if src is not None and p.resolve() == src:
            raise OutputError(f"{p} is the input video; choose another --out")
        if p.is_dir() or (p.exists() and not _sanrts(p)):
            raise OutputError(f"{p} exists and was not written by sanrt; it is left alone: choose another --out or move it")
    probe_writable(out_dir, out_dir)
    return lock_folder(out_dir, f"another sanrt run is writing into {out_dir}; wait for it or choose another --out")


@dataclass
class VideoRun:
    frames: int  # segmented and written
    ended_early: str | None  # why the source ended before its end (None: it did not)
    interrupted: bool  # Ctrl-C / SIGTERM: the outputs hold the frames segmented until then
    paths: list


def _encoder(av) -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class _Encoder:
    """Overlay frames -> the overlay mp4, label PNGs and jsonl lines, in a thread of its own."""

    def __init__(self, mp4: Path, jsonl: Path, labels_dir: Path | None, rate: Fraction, header: dict, depth: int):
        self.mp4, self.labels_dir, self.rate, self.header = mp4, labels_dir, rate, header
        self.jsonl = open(jsonl, "w", encoding="utf-8")
        self.container = self.stream = self.picture = self.size = None
        self.written, self.error, self.aborted = 0, None, False
        self.queue: queue.Queue = queue.Queue(depth)
        self.thread = threading.Thread(target=self._run, name="sanrt-video-encode", daemon=True)
        self.thread.start()

    def put(self, frame: Frame, res) -> None:
        while True:  # bounded: waits for the encoder, and notices when it failed
            if self.error is not None:
                raise self.error
            try:
                self.queue.put((frame, res), timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self) -> int:
        """Write everything queued, then close the mp4 (playable) and the jsonl; returns the frame count."""
        while self.thread.is_alive():  # an encoder that failed takes nothing more
            try:
                self.queue.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.written

    def abort(self) -> None:
        """Stop without writing what is queued (the caller removes the files)."""
        self.aborted = True
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass
        self.queue.put(None)  # room for it: the caller, the one producer, is here
        self.thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not None and not self.aborted:
                self._write(*item)
        except Exception as e:  # re-raised in the caller's thread
            self.error = e if not isinstance(e, (OSError, _av().error.FFmpegError)) else \
                OutputError(f"cannot write the video's outputs in {self.mp4.parent}: {getattr(e, 'strerror', None) or e}")
        finally:
            try:
                self._close()
            except Exception as e:
                self.error = self.error or OutputError(f"cannot finish the overlay video: {e}")

    def _open(self, w: int, h: int) -> None:
        av = _av()
        self.picture, self.size = (w, h), (w + w % 2, h + h % 2)  # yuv420p takes even sides
        self.container = av.open(str(self.mp4), "w", format="mp4")
        self.container.metadata["comment"] = MARK  # sanrt's mark: a later run may replace this file
        codec = _encoder(av)
        self.stream = self.container.add_stream(codec, rate=self.rate,
                                                options={"preset": "veryfast"} if codec == "libx264" else {})
        self.stream.width, self.stream.height = self.size
        self.stream.pix_fmt = "yuv420p"

    def _write(self, frame: Frame, res) -> None:
        av = _av()
        t0 = time.perf_counter()
        h, w = frame.image.shape[:2]
        pic = overlay(frame.image, res.labels, list(res.names), other=res.other)
        pic = pic.crop((0, 0, pic.width, h))  # the legend's rows past the frame's height are left out
        if self.container is None:
            self._open(pic.width, h)
        if pic.size != self.picture:  # a stream that changed size mid-way: one mp4 holds one size
            pic = pic.resize(self.picture, Image.BILINEAR)
        if pic.size != self.size:
            pic = _pad(pic, self.size)
        t1 = time.perf_counter()
        vf = av.VideoFrame.from_ndarray(np.asarray(pic), format="rgb24")
        vf.pts = self.written
        for packet in self.stream.encode(vf):
            self.container.mux(packet)
        t2 = time.perf_counter()
        if self.labels_dir is not None:
            save_png(label_png(res.labels), self.labels_dir / f"{frame.index:06d}.png")
        b = res.timings.get("batch", 1)
        t = res.timings
        line = {**(self.header if not self.written else {}), "index": frame.index, "timestamp_s": round(frame.time_s, 6),
                "classes": [c._asdict() for c in res.classes_present()], "batch": b,
                "timings_s": {"decode": frame.decode_s, "preprocess": t["preprocess_s"] / b,
                              "image_graph": t["image_graph_s"] / b, "head": t["head_s"] / b,
                              "postprocess": t["postprocess_s"], "overlay": t1 - t0, "encode": t2 - t1}}
        self.jsonl.write(json.dumps(line) + "\n")
        self.written += 1

    def _close(self) -> None:
        if self.container is not None:
            for packet in self.stream.encode(None):  # the encoder's buffered frames
                self.container.mux(packet)
            self.container.close()
            self.container = None
        self.jsonl.close()


def _pad(pic: Image.Image, size) -> Image.Image:
    canvas = Image.new("RGB", size, (255, 255, 255))
    canvas.paste(pic, (0, 0))
    return canvas


class _Reader:
    """source.frames(...) run in a thread of its own, handed over through a bounded queue."""

    _END = object()

    def __init__(self, frames, depth: int):
        self.queue: queue.Queue = queue.Queue(depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(frames,), name="sanrt-video-decode", daemon=True)
        self.thread.start()

    def _run(self, frames) -> None:
        item = self._END
        try:
            for f in frames:
                if not self._put(f):
                    return
        except BaseException as e:  # re-raised in the caller's thread
            item = e
        finally:
            frames.close()
        self._put(item)

    def _put(self, item) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while (item := self.queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self, wait: float) -> None:
        self.stopped.set()
        self.thread.join(timeout=wait)


def segment_video(seg, vocab, source: VideoSource, out_dir, stem: str, *, stride: int = 1, max_frames: int | None = None,
                  batch: int = 1, save_labels: bool = False, report: dict | None = None, progress: bool = True) -> VideoRun:
    """Segment `source` into out_dir: S_overlay.mp4, S.jsonl and (save_labels) S_labels/NNNNNN.png,
    after plan_video. The mp4 and jsonl are written to temporary files and moved in at the end, the
    label folder is built aside and moved in whole; on Ctrl-C / SIGTERM (KeyboardInterrupt) and on a
    source that ends early, the frames segmented so far are finished and moved in (`VideoRun` says
    which), while any other error leaves nothing. `report` adds fields to the jsonl's first line."""
    paths = video_outputs(out_dir, stem)

    def run(labels_dir):
        return _segment(seg, vocab, source, paths, labels_dir, stride, max_frames, batch, report or {}, progress)

    return build_folder(paths["labels"], run, _sanrts_labels) if save_labels else run(None)


def _segment(seg, vocab, source, paths, labels_dir, stride, max_frames, batch, report, progress) -> VideoRun:
    from tqdm import tqdm

    staged = {}
    try:
        for key in ("mp4", "jsonl"):
            fd, tmp = tempfile.mkstemp(prefix=f".{paths[key].name}.", suffix=".tmp", dir=paths[key].parent)
            os.close(fd)
            staged[key] = Path(tmp)
        header = {"written_by": "sanrt", "sanrt": MARK, "source": shown(source.src), **report,
                  "frame_rate": str(source.rate), "stride": stride, "overlay_frame_rate": str(source.rate / stride)}
        total = -(-source.frame_count // stride) if source.frame_count else None
        if max_frames is not None:
            total = max_frames if total is None else min(total, max_frames)
        encoder = _Encoder(staged["mp4"], staged["jsonl"], labels_dir, source.rate / stride, header, depth=2 * batch)
        reader = _Reader(source.frames(stride, max_frames), depth=2 * batch)
        waiting: deque[Frame] = deque()  # the frames segment_stream holds, in order

        def images():
            for f in reader:
                waiting.append(f)
                yield f.image

        interrupted = False
        bar = tqdm(total=total, desc="segmenting", unit="frame", file=sys.stderr, disable=not progress, dynamic_ncols=True)
        try:
            for res in seg.segment_stream(images(), vocab, batch):
                encoder.put(waiting.popleft(), res)
                bar.update()
        except KeyboardInterrupt:
            interrupted = True  # finish what was segmented: the mp4 plays
        except BaseException:
            encoder.abort()
            raise
        finally:
            bar.close()
            reader.stop(wait=source.read_timeout + 2)
        frames = encoder.finish()
        if not frames:
            if interrupted:
                raise KeyboardInterrupt
            raise VideoError(f"{shown(source.src)} gave no frame to segment")
        for key in ("mp4", "jsonl"):
            os.chmod(staged[key], new_file_mode())
            os.replace(staged[key], paths[key])
        return VideoRun(frames, source.ended_early, interrupted,
                        [paths["mp4"], paths["jsonl"], *([paths["labels"]] if labels_dir is not None else [])])
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
