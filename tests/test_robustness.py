"""What happens when... every bad input or fault tried against the CLIs, each with what the user
sees. The README's table "What happens when..." is generated from CASES (`python
tests/test_robustness.py` prints it) and a test fails when the two drift apart.

Errors: one `error:` line, exit code 2, no traceback, and nothing written (the output folder holds
exactly what it held before). Warnings: one `warning:` line and a correct answer.
"""
from __future__ import annotations

import json
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str
    when: str  # the README's first column
    sees: str  # what the user sees (the README's second column); `expect` must appear in it
    expect: str  # a fragment of the one line printed
    run: callable  # ctx -> (tool, argv); tool "infer" or "export"
    warning: bool = False  # exit 0 with a warning line instead of an error
    ok: callable = None  # exit 0 with no error or warning line; ok(ctx) checks the outputs


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims w x h (no pixel data): what a decompression bomb looks like to a reader."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""))


def _manifest_edit(ctx, edit):
    m = json.loads((ctx.export / "manifest.json").read_text())
    edit(m)
    (ctx.export / "manifest.json").write_text(json.dumps(m))


def _infer(ctx, *extra, image=None, vocab=("--vocab", "cat,dog"), out=None):
    return "infer", ["--engine", str(ctx.export), "--image", *(image or [str(ctx.photo)]), *vocab,
                     "--out", str(out or ctx.out), "--backend", "onnxruntime", *extra]


def _truncated_in_folder(ctx, suffix):
    d = ctx.tmp / "folder"
    d.mkdir()
    shutil.copy(ctx.photo, d / "a_good.png")
    Image.open(ctx.photo).convert("RGB").save(d / f"b_cut{suffix}", quality=90)
    data = (d / f"b_cut{suffix}").read_bytes()
    (d / f"b_cut{suffix}").write_bytes(data[: len(data) // 2])
    return _infer(ctx, image=[str(d)])


def _damaged_cache(ctx, damage):
    def run(ctx):
        from sanrt.runtime import Segmenter

        seg = Segmenter(ctx.export, backend="onnxruntime", cache_dir=ctx.cache / "vocab")
        seg.vocabulary(["cat", "dog"])
        [entry] = (ctx.cache / "vocab").glob("*.npy")
        damage(entry)
        return _infer(ctx)
    return run


def _same_as_cat_dog(ctx):
    from sanrt.runtime import Segmenter, load_image

    report = json.loads((ctx.out / "photo.json").read_text(encoding="utf-8"))
    assert "\ufeff" not in json.dumps(report, ensure_ascii=False)
    seg = Segmenter(ctx.export, backend="onnxruntime", cache_dir=ctx.tmp / "fresh")
    ref = seg.segment([load_image(ctx.photo)], seg.vocabulary(["cat", "dog"]))[0]
    np.testing.assert_array_equal(np.asarray(Image.open(ctx.out / "photo_labels.png")), ref.labels)
    assert [c["name"] for c in report["classes"]] == [c.name for c in ref.classes_present()]


def _export_file(ctx, name, data: bytes):
    """Replace a file of the export and its manifest hash: an export whose files are whole but wrong."""
    import hashlib

    (ctx.export / name).write_bytes(data)
    _manifest_edit(ctx, lambda m: m["sha256"].update({name: hashlib.sha256(data).hexdigest()}))
    return _infer(ctx)


def _npz(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _config(ctx, edit):
    cfg = json.loads((ctx.tiny / "tiny_config.json").read_text())
    edit(cfg)
    (ctx.tmp / "cfg.json").write_text(json.dumps(cfg))
    return "export", ["--config", str(ctx.tmp / "cfg.json"), "--random-init", "--out", str(ctx.out / "x")]


def _nan_checkpoint(ctx):
    import torch

    sd = torch.load(ctx.tiny / "checkpoint.pth", weights_only=True)
    model = sd["model"]
    key = "side_adapter_network.query_embed"
    model[key] = model[key].clone()
    model[key].view(-1)[0] = float("nan")
    torch.save(sd, ctx.tmp / "nan.pth")
    return "export", ["--config", str(ctx.tiny / "tiny_config.json"), "--checkpoint", str(ctx.tmp / "nan.pth"),
                      "--out", str(ctx.out / "x")]


def _nan_cache(p):
    w = np.load(p)
    w[0, 0] = np.nan
    np.save(p.with_suffix(""), w)  # np.save adds .npy back


CASES = [
    Case("missing_image", "an image path that does not exist", "`error: image not found: PATH`", "image not found",
         lambda c: _infer(c, image=[str(c.tmp / "nope.jpg")])),
    Case("not_an_image", "a file that is not an image (`notes.txt`)", "`error: PATH is not an image file PIL can read`",
         "not an image file PIL can read",
         lambda c: (c.tmp.joinpath("notes.txt").write_text("hello"), _infer(c, image=[str(c.tmp / "notes.txt")]))[1]),
    Case("truncated_png", "a PNG cut in half, in a folder after a good image",
         "`error: PATH is corrupt or truncated (...)`, before the good image's outputs are written",
         "corrupt or truncated", lambda c: _truncated_in_folder(c, ".png")),
    Case("truncated_jpeg", "a JPEG cut in half, in a folder after a good image",
         "`error: PATH is corrupt or truncated (...)`, before the good image's outputs are written",
         "corrupt or truncated", lambda c: _truncated_in_folder(c, ".jpg")),
    Case("bomb", "a 20000x20000 image (a decompression bomb, or a huge scan)",
         "`error: PATH is 400 megapixels, over the limit of 120; downscale it first`",
         "over the limit of 120",
         lambda c: (_png_header_only(c.tmp / "big.png", 20000, 20000), _infer(c, image=[str(c.tmp / "big.png")]))[1]),
    Case("out_of_range", "an image whose padded input is past the export's range (16:1 on an export made with `--max-side 1024`)",
         "`error: a WxH image needs a ... input, outside the export's range ...`", "outside the export's range",
         lambda c: (_manifest_edit(c, lambda m: m["ranges"].update(width=[32, 1024])),
                    Image.new("RGB", (300, 100)).save(c.tmp / "wide.png"),
                    _infer(c, "--no-cache", image=[str(c.tmp / "wide.png")]))[2], ),
    Case("blank_vocab", "an empty `--vocab \"\"`", "`error: the vocabulary has blank class names at positions [0]`",
         "blank class names", lambda c: _infer(c, vocab=("--vocab", ""))),
    Case("dup_vocab", "a class named twice (`cat,dog,cat`)", "`error: the vocabulary names these classes more than once: 'cat' ...`",
         "more than once: 'cat'", lambda c: _infer(c, vocab=("--vocab", "cat,dog,cat"))),
    Case("case_vocab", "names CLIP cannot tell apart (`cat,Cat`: identical class weights)",
         "`error: ... more than once: 'cat' = 'Cat' (CLIP reads them as the same tokens: ...)`", "'cat' = 'Cat'",
         lambda c: _infer(c, vocab=("--vocab", "cat,Cat"))),
    Case("token_dup_vocab", "names that differ only where CLIP's tokenizer does not look: `cat.,cat .` (also "
         "`t-shirt`/`t - shirt`, `cat's`/`cat 's`, two long names equal in the tokens CLIP keeps)",
         "`error: ... more than once: 'cat.' = 'cat .' (CLIP reads them as the same tokens: ...)`", "'cat.' = 'cat .'",
         lambda c: _infer(c, vocab=("--vocab", "cat.,cat ."))),
    Case("invisible_vocab", "a name with nothing CLIP can read: `&nbsp;`, zero-width or other format characters, "
         "a lone combining mark", "`error: the vocabulary has blank class names at positions [1] (nothing CLIP can read: ...)`",
         "blank class names at positions [1]", lambda c: _infer(c, vocab=("--vocab", "cat,\u200b\u200d"))),
    Case("nul_vocab", "a `--vocab-file` line of NUL characters", "`error: the vocabulary has blank class names at "
         "positions [1] (...)`", "blank class names at positions [1]",
         lambda c: (c.tmp.joinpath("v.txt").write_text("cat\n\x00\x00\x00\ndog\n"),
                    _infer(c, vocab=("--vocab-file", str(c.tmp / "v.txt"))))[1]),
    Case("bom_vocab", "a `--vocab-file` saved with a UTF-8 byte-order mark (Windows Notepad)",
         "the mark is dropped: the classes are `cat`, `dog` (not `\\ufeffcat`), the answer that of `--vocab cat,dog`", "",
         lambda c: (c.tmp.joinpath("v.txt").write_bytes("\ufeffcat\r\ndog\r\n".encode()),
                    _infer(c, vocab=("--vocab-file", str(c.tmp / "v.txt"))))[1], ok=lambda c: _same_as_cat_dog(c)),
    Case("vocab_folder", "`--vocab-file` naming a folder", "`error: vocabulary file PATH is a folder, not a text file`",
         "is a folder", lambda c: _infer(c, vocab=("--vocab-file", str(c.tmp)))),
    Case("vocab_missing", "`--vocab-file` that does not exist", "`error: vocabulary file not found: PATH`",
         "vocabulary file not found", lambda c: _infer(c, vocab=("--vocab-file", str(c.tmp / "v.txt")))),
    Case("unknown_dataset", "`--dataset imagenet`", "`error: unknown dataset 'imagenet'; choose one of ...`",
         "unknown dataset", lambda c: _infer(c, vocab=("--dataset", "imagenet"))),
    Case("no_export", "`--engine` naming a folder that does not exist", "`error: export folder not found: PATH`",
         "export folder not found", lambda c: (shutil.rmtree(c.export), _infer(c))[1]),
    Case("not_export", "`--engine` naming a folder that is not an export", "`error: PATH is not an sanrt export (no manifest.json; ...)`",
         "is not an sanrt export", lambda c: ((c.export / "manifest.json").unlink(), _infer(c))[1]),
    Case("manifest_corrupt", "a manifest.json that is not JSON", "`error: PATH/manifest.json is corrupt: ...`", "is corrupt",
         lambda c: ((c.export / "manifest.json").write_text("{not json"), _infer(c))[1]),
    Case("manifest_no_ranges", "a manifest.json without `ranges`", "`error: PATH/manifest.json: manifest field ranges is missing or not a dict`",
         "field ranges is missing", lambda c: (_manifest_edit(c, lambda m: m.pop("ranges")), _infer(c))[1]),
    Case("manifest_no_sha", "a manifest.json without `sha256` (so no file could be checked)",
         "`error: ...: manifest field sha256 is missing or not a dict`", "field sha256 is missing",
         lambda c: (_manifest_edit(c, lambda m: m.pop("sha256")), _infer(c))[1]),
    Case("graph_changed", "a graph file changed after export", "`error: PATH/head.onnx does not match the manifest's sha256 (...)`",
         "does not match the manifest's sha256",
         lambda c: ((c.export / "head.onnx").write_bytes((c.export / "head.onnx").read_bytes() + b"x"), _infer(c))[1]),
    Case("graph_missing", "a graph file deleted", "`error: PATH is incomplete: head.onnx is missing`", "head.onnx is missing",
         lambda c: ((c.export / "head.onnx").unlink(), _infer(c))[1]),
    Case("engine_json", "a damaged `engine.json` in a TensorRT engine folder", "`error: PATH/engine.json is corrupt: ...`", "is corrupt",
         lambda c: ((c.export / "engine.json").write_text("{"), _infer(c))[1]),
    Case("long_output_name", "an image whose name leaves no room for `_overlay.png` within the file system's 255 bytes",
         "`error: the output name ... is too long for the file system (255 bytes); rename the image`, before anything "
         "is written", "is too long for the file system",
         lambda c: (shutil.copy(c.photo, c.tmp / ("p" * 240 + ".png")), _infer(c, image=[str(c.tmp / ("p" * 240 + ".png"))]))[1]),
    Case("too_many_classes", "more classes than the export takes (`--vocab` of 2000 names)",
         "`error: 2000 classes is outside the export's range 1..N`, before the text side runs", "classes is outside the export's range",
         lambda c: _infer(c, vocab=("--vocab", ",".join(f"class {i}" for i in range(2000))))),
    Case("out_is_file", "`--out` naming a file", "`error: --out PATH is a file, not a folder`", "is a file, not a folder",
         lambda c: (c.tmp.joinpath("f").write_text("x"), _infer(c, out=c.tmp / "f"))[1]),
    Case("out_unwritable", "`--out` that cannot be created or written (read-only file system, no permission)",
         "`error: cannot write to PATH: ...`, before the text side runs", "cannot write to",
         lambda c: _infer(c, out=Path("/proc/sanrt_out"))),
    Case("out_user_file", "`--out` holding a file of the same name that sanrt did not write (the input folder with a user's `photo_overlay.png`)",
         "`error: PATH/photo_overlay.png exists and was not written by sanrt; it is left alone: ...`; the file is untouched",
         "was not written by sanrt",
         lambda c: (shutil.copy(c.photo, c.out / "photo_overlay.png"), _infer(c))[1]),
    Case("out_export", "`--out` set to the export folder with an image named `manifest.jpg`",
         "`error: PATH/manifest.json exists and was not written by sanrt; ...`; the export is untouched",
         "manifest.json exists and was not written by sanrt",
         lambda c: (Image.open(c.photo).convert("RGB").save(c.tmp / "manifest.jpg"),
                    _infer(c, image=[str(c.tmp / "manifest.jpg")], out=c.export))[1]),
    Case("same_stem", "two images with the same name in different folders", "`error: several images share the name 'photo'; ...`",
         "share the name",
         lambda c: ((c.tmp / "x").mkdir(), shutil.copy(c.photo, c.tmp / "x" / "photo.png"),
                    _infer(c, image=[str(c.photo), str(c.tmp / "x" / "photo.png")]))[2]),
    Case("bad_pair", "a backend x precision pair that does not exist (`--backend onnxruntime --precision bf16`)",
         "`error: onnxruntime has no 'bf16' path; it runs fp32, fp16, int8, int8dyn`", "has no 'bf16' path",
         lambda c: _infer(c, "--precision", "bf16")),
    Case("graph_variant_missing", "a precision whose graph the export lacks (`--precision int8` before export/quantize.py)",
         "`error: this export has no int8 image graph (has: fp32; ...)`", "has no int8 image graph",
         lambda c: _infer(c, "--precision", "int8")),
    Case("cuda_graph", "`--cuda-graph` without TensorRT engines", "`error: CUDA graphs are for TensorRT engines: ...`",
         "CUDA graphs are for TensorRT engines", lambda c: _infer(c, "--cuda-graph")),
    Case("cache_truncated", "a vocabulary cache entry cut short", "`warning: vocabulary cache entry PATH is damaged (...); recomputing it`; the answer is right",
         "is damaged", _damaged_cache(None, lambda p: p.write_bytes(p.read_bytes()[:100])), warning=True),
    Case("cache_empty", "an empty vocabulary cache entry", "`warning: vocabulary cache entry PATH is damaged (...); recomputing it`", "is damaged",
         _damaged_cache(None, lambda p: p.write_bytes(b"")), warning=True),
    Case("cache_shape", "a valid `.npy` of the wrong shape in the cache",
         "`warning: vocabulary cache entry PATH is damaged (holds float32 (2, 3), not float32 (3, D)); recomputing it`", "is damaged",
         _damaged_cache(None, lambda p: np.save(p.with_suffix(""), np.zeros((2, 3), np.float32))), warning=True),
    Case("cache_nan", "a cache entry holding NaN", "`warning: vocabulary cache entry PATH is damaged (holds values that are not finite); recomputing it` (never \"cat 100 %\")", "is damaged",
         _damaged_cache(None, _nan_cache), warning=True),
    Case("cache_unwritable", "a vocabulary cache that cannot be written (`SANRT_CACHE` on a read-only file system)",
         "`warning: vocabulary cache PATH is not writable (...); continuing without it`", "is not writable",
         lambda c: (setattr(c, "cache", Path("/proc/sanrt_cache")), _infer(c))[1], warning=True),
    Case("verified_corrupt", "a damaged `verified.json` (the automatic choice's measurements)",
         "`warning: ignoring PATH/verified.json (...)`; ONNX Runtime FP32", "ignoring",
         lambda c: ((c.export / "verified.json").write_text("{"),
                    ("infer", [a for a in _infer(c)[1] if a not in ("--backend", "onnxruntime")]))[1], warning=True),
    Case("export_no_classes", "an export that would refuse every input (`to_onnx.py --max-classes 0`)",
         "`error: export range classes 1..0 admits nothing (need 1 <= min <= max)`", "admits nothing",
         lambda c: ("export", ["--config", str(c.tiny / "tiny_config.json"), "--random-init", "--max-classes", "0",
                               "--out", str(c.out / "x")])),
    Case("export_pickle", "a checkpoint carrying a pickled program", "`error: cannot read checkpoint PATH: ...` (weights_only: nothing runs)",
         "cannot read checkpoint",
         lambda c: (c.tmp.joinpath("evil.pth").write_bytes(b"\x80\x04cbuiltins\nprint\n(S'pwned'\ntR."),
                    ("export", ["--config", str(c.tiny / "tiny_config.json"), "--checkpoint", str(c.tmp / "evil.pth"),
                                "--out", str(c.out / "x")]))[1]),
    Case("export_user_folder", "`to_onnx.py --out` naming a folder of someone else's files (a `manifest.json` that "
         "is not sanrt's)", "`error: PATH exists, holds files and is not sanrt's to replace; it is left alone: ...`, "
         "before the model is built", "not sanrt's to replace",
         lambda c: ((c.out / "manifest.json").write_text('{"mine": 1}'),
                    ("export", ["--config", str(c.tiny / "tiny_config.json"), "--random-init", "--out", str(c.out)]))[1]),
    Case("export_unwritable", "`to_onnx.py --out` that cannot be written", "`error: cannot write to PATH: ...`",
         "cannot write to", lambda c: ("export", ["--config", str(c.tiny / "tiny_config.json"), "--random-init",
                                                  "--out", "/proc/sanrt_export"])),
    Case("quantize_no_images", "`quantize.py --calibration-images 0`",
         "`error: quantisation needs at least one calibration image, not 0`", "at least one calibration image",
         lambda c: ("quantize", ["--export", str(c.export), "--method", "dynamic", "--calibration-images", "0"])),
    Case("triton_unwritable", "`to_triton.py --out` that cannot be written", "`error: cannot write to PATH: ...`",
         "cannot write to", lambda c: ("triton", ["--export", str(c.export), "--out", "/proc/sanrt_repo"])),
    Case("eval_limit", "`eval_miou.py --limit 0` (or a negative limit)", "`error: --limit must be 1 or more, not 0`",
         "--limit must be 1 or more", lambda c: _eval_set(c, "--limit", "0")),
    Case("eval_value_k", "a label image holding the value K (one past the last class) where the ignore label is 255",
         "`error: PATH: label values [2] are outside 0..1 and not the ignore label 255`, naming the file",
         "label values [2] are outside 0..1", lambda c: _eval_set(c, label_value=2)),
    Case("eval_user_report", "`eval_miou.py --out` holding an `eval.md` that sanrt did not write",
         "`error: PATH/eval.md exists and was not written by sanrt; it is left alone: ...`, before any image",
         "eval.md exists and was not written by sanrt",
         lambda c: ((c.out / "eval.md").write_text("my notes"), _eval_set(c))[1]),
    Case("eval_bad_compare", "`eval_miou.py --compare fp32,int8` where the export has no INT8 graph",
         "`error: this export has no int8 image graph (...)`, before the first precision's run", "has no int8 image graph",
         lambda c: _eval_set(c, "--compare", "fp32,int8")),
    Case("export_depth", "a config value no SAN can have (side adapter `depth: -2`, a width of 0, ...)",
         "`error: config file PATH: config ...: side_depth must be a whole number of 1 or more, not -2`",
         "side_depth must be a whole number of 1 or more",
         lambda c: _config(c, lambda g: g["side_adapter"]["timm_vit"].update(depth=-2))),
    Case("export_feature_index", "a CLIP feature layer index past CLIP's blocks (`FEATURE_LAST_LAYER_IDX: 99`)",
         "`error: ... feature_last_layer 99 must lie in 1..11 (CLIP has 12 blocks)`", "feature_last_layer 99 must lie in",
         lambda c: _config(c, lambda g: g["san"].update(FEATURE_LAST_LAYER_IDX=99))),
    Case("export_templates", "a config with no prompt templates, or one with a named field (`a photo of a {name}`)",
         "`error: ... templates must hold at least one prompt template`", "templates must hold at least one",
         lambda c: _config(c, lambda g: g.update(templates=[]))),
    Case("export_nan", "a checkpoint holding a NaN weight", "`error: checkpoint holds NaN or infinite values in side_adapter_network.query_embed`",
         "checkpoint holds NaN or infinite values", _nan_checkpoint),
    Case("export_bpe", "an export whose tokenizer file is not CLIP's BPE vocabulary (its hash updated to match)",
         "`error: PATH is not CLIP's BPE vocabulary (48894 merges of two symbols expected)`", "is not CLIP's BPE vocabulary",
         lambda c: _export_file(c, "bpe_simple_vocab_16e6.txt.gz", __import__("gzip").compress(b"#v\nhello world\n"))),
    Case("export_classifier", "an export whose `classifier.npz` holds other keys or another width",
         "`error: PATH/classifier.npz does not hold the classifier data the runtime reads (...)`",
         "does not hold the classifier data", lambda c: _export_file(c, "classifier.npz", _npz(other=np.zeros(3)))),
    Case("export_start_kv", "an export whose `text_start_kv.npy` is unreadable",
         "`error: PATH/text_start_kv.npy is not a readable numpy file (...)`", "is not a readable numpy file",
         lambda c: _export_file(c, "text_start_kv.npy", b"junk")),
    Case("export_template", "an export manifest with a template holding a named field (`a {name} {}`)",
         "`error: PATH/manifest.json: manifest field templates: template 'a {name} {}' must hold exactly one {} slot ...`",
         "must hold exactly one {} slot",
         lambda c: (_manifest_edit(c, lambda m: m["templates"].__setitem__(0, "a {name} {}")), _infer(c))[1]),
    Case("export_config", "a config file lacking a field", "`error: config file PATH lacks the field 'side_adapter'`",
         "lacks the field",
         lambda c: (c.tmp.joinpath("cfg.json").write_text(json.dumps(
             {k: v for k, v in json.loads((c.tiny / "tiny_config.json").read_text()).items() if k != "side_adapter"})),
                    ("export", ["--config", str(c.tmp / "cfg.json"), "--random-init", "--out", str(c.out / "x")]))[1]),
]


def _tool(name: str):
    """The main() of a tool by its short name."""
    if name == "eval":
        from sanrt.benchmarks import eval_miou

        return eval_miou.main
    import importlib

    return importlib.import_module({"infer": "sanrt.runtime.infer", "export": "sanrt.export.to_onnx",
                                    "quantize": "sanrt.export.quantize", "triton": "sanrt.export.to_triton"}[name]).main


def _eval_set(ctx, *extra, label_value=0):
    d = ctx.tmp / "set"
    (d / "img").mkdir(parents=True)
    (d / "lab").mkdir()
    shutil.copy(ctx.photo, d / "img" / "a.png")
    h, w = np.asarray(Image.open(ctx.photo)).shape[:2]
    Image.fromarray(np.full((h, w), label_value, np.uint8)).save(d / "lab" / "a.png")
    (d / "classes.txt").write_text("cat\ndog\n")
    return "eval", ["--export", str(ctx.export), "--images", str(d / "img"), "--labels", str(d / "lab"), "--vocab-file",
                    str(d / "classes.txt"), "--backend", "onnxruntime", "--out", str(ctx.out), *extra]


def readme_table() -> str:
    lines = ["| when | what you see (exit code 2 for an error, 0 for a warning or an answer) |", "|---|---|"]
    lines += [f"| {c.when} | {c.sees} |" for c in CASES]
    return "\n".join(lines) + "\n"


class Ctx:
    pass


@pytest.fixture
def ctx(tiny_export, tiny_dev, tmp_path, monkeypatch):
    c = Ctx()
    c.tmp, c.tiny = tmp_path, tiny_dev
    c.export = tmp_path / "export"
    shutil.copytree(tiny_export, c.export)
    (c.export / "verified.json").unlink(missing_ok=True)
    c.photo = tmp_path / "photo.png"
    Image.fromarray(np.load(tiny_dev / "chelsea.npz")["orig_image_hwc_u8"]).save(c.photo)
    c.out = tmp_path / "out"
    c.out.mkdir()
    c.cache = tmp_path / "cache"
    return c


def _snapshot(*folders) -> dict:
    return {p: p.read_bytes() for f in folders if f.is_dir() for p in sorted(f.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_what_happens_when(case, ctx, capsys, monkeypatch):
    tool, argv = case.run(ctx)
    monkeypatch.setenv("SANRT_CACHE", str(ctx.cache))
    before = _snapshot(ctx.out, ctx.export)
    capsys.readouterr()
    code = _tool(tool)(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("error:", "warning:"))]
    if case.ok:
        assert code == 0 and not lines, err
        case.ok(ctx)
        return
    assert len(lines) == 1 and case.expect in lines[0], err
    assert case.expect in case.sees
    if case.warning:
        assert code == 0 and lines[0].startswith("warning: "), err
        labels = np.asarray(Image.open(ctx.out / "photo_labels.png"))
        from sanrt.runtime import Segmenter, load_image

        seg = Segmenter(ctx.export, backend="onnxruntime", cache_dir=ctx.tmp / "fresh")
        np.testing.assert_array_equal(labels, seg.segment([load_image(ctx.photo)], seg.vocabulary(["cat", "dog"]))[0].labels)
    else:
        assert code == 2 and lines[0].startswith("error: "), err
        assert _snapshot(ctx.out, ctx.export) == before  # nothing written, nothing replaced


def test_readme_table_is_generated_from_the_cases():
    text = (ROOT / "README.md").read_text()
    assert readme_table() in text, "README's 'What happens when...' table drifted; regenerate it with " \
                                   "`python tests/test_robustness.py`:\n" + readme_table()


def test_rerunning_into_the_same_folder_refreshes_sanrt_outputs(ctx, capsys, monkeypatch):
    from sanrt.runtime.infer import main

    monkeypatch.setenv("SANRT_CACHE", str(ctx.cache))
    assert main(_infer(ctx)[1]) == 0
    first = (ctx.out / "photo.json").read_text()
    assert main(_infer(ctx, vocab=("--vocab", "sky,grass"))[1]) == 0
    assert (ctx.out / "photo.json").read_text() != first  # replaced: sanrt wrote it


if __name__ == "__main__":
    sys.stdout.write(readme_table())
