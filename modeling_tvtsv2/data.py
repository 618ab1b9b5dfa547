"""Pre-training data for TVTSv2: corpus schemas, sample construction, the collator and corpus mixing.

Corpus schemas (🤗 Datasets)
----------------------------
*Transcript corpora* (YT-Temporal style), one row per video:

===============  ===========================================================================================
``video``        ``Video(decode=False)``: ``{"bytes": binary | None, "path": string | None}`` (bytes embedded),
                 **or** a plain ``string`` path column (videos kept outside the dataset).
``video_id``     ``string``.
``duration``     ``float32`` seconds, optional (probed from the file when absent, ``NaN`` or ``<= 0``).
``segments``     ``List({"start": float32, "end": float32, "text": string})``: cue-level timing, **or**
``words``        ``List({"word": string, "time": float32})``: word-level timing (ASR).
===============  ===========================================================================================

*Caption corpora* (WebVid style): ``video``, ``video_id``, ``caption`` (``string``), ``duration`` (optional).

The feature definitions are the module constants :data:`TRANSCRIPT_SEGMENTS_FEATURES`,
:data:`TRANSCRIPT_WORDS_FEATURES`, :data:`CAPTION_FEATURES` and their ``*_PATH_FEATURES`` variants (string
``video`` column). ``datasets.Video`` is used with ``decode=False`` because its own decoding needs torchcodec; we
decode with PyAV in the collator, i.e. in the DataLoader workers. Note that ``Dataset.save_to_disk`` always embeds
the files of a ``Video`` column: to keep videos outside the dataset, use a string column.

Sample construction (original TVTSv2, ``YTTemporal_dataset.py``)
------------------------------------------------------------------
For a transcript row: a span of ``K = num_transcripts`` windows is drawn. Its length is
``randint(window_min, window_max) * K + gap * (K - 1)`` seconds (15, 19 or 23 s with the defaults), it starts at
``randint(0, duration - span - end_margin) + U(0, 1)`` and ends at ``min(duration - end_margin, start + span)``;
a video too short for that uses ``[0, duration - end_margin]``. The span is cut into ``K`` windows of equal length
separated by ``gap`` seconds; transcript ``i`` is the words whose time lies strictly inside window ``i`` (segments
are turned into word timings by spreading each segment's words uniformly over it). ``num_frames`` frames are
sampled across the whole span (from the first window start to the last window end): one random frame per equal
segment when training, the segment middles when evaluating. Transcripts stay in chronological order, so
``sort_labels`` is ``arange(K)`` (the sort head is permutation-equivariant over transcripts, so no shuffling is
needed). A caption row gives ``K = 1`` text, frames from the whole video, and no ``sort_labels``.

Unlike the original (which fed empty transcripts to the model), a span with a window holding fewer than
``min_words_per_window`` words is redrawn up to ``max_span_tries`` times and then skipped.

Skipped samples
---------------
A sample is skipped (never crashing the run) when its video cannot be decoded (``"decode_error"``), when no span
with words in every window can be drawn (``"no_words"``) or when a caption is empty (``"empty_caption"``). The
collator

* logs each skip (the first ``SkipCounter.log_first`` per reason at WARNING, then every ``log_every``-th),
* keeps cumulative per-reason counts in :attr:`TVTSv2PretrainingCollator.skip_counter` (per process: with
  DataLoader workers every worker holds its own copy, which is why the batch also carries the count),
* puts ``num_skipped`` (``int64`` tensor of shape ``[1]``) into every batch: the number of samples skipped while
  building *this* batch. A trainer pops it before the forward pass and sums it (across ranks) for logging.

Replacements: a group produced by :class:`MixedCorpusBatchDataset` carries a few *reserve* rows from the same
corpus; failed samples are replaced by reserves so that the batch keeps its size. Without reserves (plain row
batches) the batch shrinks. If every sample fails, the collator returns an **empty batch**: the same keys, every
tensor with batch dimension 0 (``batch["pixel_values_videos"].shape[0] == 0``); use :func:`is_empty_batch`. Under
DDP a trainer must still take part in the collective operations for such a step (e.g. run a zero loss), or all
ranks must agree to skip.

Randomness and resuming
-----------------------
Every sample gets its own RNG seeded from ``(collator seed, sample key)``. Groups from
:class:`MixedCorpusBatchDataset` / :class:`MixedCorpusBatchStream` carry keys ``(corpus index, epoch or cycle,
row index, ...)`` that depend only on the position in the data order, so re-reading the same step after a resume
(or in another DataLoader worker) draws the same span, frames, crop and tube mask. Plain rows carry no key: in
evaluation mode the key is a hash of ``video_id`` (the same windows every evaluation); in training mode it is the
collator's call counter and the row position (not reproducible across resumes).

Mixing corpora with ``transformers.Trainer``
---------------------------------------------
:class:`MixedCorpusBatchDataset` is a map-style dataset whose *items are whole per-device batches* (a "group" of
rows from one corpus). Use it with::

    TrainingArguments(per_device_train_batch_size=1, train_sampling_strategy="sequential",
                      remove_unused_columns=False, ...)

Item ``i`` belongs to optimizer step ``i // (world_size * gradient_accumulation_steps)``. accelerate's
``BatchSamplerShard`` gives rank ``r`` the items ``r, r + world_size, ...``, so on every optimizer step all ranks
read different rows of the *same* corpus (the global batch is homogeneous, as in the original) and the schedule of
corpora follows ``ratio`` (default 1:1, i.e. YT, WebVid, YT, ...). Resuming skips items through the batch
sampler without loading them. Shuffling comes from per-epoch permutations seeded by ``(seed, corpus, epoch)``;
the Trainer calls ``set_epoch`` (through accelerate) before each epoch. Do not use persistent DataLoader workers:
they would keep the previous epoch.

:class:`MixedCorpusBatchStream` does the same for streaming (🤗 ``IterableDataset``) corpora. In a multi-process
run it needs ``TrainingArguments(accelerator_config={"dispatch_batches": False})`` (each rank reads and decodes
its own batches); it orders its output so that accelerate's ``IterableDatasetShard`` and the DataLoader workers
give every rank the same corpus at every step.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from datasets import Dataset, Features, List, Value, Video
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = [
    "CAPTION_FEATURES",
    "CAPTION_PATH_FEATURES",
    "SEGMENTS_FEATURE",
    "TRANSCRIPT_SEGMENTS_FEATURES",
    "TRANSCRIPT_SEGMENTS_PATH_FEATURES",
    "TRANSCRIPT_WORDS_FEATURES",
    "TRANSCRIPT_WORDS_PATH_FEATURES",
    "WORDS_FEATURE",
    "MixedCorpusBatchDataset",
    "MixedCorpusBatchStream",
    "SampleSkipped",
    "SkipCounter",
    "TVTSv2PretrainingCollator",
    "TranscriptSpan",
    "caption_features",
    "corpus_kind",
    "is_empty_batch",
    "iter_collated",
    "load_corpus",
    "row_word_timings",
    "sample_transcript_span",
    "transcript_features",
    "video_source",
]

# --------------------------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------------------------

#: Cue-level transcript column.
SEGMENTS_FEATURE = List({"start": Value("float32"), "end": Value("float32"), "text": Value("string")})
#: Word-level transcript column (YT-Temporal ASR).
WORDS_FEATURE = List({"word": Value("string"), "time": Value("float32")})


def _video_feature(embed_videos: bool):
    return Video(decode=False) if embed_videos else Value("string")


def transcript_features(timing: Literal["segments", "words"] = "segments", *, embed_videos: bool = True) -> Features:
    """Features of a transcript corpus: ``video`` (embedded ``Video(decode=False)`` or string path), ``video_id``,
    ``duration`` and ``segments`` or ``words``."""
    if timing not in ("segments", "words"):
        raise ValueError(f"timing must be 'segments' or 'words', got {timing!r}")
    return Features(
        {
            "video": _video_feature(embed_videos),
            "video_id": Value("string"),
            "duration": Value("float32"),
            timing: SEGMENTS_FEATURE if timing == "segments" else WORDS_FEATURE,
        }
    )


def caption_features(*, embed_videos: bool = True) -> Features:
    """Features of a caption corpus: ``video``, ``video_id``, ``caption``, ``duration``."""
    return Features(
        {
            "video": _video_feature(embed_videos),
            "video_id": Value("string"),
            "caption": Value("string"),
            "duration": Value("float32"),
        }
    )


TRANSCRIPT_SEGMENTS_FEATURES: Features = transcript_features("segments")
TRANSCRIPT_WORDS_FEATURES: Features = transcript_features("words")
CAPTION_FEATURES: Features = caption_features()
TRANSCRIPT_SEGMENTS_PATH_FEATURES: Features = transcript_features("segments", embed_videos=False)
TRANSCRIPT_WORDS_PATH_FEATURES: Features = transcript_features("words", embed_videos=False)
CAPTION_PATH_FEATURES: Features = caption_features(embed_videos=False)

CorpusKind = Literal["transcript", "caption"]


def corpus_kind(dataset_or_row: Any) -> CorpusKind:
    """``"transcript"`` or ``"caption"`` from a dataset's columns (``Dataset``, ``IterableDataset``, ``Features``)
    or from one row (a dict)."""
    if isinstance(dataset_or_row, Mapping):
        columns = set(dataset_or_row.keys())
    else:
        features = getattr(dataset_or_row, "features", None)
        columns = set(features.keys()) if features is not None else set(getattr(dataset_or_row, "column_names", []))
    if "segments" in columns or "words" in columns:
        return "transcript"
    if "caption" in columns:
        return "caption"
    raise ValueError(f"not a TVTSv2 corpus: columns {sorted(columns)} have none of 'segments', 'words', 'caption'")


def load_corpus(path: str | os.PathLike[str], split: str = "train") -> "Dataset":
    """Load a corpus saved with ``save_to_disk`` (by :mod:`modeling_tvtsv2.corpus` or the demo builder).

    Accepts a saved ``DatasetDict`` (returns ``split``) or a saved ``Dataset`` (returned as is, ``split`` ignored).
    """
    from datasets import DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise KeyError(f"{path} has splits {sorted(loaded)}, not {split!r}")
        return loaded[split]
    return loaded


def video_source(value: Any, video_root: str | os.PathLike[str] | None = None) -> str | bytes:
    """What to hand the video decoder for a row's ``video`` field: embedded bytes when present, else the path
    (relative paths are resolved against ``video_root`` when given)."""
    if isinstance(value, Mapping):
        data = value.get("bytes")
        if data:
            return bytes(data)
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)) and str(value):
        path = Path(value)
        if video_root is not None and not path.is_absolute():
            path = Path(video_root) / path
        return str(path)
    raise ValueError(f"row has no usable video (got {type(value).__name__})")


def row_word_timings(row: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    """``(times, words)`` of a transcript row, sorted by time. ``words`` rows are used as they are; ``segments``
    are spread uniformly (each word at the middle of its equal share of the segment, as
    :func:`modeling_tvtsv2.subtitles.segments_to_words`)."""
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


class SampleSkipped(Exception):
    """A sample cannot be built; ``reason`` is a short counter key (``"no_words"``, ``"decode_error"``, ...)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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


def _probe_duration(source: str | bytes) -> float | None:
    """Container/stream duration from the header (no decoding); ``None`` when unknown."""
    import io

    from .video_processing_tvtsv2 import _open_av_container

    try:
        # As `read_video` opens: non-UTF-8 tags ignored, MP4/MOV headers without FFmpeg's probe decoding.
        opened = _open_av_container(io.BytesIO(source) if isinstance(source, bytes) else source)
        with opened as container:
            streams = container.streams.video
            if streams:
                stream = streams[0]
                if stream.duration and stream.time_base:
                    return float(stream.duration * stream.time_base)
            if container.duration:
                return container.duration / 1_000_000
    except Exception:  # noqa: BLE001 - a bad file is reported later by the decoder
        return None
    return None


# --------------------------------------------------------------------------------------------------------------
# Skip accounting
# --------------------------------------------------------------------------------------------------------------


class SkipCounter:
    """Counts skipped samples per reason and logs them without flooding the log.

    The first ``log_first`` skips of each reason are logged at WARNING with the sample and the cause, then every
    ``log_every``-th with the running count.
    """

    def __init__(self, log_first: int = 10, log_every: int = 100):
        self.counts: Counter[str] = Counter()
        self.log_first = log_first
        self.log_every = log_every

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(self, reason: str, sample: str = "", detail: str = "") -> None:
        self.counts[reason] += 1
        count = self.counts[reason]
        if count <= self.log_first or count % self.log_every == 0:
            logger.warning(
                "skipped sample %s (%s, %d so far in this process)%s",
                sample or "?",
                reason,
                count,
                f": {detail}" if detail else "",
            )

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


def is_empty_batch(batch: Mapping[str, Any]) -> bool:
    """True for the collator's empty-batch marker (every sample of the batch was skipped)."""
    pixels = batch.get("pixel_values_videos")
    return pixels is None or pixels.shape[0] == 0


# --------------------------------------------------------------------------------------------------------------
# Collator
# --------------------------------------------------------------------------------------------------------------

_GROUP_FLAG = "__tvtsv2_group__"


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _seed_from_key(seed: int, key: Sequence[int]) -> int:
    # SeedSequence mixes the entropy well, so nearby keys give unrelated streams.
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *[int(k) & 0xFFFFFFFFFFFFFFFF for k in key]])
    return int(state.generate_state(1, dtype=np.uint64)[0] & 0x7FFFFFFFFFFFFFFF)


class TVTSv2PretrainingCollator:
    """Turns corpus rows into TVTSv2 pre-training batches, decoding videos on the fly (in DataLoader workers).

    Accepts, as the DataLoader's ``collate_fn`` / the Trainer's ``data_collator``:

    * a list of rows from one corpus (a plain 🤗 ``Dataset``/``IterableDataset`` with
      ``remove_unused_columns=False``), or
    * a list of groups from :class:`MixedCorpusBatchDataset` / :class:`MixedCorpusBatchStream` (usually one, with
      ``per_device_train_batch_size=1``); groups of one call are merged and must come from the same kind of corpus.

    Output (``B`` samples kept, ``K`` transcripts, ``L`` tokens, ``T`` frames, ``S = image_size``):

    ========================  ==========================  =============================================
    ``input_ids``             ``int64 [B, K, L]``         ``K = num_transcripts`` (transcript corpus) or 1
    ``attention_mask``        ``int64 [B, K, L]``
    ``pixel_values_videos``   ``float32 [B, T, 3, S, S]`` ImageNet-normalised; ``uint8``: see ``pixel_dtype``
    ``keep_indices``          ``int64 [B, n_keep]``       only when ``mask_ratio > 0``; sorted patch indices
    ``sort_labels``           ``int64 [B, K]``            transcript batches only: ``arange(K)``
    ``return_loss``           ``True``
    ``num_skipped``           ``int64 [1]``               samples skipped while building this batch
    ========================  ==========================  =============================================

    ``n_keep = int(P * (1 - mask_ratio))`` with ``P = (image_size // patch_size) ** 2``; one random subset of patch
    positions per sample, shared by all its frames (tube masking). ``L`` is ``max_text_length`` (77) when
    ``pad_to_max_length`` (so that every batch has the same shape), else the longest text of the batch.

    Args:
        tokenizer: a 🤗 tokenizer (e.g. ``build_clip_tokenizer()``), called on the flat list of ``B * K`` texts.
        num_frames: ``T`` (paper: 12).
        image_size, patch_size: the model's; fix the crop size and the number of patches for masking.
        mask_ratio: tube-mask ratio (paper: 0.5 for B/16, 0.7 for H/14, 0 for B/32).
        num_transcripts: ``K`` for transcript corpora (paper: 4).
        training: random spans, random frames per segment and random crops; else per-video deterministic spans,
            segment-middle frames and centre crops.
        seed: base of the per-sample RNGs (see "Randomness and resuming" in the module docstring).
        window_min, window_max, window_gap, end_margin, min_words_per_window, max_span_tries: the span rule, see
            :func:`sample_transcript_span` (defaults: the original's).
        max_text_length, pad_to_max_length: tokenisation length (CLIP context 77).
        max_decode_frames: cap on decoded frames per video (passed to ``read_video``).
        video_root: folder that relative video paths start from.
        skip_counter: a shared :class:`SkipCounter` (default: a new one, :attr:`skip_counter`).
        single_thread: run with one torch thread while collating (much faster decoding when the collator runs in
            the main process, ``dataloader_num_workers=0``); the thread count is restored afterwards.
        pixel_dtype: ``"float32"`` (default): normalised pixels. ``"uint8"``: the same crop as uint8 pixels (same
            layout and random draws), to be normalised where training runs: 4x fewer bytes from the DataLoader
            workers to the training process and no per-pixel arithmetic in the workers. ``TVTSv2Trainer``
            normalises uint8 batches on its device with :func:`~modeling_tvtsv2.normalize_video_pixels` and the
            collator's :attr:`rescale_factor`, :attr:`image_mean`, :attr:`image_std` (bit-identical on CPU).
    """

    #: The pixel normalisation of the float32 output (and of uint8 batches, by the trainer): ImageNet's, as every
    #: original TVTSv2 pipeline.
    rescale_factor: float = 1 / 255
    image_mean: tuple[float, ...] = tuple(IMAGENET_DEFAULT_MEAN)
    image_std: tuple[float, ...] = tuple(IMAGENET_DEFAULT_STD)

    def __init__(
        self,
        tokenizer: Any,
        num_frames: int = 12,
        image_size: int = 224,
        patch_size: int = 16,
        mask_ratio: float = 0.0,
        num_transcripts: int = 4,
        training: bool = True,
        seed: int = 0,
        *,
        window_min: float = 3,
        window_max: float = 5,
        window_gap: float = 1.0,
        end_margin: float = 1.0,
        min_words_per_window: int = 1,
        max_span_tries: int = 4,
        max_text_length: int = 77,
        pad_to_max_length: bool = True,
        max_decode_frames: int | None = None,
        video_root: str | os.PathLike[str] | None = None,
        skip_counter: SkipCounter | None = None,
        single_thread: bool = True,
        pixel_dtype: Literal["float32", "uint8"] = "float32",
    ):
        if pixel_dtype not in ("float32", "uint8"):
            raise ValueError(f"pixel_dtype must be 'float32' or 'uint8', got {pixel_dtype!r}")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.tokenizer = tokenizer
        self.num_frames = num_frames
        self.image_size = image_size
        self.patch_size = patch_size
        self.mask_ratio = mask_ratio
        self.num_transcripts = num_transcripts
        self.training = training
        self.seed = seed
        self.window_min = window_min
        self.window_max = window_max
        self.window_gap = window_gap
        self.end_margin = end_margin
        self.min_words_per_window = min_words_per_window
        self.max_span_tries = max_span_tries
        self.max_text_length = max_text_length
        self.pad_to_max_length = pad_to_max_length
        self.max_decode_frames = max_decode_frames
        self.video_root = video_root
        self.skip_counter = skip_counter if skip_counter is not None else SkipCounter()
        self.single_thread = single_thread
        self.pixel_dtype = pixel_dtype
        self._calls = 0

    # -- sizes ---------------------------------------------------------------------------------------------
    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_keep(self) -> int:
        return int(self.num_patches * (1.0 - self.mask_ratio))

    # -- randomness ----------------------------------------------------------------------------------------
    def _rngs(self, key: Sequence[int]) -> tuple[np.random.Generator, torch.Generator]:
        seed = _seed_from_key(self.seed, key)
        return np.random.default_rng(seed), torch.Generator().manual_seed(seed)

    def _row_key(self, row: Mapping[str, Any], position: int) -> tuple[int, ...]:
        video_id = str(row.get("video_id") or "")
        if not self.training and video_id:
            return (1, _stable_hash(video_id))  # evaluation: the same draw for a video every time
        return (2, self._calls, position, _stable_hash(video_id))

    # -- one sample ----------------------------------------------------------------------------------------
    def _decode(self, row: Mapping[str, Any], torch_rng: torch.Generator, start=None, end=None) -> torch.Tensor:
        from .video_processing_tvtsv2 import read_video_pixels

        try:
            source = video_source(row.get("video"), self.video_root)
            # Decode + transform in one pass: each frame is cut to its crop as it is decoded (memory bounded by
            # the output, whatever the source resolution); same pixels and random draws as read_video followed
            # by preprocess_frames.
            pixels, _ = read_video_pixels(
                source,
                num_frames=self.num_frames,
                sampling="random" if self.training else "uniform",
                start=start,
                end=end,
                generator=torch_rng,
                max_decode_frames=self.max_decode_frames,
                transform="train" if self.training else "eval",
                image_size=self.image_size,
                rescale_factor=self.rescale_factor,
                image_mean=self.image_mean,
                image_std=self.image_std,
                pixel_dtype=self.pixel_dtype,
            )
        except Exception as error:  # noqa: BLE001 - any failure to read one video must not stop the run
            raise SampleSkipped("decode_error", f"{type(error).__name__}: {error}") from error
        return pixels

    def _duration(self, row: Mapping[str, Any], times: np.ndarray) -> float:
        duration = row.get("duration")
        if duration is not None and math.isfinite(float(duration)) and float(duration) > 0:
            return float(duration)
        try:
            probed = _probe_duration(video_source(row.get("video"), self.video_root))
        except ValueError:
            probed = None
        if probed:
            return probed
        # Last resort: the transcript's own extent (the decoder clamps the frame window to what decodes).
        return float(times[-1]) + self.end_margin if len(times) else 0.0

    def build_sample(self, row: Mapping[str, Any], key: Sequence[int]) -> dict[str, Any]:
        """Build one sample (texts, frames, keep indices) from a row; raises :class:`SampleSkipped`."""
        np_rng, torch_rng = self._rngs(key)
        kind = corpus_kind(row)
        if kind == "transcript":
            times, words = row_word_timings(row)
            if not words:
                raise SampleSkipped("no_words", "transcript is empty")
            span = sample_transcript_span(
                times,
                words,
                self._duration(row, times),
                rng=np_rng,
                num_transcripts=self.num_transcripts,
                window_min=self.window_min,
                window_max=self.window_max,
                gap=self.window_gap,
                end_margin=self.end_margin,
                min_words_per_window=self.min_words_per_window,
                max_tries=self.max_span_tries,
            )
            texts = list(span.texts)
            pixels = self._decode(row, torch_rng, start=span.frames_start, end=span.frames_end)
        else:
            caption = " ".join(str(row.get("caption") or "").split())
            if not caption:
                raise SampleSkipped("empty_caption")
            texts = [caption]
            pixels = self._decode(row, torch_rng)
        sample: dict[str, Any] = {"texts": texts, "pixel_values_videos": pixels, "kind": kind}
        if self.mask_ratio > 0:
            keep = torch.randperm(self.num_patches, generator=torch_rng)[: self.num_keep]
            sample["keep_indices"] = keep.sort().values  # order does not matter to the model; sorted reads better
        return sample

    # -- batch ---------------------------------------------------------------------------------------------
    def _unpack(self, features: Sequence[Mapping[str, Any]]):
        """-> (kind, [(row, key)], [(row, key)] reserves)."""
        if not features:
            raise ValueError("empty list of features")
        if features[0].get(_GROUP_FLAG):
            entries, reserves, kinds = [], [], set()
            for group in features:
                if not group.get(_GROUP_FLAG):
                    raise ValueError("cannot mix groups and plain rows in one batch")
                kinds.add(group["kind"])
                entries.extend(zip(group["rows"], group["keys"]))
                reserves.extend(zip(group["reserve_rows"], group["reserve_keys"]))
            if len(kinds) != 1:
                raise ValueError(f"groups of different corpus kinds in one batch: {sorted(kinds)}")
            return kinds.pop(), entries, reserves
        kinds = {corpus_kind(row) for row in features}
        if len(kinds) != 1:
            raise ValueError(f"rows of different corpus kinds in one batch: {sorted(kinds)}")
        entries = [(row, self._row_key(row, i)) for i, row in enumerate(features)]
        return kinds.pop(), entries, []

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        # Decoding and the small per-sample tensor ops are many tiny calls: torch's intra-op thread pool only adds
        # overhead there and its spinning threads starve PyAV's decoder (measured 15x slower with 2 threads on a
        # busy 2-core machine). DataLoader workers already run single-threaded; do the same in the main process.
        threads = torch.get_num_threads()
        limit = self.single_thread and threads > 1
        if limit:
            torch.set_num_threads(1)
        try:
            return self._collate(features)
        finally:
            if limit:
                torch.set_num_threads(threads)

    def _collate(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        kind, entries, reserves = self._unpack(features)
        self._calls += 1
        samples: list[dict[str, Any]] = []
        skipped = 0
        reserves = list(reserves)
        queue = list(entries)
        target = len(entries)
        while queue and len(samples) < target:
            row, key = queue.pop(0)
            try:
                samples.append(self.build_sample(row, key))
            except SampleSkipped as skip:
                skipped += 1
                self.skip_counter.record(skip.reason, str(row.get("video_id") or "?"), skip.detail)
                if reserves:  # keep the batch size when the group brought replacements
                    queue.append(reserves.pop(0))
        if not samples:
            logger.warning("all %d samples of a %s batch were skipped; returning an empty batch", skipped, kind)
        return _stack_batch(self, kind, samples, skipped)


def _stack_batch(
    collator: TVTSv2PretrainingCollator, kind: str, samples: list[dict[str, Any]], skipped: int
) -> dict[str, Any]:
    """The collator's output dict (see :class:`TVTSv2PretrainingCollator`) from its built samples: tokenised texts,
    stacked pixels and keep indices, sort labels, the skip count; batch dimension 0 when no sample was built."""
    k = collator.num_transcripts if kind == "transcript" else 1
    size = collator.image_size
    pixel_dtype = torch.uint8 if collator.pixel_dtype == "uint8" else torch.float32
    texts = [text for sample in samples for text in sample["texts"]]
    if texts:
        tokens = collator.tokenizer(
            texts,
            padding="max_length" if collator.pad_to_max_length else "longest",
            truncation=True,
            max_length=collator.max_text_length,
            return_tensors="pt",
        )
        input_ids = tokens["input_ids"].long().reshape(len(samples), k, -1)
        attention_mask = tokens["attention_mask"].long().reshape(len(samples), k, -1)
        pixels = torch.stack([sample["pixel_values_videos"] for sample in samples]).to(pixel_dtype)
    else:
        length = collator.max_text_length
        input_ids = torch.zeros(0, k, length, dtype=torch.long)
        attention_mask = torch.zeros(0, k, length, dtype=torch.long)
        pixels = torch.zeros(0, collator.num_frames, 3, size, size, dtype=pixel_dtype)
    batch: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values_videos": pixels,
    }
    if collator.mask_ratio > 0:
        batch["keep_indices"] = (
            torch.stack([sample["keep_indices"] for sample in samples])
            if samples
            else torch.zeros(0, collator.num_keep, dtype=torch.long)
        )
    if kind == "transcript":
        batch["sort_labels"] = torch.arange(k).expand(len(samples), k).clone()
    batch["return_loss"] = True
    batch["num_skipped"] = torch.tensor([skipped], dtype=torch.long)
    return batch


# --------------------------------------------------------------------------------------------------------------
# Mixing corpora
# --------------------------------------------------------------------------------------------------------------


def _env_world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def _weighted_pattern(names: Sequence[str], weights: Sequence[int]) -> list[str]:
    """One round of smooth weighted round-robin: ``[a, b]`` for 1:1, ``[a, b, a]`` for 2:1, ``[a, a, b, a]`` ..."""
    current = [0] * len(names)
    total = sum(weights)
    pattern = []
    for _ in range(total):
        current = [c + w for c, w in zip(current, weights)]
        best = max(range(len(names)), key=lambda i: (current[i], -i))
        current[best] -= total
        pattern.append(names[best])
    return pattern


def _normalise_corpora(corpora, ratio):
    if isinstance(corpora, Mapping):
        names, datasets_ = list(corpora.keys()), list(corpora.values())
    else:
        datasets_ = list(corpora)
        names = [f"corpus{i}" for i in range(len(datasets_))]
    if not datasets_:
        raise ValueError("no corpus given")
    if ratio is None:
        weights = [1] * len(names)
    elif isinstance(ratio, Mapping):
        weights = [int(ratio.get(name, 0)) for name in names]
    else:
        weights = [int(w) for w in ratio]
    if len(weights) != len(names) or any(w < 0 for w in weights) or weights[0] <= 0:
        raise ValueError(f"ratio {ratio!r} must give a non-negative integer per corpus and > 0 for the first one")
    return names, datasets_, weights


def _init_mixing(mixer, corpora, batch_size, ratio, world_size, gradient_accumulation_steps, num_reserve, seed):
    """The schedule state shared by the map-style and the streaming mixer."""
    mixer.names, mixer.corpora, mixer.weights = _normalise_corpora(corpora, ratio)
    mixer.batch_size = batch_size
    mixer.world_size = world_size or _env_world_size()
    mixer.gradient_accumulation_steps = gradient_accumulation_steps
    mixer.num_reserve = num_reserve
    mixer.seed = seed
    mixer.epoch = 0
    mixer.pattern = _weighted_pattern(mixer.names, mixer.weights)
    mixer.groups_per_step = mixer.world_size * mixer.gradient_accumulation_steps


class MixedCorpusBatchDataset(torch.utils.data.Dataset):
    """Map-style dataset whose items are whole per-device batches ("groups") drawn from one corpus each.

    Args:
        corpora: ``{name: dataset}`` (or a sequence); map-style datasets (🤗 ``Dataset`` or anything with
            ``__len__``/``__getitem__``) of the schemas above. The **first** corpus is the primary one: an epoch is
            one pass over it, as the original's epoch was one pass of YT-Temporal; the others are cycled through
            (a fresh permutation each time one is exhausted).
        batch_size: rows per group, i.e. the per-device batch size.
        ratio: optimizer steps per corpus in one round, e.g. ``{"yt": 1, "webvid": 1}`` (default: 1 each), giving
            YT, WebVid, YT, WebVid, ... (smooth weighted round-robin for other ratios).
        world_size: number of data-parallel processes (default: ``WORLD_SIZE`` from the launcher, else 1). Must
            be the same value on every rank.
        gradient_accumulation_steps: micro-batches per optimizer step; an optimizer step never mixes corpora.
        num_reserve: extra rows per group used to replace samples that fail to decode.
        seed: base seed of the shuffling (the collator has its own seed for augmentation).

    Item ``i`` is ``{"__tvtsv2_group__": True, "corpus": name, "kind": "transcript"|"caption", "rows": [...],
    "keys": [...], "reserve_rows": [...], "reserve_keys": [...], "step": optimizer step}``; rows are read from the
    corpus in the DataLoader worker that asks for the item. Use with
    ``TrainingArguments(per_device_train_batch_size=1, train_sampling_strategy="sequential",
    remove_unused_columns=False)``.
    """

    def __init__(
        self,
        corpora: Mapping[str, Any] | Sequence[Any],
        batch_size: int,
        *,
        ratio: Mapping[str, int] | Sequence[int] | None = None,
        world_size: int | None = None,
        gradient_accumulation_steps: int = 1,
        num_reserve: int = 2,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        _init_mixing(self, corpora, batch_size, ratio, world_size, gradient_accumulation_steps, num_reserve, seed)
        self.kinds = [corpus_kind(corpus) for corpus in self.corpora]
        self.sizes = [len(corpus) for corpus in self.corpora]
        primary_steps = self.sizes[0] // (self.batch_size * self.groups_per_step)
        self.rounds = primary_steps // self.weights[0]
        if self.rounds == 0:
            raise ValueError(
                f"the primary corpus ({self.sizes[0]} rows) is smaller than one optimizer step of "
                f"{self.batch_size} x {self.groups_per_step} groups x {self.weights[0]} (ratio)"
            )
        for name, size in zip(self.names, self.sizes):
            if size == 0:
                raise ValueError(f"corpus {name!r} is empty")
        self._permutation_cache: dict[tuple[int, int], np.ndarray] = {}

    # -- schedule ------------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate / the Trainer before each epoch; changes the shuffling."""
        self.epoch = int(epoch)

    @property
    def num_steps(self) -> int:
        """Optimizer steps per epoch."""
        return self.rounds * len(self.pattern)

    def __len__(self) -> int:
        return self.num_steps * self.groups_per_step

    def step_corpus(self, step: int) -> str:
        """Name of the corpus of optimizer step ``step`` (within an epoch)."""
        return self.pattern[step % len(self.pattern)]

    def _occurrence(self, step: int, corpus: int) -> int:
        """How many steps of ``corpus`` precede ``step`` in this epoch."""
        full_rounds, offset = divmod(step, len(self.pattern))
        name = self.names[corpus]
        return full_rounds * self.weights[corpus] + self.pattern[:offset].count(name)

    def _permutation(self, corpus: int, cycle: int) -> np.ndarray:
        key = (corpus, cycle)
        if key not in self._permutation_cache:
            if len(self._permutation_cache) > 4:
                self._permutation_cache.clear()
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, corpus, cycle]))
            dtype = np.int32 if self.sizes[corpus] < 2**31 else np.int64
            self._permutation_cache[key] = rng.permutation(self.sizes[corpus]).astype(dtype)
        return self._permutation_cache[key]

    def _row_index(self, corpus: int, position: int) -> tuple[int, int]:
        """Row of the ``position``-th draw of ``corpus`` -> (row index, cycle)."""
        size = self.sizes[corpus]
        if corpus == 0:  # the primary corpus: one permutation per epoch
            cycle = self.epoch
        else:  # secondary corpora continue across epochs and restart with a new permutation when exhausted
            per_epoch = self.rounds * self.weights[corpus] * self.groups_per_step * self.batch_size
            position += self.epoch * per_epoch
            cycle = position // size
        return int(self._permutation(corpus, cycle)[position % size]), cycle

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        step, within = divmod(index, self.groups_per_step)
        name = self.step_corpus(step)
        corpus = self.names.index(name)
        group_number = self._occurrence(step, corpus) * self.groups_per_step + within
        rows, keys = [], []
        for j in range(self.batch_size):
            row_index, cycle = self._row_index(corpus, group_number * self.batch_size + j)
            rows.append(self.corpora[corpus][row_index])
            keys.append((corpus, cycle, row_index, self.epoch))
        # Reserves: random rows of the same corpus, drawn from the group's own RNG (deterministic).
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7919, corpus, self.epoch, index]))
        reserve_rows, reserve_keys = [], []
        for j in range(self.num_reserve):
            row_index = int(rng.integers(self.sizes[corpus]))
            reserve_rows.append(self.corpora[corpus][row_index])
            reserve_keys.append((corpus, 1_000_003 + j, row_index, self.epoch, index))
        return {
            _GROUP_FLAG: True,
            "corpus": name,
            "kind": self.kinds[corpus],
            "step": step,
            "rows": rows,
            "keys": keys,
            "reserve_rows": reserve_rows,
            "reserve_keys": reserve_keys,
        }


def _iterate_rows(dataset: Any, chunk: int = 64) -> Iterator[dict[str, Any]]:
    """All rows of ``dataset``, also inside a DataLoader worker.

    A 🤗 ``IterableDataset`` iterated with ``for`` in a DataLoader worker yields only that worker's shards; its
    public ``.iter(batch_size)`` does not, and gives the same rows in the same order.
    """
    from datasets import IterableDataset as HFIterableDataset

    if isinstance(dataset, HFIterableDataset):
        for batch in dataset.iter(batch_size=chunk):
            columns = list(batch)
            for i in range(len(batch[columns[0]]) if columns else 0):
                yield {column: batch[column][i] for column in columns}
    else:
        yield from dataset


class MixedCorpusBatchStream(torch.utils.data.IterableDataset):
    """Streaming counterpart of :class:`MixedCorpusBatchDataset` for 🤗 ``IterableDataset`` corpora.

    Yields the same kind of groups. An epoch ends when the primary (first) stream is exhausted; the other streams
    restart when exhausted. Shuffle the streams yourself (``ds.shuffle(seed=..., buffer_size=...)``);
    ``set_epoch`` is forwarded to them so that the shuffle changes every epoch and every restart.

    Layout. The output is a sequence of *blocks*, one per per-rank micro-step ``n``: ``world_size`` consecutive
    groups from the corpus of optimizer step ``n // gradient_accumulation_steps`` (by ``ratio``), group ``r`` for
    rank ``r``. accelerate's ``IterableDatasetShard`` (``dispatch_batches=False``) hands position ``r`` of every
    block to rank ``r``, so all ranks train on the same corpus at every step, on different rows.

    DataLoader workers: worker ``w`` of ``W`` emits the blocks ``n = w, w + W, ...`` and the DataLoader's
    round-robin over workers restores the order ``n = 0, 1, 2, ...``. To know which rows belong to which block,
    every worker (and every rank) reads the whole streams and drops the rows of other blocks: reading costs
    ``W x world_size`` times the data, decoding (the expensive part, in the collator) is not repeated.
    """

    def __init__(
        self,
        corpora: Mapping[str, Any] | Sequence[Any],
        batch_size: int,
        *,
        ratio: Mapping[str, int] | Sequence[int] | None = None,
        world_size: int | None = None,
        gradient_accumulation_steps: int = 1,
        num_reserve: int = 1,
        seed: int = 0,
        kinds: Sequence[CorpusKind] | None = None,
    ):
        _init_mixing(self, corpora, batch_size, ratio, world_size, gradient_accumulation_steps, num_reserve, seed)
        self.kinds = list(kinds) if kinds is not None else [corpus_kind(c) for c in self.corpora]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _stream(self, corpus: int) -> Iterator[tuple[dict[str, Any], tuple[int, ...]]]:
        """Rows of one corpus with their keys; secondary corpora restart forever."""
        dataset = self.corpora[corpus]
        cycle = 0
        while True:
            if hasattr(dataset, "set_epoch"):
                # a distinct shuffle per epoch and per restart, the same on every rank and worker
                dataset.set_epoch(self.epoch * 1000 + cycle)
            position = -1
            for position, row in enumerate(_iterate_rows(dataset)):
                yield row, (corpus, self.epoch, cycle, position)
            if corpus == 0 or position < 0:
                return
            cycle += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        streams = [self._stream(i) for i in range(len(self.corpora))]
        group_size = self.batch_size + self.num_reserve
        for micro_step in itertools.count():
            step = micro_step // self.gradient_accumulation_steps
            name = self.pattern[step % len(self.pattern)]
            corpus = self.names.index(name)
            # Read the whole block first: an incomplete block ends the epoch (on every rank and worker alike).
            block = []
            for _ in range(self.world_size * group_size):
                try:
                    block.append(next(streams[corpus]))
                except StopIteration:
                    return
            if micro_step % num_workers != worker:
                continue  # another worker's block: its rows were read only to stay in step
            for rank in range(self.world_size):
                taken = block[rank * group_size : (rank + 1) * group_size]
                rows, reserves = taken[: self.batch_size], taken[self.batch_size :]
                yield {
                    _GROUP_FLAG: True,
                    "corpus": name,
                    "kind": self.kinds[corpus],
                    "step": step,
                    "rows": [row for row, _ in rows],
                    "keys": [key for _, key in rows],
                    "reserve_rows": [row for row, _ in reserves],
                    "reserve_keys": [key for _, key in reserves],
                }


def iter_collated(dataset: Iterable[Any], collator: TVTSv2PretrainingCollator) -> Iterator[dict[str, Any]]:
    """Collate each group of ``dataset`` on its own (a small helper for scripts and tests)."""
    for group in dataset:
        yield collator([group])
