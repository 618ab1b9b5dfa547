"""The TVTSv2 tokenizer: the real CLIP byte-level BPE tokenizer with the original CLIP text cleaning, offline.

The tokenizer is the one OpenAI CLIP and OpenCLIP use, built offline from the vocabulary file
``bpe_simple_vocab_16e6.txt.gz`` vendored next to this module. That file comes from OpenAI CLIP
(https://github.com/openai/CLIP), MIT licence, Copyright (c) 2021 OpenAI; the copy here was taken from the
``open-clip-torch`` wheel. Context length 77; ``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407; truncation
keeps ``<|endoftext|>`` as the last token, as ``clip.tokenize(..., truncate=True)`` does; padding uses 49407
(OpenCLIP pads with 0: the text tower is causal and pools at the *first* end token, so the padding id does not
change the embedding).

This file is a flat Hub file: it imports no project module.
"""

import gzip
import html
import os
from typing import Any

import regex
from tokenizers import Regex, normalizers
from transformers import CLIPTokenizer


try:  # a dependency of the package; inside try so that transformers' remote-code import check does not demand it
    import ftfy
except ImportError:  # pragma: no cover - exercised only without ftfy installed
    ftfy = None


__all__ = [
    "BPE_VOCAB_FILE",
    "CONTEXT_LENGTH",
    "TVTSv2Tokenizer",
    "build_clip_tokenizer",
    "clean_text",
    "clip_vocabulary",
]

BPE_VOCAB_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpe_simple_vocab_16e6.txt.gz")
CONTEXT_LENGTH = 77
# The CLIP vocabulary: 256 byte symbols, the same with the end-of-word marker, 48,894 merges, 2 special tokens.
_NUM_MERGES = 49152 - 256 - 2


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2/CLIP), in vocabulary order.

    Printable Latin-1 bytes stand for themselves; the other bytes (controls, space, ...) are mapped, in byte
    order, to the code points from 256 upwards so that no symbol is whitespace or a control character.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    # Vocabulary order is the printable bytes first, then the remapped ones (as in CLIP's simple_tokenizer).
    return [symbols[b] for b in printable] + [symbols[b] for b in range(256) if b not in printable]


# `regex` (a transformers dependency), not `re`: the original cleans with `regex`, whose `\s` differs from `re`'s
# (it does not match the separators U+001C..U+001F).
_WHITESPACE_RUNS = regex.compile(r"\s+")


def clean_text(text: str) -> str:
    """The original CLIP/OpenCLIP text cleaning, applied before BPE: ``ftfy.fix_text``, ``html.unescape`` twice,
    strip, whitespace runs to one space, strip, lower-case (so ``"Tom &amp; Jerry"`` is ``"tom & jerry"``)."""
    if ftfy is None:
        raise ImportError("TVTSv2 text cleaning needs ftfy (as the original CLIP tokenizer): pip install ftfy")
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE_RUNS.sub(" ", text).strip().lower()


def _clean_any(text: Any) -> Any:
    """``clean_text`` on a string, or on every string of a (nested) list; other values pass through."""
    if isinstance(text, str):
        return clean_text(text)
    if isinstance(text, (list, tuple)):
        return type(text)(_clean_any(t) for t in text)
    return text


class TVTSv2Tokenizer(CLIPTokenizer):
    """The CLIP tokenizer with the original text cleaning (:func:`clean_text`) in front of it.

    transformers' ``CLIPTokenizer`` only normalises Unicode (NFC), collapses whitespace and lower-cases; the
    original CLIP/OpenCLIP tokenizers first run ``ftfy.fix_text`` and ``html.unescape`` twice, so entities and
    mojibake (``"it&#39;s"``, ``"schÃ¶n"``) gave other ids. Every encoding call (``__call__``, ``encode``,
    ``tokenize``, batches, pairs) cleans its text first; offsets then refer to the cleaned text. The backend's NFC
    step is dropped because the original does not re-normalise after ``html.unescape`` (``ftfy`` already
    NFC-normalises its output). Saved as ``tokenizer_class: "TVTSv2Tokenizer"``; ``AutoTokenizer`` finds it once
    ``modeling_tvtsv2`` is imported, and Hub exports carry it as remote code.
    """

    cleans_text = True

    def __init__(self, vocab: Any = None, merges: Any = None, **kwargs: Any) -> None:
        # Without a vocabulary (and without a tokenizer file to read one from), CLIPTokenizer would build a
        # two-token vocabulary that maps every word to one id: use the CLIP vocabulary shipped with this file.
        if vocab is None and merges is None and not kwargs.get("tokenizer_file") and "tokenizer_object" not in kwargs:
            vocab, merges = clip_vocabulary()
            kwargs.setdefault("model_max_length", CONTEXT_LENGTH)
        super().__init__(vocab=vocab, merges=merges, **kwargs)
        self._tokenizer.normalizer = normalizers.Sequence(
            [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )

    def _encode_plus(self, text, text_pair=None, *args: Any, **kwargs: Any):
        return super()._encode_plus(_clean_any(text), _clean_any(text_pair), *args, **kwargs)


def clip_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The CLIP BPE vocabulary (token -> id) and merges, read from the vendored ``bpe_simple_vocab_16e6.txt.gz``."""
    with gzip.open(BPE_VOCAB_FILE, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    # Line 0 is a version header; the merges follow, most frequent first.
    merges = [tuple(line.split()) for line in lines[1 : 1 + _NUM_MERGES]]
    if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{BPE_VOCAB_FILE} is not the CLIP BPE vocabulary (bad merges)")
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_clip_tokenizer(model_max_length: int = CONTEXT_LENGTH) -> TVTSv2Tokenizer:
    """The CLIP BPE tokenizer (a :class:`TVTSv2Tokenizer`, i.e. a ``CLIPTokenizer`` with the original text
    cleaning), built offline from the vendored vocabulary; the same as ``TVTSv2Tokenizer()``.

    ``"a photo of a cat"`` gives ``[49406, 320, 1125, 539, 320, 2368, 49407]``. Call it with
    ``truncation=True, max_length=77`` to get CLIP's truncation (end token kept last); pad id is 49407.
    """
    vocab, merges = clip_vocabulary()
    # CLIPTokenizer's defaults are CLIP's special tokens (start/end of text; unknown and padding = end of text).
    return TVTSv2Tokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
