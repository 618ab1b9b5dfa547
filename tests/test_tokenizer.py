"""The offline CLIP tokenizer (`build_clip_tokenizer`): known CLIP ids, OpenAI-style truncation, save/reload.

Expected ids are the published CLIP BPE ids (OpenAI CLIP / OpenCLIP `SimpleTokenizer`), not values produced here.
"""

import pytest
from transformers import AutoTokenizer, CLIPTokenizer

from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer


SOT, EOT = 49406, 49407


@pytest.fixture(scope="module")
def tokenizer() -> CLIPTokenizer:
    return build_clip_tokenizer()


@pytest.mark.parametrize(
    "text, ids",
    [
        ("a photo of a cat", [SOT, 320, 1125, 539, 320, 2368, EOT]),
        ("a photo of a dog", [SOT, 320, 1125, 539, 320, 1929, EOT]),
        ("hello world", [SOT, 3306, 1002, EOT]),
        ("Hello, World!", [SOT, 3306, 267, 1002, 256, EOT]),
        ("", [SOT, EOT]),
    ],
)
def test_known_clip_ids(tokenizer, text, ids):
    assert tokenizer(text)["input_ids"] == ids


def test_vocabulary_and_special_tokens(tokenizer):
    assert len(tokenizer) == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (SOT, EOT, EOT)
    assert tokenizer.model_max_length == 77
    # CLIP lower-cases and collapses whitespace before BPE
    assert tokenizer("  A   PHOTO of a\tCat ")["input_ids"] == tokenizer("a photo of a cat")["input_ids"]


def test_truncation_keeps_end_token_last(tokenizer):
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
    text = " ".join(words[i % len(words)] for i in range(200))
    full = tokenizer(text)["input_ids"]
    assert len(full) == 202  # one token per word + SOT + EOT
    truncated = tokenizer(text, truncation=True, max_length=77, padding="max_length")
    ids = truncated["input_ids"]
    assert len(ids) == 77
    # OpenAI clip.tokenize(truncate=True): the first 76 tokens, then the end token in the last slot
    assert ids[:76] == full[:76]
    assert ids[-1] == EOT
    assert sum(truncated["attention_mask"]) == 77


def test_padding_uses_end_token(tokenizer):
    encoded = tokenizer("a photo of a cat", padding="max_length", max_length=77, truncation=True)
    assert encoded["input_ids"][:7] == [SOT, 320, 1125, 539, 320, 2368, EOT]
    assert encoded["input_ids"][7:] == [EOT] * 70
    assert encoded["attention_mask"] == [1] * 7 + [0] * 70
    # first-EOT pooling position is the real end of the text
    assert encoded["input_ids"].index(EOT) == 6


def test_save_and_reload_keeps_context_77(tmp_path):
    tokenizer = build_clip_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(reloaded, CLIPTokenizer)
    assert reloaded.model_max_length == 77
    assert reloaded("a photo of a cat")["input_ids"] == [SOT, 320, 1125, 539, 320, 2368, EOT]
    long_text = "word " * 200
    assert len(reloaded(long_text, truncation=True)["input_ids"]) == 77
    assert reloaded(long_text, truncation=True)["input_ids"][-1] == EOT


def test_model_max_length_is_configurable():
    tokenizer = build_clip_tokenizer(model_max_length=32)
    ids = tokenizer("word " * 100, truncation=True)["input_ids"]
    assert len(ids) == 32 and ids[-1] == EOT
