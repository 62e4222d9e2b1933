"""sanrt.runtime.tokenizer gives open_clip.tokenize's ids for any text."""
import numpy as np
import open_clip
import pytest
from sanrt.runtime.tokenizer import tokenize
from sanrt.runtime.datasets import DATASET_TITLES, dataset_vocabulary
from sanrt.runtime.vocabulary import VILD_TEMPLATES

TRICKY = [
    "", " ", "\t\n", "a photo of a cat.", "A PHOTO OF A CAT!!!", "It's what they'll've done", "don't",
    "Café déjà vu — naïve façade", "日本語のテキスト", "Ünïcödé ẞ straße", "🙂🚀 emoji 👩‍👩‍👧",
    "&amp;lt;b&amp;gt; bold &quot;x&quot; &#39;y&#39;", "&lt;&gt;&amp;", "mojibake cafÃ©",
    "<start_of_text> hi <END_OF_TEXT>", "x" * 400, "hello " * 100, "3.14159 2026-11-27 1,000,000",
    "tab\tnew\nline   spaces", "traffic light, stoplight", "a/b\\c|d", "\u200b zero width", "ﬁ ligature",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings(text):
    np.testing.assert_array_equal(tokenize([text]), open_clip.tokenize([text]).numpy())


def test_long_text_is_cut_and_ends_with_eot():
    ids = tokenize(["word " * 200])
    assert ids.shape == (1, 77) and ids[0, -1] == 49407 and ids[0, 0] == 49406


def test_other_context_length():
    np.testing.assert_array_equal(tokenize(["a small cat"] * 2, context_length=16),
                                  open_clip.tokenize(["a small cat"] * 2, context_length=16).numpy())


@pytest.mark.parametrize("dataset", sorted(DATASET_TITLES))
def test_every_builtin_vocabulary_with_every_template(dataset):
    texts = [t.format(n) for t in VILD_TEMPLATES for n in dataset_vocabulary(dataset)]
    ours = tokenize(texts)
    assert ours.dtype == np.int32
    np.testing.assert_array_equal(ours, open_clip.tokenize(texts).numpy())
