"""The runtime never imports torch or open_clip: it runs end to end with both blocked."""
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
from sanrt.runtime import backends, images, infer, manifest, postprocess, preprocess, segmenter, tokenizer, visualize, vocabulary
from sanrt.runtime.segmenter import Segmenter
s = Segmenter(sys.argv[1], cache_dir=__import__("pathlib").Path(sys.argv[3]))
s.set_vocabulary(vocabulary.read_vocabulary_file(sys.argv[2] + "/vocabulary.txt"))
ref = np.load(sys.argv[2] + "/astronaut.npz")
r = s.segment([ref["orig_image_hwc_u8"]])[0]
print((r.labels == ref["label_map"]).mean())
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
    s.set_vocabulary(["cat", "dog"])
    assert not s.vocab_timing["cached"]
    first = s.class_weights.copy()
    s.set_vocabulary(["cat", "dog"])
    assert s.vocab_timing["cached"]
    np.testing.assert_array_equal(s.class_weights, first)
    s.set_vocabulary(["dog", "cat"])  # order matters: a different key
    assert not s.vocab_timing["cached"]
    assert len(list(tmp_path.glob("*.npy"))) == 2
