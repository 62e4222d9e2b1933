"""Fuzzing the files and text sanrt reads (hypothesis): image bytes, vocabulary text, manifest JSON
and vocabulary-cache files. The property is always the same: a value of the documented kind, or a
SanrtError subclass: never another exception, never a silently wrong value.

Bounded in `make test` (the "ci" profile, a few seconds each); `python benchmarks/fuzz.py
--minutes N` runs the same properties for longer.
"""
import copy
import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sanrt.runtime import ExportFolderError, ImageError, VocabularyError, check_vocabulary, load_image
from sanrt.runtime.manifest import validate

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("SANRT_FUZZ_PROFILE", "ci"))


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


SEEDS = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")}


@st.composite
def mutated_image(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@given(data=st.one_of(mutated_image(), st.binary(max_size=512)))
def test_image_bytes_give_an_rgb_image_or_an_image_error(tmp_path, data):
    p = tmp_path / "fuzz.img"
    p.write_bytes(data)
    try:
        img = load_image(p)
    except ImageError:
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 1


@given(text=st.text(max_size=200))
def test_vocabulary_text_gives_distinct_names_or_a_vocabulary_error(text):
    from sanrt.runtime.tokenizer import Tokenizer

    try:
        names = check_vocabulary(text.split(","))
    except VocabularyError:
        return
    assert names and all(n and n == n.strip() for n in names)
    assert len({Tokenizer.clean(n) for n in names}) == len(names)  # the model can tell them apart


@pytest.fixture(scope="module")
def manifest_data(tiny_export):
    return json.loads((tiny_export / "manifest.json").read_text())


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=True) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=6)


@st.composite
def mutated_manifest(draw, base):
    m = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        node, path = m, []
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node)))
            path.append(key)
            parent, node = node, node[key]
        if not path:
            continue
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return m


@given(data=st.data())
def test_manifest_json_is_valid_or_an_export_folder_error(manifest_data, data):
    m = data.draw(mutated_manifest(manifest_data))
    try:
        validate(m)
    except ExportFolderError:
        return
    # accepted: everything the runtime reads is there and of the right kind
    r = m["ranges"]
    assert r["batch"][0] >= 1 and r["classes"][0] >= 1 and r["multiple"] >= 1
    assert all(isinstance(m["sha256"][m["graphs"][g]["file"]], str) for g in ("image", "text", "head"))


@given(data=st.one_of(st.binary(max_size=300), st.builds(lambda a: a.tobytes(), st.just(np.zeros(3)))))
def test_cache_files_are_used_only_when_whole_and_right(tiny_segmenter, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("c") / "entry.npy"
    path.write_bytes(data)
    w = tiny_segmenter.text.read_cached(path, (3, tiny_segmenter.text.bg_embed.shape[-1]))
    assert w is None or (w.shape == (3, tiny_segmenter.text.bg_embed.shape[-1]) and np.isfinite(w).all())


@given(shape=st.tuples(st.integers(0, 4), st.integers(0, 70)), fill=st.sampled_from([0.0, 1.0, np.nan, np.inf]),
       dtype=st.sampled_from([np.float32, np.float64, np.int32]))
def test_cache_arrays_of_any_shape_or_content(tiny_segmenter, tmp_path_factory, shape, fill, dtype):
    path = tmp_path_factory.mktemp("c") / "entry.npy"
    with np.errstate(invalid="ignore"):
        np.save(path, np.full(shape, fill).astype(dtype))
    w = tiny_segmenter.text.read_cached(path, (3, tiny_segmenter.text.bg_embed.shape[-1]))
    assert w is None or (w.shape == (3, tiny_segmenter.text.bg_embed.shape[-1]) and np.isfinite(w).all())


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_export, tmp_path_factory):
    import logging

    from sanrt.runtime import Segmenter

    logging.getLogger("sanrt").setLevel(logging.ERROR)  # every damaged entry warns; not the point here
    return Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def fixture_config(tiny_dev):
    return json.loads((tiny_dev / "tiny_config.json").read_text())


@given(data=st.data())
def test_export_configs_are_a_san_config_or_a_config_error(fixture_config, tmp_path_factory, data):
    """A fixture config with values changed, removed or of other kinds: a SANConfig that passes its
    own checks, or one ConfigError; never another exception (the model is not built: sizes may be huge)."""
    from sanrt.model.config import SANConfig, check_config, from_fixture_config
    from sanrt.runtime.errors import ConfigError

    cfg = data.draw(mutated_manifest(fixture_config))
    path = tmp_path_factory.mktemp("cfg") / "tiny_config.json"
    path.write_text(json.dumps(cfg))
    try:
        c = from_fixture_config(path)
    except ConfigError:
        return
    assert isinstance(c, SANConfig)
    check_config(c)


anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=6),
                     st.binary(max_size=6), st.lists(st.text(max_size=4), max_size=3))


@given(backend=st.one_of(st.sampled_from(["onnxruntime", "openvino", "auto", "tensorrt"]), anything),
       precision=st.one_of(st.sampled_from([None, "fp32", "int8", "bf16"]), anything),
       device=st.one_of(st.sampled_from(["auto", "cpu", "cuda", "CUDA"]), anything),
       threads=st.one_of(st.sampled_from([None, 1, 2]), anything))
def test_segmenter_arguments_of_any_kind(tiny_export, tmp_path_factory, backend, precision, device, threads):
    from sanrt.runtime import SanrtError, Segmenter

    try:
        s = Segmenter(tiny_export, backend=backend, precision=precision, device=device, threads=threads,
                      cache_dir=tmp_path_factory.mktemp("c"))
    except SanrtError:
        return
    assert s.backend in ("onnxruntime", "openvino") and s.precision == (precision or "fp32")


@given(names=st.one_of(anything, st.lists(anything, max_size=4), st.lists(st.text(max_size=12), min_size=1, max_size=4)))
def test_vocabulary_arguments_of_any_kind(tiny_segmenter, names):
    from sanrt.runtime import SanrtError

    try:
        v = tiny_segmenter.vocabulary(names)
    except SanrtError:
        return
    assert len(v) == len(names) and v.class_weights.shape == (len(names) + 1, tiny_segmenter.text.bg_embed.shape[-1])


@given(shape=st.lists(st.integers(0, 5), min_size=0, max_size=4),
       dtype=st.sampled_from([np.uint8, np.float32, np.int64, np.bool_, object]), wrap=st.booleans())
def test_segment_arguments_of_any_kind(tiny_segmenter, shape, dtype, wrap):
    from sanrt.runtime import SanrtError

    vocab = tiny_segmenter.vocabulary(["cat", "dog"])
    arr = np.zeros([s * 9 for s in shape], dtype=dtype)
    try:
        [r] = tiny_segmenter.segment([arr] if wrap else arr, vocab)
    except SanrtError:
        return
    assert r.labels.shape == arr.shape[:2]


class _Tensor:
    def __init__(self, value):
        self.value = value

    def as_numpy(self):
        return self.value


class _Request:
    """What the Python backend hands a model's execute(): named input tensors."""

    def __init__(self, inputs: dict):
        self.inputs = {k: _Tensor(v) for k, v in inputs.items()}

    @staticmethod
    def get_input_tensor_by_name(request, name):
        return request.inputs.get(name)


request_value = st.one_of(
    st.builds(lambda b: np.array([b], dtype=np.object_), st.binary(max_size=40)),
    st.builds(lambda t: np.array([t.encode("utf-8", "surrogatepass")], dtype=np.object_), st.text(max_size=20)),
    st.builds(lambda bs: np.array(bs, dtype=np.object_), st.lists(st.binary(max_size=10), max_size=4)),
    st.builds(lambda s: np.zeros(s, np.uint8), st.lists(st.integers(0, 40), max_size=4)),
    st.builds(lambda s: np.zeros(s, np.float32), st.lists(st.integers(0, 5), max_size=3)))


@given(inputs=st.dictionaries(st.sampled_from(["IMAGE", "IMAGE_RGB", "CLASSES", "DATASET", "EXPAND"]), request_value,
                              max_size=5))
def test_triton_request_inputs_of_any_kind(inputs):
    """The san model's request reading (serving/models.py): an (image, names, expansion) triple or one
    SanrtError, which the model answers as an error response; never another exception."""
    from sanrt.runtime import SanrtError
    from sanrt.serving.models import PipelineModel

    try:
        img, names, expand = PipelineModel._read(_Request, _Request(inputs))
    except SanrtError:
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and names
    assert expand in (None, "coco-all", "coco-stuff")
