"""The pre-training collator: corpus rows -> TVTSv2 batches, decoding videos on the fly (in DataLoader workers).

Randomness and resuming
-----------------------
Every sample gets its own RNG seeded from ``(collator seed, sample key)``. Groups from
:class:`~modeling_tvtsv2.data.corpus_mixing.MixedCorpusBatchDataset` / ``MixedCorpusBatchStream`` carry keys
``(corpus index, epoch or cycle, row index, ...)`` that depend only on the position in the data order, so
re-reading the same step after a resume (or in another DataLoader worker) draws the same span, frames, crop and
tube mask. Plain rows carry no key: in evaluation mode the key is a hash of ``video_id`` (the same windows every
evaluation); in training mode it is the collator's call counter and the row position (not reproducible across
resumes).

How samples are built: :mod:`~modeling_tvtsv2.data.transcript_windows`; what happens to samples that cannot be
built: :mod:`~modeling_tvtsv2.data.skipping`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.utils import logging

from ..video_decoding_tvtsv2 import probe_header_duration
from ..video_reading_tvtsv2 import read_video_pixels
from .corpus_mixing import STREAM_STATE_KEY, unpack_groups
from .schema import corpus_kind, video_source
from .skipping import SampleSkipped, SkipCounter
from .transcript_windows import row_word_timings, sample_transcript_span

logger = logging.get_logger(__name__)

__all__ = ["TVTSv2PretrainingCollator"]


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _seed_from_key(seed: int, key: Sequence[int]) -> int:
    # SeedSequence mixes the entropy well, so nearby keys give unrelated streams.
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *[int(k) & 0xFFFFFFFFFFFFFFFF for k in key]])
    return int(state.generate_state(1, dtype=np.uint64)[0] & 0x7FFFFFFFFFFFFFFF)


@contextlib.contextmanager
def _one_torch_thread(enabled: bool) -> Iterator[None]:
    """Runs the block with one torch intra-op thread (restored afterwards) when ``enabled``.

    Decoding and the small per-sample tensor ops are many tiny calls: torch's intra-op thread pool only adds
    overhead there and its spinning threads starve PyAV's decoder (measured 15x slower with 2 threads on a busy
    2-core machine). DataLoader workers already run single-threaded; this does the same in the main process.
    """
    threads = torch.get_num_threads()
    limit = enabled and threads > 1
    if limit:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if limit:
            torch.set_num_threads(threads)


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
    ``STREAM_STATE_KEY``      ``dict``                    streamed groups only: the stream position (resume)
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
            # Header only (cheap, per sample): the duration of the stream the reader will decode.
            probed = probe_header_duration(video_source(row.get("video"), self.video_root))
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
        groups = unpack_groups(features)
        if groups is not None:
            return groups
        kinds = {corpus_kind(row) for row in features}
        if len(kinds) != 1:
            raise ValueError(f"rows of different corpus kinds in one batch: {sorted(kinds)}")
        entries = [(row, self._row_key(row, i)) for i, row in enumerate(features)]
        return kinds.pop(), entries, []

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        with _one_torch_thread(self.single_thread):
            return self._collate(features)

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
        batch = _stack_batch(self, kind, samples, skipped)
        stream_state = features[-1].get(STREAM_STATE_KEY) if isinstance(features[-1], Mapping) else None
        if stream_state is not None:  # a streamed group's position travels with its batch (for checkpoints)
            batch[STREAM_STATE_KEY] = stream_state
        return batch


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
