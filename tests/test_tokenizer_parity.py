"""Text cleaning parity with the original CLIP tokenizer (issue 9, item 10).

The reference ids come from an independent implementation of the original `SimpleTokenizer` written here from its
algorithm (ftfy + html.unescape twice, whitespace cleaning, lower-case, the CLIP split pattern, byte-level BPE by
merge rank over the vendored `bpe_simple_vocab_16e6.txt.gz`), not from the code under test.
"""

import gzip
import html
from pathlib import Path

import ftfy
import pytest
import regex
from transformers import AutoProcessor, AutoTokenizer

import modeling_tvtsv2  # noqa: F401 - registers the Auto classes
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor
from modeling_tvtsv2.tokenization_tvtsv2 import TVTSv2Tokenizer, build_clip_tokenizer


VOCAB = Path(modeling_tvtsv2.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"

TRICKY = [
    "Tom &amp; Jerry",
    "it&#39;s fine",
    "&amp;amp;",
    "&amp;amp;amp; three levels",
    "&lt;b&gt;bold&lt;/b&gt;",
    "schÃ¶n und grÃ¼n",  # mojibake: UTF-8 read as Latin-1
    "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.",
    "caf\u00e9 vs cafe\u0301",  # precomposed vs combining accent
    "e&#769; after unescape",  # an entity that yields a combining accent (no NFC after unescape)
    "🎸 playing guitar 😀👍🏽",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\r\nlines\u00a0nbsp\u2003em",
    "separators\x1cbetween\x1fwords",
    "CAPITAL Letters And ΣΟΦΙΑ ΟΔΟΣ",
    "ﬁnancial ligature and full-width ＡＢＣ",
    "he's they're we've I'm you'll she'd",
    "numbers 12345 and 3.14",
    "",
    "   ",
    "a " * 100,  # truncated
    # markup next to an entity: ftfy unescapes only text without "<"/">", so these need html.unescape (issue 22)
    "<b>Tom &amp; Jerry</b>",
    "it&#39;s <i>fine</i>",
    "<p>caf&eacute; &lt;3 &amp;amp; more</p>",
]
TAGGED = TRICKY[-3:]


# ---- the original algorithm, written independently --------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


class _OriginalTokenizer:
    def __init__(self):
        lines = gzip.open(VOCAB).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
        merges = [tuple(line.split()) for line in lines]
        byte_map = _bytes_to_unicode()
        # vocabulary order: the kept bytes first, then the remapped ones (the order of the original's dict)
        symbols = [byte_map[b] for b in _KEEP] + [byte_map[b] for b in range(256) if b not in _KEEP]
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.ranks = {merge: i for i, merge in enumerate(merges)}
        self.byte_map = byte_map
        self.pattern = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def _bpe(self, token: str) -> list[str]:
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode(self, text: str, context_length: int = 77) -> list[int]:
        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        text = regex.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for token in regex.findall(self.pattern, text):
            mapped = "".join(self.byte_map[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[piece] for piece in self._bpe(mapped))
        ids = [self.encoder["<|startoftext|>"], *ids, self.encoder["<|endoftext|>"]]
        if len(ids) > context_length:  # clip.tokenize(truncate=True): cut, last token forced to the end token
            ids = ids[:context_length]
            ids[-1] = self.encoder["<|endoftext|>"]
        return ids


_KEEP = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]


@pytest.fixture(scope="module")
def original() -> _OriginalTokenizer:
    return _OriginalTokenizer()


@pytest.fixture(scope="module")
def tokenizer() -> TVTSv2Tokenizer:
    return build_clip_tokenizer()


def _ids(encoding) -> list[int]:
    ids = encoding["input_ids"]
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    return ids


def test_reference_implementation_matches_published_clip_ids(original):
    assert original.encode("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_tokenizer_matches_the_original(tokenizer, original, text):
    assert _ids(tokenizer(text, truncation=True, max_length=77)) == original.encode(text)


def test_tagged_texts_need_more_than_ftfy():
    # the tagged texts test html.unescape: ftfy alone leaves their entities in place
    for text in TAGGED:
        assert "&" in ftfy.fix_text(text) and ftfy.fix_text(text) != html.unescape(html.unescape(ftfy.fix_text(text)))


def test_tagged_texts_get_the_ids_of_the_original(tokenizer, original):
    assert tokenizer("<b>Tom &amp; Jerry</b>")["input_ids"] == original.encode("<b>Tom & Jerry</b>")
    assert tokenizer.tokenize("it&#39;s <i>fine</i>") == ["it</w>", "'s</w>", "<</w>", "i</w>", "></w>", "fine</w>",
                                                          "</</w>", "i</w>", "></w>"]  # fmt: skip


def test_batches_pairs_and_tokenize_are_cleaned(tokenizer, original):
    batch = tokenizer(TRICKY, truncation=True, max_length=77)["input_ids"]
    assert [list(ids) for ids in batch] == [original.encode(text) for text in TRICKY]
    assert tokenizer.encode("Tom &amp; Jerry") == original.encode("Tom &amp; Jerry")
    assert tokenizer.tokenize("it&#39;s") == ["it</w>", "'s</w>"]


def test_processor_matches_the_original(original):
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    out = processor(text=[TRICKY[:3], TRICKY[3:6]])["input_ids"]
    for row, texts in zip(out, [TRICKY[:3], TRICKY[3:6]]):
        for ids, text in zip(row, texts):
            expected = original.encode(text)
            assert ids[: len(expected)].tolist() == expected


def test_cleaning_survives_save_and_reload(tmp_path, original):
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    processor.save_pretrained(tmp_path)
    for loaded in (AutoTokenizer.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path).tokenizer):
        assert type(loaded) is TVTSv2Tokenizer
        for text in TRICKY[:9]:
            assert _ids(loaded(text, truncation=True, max_length=77)) == original.encode(text)


def test_processor_cleans_for_a_plain_clip_tokenizer(tmp_path, original):
    # a folder saved before TVTSv2Tokenizer existed holds a plain CLIPTokenizer: the processor cleans the text
    from transformers import CLIPTokenizer

    build_clip_tokenizer().save_pretrained(tmp_path)
    plain = CLIPTokenizer.from_pretrained(tmp_path)
    assert type(plain) is CLIPTokenizer
    processor = TVTSv2Processor(tokenizer=plain)
    for text in ("Tom &amp; Jerry", "it&#39;s fine", "schÃ¶n und grÃ¼n", *TAGGED):
        expected = original.encode(text)
        assert processor(text=text)["input_ids"][0, : len(expected)].tolist() == expected


_REMOTE_TOKENIZER = """
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):  # the package is not importable, as on a machine without it
    def find_spec(self, name, path=None, target=None):
        if name == "modeling_tvtsv2" or name.startswith("modeling_tvtsv2."):
            raise ImportError(f"blocked: {name}")

sys.meta_path.insert(0, Block())
from transformers import AutoProcessor, AutoTokenizer

texts = json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
print(json.dumps({
    "class": type(tokenizer).__name__,
    "tokenizer": [tokenizer(t, truncation=True, max_length=77)["input_ids"] for t in texts],
    "processor": processor(text=texts, padding=True)["input_ids"].tolist(),
}))
"""


@pytest.mark.slow  # a subprocess loading remote code: ~30 s on a shared machine
def test_hub_export_tokenizer_cleans_as_remote_code(tmp_path, original):
    import json
    import os
    import subprocess
    import sys

    import torch

    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
    from modeling_tvtsv2.tools.hub_export import save_hub_folder

    torch.manual_seed(0)
    hub = save_hub_folder(
        TVTSv2Model(TVTSv2Config.from_preset("tiny")), TVTSv2Processor.from_defaults(image_size=32, num_frames=2),
        tmp_path / "hub",
    )  # fmt: skip
    texts = TRICKY[:6]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TOKENIZERS_PARALLELISM="false")
    completed = subprocess.run(
        [sys.executable, "-c", _REMOTE_TOKENIZER, str(hub), json.dumps(texts)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    assert out["class"] == "TVTSv2Tokenizer"
    expected = [original.encode(text) for text in texts]
    assert out["tokenizer"] == expected
    assert [row[: len(ids)] for row, ids in zip(out["processor"], expected)] == expected
