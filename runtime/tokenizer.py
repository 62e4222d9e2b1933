"""CLIP's byte-level BPE tokenizer without torch: the same ids as `open_clip.tokenize`.

Text is cleaned as open_clip's default does (ftfy, HTML entities unescaped twice, whitespace
collapsed, lower case), split with CLIP's pattern, mapped byte-wise to unicode symbols and merged by
BPE rank. Every sequence is [<start_of_text>] + tokens + [<end_of_text>], zero-padded to the context
length; longer ones are cut and end with <end_of_text>.

With specials=False the texts `<start_of_text>` and `<end_of_text>` typed in a text are words like
any other (class names are text; only the tokenizer adds the real markers); the default, True,
matches open_clip, which reads them as the markers.
"""
from __future__ import annotations

import gzip
import html
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
import regex

DEFAULT_BPE = Path(__file__).with_name("data") / "bpe_simple_vocab_16e6.txt.gz"
SOT, EOT = "<start_of_text>", "<end_of_text>"
_NUM_MERGES = 49152 - 256 - 2  # CLIP uses the first 48894 merges of the file
CACHE_CHARS = 4_000_000  # characters of BPE results kept, then the cache starts over: tens of MB at most


@lru_cache()
def byte_symbols() -> dict[int, str]:
    """Bytes -> printable unicode symbols: printable Latin-1 bytes map to themselves, the rest to
    code points from 256 up, so no byte becomes whitespace or a control character."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Tokenizer:
    def __init__(self, bpe_path: str | Path = DEFAULT_BPE):
        try:
            lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the BPE vocabulary {bpe_path}: {e}") from None
        merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
        if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{bpe_path} is not CLIP's BPE vocabulary ({_NUM_MERGES} merges of two symbols expected)")
        symbols = list(byte_symbols().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot, self.eot = self.ids[SOT], self.ids[EOT]
        self._cache, self._cache_chars = {}, 0
        words = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
        self._split = regex.compile(rf"{SOT}|{EOT}|{words}", regex.IGNORECASE)
        self._split_text = regex.compile(words, regex.IGNORECASE)

    @staticmethod
    def clean(text: str) -> str:
        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        return " ".join(text.split()).lower()

    def _bpe(self, word: str) -> str:
        """Merge the symbols of one pre-token by rank; returns space-separated BPE tokens."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = set(zip(parts, parts[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        out = " ".join(parts)
        self._cache_chars += 2 * len(word) + 100  # the word, its tokens, the dict entry
        if self._cache_chars > CACHE_CHARS:  # a long-running server sees unbounded distinct words
            self._cache.clear()
            self._cache_chars = 0
        self._cache[word] = out
        return out

    def encode(self, text: str, specials: bool = True, limit: int | None = None) -> list[int]:
        """Token ids of `text`; with `limit`, ids past the first `limit` are not computed (each word gives
        at least one token, so the words after are cut by the context anyway: the same ids)."""
        symbols = byte_symbols()
        ids = []
        for piece in (self._split if specials else self._split_text).finditer(self.clean(text)):
            if limit is not None and len(ids) >= limit:
                break
            piece = piece.group()
            if specials and piece in (SOT, EOT):
                ids.append(self.ids[piece])
                continue
            word = "".join(symbols[b] for b in piece.encode("utf-8"))
            ids.extend(self.ids[t] for t in self._bpe(word).split(" "))
        return ids

    def __call__(self, texts, context_length: int = 77, specials: bool = True) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), context_length), dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text, specials, limit=context_length), self.eot]
            if len(ids) > context_length:
                ids = ids[:context_length]
                ids[-1] = self.eot
            out[row, : len(ids)] = ids
        return out


@lru_cache()
def default_tokenizer() -> Tokenizer:
    return Tokenizer()


def tokenize(texts, context_length: int = 77, specials: bool = True) -> np.ndarray:
    """Token ids [N, context_length] (int32), equal to `open_clip.tokenize(texts, context_length)`
    (with specials=False, marker texts are words: see the module docstring)."""
    return default_tokenizer()(texts, context_length, specials)
