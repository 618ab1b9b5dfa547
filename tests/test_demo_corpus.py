"""The generated demo corpus: real video files whose four time windows show what the transcripts say.

The checks look at decoded pixels with hand-written colour rules, not at the generator's own tables."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
from modeling_tvtsv2.data.schema import load_corpus
from modeling_tvtsv2.data.demo_corpus import build_demo_corpus

REPO = Path(__file__).resolve().parents[1]
SENTENCE = re.compile(
    r"^an? (\w+) (square|circle|triangle) (moves left|moves right|moves up|moves down|grows|shrinks)$"
)

# Rough RGB rules for the colour names (decoded MPEG-4 pixels are not exact).
COLOUR_RULES = {
    "red": lambda r, g, b: r > 120 and r > g + 60 and r > b + 60,
    "green": lambda r, g, b: g > 120 and g > r + 50 and g > b + 40,
    "blue": lambda r, g, b: b > 120 and b > r + 50 and b > g + 40,
    "yellow": lambda r, g, b: r > 130 and g > 120 and r > b + 60 and g > b + 60,
    "purple": lambda r, g, b: r > 80 and b > 120 and g < min(r, b) - 25,
    "white": lambda r, g, b: min(r, g, b) > 150,
    "orange": lambda r, g, b: r > 150 and r > g + 40 and g > b + 30,
    "cyan": lambda r, g, b: g > 120 and b > 120 and r < min(g, b) - 50,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    corpus = build_demo_corpus(root, num_videos=8, num_caption_videos=4, seed=3, validation_size=2)
    return corpus


def decode(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        frames, times = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
    return np.stack(frames), np.asarray(times)


def foreground(frame: np.ndarray) -> np.ndarray:
    """Pixels clearly brighter than the dark background."""
    return frame.astype(int).max(axis=-1) > 90


def test_layout_and_splits(demo):
    assert demo.transcript.is_dir() and demo.caption.is_dir()
    raw = demo.root / "raw"
    assert len(list((raw / "transcript").glob("*.mp4"))) == 8
    assert len(list((raw / "transcript").glob("*.srt"))) == 8
    assert len(list((raw / "caption").glob("*.mp4"))) == 4
    # 8 clips: min(2, 8 // 4) = 2 held out; 4 caption clips: min(2, 4 // 4) = 1 held out
    assert (len(load_corpus(demo.transcript)), len(load_corpus(demo.transcript, "validation"))) == (6, 2)
    assert (len(load_corpus(demo.caption)), len(load_corpus(demo.caption, "validation"))) == (3, 1)
    assert all(size < 60_000 for size in map(lambda p: p.stat().st_size, (raw / "transcript").glob("*.mp4")))
    assert (demo.root / "README.md").is_file()


def test_windows_show_what_the_transcripts_say(demo):
    rows = list(load_corpus(demo.transcript)) + list(load_corpus(demo.transcript, "validation"))
    sentences = set()
    for row in rows:
        segments = row["segments"]
        assert len(segments) == 4
        colours = []
        frames, times = decode(row["video"]["bytes"])
        assert 14.0 <= row["duration"] <= 15.5
        for segment in segments:
            match = SENTENCE.match(segment["text"])
            assert match, segment["text"]
            colour, _, action = match.groups()
            colours.append(colour)
            sentences.add(segment["text"])
            inside = np.flatnonzero((times >= segment["start"]) & (times <= segment["end"]))
            assert len(inside) >= 4
            first, last = frames[inside[0]], frames[inside[-1]]
            for frame in (first, last):
                mask = foreground(frame)
                assert mask.sum() > 10
                r, g, b = np.median(frame[mask].reshape(-1, 3), axis=0)
                assert COLOUR_RULES[colour](r, g, b), (segment["text"], (r, g, b))
            ys0, xs0 = np.nonzero(foreground(first))
            ys1, xs1 = np.nonzero(foreground(last))
            if action == "moves left":
                assert xs1.mean() < xs0.mean() - 3
            elif action == "moves right":
                assert xs1.mean() > xs0.mean() + 3
            elif action == "moves up":
                assert ys1.mean() < ys0.mean() - 3
            elif action == "moves down":
                assert ys1.mean() > ys0.mean() + 3
            elif action == "grows":
                assert len(xs1) > len(xs0) * 1.3
            else:
                assert len(xs1) < len(xs0) / 1.3
        assert len(set(colours)) == 4  # the four windows of a clip differ
    assert len(sentences) > 16


def test_sampler_windows_match_the_scenes(demo):
    """With the paper's default window arguments, transcript i of a sample is exactly cue i of the clip."""
    from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer

    tokenizer = build_clip_tokenizer()
    corpus = load_corpus(demo.transcript)
    collator = TVTSv2PretrainingCollator(tokenizer, image_size=32, patch_size=8, mask_ratio=0.5, training=True)
    batch = collator([corpus[i] for i in range(3)])
    assert batch["input_ids"].shape == (3, 4, 77)
    assert batch["pixel_values_videos"].shape == (3, 12, 3, 32, 32)
    assert batch["num_skipped"].tolist() == [0]
    for i in range(3):
        texts = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in batch["input_ids"][i]]
        assert texts == [s["text"] for s in corpus[i]["segments"]]


def test_captions(demo):
    rows = list(load_corpus(demo.caption))
    for row in rows:
        match = SENTENCE.match(row["caption"])
        assert match
        frames, _ = decode(row["video"]["bytes"])
        middle = frames[len(frames) // 2]
        r, g, b = np.median(middle[foreground(middle)].reshape(-1, 3), axis=0)
        assert COLOUR_RULES[match.group(1)](r, g, b)


def test_cache_and_determinism(demo, tmp_path):
    manifest = demo.root / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = build_demo_corpus(demo.root, num_videos=8, num_caption_videos=4, seed=3, validation_size=2)
    assert again == demo and manifest.stat().st_mtime_ns == stamp  # reused, not rebuilt

    other = build_demo_corpus(tmp_path / "copy", num_videos=8, num_caption_videos=0, seed=3, validation_size=2)
    for name in ("clip_00000", "clip_00005"):
        assert (other.root / "raw" / "transcript" / f"{name}.srt").read_text() == (
            demo.root / "raw" / "transcript" / f"{name}.srt"
        ).read_text()
        a, _ = decode((other.root / "raw" / "transcript" / f"{name}.mp4").read_bytes())
        b, _ = decode((demo.root / "raw" / "transcript" / f"{name}.mp4").read_bytes())
        assert np.array_equal(a, b)
    different = build_demo_corpus(tmp_path / "copy", num_videos=8, num_caption_videos=0, seed=4, validation_size=2)
    assert json.loads((different.root / "manifest.json").read_text())["params"]["seed"] == 4
    assert (different.root / "raw" / "transcript" / "clip_00000.srt").read_text() != (
        demo.root / "raw" / "transcript" / "clip_00000.srt"
    ).read_text()


def test_cli(tmp_path):
    sys.path.insert(0, str(REPO / "processing"))
    try:
        import make_demo_corpus
    finally:
        sys.path.pop(0)
    out = tmp_path / "demo"
    assert make_demo_corpus.main(["--output", str(out), "--num_videos", "4", "--num_caption_videos", "2",
                                  "--validation_size", "1"]) == 0
    assert len(load_corpus(out / "transcript")) == 3
