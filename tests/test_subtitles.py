"""Subtitle parsing: SubRip, WebVTT (YouTube auto-captions), YT-Temporal JSON, encodings, empty cues.

Expected values are written by hand from the texts below (or from the real ``.srt`` in ``tests/data``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modeling_tvtsv2.data.subtitles import (
    Segment,
    SubtitleParseError,
    Word,
    clean_cue_text,
    decode_subtitle_bytes,
    load_transcript,
    parse_srt,
    parse_vtt,
    parse_yttemporal_json,
    segments_to_words,
)

DATA = Path(__file__).parent / "data"

YOUTUBE_AUTO_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.000 --> 00:00:02.350 align:start position:0%
 
hello<00:00:00.480><c> world</c><00:00:00.960><c> this</c>

00:00:02.350 --> 00:00:02.360 align:start position:0%
hello world this
 

00:00:02.360 --> 00:00:04.710 align:start position:0%
hello world this
is<00:00:02.880><c> a</c><00:00:03.120><c> test</c>

00:00:04.710 --> 00:00:04.720 align:start position:0%
is a test
 

00:00:04.720 --> 00:00:06.000 align:start position:0%
is a test
of<00:00:05.100><c> captions</c>
"""


def test_real_srt_segments(tmp_path):
    path = tmp_path / "obama.srt"
    shutil.copy(DATA / "obama_speech.pocketsphinx.srt", path)
    transcript = load_transcript(path)
    assert not transcript.has_word_timings
    assert [s.text for s in transcript.segments] == [
        "today i",
        "have to two years of negotiations",
        "united states together or international partners",
        "has achieved some",
    ]
    first, last = transcript.segments[0], transcript.segments[-1]
    assert (first.start, first.end) == pytest.approx((1.01, 1.57))
    assert (last.start, last.end) == pytest.approx((8.0, 8.74))
    assert len(transcript) == 2 + 6 + 6 + 3
    words = transcript.to_words()
    # "today i" over [1.01, 1.57]: two slots of 0.28 s, words at the slot middles.
    assert words[0] == Word("today", pytest.approx(1.15))
    assert words[1] == Word("i", pytest.approx(1.43))


def test_srt_markup_entities_and_empty_cues():
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\n<i>Hello</i> &amp; {\\an8}<font color=\"red\">bye</font>\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\n<b></b>\n\n"
        "3\n00:00:05,500 --> 00:00:07,000\ntwo\nlines\n\n"
    )
    transcript = parse_srt(text)
    assert transcript.segments == [Segment(1.0, 2.0, "Hello & bye"), Segment(5.5, 7.0, "two lines")]


def test_srt_garbage_raises():
    with pytest.raises(SubtitleParseError):
        parse_srt("this is not a subtitle file at all\n")


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s.encode("utf-8"),
        lambda s: s.encode("utf-8-sig"),
        lambda s: s.encode("utf-16"),  # with BOM (platform byte order)
        lambda s: b"\xfe\xff" + s.encode("utf-16-be"),
        lambda s: s.encode("cp1252"),
    ],
    ids=["utf8", "utf8-bom", "utf16-bom", "utf16be-bom", "cp1252"],
)
def test_encodings(tmp_path, encode):
    text = "1\n00:00:00,500 --> 00:00:01,500\nCafé “déjà” vu\n"
    path = tmp_path / "clip.srt"
    path.write_bytes(encode(text))
    transcript = load_transcript(path)
    assert transcript.segments == [Segment(0.5, 1.5, "Café “déjà” vu")]


def test_decode_cp1252_fallback_never_fails():
    assert decode_subtitle_bytes(b"caf\xe9 \x81") == "caf\u00e9 \ufffd"


def test_youtube_auto_captions_words_and_rolling_lines():
    transcript = parse_vtt(YOUTUBE_AUTO_VTT)
    assert [s.text for s in transcript.segments] == ["hello world this", "is a test", "of captions"]
    assert transcript.has_word_timings
    assert [(w.word, w.time) for w in transcript.words] == [
        ("hello", 0.0),
        ("world", 0.48),
        ("this", 0.96),
        ("is", 2.36),
        ("a", 2.88),
        ("test", 3.12),
        ("of", 4.72),
        ("captions", 5.1),
    ]


def test_plain_vtt_with_notes_styles_settings(tmp_path):
    text = (
        "WEBVTT - some title\n\n"
        "STYLE\n::cue { color: yellow }\n\n"
        "NOTE a comment\nthat spans lines\n\n"
        "intro\n00:01.000 --> 00:02.500 line:0 position:20%\n<v Roger>Hi <b>there</b></v>\n\n"
        "00:00:03.000 --> 00:00:04.000\n\n\n"
        "00:00:05.000 --> 00:00:06.000\nsecond &lt;cue&gt;\n"
    )
    path = tmp_path / "clip.en.vtt"
    path.write_text(text, encoding="utf-8")
    transcript = load_transcript(path)
    assert not transcript.has_word_timings
    assert transcript.segments == [Segment(1.0, 2.5, "Hi there"), Segment(5.0, 6.0, "second <cue>")]


def test_yttemporal_json():
    data = {
        "info": {"duration": 42.5},
        "subtitles": [
            {"word": "world", "time": 1.5},
            {"word": "hello", "time": 1.0},
            {"word": "&amp;", "time": 1.7},
            {"word": "gt;", "time": 1.8},
            {"word": "  ", "time": 1.9},
            {"word": "again", "time": 2.25},
        ],
        "denoised": [{"cleanasr": "Hello world again."}],
    }
    # raw ASR words (the denoised text is covered in test_hardening_inputs.py)
    transcript = parse_yttemporal_json(json.dumps(data), use_denoised=False)
    assert transcript.duration == 42.5
    assert transcript.words == [Word("hello", 1.0), Word("world", 1.5), Word("again", 2.25)]
    assert transcript.to_words() == transcript.words


def test_yttemporal_json_errors(tmp_path):
    with pytest.raises(SubtitleParseError):
        parse_yttemporal_json("{not json")
    with pytest.raises(SubtitleParseError):
        parse_yttemporal_json({"subtitles": [{"word": "x"}]})  # no time
    path = tmp_path / "clip.json"
    path.write_text('{"something": 1}', encoding="utf-8")
    with pytest.raises(SubtitleParseError, match="clip.json"):
        load_transcript(path)


def test_segments_to_words_spreads_uniformly():
    words = segments_to_words([Segment(0.0, 2.0, "one two three four"), Segment(5.0, 5.0, "x"), Segment(6, 7, " ")])
    assert words == [
        Word("one", 0.25),
        Word("two", 0.75),
        Word("three", 1.25),
        Word("four", 1.75),
        Word("x", 5.0),
    ]


def test_clean_cue_text():
    assert clean_cue_text("<c.colorE5E5E5>a</c>\n  b&nbsp;c ") == "a b c"


def test_unknown_suffix(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(SubtitleParseError):
        load_transcript(path)
