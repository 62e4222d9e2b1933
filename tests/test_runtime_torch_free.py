"""The runtime, serving and evaluation never import torch or open_clip: they run with both blocked."""
import json
import subprocess
import sys

import numpy as np
from conftest import TINY_DEV

CODE = """
import sys
sys.modules["torch"] = None
sys.modules["open_clip"] = None
import numpy as np
import sanrt.runtime
from sanrt.runtime import (backends, choice, datasets, images, infer, loader, logs, manifest, outputs, postprocess,
                           preprocess, segmenter, text, tokenizer, visualize, vocabulary)
from sanrt.runtime import Segmenter
s = Segmenter(sys.argv[1], cache_dir=__import__("pathlib").Path(sys.argv[3]))
vocab = s.vocabulary(vocabulary.read_vocabulary_file(sys.argv[2] + "/vocabulary.txt"))
ref = np.load(sys.argv[2] + "/astronaut.npz")
r = s.segment([ref["orig_image_hwc_u8"]], vocab)[0]
from sanrt.evaluation.compare import label_agreement  # numpy only
print(label_agreement(r.labels, ref["label_map"], ref["sem_seg"]).agreement)
assert "torch" not in {m.split(".")[0] for m, v in sys.modules.items() if v is not None}
"""


def test_runtime_runs_with_torch_blocked(tiny_export, tmp_path):
    p = subprocess.run([sys.executable, "-c", CODE, str(tiny_export), str(TINY_DEV), str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert float(p.stdout.strip()) >= 0.9999


def test_vocabulary_cache(tiny_export, tmp_path):
    from sanrt.runtime.segmenter import Segmenter

    s = Segmenter(tiny_export, cache_dir=tmp_path)
    first = s.vocabulary(["cat", "dog"])
    assert not first.cached
    again = s.vocabulary(["cat", "dog"])
    assert again.cached
    np.testing.assert_array_equal(again.class_weights, first.class_weights)
    assert not s.vocabulary(["dog", "cat"]).cached  # order matters: a different key
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_text_chunks_cut_after_their_longest_text_are_exact(tiny_export, tmp_path, monkeypatch):
    """Texts are grouped by length and each chunk is cut after its longest text: under causal
    attention that equals running every text at the full 77 tokens, in the caller's order."""
    from sanrt.runtime import Segmenter, text

    monkeypatch.setattr(text, "CPU_TEXT_CHUNK", 4)  # several chunks of different lengths
    s = Segmenter(tiny_export, cache_dir=tmp_path).text
    texts = ["a cat.", "a photo of a very large and quite old wooden sailing ship on a stormy sea.", "dog",
             "there is a traffic light in the scene.", "x " * 100, "a photo of the small dog.", "sky", "a b c d e"]
    full = s.text_graph.infer({"token_ids": s.tokenizer(texts, 77)})["text_features"]
    np.testing.assert_allclose(s.encode_texts(texts), full, rtol=0, atol=2e-6)


def test_shared_template_words_run_once_with_the_same_class_weights(tiny_export, tmp_path):
    """The text_after graph: each template's words before the class name run once (their states,
    under causal attention, are the same for every name); the class weights equal the full text
    graph's, also for a single name and names of very different lengths."""
    from sanrt.runtime.segmenter import Segmenter

    s = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path).text
    assert s.text_after is not None and s.start_kv.shape[1:3] == (2, 1)
    for names in (["cat"], ["cat", "a very long name of a thing with many words in it", "sky", "traffic light"]):
        fast = s.encode_template_texts(s.manifest.templates, names)
        full = s.text_graph.infer({"token_ids": s.tokenizer([t.format(n) for t in s.manifest.templates for n in names],
                                                              77)})["text_features"].reshape(fast.shape)
        np.testing.assert_allclose(fast, full, rtol=0, atol=2e-6)


BLOCKED = """
import runpy, sys
sys.modules["torch"] = None  # import torch raises ImportError, as where it is not installed
sys.modules["open_clip"] = None
script, sys.argv = sys.argv[1], sys.argv[1:]
sys.path.insert(0, __import__("os").path.dirname(script))  # as `python script.py` does
runpy.run_path(script, run_name="__main__")
"""


def _blocked(script, *args):
    from conftest import ROOT

    p = subprocess.run([sys.executable, "-c", BLOCKED, str(ROOT / script), *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_every_runtime_serving_and_evaluation_module_and_the_tools_import_with_torch_blocked():
    code = """
import importlib, pkgutil, sys
sys.modules["torch"] = None
sys.modules["open_clip"] = None
import sanrt.evaluation, sanrt.runtime, sanrt.serving
names = [m.name for p in (sanrt.runtime, sanrt.evaluation, sanrt.serving)
         for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")]
names += ["sanrt.export." + m for m in ("quantize", "build_engine", "to_triton", "tensorrt_build", "fp16")]
for name in names:
    importlib.import_module(name)
from sanrt.export import add_variant
print(len(names))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert int(p.stdout) > 35


def test_quantize_build_engine_and_to_triton_run_with_torch_blocked(tiny_export, tmp_path):
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(tiny_export, folder)
    code, _, err = _blocked("export/quantize.py", "--export", folder, "--method", "dynamic", "--calibration-images", "1")
    assert code == 0, err
    assert "int8dyn" in json.loads((folder / "manifest.json").read_text())["graphs"]["image"]["variants"]
    code, _, err = _blocked("export/to_triton.py", "--export", folder, "--out", tmp_path / "repo")
    assert code == 0, err
    assert (tmp_path / "repo" / "san" / "config.pbtxt").is_file()
    code, _, err = _blocked("export/build_engine.py", "--export", folder)
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):  # the true reason, in one line, not a missing torch
        assert code == 2 and err.startswith("error: TensorRT is not installed") and "torch" not in err, err
