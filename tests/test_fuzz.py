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
    w = tiny_segmenter._read_cached(path, (3, tiny_segmenter.bg_embed.shape[-1]))
    assert w is None or (w.shape == (3, tiny_segmenter.bg_embed.shape[-1]) and np.isfinite(w).all())


@given(shape=st.tuples(st.integers(0, 4), st.integers(0, 70)), fill=st.sampled_from([0.0, 1.0, np.nan, np.inf]),
       dtype=st.sampled_from([np.float32, np.float64, np.int32]))
def test_cache_arrays_of_any_shape_or_content(tiny_segmenter, tmp_path_factory, shape, fill, dtype):
    path = tmp_path_factory.mktemp("c") / "entry.npy"
    with np.errstate(invalid="ignore"):
        np.save(path, np.full(shape, fill).astype(dtype))
    w = tiny_segmenter._read_cached(path, (3, tiny_segmenter.bg_embed.shape[-1]))
    assert w is None or (w.shape == (3, tiny_segmenter.bg_embed.shape[-1]) and np.isfinite(w).all())


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_export, tmp_path_factory):
    import logging

    from sanrt.runtime import Segmenter

    logging.getLogger("sanrt").setLevel(logging.ERROR)  # every damaged entry warns; not the point here
    return Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path_factory.mktemp("cache"))
