"""Transcript windows: the words of a row with their times, and the span of ``K`` windows a sample is cut from.

The rule is the original TVTSv2's (``YTTemporal_dataset.py``). For a transcript row a span of
``K = num_transcripts`` windows is drawn. Its length is ``randint(window_min, window_max) * K + gap * (K - 1)``
seconds (15, 19 or 23 s with the defaults), it starts at ``randint(0, duration - span - end_margin) + U(0, 1)``
and ends at ``min(duration - end_margin, start + span)``; a video too short for that uses
``[0, duration - end_margin]``. The span is cut into ``K`` windows of equal length separated by ``gap`` seconds;
transcript ``i`` is the words whose time lies strictly inside window ``i`` (segments are turned into word timings
by spreading each segment's words uniformly over it). ``num_frames`` frames are sampled across the whole span
(from the first window start to the last window end): one random frame per equal segment when training, the
segment middles when evaluating. Transcripts stay in chronological order, so ``sort_labels`` is ``arange(K)`` (the
sort head is permutation-equivariant over transcripts, so no shuffling is needed). A caption row gives ``K = 1``
text, frames from the whole video, and no ``sort_labels``.

Unlike the original (which fed empty transcripts to the model), a span with a window holding fewer than
``min_words_per_window`` words is redrawn up to ``max_span_tries`` times and then skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .skipping import SampleSkipped

__all__ = ["TranscriptSpan", "row_word_timings", "sample_transcript_span"]


def row_word_timings(row: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    """``(times, words)`` of a transcript row, sorted by time. ``words`` rows are used as they are; ``segments``
    are spread uniformly (each word at the middle of its equal share of the segment, as
    :func:`modeling_tvtsv2.data.subtitles.segments_to_words`)."""
    times: list[float] = []
    words: list[str] = []
    if row.get("words") is not None:
        for item in row["words"]:
            token = str(item["word"]).strip()
            if token:
                words.append(token)
                times.append(float(item["time"]))
    elif row.get("segments") is not None:
        for segment in row["segments"]:
            tokens = str(segment["text"]).split()
            if not tokens:
                continue
            start, end = float(segment["start"]), float(segment["end"])
            step = max(end - start, 0.0) / len(tokens)
            for j, token in enumerate(tokens):
                words.append(token)
                times.append(start + (j + 0.5) * step)
    else:
        raise ValueError("transcript row has neither 'words' nor 'segments'")
    values = np.asarray(times, dtype=np.float64)
    # A word without a finite time belongs to no window (NaN would also break the sorted search).
    order = [i for i in np.argsort(values, kind="stable") if math.isfinite(values[i])]
    return values[order], [words[i] for i in order]


# --------------------------------------------------------------------------------------------------------------
# Sample construction
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptSpan:
    """A drawn span: ``windows[i] = (start_i, end_i)`` seconds and ``texts[i]`` the words inside window ``i``."""

    start: float
    end: float
    windows: tuple[tuple[float, float], ...]
    texts: tuple[str, ...]
    word_counts: tuple[int, ...]

    def __post_init__(self):
        for window_start, window_end in self.windows:
            _check_seconds_window(window_start, window_end, "window")
        _check_seconds_window(self.start, self.end, "span")

    @property
    def frames_start(self) -> float:
        return self.windows[0][0]

    @property
    def frames_end(self) -> float:
        return self.windows[-1][1]


def _check_seconds_window(start: float, end: float, what: str) -> None:
    """A time window must be finite, start at or after 0 and end after it (NaN compares false: refused too)."""
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"{what} times must be finite seconds, got ({start}, {end})")
    if start < 0:
        raise ValueError(f"{what} start must be >= 0 seconds, got {start}")
    if not end > start:
        raise ValueError(f"{what} end ({end}) must be after its start ({start})")


def _check_span_settings(window_min: float, window_max: float, gap: float, end_margin: float) -> None:
    for name, value in (("window_min", window_min), ("window_max", window_max), ("gap", gap),
                        ("end_margin", end_margin)):  # fmt: skip
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")
    if not 0 < window_min <= window_max:
        raise ValueError(f"window lengths need 0 < window_min <= window_max, got {window_min} and {window_max}")


def _draw_window_length(rng: np.random.Generator, window_min: float, window_max: float) -> float:
    # The original draws whole seconds with random.randint(3, 5) (both ends included).
    if float(window_min).is_integer() and float(window_max).is_integer():
        return float(rng.integers(int(window_min), int(window_max) + 1))
    return float(rng.uniform(window_min, window_max))


def sample_transcript_span(
    times: np.ndarray,
    words: Sequence[str],
    duration: float,
    *,
    rng: np.random.Generator,
    num_transcripts: int = 4,
    window_min: float = 3,
    window_max: float = 5,
    gap: float = 1.0,
    end_margin: float = 1.0,
    min_words_per_window: int = 1,
    max_tries: int = 4,
) -> TranscriptSpan:
    """Draw ``num_transcripts`` consecutive windows and the words inside them, as the original YT-Temporal loader.

    Args:
        times, words: word timings sorted by time (see :func:`row_word_timings`).
        duration: video duration in seconds.
        rng: the sample's random generator.
        num_transcripts: ``K``, the number of windows (and transcripts).
        window_min, window_max: window length bounds in seconds; whole numbers are drawn as the original's
            ``randint`` (ends included), otherwise uniformly.
        gap: seconds between windows.
        end_margin: seconds kept free at the end of the video (the original uses ``duration - 1``).
        min_words_per_window: a span with a window holding fewer words is redrawn; ``0`` keeps every span (the
            original behaviour, empty transcripts included) unless the whole span has no word.
        max_tries: number of spans drawn before giving up.

    Raises:
        SampleSkipped: ``"no_words"`` when no acceptable span was found.
    """
    if num_transcripts < 1:
        raise ValueError("num_transcripts must be >= 1")
    _check_span_settings(window_min, window_max, gap, end_margin)
    if duration is None or not math.isfinite(duration) or duration <= 0:
        raise SampleSkipped("bad_duration", f"duration {duration!r}")
    times = np.asarray(times, dtype=np.float64)
    usable_end = duration - end_margin if duration > end_margin else duration
    best: TranscriptSpan | None = None
    for _ in range(max(1, max_tries)):
        span_length = _draw_window_length(rng, window_min, window_max) * num_transcripts + gap * (num_transcripts - 1)
        max_start = math.floor(duration - span_length - end_margin)
        if max_start >= 0:
            start = float(rng.integers(0, max_start + 1)) + float(rng.random())
            end = min(usable_end, start + span_length)
            short_video = False
        else:  # too short for the span: the whole video, as the original
            start, end = 0.0, usable_end
            short_video = True
        effective_gap = gap
        window = (end - start - gap * (num_transcripts - 1)) / num_transcripts
        if window <= 0:  # a very short video cannot hold the gaps either
            effective_gap, window = 0.0, (end - start) / num_transcripts
        windows, texts, counts = [], [], []
        for i in range(num_transcripts):
            w_start = start + i * (window + effective_gap)
            w_end = w_start + window
            # Strictly inside, as the original (a word exactly on a border belongs to neither window).
            lo = int(np.searchsorted(times, w_start, side="right"))
            hi = int(np.searchsorted(times, w_end, side="left"))
            windows.append((w_start, w_end))
            texts.append(" ".join(words[lo:hi]))
            counts.append(max(hi - lo, 0))
        candidate = TranscriptSpan(start, end, tuple(windows), tuple(texts), tuple(counts))
        if min(counts) >= min_words_per_window and sum(counts) > 0:
            return candidate
        if best is None or sum(counts) > sum(best.word_counts):
            best = candidate
        if short_video:  # the span is deterministic: redrawing cannot help
            break
    assert best is not None
    raise SampleSkipped("no_words", f"windows hold {list(best.word_counts)} words (need >= {min_words_per_window})")

