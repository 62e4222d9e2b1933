"""Prompt templates and class vocabularies (torch-free)."""
from __future__ import annotations

# The 14 "vild" templates SAN averages over (CLIP_TEMPLATE_SET = "vild"), in SAN's order.
VILD_TEMPLATES = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


import string
import unicodedata

from .errors import VocabularyError


def template_problem(t) -> str | None:
    """Why `t` is no prompt template (exactly one {} slot for the class name, no named or numbered
    field, valid braces), or None."""
    if not isinstance(t, str):
        return f"template {t!r} is not text"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
    except ValueError as e:
        return f"template {t!r} is not a format string: {e}"
    if fields != [""]:
        return f"template {t!r} must hold exactly one {{}} slot for the class name (and no named field)"
    return None

CONTEXT_LENGTH = 77  # CLIP's text context: tokens past it are cut
# Longer names are refused: CLIP keeps at most 75 of a name's tokens (a few hundred characters), and
# BPE time grows with the square of a word's length (a 4000-letter random word: 1.3 s on a 2-core Zen 4)
MAX_NAME_CHARS = 1000
MAX_VOCAB_FILE_CHARS = 10_000_000


def _visible(name: str) -> bool:
    """A letter, digit, punctuation mark or symbol: not only spaces, control and format characters
    (NUL, zero-width, BOM, tags) or combining marks with nothing to combine with."""
    return any(unicodedata.category(c)[0] in "LNPS" for c in name)


def _show(name: str, width: int = 40) -> str:
    return repr(name if len(name) <= width else name[: width - 1] + "\u2026")


def _token_key(name: str, templates, context_length: int, tok) -> bytes:
    """What CLIP reads of a name: its token ids in every template, after the context-length cut."""
    return tok([t.format(name) for t in templates], context_length, specials=False).tobytes()


def expand_vocabulary(names, mode: str, templates=VILD_TEMPLATES, context_length: int = CONTEXT_LENGTH,
                      tokenizer=None) -> tuple[list[str], list[str]]:
    """(user names, distractors) for vocabulary expansion as SAN's predictor does it: the user's
    names first (checked as check_vocabulary does), then each name of the expansion set that CLIP can
    tell apart from all of them (one it cannot is skipped, not refused). No user names: the whole
    set is the vocabulary and nothing is folded (the official behaviour)."""
    from .datasets import expansion_names
    from .tokenizer import default_tokenizer

    extra = expansion_names(mode)
    if isinstance(names, (list, tuple)) and not names:
        return check_vocabulary(extra, templates, context_length, tokenizer), []
    names = check_vocabulary(names, templates, context_length, tokenizer)
    tok = tokenizer or default_tokenizer()
    taken = {_token_key(n, templates, context_length, tok) for n in names}
    return names, [n for n in extra if _token_key(n, templates, context_length, tok) not in taken]


def check_vocabulary(names, templates=VILD_TEMPLATES, context_length: int = CONTEXT_LENGTH, tokenizer=None) -> list[str]:
    """Names as CLIP reads them. Each is stripped of surrounding spaces and byte-order marks and kept
    as written otherwise; refused: an empty vocabulary, a name that is not text, a name with no visible
    character or none left after the tokenizer's cleaning, and names CLIP cannot tell apart: equal
    token ids in every template after the context-length cut (case, spacing, HTML entities,
    punctuation spacing, long names equal in their kept tokens), since their class weights are
    identical and the later one could never win a pixel. CLIP's special tokens typed in a name are
    text (the tokenizer reads names with specials=False)."""
    from .tokenizer import default_tokenizer

    if isinstance(names, (str, bytes)):
        raise VocabularyError("a vocabulary is a list of class names, not one string (split it first)")
    try:
        names = list(names)
    except TypeError:
        raise VocabularyError(f"a vocabulary is a list of class names, not {type(names).__name__}") from None
    if not names:
        raise VocabularyError("the vocabulary is empty: name at least one class")
    wrong = [i for i, n in enumerate(names) if not isinstance(n, str)]
    if wrong:
        raise VocabularyError(f"class names must be text; position {wrong[0]} is {type(names[wrong[0]]).__name__}")
    names = [n.strip().strip("\ufeff").strip() for n in names]
    long = [i for i, n in enumerate(names) if len(n) > MAX_NAME_CHARS]
    if long:
        raise VocabularyError(f"class names at positions {long[:5]} are over {MAX_NAME_CHARS} characters (CLIP reads "
                              f"at most {context_length - 2} tokens of a text): shorten them")
    tok = tokenizer or default_tokenizer()
    blank = [i for i, n in enumerate(names) if not n or not _visible(n) or not tok.encode(n, specials=False)]
    if blank:
        raise VocabularyError(f"the vocabulary has blank class names at positions {blank} (nothing CLIP can read: "
                              "empty, spaces, control or invisible characters)")
    seen: dict[bytes, str] = {}
    dups = []
    for n in names:
        key = _token_key(n, templates, context_length, tok)
        if key in seen:
            dups.append(_show(n) if seen[key] == n else f"{_show(seen[key])} = {_show(n)}")
        seen.setdefault(key, n)
    if dups:
        raise VocabularyError(f"the vocabulary names these classes more than once: {', '.join(dict.fromkeys(dups))} "
                              "(CLIP reads them as the same tokens: it ignores case, spacing and what is past "
                              f"its {context_length}-token context)")
    return names


def read_vocabulary_file(path) -> list[str]:
    """One class name a line, in class-index order; blank lines are skipped; a UTF-8 byte-order mark
    (as Windows editors write) is dropped."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            # bounded: a vocabulary of names CLIP can read is far smaller (ADE-847 is 12 kB)
            text = f.read(MAX_VOCAB_FILE_CHARS + 1)
        if len(text) > MAX_VOCAB_FILE_CHARS:
            raise VocabularyError(f"vocabulary file {path} is over {MAX_VOCAB_FILE_CHARS // 1_000_000} million characters: "
                                  "not a list of class names")
        lines = [line.strip() for line in text.splitlines()]
    except FileNotFoundError:
        raise VocabularyError(f"vocabulary file not found: {path}") from None
    except IsADirectoryError:
        raise VocabularyError(f"vocabulary file {path} is a folder, not a text file") from None
    except UnicodeDecodeError:
        raise VocabularyError(f"vocabulary file {path} is not UTF-8 text") from None
    except OSError as e:
        raise VocabularyError(f"vocabulary file {path} cannot be read: {e.strerror or e}") from None
    return check_vocabulary([line for line in lines if line])
