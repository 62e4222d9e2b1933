"""sanrt-app: SAN in a web page (Gradio) over sanrt exports, without torch.

    sanrt-app --export out/onnx/vit_b_16                       # http://127.0.0.1:7860
    sanrt-app --export out/onnx/vit_b_16 --export out/onnx/vit_l_14 --host 0.0.0.0 --port 8080

The page takes a photo and class names (comma-separated, or one a line) and shows the segmentation
as an overlay or a mask, its legend with pixel fractions and its timings, with the label PNG and
the JSON to download. The same function is the API endpoint `segment` (gradio_client):
(image file, names, expansion none|coco-all|coco-stuff) -> (picture, legend, details, label PNG,
JSON). One Segmenter per export serves every visitor; the queue bounds how many run at once.
"""
from __future__ import annotations

import argparse
import base64
import html
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

EXPANSIONS = ("none", "coco-all", "coco-stuff")
VIEWS = ("overlay", "mask")
MAX_UPLOAD = "64mb"
_served = False  # the server has been started in this process
KEEP_RESULTS_S = 3600  # a request's files (and what the view switch re-draws from) live this long
# skimage.data's bundled photos (no download) and names that fit them
EXAMPLES = (("astronaut", "person, flag, rocket, sky"), ("coffee", "cup, saucer, spoon, table"),
            ("chelsea", "cat, sofa, floor"))


def parse_args(argv):
    from sanrt.runtime import cli

    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", dest="exports", action="append", type=Path, required=True, metavar="DIR",
                    help="an sanrt export folder (export/to_onnx.py) or TensorRT engine folder; repeat it to offer "
                         "several models")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    ap.add_argument("--backend", default="auto", help="auto, onnxruntime or openvino (as sanrt-infer)")
    ap.add_argument("--precision", default=None, help="image-graph precision for a named backend (as sanrt-infer)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for the backend")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="segmentations run at once; the rest wait in the queue (default 1: each uses every core)")
    ap.add_argument("--verbose", action="store_true", help="show the backends' own log messages")
    args = ap.parse_args(argv)
    if not 0 < args.port < 65536:
        ap.error(f"--port {args.port} is not a TCP port (1..65535)")
    if args.concurrency < 1:
        ap.error("--concurrency must be at least 1")
    return args


def parse_names(text: str | None) -> list[str]:
    """The names box -> class names: one a line when it holds several lines (ADE's names hold commas),
    else comma-separated; empty entries (a trailing comma, a blank line) are dropped."""
    text = text or ""
    lines = [line for line in text.splitlines() if line.strip()]
    parts = lines if len(lines) > 1 else text.split(",")
    return [p.strip() for p in parts if p.strip()]


def mask_image(labels, k: int, other: bool):
    """Class colours on black, as the official demo's mask view; "other" (label k) stays black."""
    from PIL import Image

    from sanrt.runtime.visualize import palette

    colours = palette(k + 1)  # the overlay's colours, index for index
    colours[k] = 0
    return Image.fromarray(colours[labels])


def legend_markdown(result) -> str:
    from sanrt.runtime.visualize import palette

    colours = palette(len(result.label_names))
    rows = ["| | class | pixels |", "|:-:|:--|--:|"]
    for c in result.classes_present():
        r, g, b = (int(v) for v in colours[c.index])
        swatch = "&#9633;" if result.other and c.index == len(result.names) else \
            f'<span style="color: rgb({r}, {g}, {b})">&#9632;</span>'
        name = html.escape(c.name).replace("|", "&#124;").replace("\\", "&#92;")
        rows.append(f"| {swatch} | {name} | {c.fraction:.1%} |")
    return "\n".join(rows)


class App:
    """The exports' Segmenters and the request folders; `segment` is the page's and the API's function."""

    def __init__(self, exports: dict, work: Path):
        self.segmenters = exports  # label -> Segmenter, in --export order
        self.work = work

    def _request_folder(self) -> Path:
        now = time.time()
        for old in self.work.glob("req-*"):  # bounded disk: Gradio keeps its own copies of what it served
            try:
                if now - old.stat().st_mtime > KEEP_RESULTS_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.work))

    def _decode(self, image):
        from sanrt.runtime import ImageError, decode_image

        if not image:
            raise ImageError("no image: upload a photo first")
        if image.startswith("data:"):  # an API caller's base64 data URL
            try:
                data = base64.b64decode(image.split(",", 1)[1], validate=False)
            except (IndexError, ValueError):
                raise ImageError("the image data URL is not base64") from None
            return decode_image(data, "the image"), "image"
        path = Path(image)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"the upload {path.name} cannot be read ({e.strerror or e})") from None
        return decode_image(data, f"the upload {path.name}"), path.stem

    def segment(self, image, names, expansion="coco-all", view="overlay", model=None):
        """(image file, names, expansion, view, model) -> (picture, legend, details, label PNG, JSON, state)."""
        import gradio as gr

        from sanrt.runtime import SanrtError

        try:
            return self._segment(image, names, expansion, view, model)
        except SanrtError as e:  # the user's input: a message in the page, never a traceback
            raise gr.Error(html.escape(str(e), quote=False), print_exception=False) from None

    def _segment(self, image, names, expansion, view, model):
        from sanrt.runtime import SegmentationWriter, VocabularyError
        from sanrt.runtime.visualize import overlay

        model = model or next(iter(self.segmenters))
        seg = self.segmenters.get(model)
        if seg is None:
            raise VocabularyError(f"unknown model {model!r}; choose one of {', '.join(self.segmenters)}")
        if expansion not in EXPANSIONS:
            raise VocabularyError(f"unknown vocabulary expansion {expansion!r}; choose one of {', '.join(EXPANSIONS)}")
        if view not in VIEWS:
            raise VocabularyError(f"unknown view {view!r}; choose overlay or mask")
        t0 = time.perf_counter()
        img, stem = self._decode(image)
        t_decode = time.perf_counter() - t0
        listed = parse_names(names)
        if not listed and expansion == "none":
            raise VocabularyError("no class names: type some (comma-separated), or choose a vocabulary expansion")
        vocab = seg.vocabulary(listed, expand=None if expansion == "none" else expansion)
        [res] = seg.segment([img], vocab)
        timings = {"decode": t_decode, **{k.removesuffix("_s"): v for k, v in res.timings.items() if k.endswith("_s")}}
        folder = self._request_folder()
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:80] or "image"
        with SegmentationWriter(folder, overlay=False) as writer:
            writer.plan([stem])
            label_file, json_file = writer.write(stem, img, res, {
                "image": Path(image).name if not image.startswith("data:") else "data URL", "model": model,
                "backend": seg.backend, "precision": seg.precision, "device": seg.image_graph.device,
                "expansion": vocab.expansion, "timings_s": timings})
        picture = overlay(img, res.labels, list(res.names), other=res.other) if view == "overlay" else \
            mask_image(res.labels, len(res.names), res.other)
        expanded = f" + {len(vocab.distractors)} distractors ({expansion}) as *other*" if vocab.distractors else ""
        stages = ", ".join(f"{k.replace('_', ' ')} {v * 1000:.0f} ms" for k, v in timings.items())
        details = (f"**{len(vocab.names)} classes**{expanded} · backend **{seg.backend}** ({seg.precision}) on "
                   f"{seg.image_graph.device} · text side {vocab.text_s:.2f} s{' (cached)' if vocab.cached else ''}"
                   f" · {stages}")
        # what the view switch needs, small: paths, not pixels (a data URL is not kept)
        state = None if image.startswith("data:") else \
            {"image": image, "labels": str(label_file), "names": list(res.names), "other": res.other}
        return picture, legend_markdown(res), details, str(label_file), str(json_file), state

    def redraw(self, state, view):
        """The view switch: the last result drawn again from its label PNG, nothing run."""
        import gradio as gr
        import numpy as np
        from PIL import Image

        from sanrt.runtime import SanrtError
        from sanrt.runtime.visualize import overlay

        if not state:
            return gr.skip()
        try:
            with Image.open(state["labels"]) as im:
                labels = np.asarray(im).astype(np.int64)
            img, _ = self._decode(state["image"])
        except (OSError, SanrtError):
            raise gr.Error("that result is no longer kept: press Run again", print_exception=False) from None
        k = len(state["names"])
        if view == "mask":
            return mask_image(labels, k, state["other"])
        return overlay(img, labels, state["names"], other=state["other"])


def example_photos(folder: Path) -> list[tuple[Path, str]]:
    """scikit-image's bundled photos saved once as PNGs; none without scikit-image (not an app dependency)."""
    try:
        import skimage.data
    except ImportError:
        return []
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, names in EXAMPLES:
        path = folder / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).save(path)
        out.append((path, names))
    return out


def uploaded_as_is(payload):
    """The photo input's preprocessing: the uploaded file as it came, for sanrt to decode. gr.Image's
    own decoding would fail on a file that is not an image with no message for the user."""
    if payload is None:
        return None
    return payload.url if payload.url and payload.url.startswith("data:") else payload.path


def build(app: App, examples):
    import gradio as gr

    from sanrt.runtime import DATASETS

    first = next(iter(app.segmenters))

    vocabularies = [("names typed above", "")] + [(f"{d.title} ({len(d.names)} classes)", k) for k, d in DATASETS.items()]
    with gr.Blocks(title="sanrt: open-vocabulary segmentation", analytics_enabled=False,
                   delete_cache=(KEEP_RESULTS_S, KEEP_RESULTS_S)) as demo:
        gr.Markdown("# Open-vocabulary segmentation (SAN, sanrt)\nName the classes you want, upload a photo, "
                    "press **Run**. Every pixel gets the name it looks most like.")
        with gr.Row():
            image = gr.Image(type="filepath", label="Photo", sources=["upload", "clipboard"], elem_id="input_image")
            image.preprocess = uploaded_as_is  # on this one object: Gradio writes a .pyi beside any subclass
            picture = gr.Image(type="pil", format="png", label="Segmentation", interactive=False,
                               elem_id="output_image")
        with gr.Row():
            model = gr.Dropdown(list(app.segmenters), value=first, label="Model", interactive=len(app.segmenters) > 1)
            expansion = gr.Radio(list(EXPANSIONS), value="coco-all", label="Vocabulary expansion", elem_id="expansion",
                                 info="completes a short list with COCO's classes, whose pixels become 'other'")
            view = gr.Radio(list(VIEWS), value="overlay", label="View", elem_id="view")
            dataset = gr.Dropdown(vocabularies, value="", label="Built-in vocabulary", elem_id="dataset",
                                  info="fills the names (one a line) and sets expansion none")
        names = gr.Textbox(value="", label="Class names", lines=3, max_lines=12, elem_id="names",
                           placeholder="cat, sofa, floor  (comma-separated, or one a line; empty with an "
                                       "expansion: all of its classes)")
        run = gr.Button("Run", variant="primary", elem_id="run")
        with gr.Row():
            legend = gr.Markdown(label="Legend", elem_id="legend")
            with gr.Column():
                details = gr.Markdown(label="Details", elem_id="details")
                label_file = gr.File(label="Label PNG (pixel value = class index)", elem_id="label_png")
                json_file = gr.File(label="JSON (classes present, timings)", elem_id="json")
        last = gr.State(None)
        if examples:
            gr.Examples([[str(p), n, "coco-all"] for p, n in examples], inputs=[image, names, expansion],
                        label="Examples")

        run.click(app.segment, [image, names, expansion, view, model],
                  [picture, legend, details, label_file, json_file, last], api_name="segment")
        view.change(app.redraw, [last, view], picture, api_visibility="private")

        def fill(key):
            if not key:
                return gr.skip(), gr.skip(), gr.skip()
            # back to the first entry: the box is the user's to edit now, and the same dataset can fill it again
            return "\n".join(DATASETS[key].names), "none", ""

        dataset.change(fill, dataset, [names, expansion, dataset], api_visibility="private", queue=False)
    return demo


def check_port(host: str, port: int) -> None:
    from sanrt.runtime import SanrtError

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise SanrtError(f"cannot listen on {host}:{port}: {os.strerror(e.errno) if e.errno else e}") from None


def _main(argv) -> int:
    global _served
    from sanrt.runtime import Segmenter, SanrtError, logs

    args = parse_args(argv)
    logs.setup(args.verbose)
    try:
        import gradio  # noqa: F401  (the app extra: one error line when it is missing)
    except ImportError:
        raise SanrtError("sanrt-app needs Gradio: pip install 'sanrt[app]'") from None
    check_port(args.host, args.port)
    seen = set()
    for path in args.exports:
        if path.resolve() in seen:
            raise SanrtError(f"--export {path} is given twice")
        seen.add(path.resolve())
    segmenters: dict = {}
    for path in args.exports:
        label = path.name if path.name not in segmenters else str(path)  # the model's name in the page
        segmenters[label] = Segmenter(path, backend=args.backend, precision=args.precision, device=args.device,
                                      threads=args.threads)
        s = segmenters[label]
        print(f"{label}: backend {s.backend} ({s.precision}) on {s.image_graph.device}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="sanrt-app-"))
    demo = None
    try:
        demo = build(App(segmenters, work), example_photos(work / "examples"))
        demo.queue(default_concurrency_limit=args.concurrency)
        try:
            demo.launch(server_name=args.host, server_port=args.port, prevent_thread_lock=True, show_error=False,
                        max_file_size=MAX_UPLOAD, enable_monitoring=False, ssr_mode=False, quiet=True)
        except OSError as e:
            raise SanrtError(f"cannot listen on {args.host}:{args.port} ({e})") from None
        _served = True
        print(f"sanrt-app on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        while True:  # the main thread waits here, where Ctrl-C and SIGTERM (cli.run) reach it
            time.sleep(0.5)
    finally:
        if demo is not None:
            demo.close()  # bounded: Gradio joins its server thread for at most a few seconds
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    """The command. Once the server has run, it ends the process itself (os._exit): a segmentation
    still running in one of the server's worker threads, which are not daemon threads, would
    otherwise hold the exit until it finished."""
    try:
        from sanrt.runtime import cli
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    code = cli.run(_main, argv)
    if _served:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
