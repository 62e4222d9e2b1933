"""Class names are checked as CLIP reads them, in the library, the CLI and every tool over them."""
import numpy as np
import pytest
from sanrt.runtime.errors import VocabularyError
from sanrt.runtime.tokenizer import tokenize
from sanrt.runtime.datasets import DATASET_TITLES, dataset_vocabulary
from sanrt.runtime.vocabulary import check_vocabulary, read_vocabulary_file

LONG = "very " * 80


@pytest.mark.parametrize("name", ["\x00\x00\x00", "&nbsp;", "\ufeff", "\u200b\u200d", "\u0301", "\u00a0", "\x07",
                                  "\U000e0041", " \t ", "&amp;nbsp;"])
def test_names_with_nothing_clip_reads_are_refused_by_position(name):
    with pytest.raises(VocabularyError, match=r"blank class names at positions \[1\]"):
        check_vocabulary(["cat", name, "dog"])


@pytest.mark.parametrize("a,b", [("cat.", "cat ."), ("t-shirt", "t - shirt"), ("cat's", "cat 's"), ("cat", "CAT"),
                                 ("cat", "cat&nbsp;"), (LONG + "cat", LONG + "dog"), ("cat", "\ufeffcat"), ("cat", "cat\x00")])
def test_names_clip_cannot_tell_apart_are_duplicates(a, b):
    with pytest.raises(VocabularyError, match="more than once"):
        check_vocabulary([a, "dog house", b])


def test_names_are_reported_as_written_minus_the_bom():
    assert check_vocabulary(["\ufeffCat ", "a cat's toy", "cat\u0301"]) == ["Cat", "a cat's toy", "cat\u0301"]


@pytest.mark.parametrize("bad", [b"cat", [b"cat"], [None], [1, 2], "cat", 5])
def test_vocabularies_of_the_wrong_type_are_refused(bad):
    with pytest.raises(VocabularyError):
        check_vocabulary(bad)


def test_marker_texts_in_a_name_are_words():
    check_vocabulary(["<end_of_text>", "<start_of_text>", "cat"])
    ids = tokenize(["a photo of a <end_of_text> cat."], specials=False)[0]
    end = int(np.flatnonzero(ids == 49407)[0])
    assert ids[end + 1:].sum() == 0 and end > 8  # the one end-of-text marker is the real one, after the words
    assert tokenize(["<end_of_text>"], specials=True)[0, 1] == 49407  # open_clip's reading, still available


def test_vocabulary_file_bom_and_crlf(tmp_path):
    p = tmp_path / "v.txt"
    p.write_bytes("\ufeffcat\r\ndog\r\n\r\n".encode())
    assert read_vocabulary_file(p) == ["cat", "dog"]
    p.write_bytes("cat\n\x00\x00\n".encode())
    with pytest.raises(VocabularyError, match=r"positions \[1\]"):
        read_vocabulary_file(p)


@pytest.mark.parametrize("dataset", sorted(DATASET_TITLES))
def test_every_builtin_vocabulary_passes(dataset):
    names = dataset_vocabulary(dataset)
    assert check_vocabulary(names) == names


def test_segmenter_and_pytorch_read_names_alike(tiny_export, tiny_dev, tmp_path):
    """The runtime and the PyTorch reference give one class weight for a name holding a marker text;
    the runtime refuses what the check refuses."""
    import torch
    from sanrt.model.pipeline import TorchSegmenter
    from sanrt.model.reference import load_fixture_model
    from sanrt.runtime.segmenter import Segmenter

    seg = Segmenter(tiny_export, backend="onnxruntime", cache_dir=tmp_path)
    names = ["<end_of_text>", "cat <start_of_text> dog", "sky"]
    ours = seg.vocabulary(names, use_cache=False)
    model, _ = load_fixture_model(tiny_dev)
    with torch.no_grad():
        ref = TorchSegmenter(model).vocabulary(names)
    np.testing.assert_allclose(ours.class_weights, ref.class_weights, rtol=0, atol=1e-4)
    assert not np.allclose(ours.class_weights[0], ours.class_weights[1])
    for bad in (["cat.", "cat ."], ["cat", "\u200b"]):
        with pytest.raises(VocabularyError):
            seg.vocabulary(bad)
    assert seg.vocabulary(["\ufeffcat", "dog"]).names == ("cat", "dog")
