"""Corpus preparation: real media, broken members, caption metadata, CLIs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from datasets import Value, Video

from modeling_tvtsv2.data.corpus_builders import build_caption_corpus, build_transcript_corpus, find_transcript_pairs
from modeling_tvtsv2.video_decoding_tvtsv2 import VideoProbeError, probe_video
from modeling_tvtsv2.data.schema import load_corpus

from conftest import HANG_GUARD_SECONDS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
OBAMA = DATA / "obama_speech.mp4"
OBAMA_SRT = DATA / "obama_speech.pocketsphinx.srt"


def make_video(path: Path, seconds: float = 2.0, fps: int = 5, size: int = 32, codec: str = "mpeg4") -> Path:
    """A small real video: a grey level ramp, ``seconds * fps`` frames."""
    frames = int(seconds * fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps, 1))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            array = np.full((size, size, 3), int(255 * i / max(frames - 1, 1)), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def srt(*cues: tuple[float, float, str]) -> str:
    def stamp(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "\n".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n" for i, (a, b, text) in enumerate(cues, start=1))


def test_probe_real_and_broken(tmp_path):
    probe = probe_video(OBAMA)
    # Header: 105 frames at 11.94 fps = 8.7 s; measured from packets it must be close.
    assert 8.5 < probe.duration < 9.0
    assert (probe.width, probe.height) == (320, 240)
    assert probe.num_packets == 105

    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(OBAMA.read_bytes()[: OBAMA.stat().st_size // 2])
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("I am not a video\n" * 20, encoding="utf-8")
    for bad in (truncated, zero, text, tmp_path / "missing.mp4"):
        with pytest.raises(VideoProbeError, match=bad.name):
            probe_video(bad)


def test_transcript_corpus_from_real_media(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(OBAMA, videos / "obama_speech.mp4")
    shutil.copy(OBAMA_SRT, videos / "obama_speech.pocketsphinx.srt")  # "<stem>.<tag>.srt" is found too
    out = tmp_path / "corpus"
    report = build_transcript_corpus(videos, out)
    assert report.num_rows == {"train": 1}
    assert report.skipped == []
    assert report.timing == "segments"
    assert (out / "README.md").is_file()
    assert json.loads((out / "build_report.json").read_text())["num_rows"] == {"train": 1}

    dataset = load_corpus(out)
    assert dataset.features["video"] == Value("string")  # paths kept by default
    row = dataset[0]
    assert row["video"] == str((videos / "obama_speech.mp4").resolve())
    assert row["video_id"] == "obama_speech"
    assert 8.5 < row["duration"] < 9.0
    assert [s["text"] for s in row["segments"]] == [
        "today i",
        "have to two years of negotiations",
        "united states together or international partners",
        "has achieved some",
    ]
    assert row["segments"][2]["start"] == pytest.approx(4.3)
    assert row["segments"][2]["end"] == pytest.approx(7.46)

    # Embedded variant: the bytes are the file's bytes.
    embedded = load_corpus(build_transcript_corpus(videos, tmp_path / "embedded", embed_videos=True).output_dir)
    assert isinstance(embedded.features["video"], Video)
    assert embedded[0]["video"]["bytes"] == OBAMA.read_bytes()


def test_transcript_corpus_skips_and_counts_broken_members(tmp_path):
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    good_srt = srt((0.2, 1.0, "hello there"), (1.2, 1.8, "general kenobi"))
    for name in ("good_a", "sub/good_b"):
        make_video(videos / f"{name}.mp4")
        (videos / f"{name}.srt").write_text(good_srt, encoding="utf-8")
    # unreadable videos, each with a valid transcript
    (videos / "truncated.mp4").write_bytes(OBAMA.read_bytes()[:40_000])
    (videos / "zero.mp4").write_bytes(b"")
    (videos / "text.mp4").write_text("plain text pretending to be a video\n", encoding="utf-8")
    for name in ("truncated", "zero", "text"):
        (videos / f"{name}.srt").write_text(good_srt, encoding="utf-8")
    # transcript problems on good videos
    make_video(videos / "no_words.mp4")
    (videos / "no_words.srt").write_text(srt((0.0, 1.0, "<i></i>"), (1.0, 2.0, "  ")), encoding="utf-8")
    make_video(videos / "garbage.mp4")
    (videos / "garbage.srt").write_text("nothing here looks like a subtitle\n", encoding="utf-8")
    make_video(videos / "orphan.mp4")

    out = tmp_path / "corpus"
    report = build_transcript_corpus(videos, out, embed_videos=True, num_workers=2)  # probes in 2 processes
    assert report.num_rows == {"train": 2}
    assert report.skipped_counts == {
        "unreadable_video": 3,
        "no_words": 1,
        "unparsable_transcript": 1,
        "no_transcript": 1,
    }
    skipped_names = {Path(m.source).stem: m.reason for m in report.skipped}
    assert skipped_names["truncated"] == "unreadable_video"
    assert skipped_names["orphan"] == "no_transcript"
    dataset = load_corpus(out)
    assert sorted(dataset["video_id"]) == ["good_a", "sub/good_b"]
    row = dataset[0]
    assert 1.8 < row["duration"] < 2.3  # 10 frames at 5 fps
    assert row["segments"][1] == {"start": pytest.approx(1.2), "end": pytest.approx(1.8), "text": "general kenobi"}
    card = (out / "README.md").read_text()
    assert "unreadable_video" in card and "truncated.mp4" in card

    with pytest.raises(FileExistsError):
        build_transcript_corpus(videos, out)


def test_word_level_sources_give_a_words_corpus(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "asr.mp4")
    (videos / "asr.json").write_text(
        json.dumps({"subtitles": [{"word": "one", "time": 0.5}, {"word": "two", "time": 1.5}]}), encoding="utf-8"
    )
    make_video(videos / "cues.mp4")
    (videos / "cues.srt").write_text(srt((0.0, 1.0, "alpha beta")), encoding="utf-8")
    report = build_transcript_corpus(videos, tmp_path / "out", validation_size=1)
    assert report.timing == "words"
    assert report.num_rows == {"train": 1, "validation": 1}
    rows = {r["video_id"]: r for split in ("train", "validation") for r in load_corpus(tmp_path / "out", split)}
    assert rows["asr"]["words"] == [{"word": "one", "time": 0.5}, {"word": "two", "time": 1.5}]
    # the cue [0, 1] "alpha beta" is spread: words at 0.25 and 0.75
    assert rows["cues"]["words"] == [{"word": "alpha", "time": 0.25}, {"word": "beta", "time": 0.75}]


def test_next_candidate_when_the_first_is_not_a_transcript(tmp_path):
    videos = tmp_path / "videos"  # the output may not lie inside the videos folder (issue 21)
    videos.mkdir()
    make_video(videos / "clip.mp4")
    (videos / "clip.info.json").write_text('{"title": "youtube-dl metadata"}', encoding="utf-8")
    (videos / "clip.en.vtt").write_text("WEBVTT\n\n00:00.500 --> 00:01.500\nhi there\n", encoding="utf-8")
    report = build_transcript_corpus(videos, tmp_path / "out")
    assert report.skipped == [] and report.num_rows == {"train": 1}
    segments = load_corpus(tmp_path / "out")[0]["segments"]
    assert segments == [{"start": 0.5, "end": 1.5, "text": "hi there"}]


def test_find_pairs_prefers_json_then_vtt_then_srt(tmp_path):
    make_video(tmp_path / "clip.mp4")
    for suffix in (".srt", ".en.vtt", ".json"):
        (tmp_path / f"clip{suffix}").write_text("x", encoding="utf-8")
    assert find_transcript_pairs(tmp_path) == [(tmp_path / "clip.mp4", tmp_path / "clip.json")]


def test_caption_corpus_csv_and_jsonl(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    make_video(folder / "a.mp4")
    make_video(folder / "b.mp4", codec="h264")
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "meta.csv").write_text(
        "path,text,id\n"
        "clips/a.mp4,a grey ramp,A\n"
        "clips/b,\"another, grey ramp\",B\n"
        "clips/broken.mp4,broken,C\n"
        "clips/missing.mp4,missing,D\n"
        "clips/a.mp4,   ,E\n",
        encoding="utf-8",
    )
    report = build_caption_corpus(
        tmp_path / "meta.csv",
        tmp_path / "out",
        video_column="path",
        caption_column="text",
        id_column="id",
        video_suffix=".mp4",
    )
    assert report.num_rows == {"train": 2}
    assert report.skipped_counts == {"unreadable_video": 1, "missing_video": 1, "empty_caption": 1}
    dataset = load_corpus(tmp_path / "out")
    assert dataset["video_id"] == ["A", "B"]
    assert dataset["caption"] == ["a grey ramp", "another, grey ramp"]
    assert all(1.8 < d < 2.3 for d in dataset["duration"])

    (tmp_path / "meta.jsonl").write_text(
        json.dumps({"video": str(folder / "a.mp4"), "caption": "absolute path"}) + "\n", encoding="utf-8"
    )
    report = build_caption_corpus(tmp_path / "meta.jsonl", tmp_path / "out2", embed_videos=True)
    row = load_corpus(tmp_path / "out2")[0]
    assert row["caption"] == "absolute path"
    assert row["video"]["bytes"] == (folder / "a.mp4").read_bytes()


def test_cli_prepare_transcript_corpus(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(OBAMA, videos / "obama_speech.mp4")
    shutil.copy(OBAMA_SRT, videos / "obama_speech.srt")
    (videos / "zero.mp4").write_bytes(b"")
    (videos / "zero.srt").write_text(srt((0, 1, "x")), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "processing/prepare_transcript_corpus.py", "--videos", str(videos),
         "--output", str(tmp_path / "out"), "--embed_videos"],
        cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS,
    )
    assert result.returncode == 0, result.stderr
    assert "skipped 1" in result.stdout and "unreadable_video" in result.stdout
    assert load_corpus(tmp_path / "out")["video_id"] == ["obama_speech"]
    # each report line once (issue 20 item 14: the library's log and the script's print said everything twice)
    combined = result.stdout + result.stderr
    lines = combined.splitlines()
    assert sum("transcript corpus at" in line for line in lines) == 1, combined
    assert sum("zero.mp4" in line for line in lines) == 1, combined


def test_cli_prepare_caption_corpus(tmp_path):
    sys.path.insert(0, str(REPO / "processing"))
    try:
        import prepare_caption_corpus
    finally:
        sys.path.pop(0)
    make_video(tmp_path / "a.mp4")
    (tmp_path / "meta.tsv").write_text("caption\tvideo\nhello world\ta.mp4\n", encoding="utf-8")
    assert prepare_caption_corpus.main(["--metadata", str(tmp_path / "meta.tsv"), "--output", str(tmp_path / "o")]) == 0
    assert load_corpus(tmp_path / "o")["caption"] == ["hello world"]
