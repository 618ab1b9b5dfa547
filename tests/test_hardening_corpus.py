"""Corpus tools under bad input and existing outputs (issue 10 items 2-5).

Real PyAV-encoded videos, real 🤗 Datasets; hostile inputs are written by hand.
"""

from __future__ import annotations

import json
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from modeling_tvtsv2.data.corpus_builders import build_caption_corpus, build_transcript_corpus, read_caption_metadata
from modeling_tvtsv2.video_decoding_tvtsv2 import probe_video, robust_timestamp_span
from modeling_tvtsv2.data.schema import load_corpus
from modeling_tvtsv2.tools.output_folders import OutputExistsError, OutputFolderError


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "processing"))
try:
    import prepare_transcript_corpus
finally:
    sys.path.pop(0)


def make_video(path: Path, frames: int = 10, fps: int = 5, title: str | None = None, outlier_s: float | None = None):
    """A small real video (mpeg4). `outlier_s`: the last packet is muxed with that timestamp (a damaged file)."""
    with av.open(str(path), mode="w") as container:
        if title is not None:
            container.metadata["title"] = title
        stream = container.add_stream("mpeg4", rate=Fraction(fps, 1))
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        packets = []
        for i in range(frames):
            array = np.full((32, 32, 3), int(255 * i / max(frames - 1, 1)), dtype=np.uint8)
            packets += stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24"))
        packets += stream.encode()
        if outlier_s is not None:
            packets[-1].pts = packets[-1].dts = int(outlier_s / packets[-1].time_base)
        for packet in packets:
            container.mux(packet)
    return path


def srt(*cues: tuple[float, float, str]) -> str:
    def stamp(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "\n".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n" for i, (a, b, text) in enumerate(cues, start=1))


def _transcript_folder(root: Path, names=("a", "b")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        make_video(root / f"{name}.mp4")
        (root / f"{name}.srt").write_text(srt((0.2, 1.0, f"hello {name}"), (1.0, 1.8, "world")), encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------------------------------
# Item 2: existing outputs


def test_failed_overwrite_keeps_the_old_corpus(tmp_path):
    videos = _transcript_folder(tmp_path / "videos")
    out = tmp_path / "corpus"
    build_transcript_corpus(videos, out)
    old = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.mp4").write_bytes(b"not a video")
    (broken / "x.srt").write_text(srt((0, 1, "x")), encoding="utf-8")
    with pytest.raises(ValueError, match="no usable"):
        build_transcript_corpus(broken, out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == old
    assert load_corpus(out)["video_id"] == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "corpus", "videos"]  # no staging left over


def test_overwrite_replaces_only_after_success(tmp_path):
    videos = _transcript_folder(tmp_path / "videos")
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(OutputExistsError):
        build_transcript_corpus(videos, out)
    assert (out / "stale.txt").read_text() == "old"
    build_transcript_corpus(videos, out, overwrite=True)
    assert not (out / "stale.txt").exists() and load_corpus(out)["video_id"] == ["a", "b"]


@pytest.mark.parametrize("where", ["equal", "parent"])
def test_output_holding_the_videos_is_refused_even_with_overwrite(tmp_path, where, capsys):
    videos = _transcript_folder(tmp_path / "data" / "videos")
    out = videos if where == "equal" else tmp_path / "data"
    with pytest.raises(OutputFolderError):
        build_transcript_corpus(videos, out, overwrite=True)
    assert sorted(p.name for p in videos.iterdir()) == ["a.mp4", "a.srt", "b.mp4", "b.srt"]
    # the command line says so in one line, exit code 2
    assert prepare_transcript_corpus.main(["--videos", str(videos), "--output", str(out), "--overwrite"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --output") and len(error.splitlines()) == 1
    assert sorted(p.name for p in videos.iterdir()) == ["a.mp4", "a.srt", "b.mp4", "b.srt"]


def test_caption_output_holding_a_listed_video_is_refused(tmp_path):
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    make_video(data / "clips" / "a.mp4")
    metadata = tmp_path / "meta.csv"
    metadata.write_text(f"video,caption\n{data / 'clips' / 'a.mp4'},a grey ramp\n", encoding="utf-8")
    with pytest.raises(OutputFolderError, match="contains the input"):
        build_caption_corpus(metadata, data, overwrite=True)
    assert (data / "clips" / "a.mp4").is_file()


# ------------------------------------------------------------------------------------------------------------------
# Item 3: one bad row must not abort a build


HOSTILE_TRANSCRIPTS = {
    "surrogate": '{"subtitles": [{"word": "hi \\ud83d", "time": 0.5}, {"word": "there", "time": 1.0}]}',
    "huge_float": '{"subtitles": [{"word": "hi", "time": 1e400}]}',
    "huge_int": '{"subtitles": [{"word": "hi", "time": ' + "9" * 5000 + "}]}",
    "deep": "[" * 100_000 + "]" * 100_000,
    "nan": '{"subtitles": [{"word": "hi", "time": NaN}, {"word": "x", "time": 0.5}]}',
    "infinity": '{"subtitles": [{"word": "hi", "time": Infinity}]}',
}


def test_hostile_transcripts_are_skipped_and_reported(tmp_path):
    videos = _transcript_folder(tmp_path / "videos", names=("good",))
    make_video(videos / "shared.mp4")
    for name, text in HOSTILE_TRANSCRIPTS.items():
        shutil.copy(videos / "shared.mp4", videos / f"{name}.mp4")
        (videos / f"{name}.json").write_text(text, encoding="utf-8")
    (videos / "shared.mp4").unlink()
    report = build_transcript_corpus(videos, tmp_path / "out")
    assert load_corpus(tmp_path / "out")["video_id"] == ["good"]
    skipped = {Path(m.source).name: m.reason for m in report.skipped}
    assert skipped == {f"{name}.json": "unparsable_transcript" for name in HOSTILE_TRANSCRIPTS}
    saved = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert saved["skipped_counts"] == {"unparsable_transcript": len(HOSTILE_TRANSCRIPTS)}


def test_caption_metadata_bad_rows_are_skipped_with_file_and_line(tmp_path):
    make_video(tmp_path / "a.mp4")
    make_video(tmp_path / "b.mp4")
    lines = [
        json.dumps({"video": "a.mp4", "caption": "first good"}),
        '{"video": "b.mp4", "caption": ',  # line 2: broken JSON
        json.dumps(["a.mp4", "a list row"]),  # line 3: not an object
        json.dumps({"video": "a.mp4", "caption": ["a", "list"]}),  # line 4: list caption
        json.dumps({"video": "a.mp4", "caption": {"en": "dict"}}),  # line 5: dict caption
        '{"video": "b.mp4", "caption": "lone \\ud83d surrogate"}',  # line 6
        "",
        json.dumps({"video": "b.mp4", "caption": "second good"}),  # line 8
    ]
    (tmp_path / "meta.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = build_caption_corpus(tmp_path / "meta.jsonl", tmp_path / "out")
    assert load_corpus(tmp_path / "out")["caption"] == ["first good", "second good"]
    skipped = {m.source: m.reason for m in report.skipped}
    assert skipped == {
        "meta.jsonl:2": "bad_row",
        "meta.jsonl:3": "bad_row",
        "meta.jsonl:4": "bad_caption",
        "meta.jsonl:5": "bad_caption",
        "meta.jsonl:6": "bad_caption",
    }


def test_cp1252_csv_is_read(tmp_path):
    make_video(tmp_path / "a.mp4")
    (tmp_path / "meta.csv").write_bytes("video,caption\na.mp4,un caf\u00e9 cr\u00e8me \u2013 ok\n".encode("cp1252"))
    assert read_caption_metadata(tmp_path / "meta.csv") == [{"video": "a.mp4", "caption": "un café crème – ok"}]
    build_caption_corpus(tmp_path / "meta.csv", tmp_path / "out")
    assert load_corpus(tmp_path / "out")["caption"] == ["un café crème – ok"]


# ------------------------------------------------------------------------------------------------------------------
# Items 4 and 5: tolerant probing, robust durations


def _patched_latin1_title(path: Path) -> Path:
    make_video(path, title="un film de cafe_MARK")
    data = path.read_bytes()
    assert data.count(b"cafe_MARK") == 1
    path.write_bytes(data.replace(b"cafe_MARK", b"caf\xe9_MARK"))  # Latin-1 bytes in the title tag
    return path


def test_latin1_title_tag_does_not_make_a_video_unreadable(tmp_path):
    video = _patched_latin1_title(tmp_path / "latin1.mp4")
    with pytest.raises(UnicodeDecodeError):  # control: a plain open fails on this file
        av.open(str(video)).close()
    from modeling_tvtsv2.video_reading_tvtsv2 import read_video

    assert read_video(str(video), num_frames=2)[0].shape[0] == 2  # the decoder reads it
    probe = probe_video(video)
    assert 1.8 <= probe.duration <= 2.1
    # the training-time header probe (rows without a duration)
    from modeling_tvtsv2.video_decoding_tvtsv2 import probe_header_duration

    assert 1.8 <= probe_header_duration(str(video)) <= 2.1


def test_one_outlier_timestamp_does_not_inflate_the_duration(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    video = make_video(videos / "clip.mkv", outlier_s=2_592_000)  # one packet 30 days later
    with av.open(str(video)) as container:  # control: the header and the raw packet span believe the outlier
        assert container.duration / 1e6 > 1e6
    assert 1.5 <= probe_video(video).duration <= 2.1
    (videos / "clip.srt").write_text(srt((0.2, 1.5, "hello there")), encoding="utf-8")
    build_transcript_corpus(videos, tmp_path / "out")
    assert load_corpus(tmp_path / "out")["duration"][0] < 2.5


def test_robust_span_keeps_legitimate_gaps_and_drops_outliers():
    frames = [i / 30 for i in range(300)]  # 10 s at 30 fps
    assert robust_timestamp_span(frames) == pytest.approx(299 / 30)
    assert robust_timestamp_span([*frames, 2_592_000.0]) == pytest.approx(299 / 30)
    assert robust_timestamp_span([-1e9, *frames]) == pytest.approx(299 / 30)
    still = [*frames, *(40 + t for t in frames)]  # a 30 s still picture in the middle is content, not an outlier
    assert robust_timestamp_span(still) == pytest.approx(40 + 299 / 30)
    assert robust_timestamp_span([*frames, float("nan"), float("inf")]) == pytest.approx(299 / 30)


# ------------------------------------------------------------------------------------------------------------------
# Issue 8 item 6: the corpus stores the YT-Temporal `denoised` words with the ASR timings


def test_transcript_corpus_uses_the_denoised_text(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "clip.mp4")
    annotation = {
        "info": {"duration": 2.0},
        "subtitles": [{"word": "helo", "time": 0.3}, {"word": "wrld", "time": 0.9}, {"word": "agn", "time": 1.4}],
        "denoised": [{"cleanasr": "Hello world, again."}],
    }
    (videos / "clip.json").write_text(json.dumps(annotation), encoding="utf-8")
    build_transcript_corpus(videos, tmp_path / "clean")
    assert load_corpus(tmp_path / "clean")[0]["words"] == [
        {"word": "Hello", "time": pytest.approx(0.3)},
        {"word": "world,", "time": pytest.approx(0.9)},
        {"word": "again.", "time": pytest.approx(1.4)},
    ]
    argv = ["--videos", str(videos), "--output", str(tmp_path / "raw"), "--raw-asr-words"]
    assert prepare_transcript_corpus.main(argv) == 0
    assert [w["word"] for w in load_corpus(tmp_path / "raw")[0]["words"]] == ["helo", "wrld", "agn"]
