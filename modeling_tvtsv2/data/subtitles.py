"""Timed-transcript parsing: SubRip (``.srt``), WebVTT (``.vtt``, YouTube auto-captions included) and
YT-Temporal-style ASR JSON.

Every parser returns a :class:`Transcript`: cue-level :class:`Segment` s and, when the source has them, word-level
:class:`Word` timings. TVTSv2 pre-training needs a time for every word (a transcript window holds the words whose
time lies inside it), so :meth:`Transcript.to_words` spreads a segment's words uniformly over the segment when the
source only has cue timings.

Design notes
------------
* Parsing of the container formats is delegated to maintained libraries (``srt`` and ``webvtt-py``, the ``train``
  extra). They are imported lazily so that importing the package does not need them.
* Real subtitle files come in many encodings. :func:`decode_subtitle_bytes` honours byte-order marks (UTF-8,
  UTF-16, UTF-32), then tries strict UTF-8, then falls back to cp1252 (the usual encoding of legacy Western
  ``.srt`` files), which never fails.
* Cue text is cleaned: markup tags (``<i>``, ``<c.colorE5E5E5>``, ``<font ...>``), ASS override blocks
  (``{\\an8}``) and HTML entities are removed or decoded, whitespace is collapsed, and cues left empty are dropped.
* YouTube auto-captions repeat the previous line in every cue ("rolling" captions) and carry word-level timing
  tags (``word<00:00:01.500><c> next</c>``). Lines already shown in the previous cues are dropped and the timing
  tags become word timings (the first word of a tagged line starts at the cue start).

All functions are pure: no file is touched except by :func:`read_subtitle_file` and :func:`load_transcript`.
"""

from __future__ import annotations

import codecs
import functools
import html
import json
import math
import os
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "SUBTITLE_SUFFIXES",
    "align_denoised_words",
    "Segment",
    "SubtitleParseError",
    "Transcript",
    "Word",
    "clean_cue_text",
    "decode_subtitle_bytes",
    "load_transcript",
    "open_text_file",
    "parse_srt",
    "parse_subtitles",
    "parse_vtt",
    "parse_yttemporal_json",
    "read_subtitle_file",
    "segments_to_rows",
    "segments_to_words",
    "words_to_rows",
]

#: File suffixes :func:`load_transcript` understands, in the order a folder scan prefers them when one video has
#: several transcripts next to it (word-level sources first: they carry more timing information).
SUBTITLE_SUFFIXES: tuple[str, ...] = (".json", ".vtt", ".srt")


class SubtitleParseError(ValueError):
    """A subtitle file cannot be decoded or parsed (the message names the file when one is known)."""


@dataclass(frozen=True)
class Segment:
    """One cue: ``text`` shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Word:
    """One word and the time (seconds) at which it is spoken."""

    word: str
    time: float


@dataclass
class Transcript:
    """A parsed transcript.

    Attributes:
        segments: cue-level segments in time order (possibly empty for a word-level-only source).
        words: word-level timings when the source has them (YT-Temporal JSON, YouTube auto-captions), else ``None``.
        duration: the media duration stated by the source (YT-Temporal ``info.duration``), if any.
    """

    segments: list[Segment] = field(default_factory=list)
    words: list[Word] | None = None
    duration: float | None = None

    @property
    def has_word_timings(self) -> bool:
        return self.words is not None

    def to_words(self) -> list[Word]:
        """Word timings: the source's own when it has them, else segments spread uniformly (see
        :func:`segments_to_words`)."""
        if self.words is not None:
            return list(self.words)
        return segments_to_words(self.segments)

    @property
    def text(self) -> str:
        if self.words is not None:
            return " ".join(w.word for w in self.words)
        return " ".join(s.text for s in self.segments)

    def __len__(self) -> int:
        """Number of words."""
        if self.words is not None:
            return len(self.words)
        return sum(len(s.text.split()) for s in self.segments)


# --------------------------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 LE BOM.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_subtitle_bytes(data: bytes) -> str:
    """Decode subtitle file bytes to text.

    Order: a byte-order mark decides (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE; the BOM is stripped); otherwise strict
    UTF-8; otherwise cp1252 (undefined bytes are replaced, so this never fails).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as error:
                raise SubtitleParseError(f"bytes start with a {encoding} byte-order mark but do not decode: {error}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def open_text_file(path: str | os.PathLike[str], newline: str | None = "\n") -> TextIO:
    """Open a text file (caption metadata, transcripts) to read it line by line, never whole, with the rules of
    :func:`decode_subtitle_bytes`: a byte-order mark decides the encoding (and is skipped); otherwise UTF-8 if the
    whole file decodes (checked by a streaming pass), else cp1252 with undefined bytes replaced."""
    path = Path(path)
    with path.open("rb") as raw:
        head = raw.read(4)
        for bom, encoding in _BOMS:
            if head.startswith(bom):
                handle = path.open("r", encoding=encoding, newline=newline)
                handle.read(1)  # the byte-order mark, decoded as U+FEFF
                return handle
        raw.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := raw.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return path.open("r", encoding="cp1252", errors="replace", newline=newline)
    return path.open("r", encoding="utf-8", newline=newline)


def read_subtitle_file(path: str | os.PathLike[str]) -> str:
    """Read a subtitle file as text with :func:`decode_subtitle_bytes`; line endings are normalised to ``\\n``."""
    text = decode_subtitle_bytes(Path(path).read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n")


# A tag cannot contain "<" (nor an override block "{"): each failed match then stops at the next opener, which keeps
# cleaning linear in the text length (with `[^>]*`, a line of 150 KB of "<" took ~30 s, 1.5 MB about an hour).
_TAG_RE = re.compile(r"<[^<>\n]*>")
_ASS_OVERRIDE_RE = re.compile(r"\{\\[^{}]*\}")
_SPACE_RE = re.compile(r"\s+")


def clean_cue_text(text: str) -> str:
    """Plain text of a cue: markup tags and ASS ``{\\...}`` blocks removed, HTML entities decoded (``&amp;`` ->
    ``&``, ``&nbsp;`` -> space), whitespace (line breaks included) collapsed to single spaces."""
    text = _ASS_OVERRIDE_RE.sub(" ", text)
    # Tags become a space only where they separate words; "<i>word</i>" must stay "word".
    text = _TAG_RE.sub("", text)
    text = html.unescape(text).replace("\u00a0", " ")
    return _SPACE_RE.sub(" ", text).strip()


def segments_to_words(segments: Iterable[Segment]) -> list[Word]:
    """Spread each segment's words uniformly over ``[start, end]``.

    A segment of ``n`` words is cut into ``n`` equal slots and word ``j`` is placed at the middle of slot ``j``:
    ``time = start + (j + 0.5) * (end - start) / n``. Middles (rather than slot starts) keep every word strictly
    inside its cue, so a transcript window that covers a cue exactly also holds all of its words.
    """
    words: list[Word] = []
    for segment in segments:
        tokens = segment.text.split()
        if not tokens:
            continue
        start, end = float(segment.start), float(segment.end)
        if end < start:
            end = start
        step = (end - start) / len(tokens)
        words.extend(Word(token, start + (j + 0.5) * step) for j, token in enumerate(tokens))
    return words


def _sorted_segments(segments: Iterable[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: (s.start, s.end))


# --------------------------------------------------------------------------------------------------------------
# SubRip
# --------------------------------------------------------------------------------------------------------------


def parse_srt(text: str) -> Transcript:
    """Parse SubRip text into segments (cue text cleaned, empty cues dropped, sorted by start time).

    Malformed blocks are skipped (``srt.parse(..., ignore_errors=True)``); a text in which no cue at all can be
    found raises :class:`SubtitleParseError`.
    """
    import srt  # the "train" extra

    try:
        cues = list(srt.parse(text, ignore_errors=True))
    except Exception as error:  # srt raises its own SRTParseError family and, on odd input, ValueError
        raise SubtitleParseError(f"not a SubRip file: {error}") from error
    if not cues and text.strip():
        raise SubtitleParseError("no SubRip cue found")
    segments = []
    for cue in cues:
        cleaned = clean_cue_text(cue.content)
        if cleaned:
            segments.append(Segment(cue.start.total_seconds(), cue.end.total_seconds(), cleaned))
    return Transcript(segments=_sorted_segments(segments))


# --------------------------------------------------------------------------------------------------------------
# WebVTT (YouTube auto-captions included)
# --------------------------------------------------------------------------------------------------------------

_VTT_TIME_RE = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?")
_INLINE_TIME_RE = re.compile(r"<((?:\d+:)?\d{1,2}:\d{1,2}[.,]\d{1,3})>")


def _vtt_seconds(stamp: str) -> float:
    match = _VTT_TIME_RE.fullmatch(stamp.strip())
    if match is None:
        raise SubtitleParseError(f"bad WebVTT timestamp {stamp!r}")
    hours, minutes, seconds, millis = match.groups()
    fraction = int((millis or "0").ljust(3, "0")) / 1000.0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + fraction


def _timed_words(line: str, cue_start: float) -> list[Word]:
    """Words of a line carrying inline timing tags: the text before the first tag starts at ``cue_start``; each
    tag gives the start time of the text that follows it."""
    words: list[Word] = []
    time = cue_start
    position = 0
    for match in _INLINE_TIME_RE.finditer(line):
        words.extend(Word(token, time) for token in clean_cue_text(line[position : match.start()]).split())
        time = _vtt_seconds(match.group(1))
        position = match.end()
    words.extend(Word(token, time) for token in clean_cue_text(line[position:]).split())
    return words


def parse_vtt(text: str, *, rolling_window: int = 3) -> Transcript:
    """Parse WebVTT text.

    Handles ordinary WebVTT (cue settings, ``NOTE``/``STYLE`` blocks, markup) and YouTube auto-captions:

    * *rolling duplicate lines*: a cue line whose cleaned text equals one of the last ``rolling_window`` lines
      already taken is dropped (``0`` keeps every line) (YouTube repeats the previous line on top of each new cue, and inserts ~10 ms
      cues that only repeat text);
    * *word-level timing tags* ``<00:00:01.500>``: when any line carries them, the transcript gets word timings
      (:attr:`Transcript.words`). Words of untagged new lines are then spread over their cue.

    Each kept line becomes a :class:`Segment` spanning its cue.
    """
    import webvtt  # the "train" extra

    try:
        captions = webvtt.from_string(text)
    except Exception as error:  # webvtt raises MalformedFileError / MalformedCaptionError
        raise SubtitleParseError(f"not a WebVTT file: {error}") from error

    segments: list[Segment] = []
    tagged_words: list[Word] = []
    untagged_segments: list[Segment] = []
    recent: list[str] = []  # cleaned text of the last lines taken, for rolling-duplicate removal
    any_tags = False
    for caption in captions:
        start, end = _vtt_seconds(caption.start), _vtt_seconds(caption.end)
        for raw_line in caption.raw_text.split("\n"):
            cleaned = clean_cue_text(raw_line)
            if not cleaned or cleaned in recent:
                continue
            recent = (recent + [cleaned])[-rolling_window:] if rolling_window > 0 else []
            segments.append(Segment(start, end, cleaned))
            if _INLINE_TIME_RE.search(raw_line):
                any_tags = True
                tagged_words.extend(_timed_words(raw_line, start))
            else:
                untagged_segments.append(Segment(start, end, cleaned))

    segments = _sorted_segments(segments)
    if not any_tags:
        return Transcript(segments=segments)
    words = tagged_words + segments_to_words(untagged_segments)
    words.sort(key=lambda w: w.time)
    return Transcript(segments=segments, words=words)


# --------------------------------------------------------------------------------------------------------------
# YT-Temporal JSON
# --------------------------------------------------------------------------------------------------------------


def _seconds(value: Any) -> float:
    """A time in seconds from JSON: a finite number (numeric strings accepted); NaN, infinities (`1e400`) and
    `true`/`false` are refused with a `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"time {str(value)[:40]} is a {type(value).__name__}, not a number")
    seconds = float(value)  # OverflowError for a 5000-digit integer
    if not math.isfinite(seconds):
        raise ValueError(f"time {str(value)[:40]} is not a finite number")
    return seconds


def _finite_or_none(value: float) -> float | None:
    try:
        value = float(value)
    except (OverflowError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _keep_asr_word(word: str) -> bool:
    # As the original loader: ASR tokens that start with "&" or end with ";" are HTML-entity debris.
    return bool(word) and not word.startswith("&") and not word.endswith(";")


def parse_yttemporal_json(source: str | bytes | dict[str, Any], *, use_denoised: bool = True) -> Transcript:
    """Parse a YT-Temporal annotation: ``{"subtitles": [{"word", "time"}, ...], "denoised": [{"cleanasr": str},
    ...], "info": {"duration": s}, ...}``.

    Also accepted: a bare list of ``{"word", "time"}`` objects, and ``{"segments": [{"start", "end", "text"}]}``.
    Words are stripped and entity debris dropped (as the original loader did). When the file has a ``denoised``
    list (the clean, punctuated text of the whole video) and ``use_denoised`` is true, the clean words are aligned
    to the raw ASR words as in the original loader (:func:`align_denoised_words`) and take their timings: a window's
    text is then the clean text of the raw words inside it. Otherwise the raw ASR words are used. Words are sorted
    by time.
    """
    if isinstance(source, (bytes, bytearray)):
        source = decode_subtitle_bytes(bytes(source))
    if isinstance(source, str):
        try:
            source = json.loads(source)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, >4300-digit integers, deep nesting
            raise SubtitleParseError(f"not JSON: {type(error).__name__}: {str(error)[:200]}") from None

    duration: float | None = None
    if isinstance(source, dict):
        info = source.get("info")
        if isinstance(info, dict) and isinstance(info.get("duration"), (int, float)):
            duration = _finite_or_none(info["duration"])
        if "subtitles" in source:
            items = source["subtitles"]
        elif "words" in source:
            items = source["words"]
        elif "segments" in source:
            try:
                segments = [
                    Segment(_seconds(s["start"]), _seconds(s["end"]), clean_cue_text(str(s["text"])))
                    for s in source["segments"]
                ]
            except (KeyError, TypeError, ValueError, OverflowError) as error:
                raise SubtitleParseError(f"bad segment entry: {str(error)[:200]}") from None
            return Transcript(segments=_sorted_segments(s for s in segments if s.text), duration=duration)
        else:
            raise SubtitleParseError("JSON transcript has none of the keys 'subtitles', 'words', 'segments'")
    else:
        items = source
    if not isinstance(items, list):
        raise SubtitleParseError("JSON word list is not a list")

    raw: list[tuple[str, float]] = []  # (ASR word, time) in file order, entity debris dropped
    for item in items:
        try:
            token, time = str(item["word"]).strip(), _seconds(item["time"])
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise SubtitleParseError(f"bad word entry {str(item)[:100]}: {str(error)[:200]}") from None
        token = clean_cue_text(token) if "<" in token else token
        if token and not token.startswith("&") and not token.endswith(";"):
            raw.append((token, time))
    clean = _denoised_words(source) if use_denoised and isinstance(source, dict) else None
    texts = [token for token, _ in raw] if clean is None else align_denoised_words([t for t, _ in raw], clean)
    words: list[Word] = []
    for text, (_, time) in zip(texts, raw):
        # An ASR "word" (or the clean text aligned to it) may hold several tokens; they share the time. The entity
        # filter is for raw ASR tokens only (a clean "&" is a word).
        words.extend(Word(part, time) for part in text.split() if clean is not None or _keep_asr_word(part))
    words.sort(key=lambda w: w.time)
    return Transcript(words=words, duration=duration)


def _denoised_words(source: dict[str, Any]) -> list[str] | None:
    """The clean words of a YT-Temporal ``denoised`` list (``[{"cleanasr": text}, ...]``), ``None`` when absent."""
    entries = source.get("denoised")
    if not entries:
        return None
    if not isinstance(entries, list):
        raise SubtitleParseError(f"'denoised' is a {type(entries).__name__}, not a list")
    words: list[str] = []
    for entry in entries:
        text = entry.get("cleanasr") if isinstance(entry, dict) else None
        if not isinstance(text, str):
            raise SubtitleParseError(f"bad 'denoised' entry {str(entry)[:100]} (needs a 'cleanasr' text)")
        words.extend(text.split())
    return words or None


# Alignments above this many cost-matrix cells (about 6,000 x 6,000 words) would need too much memory and time; such
# transcripts keep their raw ASR words.
MAX_ALIGNMENT_CELLS = 40_000_000

_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)


@functools.lru_cache(maxsize=65536)
def _edit_distance(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def align_denoised_words(
    asr_words: Sequence[str], clean_words: Sequence[str], radius_fraction: float = 0.1, radius_min: int = 32
) -> list[str]:
    """For each raw ASR word, the clean words aligned to it (joined by spaces; ``""`` when none), as the original
    YT-Temporal loader (`align_using_dtw`).

    Words are compared lower-cased without punctuation by edit distance inside a band of
    ``max(radius_fraction * len(asr_words), radius_min)`` positions (cost 9999 outside); the minimum-cost DTW path
    (steps diagonal, down, right; ties in that order) assigns each clean word to the first ASR word it is matched
    with. A clean text much longer than the ASR is cut to ``len(asr_words) + radius``.
    """
    import numpy as np

    n = len(asr_words)
    if n == 0:
        return []
    radius = int(max(n * radius_fraction, radius_min))
    clean = list(clean_words[: n + radius]) if len(clean_words) > n else list(clean_words)
    m = len(clean)
    if m == 0 or n * m > MAX_ALIGNMENT_CELLS:
        return list(asr_words) if m else [""] * n
    asr_keys = [w.translate(_PUNCTUATION_TABLE).strip().lower() for w in asr_words]
    clean_keys = [w.translate(_PUNCTUATION_TABLE).strip().lower() for w in clean]
    # Forward pass row by row; `moves` remembers the backtracking choice (0 diagonal, 1 up, 2 left).
    moves = np.zeros((n, m), dtype=np.int8)
    previous = None
    for i in range(n):
        cost = np.full(m, 9999.0)
        for j in range(max(i - radius, 0), min(i + radius, m)):
            cost[j] = _edit_distance(asr_keys[i], clean_keys[j])
        if previous is None:
            row = np.cumsum(cost)
            moves[i, 1:] = 2
        else:
            # acc[i, j] = cost[j] + min(acc[i-1, j-1], acc[i-1, j], acc[i, j-1]): the left term is a running
            # minimum over a prefix sum (all values are integers, exact in float64).
            from_above = previous.copy()
            from_above[1:] = np.minimum(previous[:-1], previous[1:])
            prefix = np.cumsum(cost)
            row = prefix + np.minimum.accumulate(from_above + cost - prefix)
            diagonal = np.full(m, np.inf)
            diagonal[1:] = previous[:-1]
            left = np.full(m, np.inf)
            left[1:] = row[:-1]
            moves[i] = np.argmin(np.stack([diagonal, previous, left]), axis=0)
        previous = row
    # Backtrack from the last cell, then give each clean word to the first ASR word that reaches it.
    path = []
    i, j = n - 1, m - 1
    while True:
        path.append((i, j))
        if i == 0 and j == 0:
            break
        move = 2 if i == 0 else 1 if j == 0 else int(moves[i, j])
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
    aligned: list[list[str]] = [[] for _ in range(n)]
    seen = -1
    for i, j in reversed(path):
        if j > seen:
            aligned[i].append(clean[j])
        seen = j
    return [" ".join(words) for words in aligned]


# --------------------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------------------


def parse_subtitles(text: str, fmt: str, *, use_denoised: bool = True) -> Transcript:
    """Parse subtitle ``text`` of format ``fmt`` (``"srt"``, ``"vtt"`` or ``"json"``; a leading dot is allowed).
    ``use_denoised``: see :func:`parse_yttemporal_json`."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "srt":
        return parse_srt(text)
    if fmt == "vtt":
        return parse_vtt(text)
    if fmt == "json":
        return parse_yttemporal_json(text, use_denoised=use_denoised)
    raise SubtitleParseError(f"unknown subtitle format {fmt!r}; expected one of srt, vtt, json")


def load_transcript(path: str | os.PathLike[str], *, use_denoised: bool = True) -> Transcript:
    """Read and parse a ``.srt``, ``.vtt`` or YT-Temporal ``.json`` file (format from the suffix; ``use_denoised``:
    see :func:`parse_yttemporal_json`).

    Raises:
        SubtitleParseError: the file cannot be decoded or parsed (the message names the file).
        OSError: the file cannot be read.
    """
    path = Path(path)
    try:
        return parse_subtitles(read_subtitle_file(path), path.suffix, use_denoised=use_denoised)
    except SubtitleParseError as error:
        raise SubtitleParseError(f"{path}: {error}") from error


def words_to_rows(words: Sequence[Word]) -> list[dict[str, Any]]:
    """``[{"word", "time"}]`` rows for a dataset column (see ``modeling_tvtsv2.data.schema.WORDS_FEATURE``)."""
    return [{"word": w.word, "time": float(w.time)} for w in words]


def segments_to_rows(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """``[{"start", "end", "text"}]`` rows for a dataset column (see ``modeling_tvtsv2.data.schema.SEGMENTS_FEATURE``)."""
    return [{"start": float(s.start), "end": float(s.end), "text": s.text} for s in segments]
