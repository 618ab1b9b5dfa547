"""The embedding engine: videos (or windows of videos) and texts -> TVTSv2 embeddings, in batches.

Every place that embeds with a trained model goes through here: zero-shot evaluation (`zero_shot`), corpus
extraction (`extract`, hence `tvtsv2 search` indexes), the linear probe's on-the-fly features (`linear_probe`) and
the search queries (`search`).

* `embed_videos(model, processor, read_video, clips, ...)`: `read_video(index)` gives what the video processor
  reads (a path, bytes, a decoded array); each clip is `(index, start, end)` (seconds, `None` = the whole video).
  Clips are decoded in DataLoader workers and embedded `batch_size` at a time, in the given order: batches are made
  only from the clips passed, so the same clips give the same batches (and the same numbers) wherever they are
  computed. An unreadable clip raises a `VideoRowError` naming its row (`on_error="raise"`) or is left out and
  listed in `EmbeddedClips.skipped` (`on_error="skip"`).
* `embed_texts(model, processor, texts, ...)`: with the processor's tokenizer settings (a bare tokenizer gets
  CLIP's: padding to 77 tokens, truncation).
* Readers for `read_video`: `VideoList` (videos in memory) and `DatasetVideos` (one column of a 🤗 Dataset, read row
  by row); both pickle into worker processes.

Inputs run on the model's device and in its dtype (`model_device_dtype`); mixed precision is the caller's
`modeling_tvtsv2.autocast_context` around the calls (as `run_eval.py --autocast` does around a whole evaluation).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..data.schema import undecoded_videos, video_source


__all__ = [
    "ON_ERROR_CHOICES",
    "REPORTED_REASON_CHARS",
    "Clip",
    "DatasetVideos",
    "EmbeddedClips",
    "VideoList",
    "VideoRowError",
    "embed_texts",
    "embed_videos",
    "model_device_dtype",
    "whole_videos",
]

ON_ERROR_CHOICES = ("raise", "skip")
"""What `embed_videos` does with a clip that cannot be read: raise a `VideoRowError`, or skip and report it."""

REPORTED_REASON_CHARS = 300
"""Evaluation reports cut a decoder's reason to this length (a whole decoder dump would drown the row's name)."""

Clip = tuple[int, float | None, float | None]
"""`(row index, start, end)`: a video's window in seconds; `None` bounds mean the whole video."""


class VideoRowError(ValueError):
    """A dataset row's video cannot be read; the message names the row (index, `video_id`) and the reason."""


# --------------------------------------------------------------------------------------------------------------
# Readers: index -> what the video processor reads
# --------------------------------------------------------------------------------------------------------------


def _processor_input(item: Any, video_root: str | None) -> Any:
    # Dataset cells (`{"bytes", "path"}` dicts, paths, bytes) are resolved by the corpus schema; anything else
    # (a decoded array or tensor) is already what the video processor reads.
    if isinstance(item, (Mapping, str, os.PathLike, bytes, bytearray, memoryview)):
        return video_source(item, video_root)
    return item


class VideoList:
    """`index -> video` over videos held in memory: paths, bytes, `{"bytes", "path"}` dicts or decoded arrays.

    Cells are resolved up front (a cell without a video raises here, before anything is decoded).
    """

    def __init__(self, videos: Iterable[Any], video_root: str | None = None):
        self.videos = [_processor_input(video, video_root) for video in videos]

    def __len__(self) -> int:
        return len(self.videos)

    def __call__(self, index: int) -> Any:
        return self.videos[index]


class DatasetVideos:
    """`index -> video` over one column of a 🤗 Dataset, read row by row (never the whole column of bytes).

    Relative paths are resolved against `video_root`. When the dataset has an `id_column`, errors name the row by
    it (`row_name`, `video_id`). A class rather than a closure so that it pickles into DataLoader worker processes
    under any start method.
    """

    def __init__(self, dataset, video_column: str, video_root: str | None = None, id_column: str | None = "video_id"):
        if video_column not in dataset.column_names:
            raise ValueError(f"Video column {video_column!r} not found; columns: {dataset.column_names}")
        self.column = undecoded_videos(dataset, video_column).select_columns([video_column])
        self.video_column = video_column
        self.video_root = video_root
        has_ids = id_column is not None and id_column in dataset.column_names
        self.ids = dataset.select_columns([id_column]) if has_ids else None
        self.id_column = id_column

    def __len__(self) -> int:
        return len(self.column)

    def __call__(self, index: int) -> Any:
        return _processor_input(self.column[index][self.video_column], self.video_root)

    def video_id(self, index: int) -> str | None:
        return None if self.ids is None else str(self.ids[index][self.id_column])

    def row_name(self, index: int) -> str:
        video_id = self.video_id(index)
        return f"row {index}" + (f" (video_id {video_id!r})" if video_id is not None else "")


def whole_videos(indices: Iterable[int]) -> list[Clip]:
    """`[(index, None, None), ...]`: the clips that are the whole videos `indices`."""
    return [(int(index), None, None) for index in indices]


def model_device_dtype(model) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of the model's (first) parameters: where and in what its inputs must be."""
    parameter = next(model.parameters())
    return parameter.device, parameter.dtype


def _embedding_size(model) -> int:
    return model.config.projection_dim if hasattr(model, "config") else 0


# --------------------------------------------------------------------------------------------------------------
# Videos
# --------------------------------------------------------------------------------------------------------------


@dataclass
class EmbeddedClips:
    """What `embed_videos` returns: the clips that decoded, in input order, their embeddings, and what was skipped.

    `skipped` holds `{"row", "reason"}` dicts (plus `"start"`, `"end"` for a window), in input order.
    """

    items: list[Clip]
    embeddings: torch.Tensor  # [n, D] float32 on the CPU (L2-normalised when asked)
    frame_times: list[list[float]] | None  # per embedded clip, the sampled frames' times (when asked)
    skipped: list[dict[str, Any]]

    def without_non_finite(self) -> "tuple[EmbeddedClips, list[Clip]]":
        """These clips without those whose embedding holds NaN or inf, and the items of those."""
        finite = torch.isfinite(self.embeddings).all(dim=1).tolist()
        if all(finite):
            return self, []
        keep = [k for k, ok in enumerate(finite) if ok]
        times = None if self.frame_times is None else [self.frame_times[k] for k in keep]
        kept = EmbeddedClips([self.items[k] for k in keep], self.embeddings[keep], times, self.skipped)
        return kept, [item for item, ok in zip(self.items, finite) if not ok]


class _ClipDecoder(torch.utils.data.Dataset):
    """Decodes and preprocesses one clip per item, in DataLoader workers.

    Items are `(position, pixels, frame_times)`, or `(position, None, reason)` for an unreadable clip when
    `skip_errors` (else a `VideoRowError` naming the row is raised, in the worker, chained to the decoder's error).
    """

    def __init__(self, read_video, clips, video_processor, video_kwargs, frame_times: bool, skip_errors: bool):
        self.read_video, self.clips = read_video, clips
        self.video_processor, self.video_kwargs = video_processor, video_kwargs
        self.frame_times, self.skip_errors = frame_times, skip_errors

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, position: int) -> tuple[int, torch.Tensor | None, list[float] | str | None]:
        index, start, end = self.clips[position]
        # Only what the caller asked for reaches the processor, so its own defaults (and `video_kwargs`) apply.
        window = {} if start is None and end is None else {"start": start, "end": end}
        metadata = {"return_metadata": True} if self.frame_times else {}
        try:
            outputs = self.video_processor(
                videos=[self.read_video(index)], return_tensors="pt", **window, **metadata, **self.video_kwargs
            )
        except Exception as error:  # noqa: BLE001 - any decoder failure is this clip's failure
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            if self.skip_errors:
                return position, None, reason
            name = self.read_video.row_name(index) if hasattr(self.read_video, "row_name") else f"row {index}"
            reason = reason[:REPORTED_REASON_CHARS]
            raise VideoRowError(f"{name}: {reason} (pass --on-error skip to skip unreadable videos)") from error
        times = None
        if self.frame_times:
            times = [float(t) for t in outputs["video_metadata"][0].frame_timestamps or []]
        return position, outputs["pixel_values_videos"][0], times


def _stack_decoded(items):
    """A batch: `(positions decoded, their pixels stacked (None if none), their frame times, [(position, reason)])`."""
    decoded = [(position, pixels, times) for position, pixels, times in items if pixels is not None]
    failed = [(position, reason) for position, pixels, reason in items if pixels is None]
    pixels = torch.stack([p for _, p, _ in decoded]) if decoded else None
    return [position for position, _, _ in decoded], pixels, [times for _, _, times in decoded], failed


@torch.no_grad()
def embed_videos(
    model,
    processor,
    read_video: Callable[[int], Any],
    clips: Sequence[Clip],
    *,
    batch_size: int = 16,
    num_workers: int = 0,
    video_kwargs: Mapping[str, Any] | None = None,
    normalize: bool = True,
    frame_times: bool = False,
    on_error: str = "raise",
    progress: Callable[[int], Any] | None = None,
) -> EmbeddedClips:
    """Embeds `clips` in batches of `batch_size`, in order.

    Args:
        model: a `TVTSv2Model` (or anything with `get_video_features`, e.g. a `PeftModel` around one), on the
            device and in the dtype to run in, in eval mode.
        processor: a `TVTSv2Processor` (its `video_processor` is used) or a video processor.
        read_video: `index -> video` (a `VideoList`, a `DatasetVideos`, ...); must pickle when `num_workers > 0`.
            A `row_name(index)` method, when it has one, names rows in errors.
        clips: `(index, start, end)` per clip (`whole_videos(indices)` for whole videos); the window is passed to
            the processor's `start`/`end` only when set.
        num_workers: DataLoader workers decoding clips in parallel (0 = in this process).
        video_kwargs: video processor options, e.g. `{"num_frames": 12, "sampling": "uniform"}`.
        normalize: L2-normalise each batch's embeddings on the model's device.
        frame_times: also return the times of the frames sampled from each clip.
        on_error: `"raise"`: an unreadable clip raises a `VideoRowError` naming its row; `"skip"`: it is left out
            and listed in `skipped`.
        progress: called after each batch with its number of clips (read or not).

    Returns:
        `EmbeddedClips`; `embeddings` is `[n, D]` float32 on the CPU, `n` = the clips that were read.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    video_processor = getattr(processor, "video_processor", processor)
    clips = list(clips)
    decoder = _ClipDecoder(
        read_video, clips, video_processor, dict(video_kwargs or {}), frame_times, skip_errors=on_error == "skip"
    )
    loader = torch.utils.data.DataLoader(
        decoder, batch_size=batch_size, num_workers=num_workers, collate_fn=_stack_decoded
    )
    device, dtype = model_device_dtype(model)
    kept, chunks, times, skipped = [], [], [], []
    for positions, pixel_values, batch_times, failed in loader:
        for position, reason in failed:
            index, start, end = clips[position]
            entry = {"row": index, "reason": reason}
            if start is not None:
                entry.update(start=start, end=end)
            skipped.append(entry)
        if pixel_values is not None:
            output = model.get_video_features(pixel_values_videos=pixel_values.to(device=device, dtype=dtype))
            embeddings = output.pooler_output.float()
            chunks.append((F.normalize(embeddings, dim=-1) if normalize else embeddings).cpu())
            kept.extend(clips[position] for position in positions)
            times.extend(batch_times)
        if progress is not None:
            progress(len(positions) + len(failed))
    embeddings = torch.cat(chunks) if chunks else torch.zeros(0, _embedding_size(model))
    return EmbeddedClips(kept, embeddings, times if frame_times else None, skipped)


# --------------------------------------------------------------------------------------------------------------
# Texts
# --------------------------------------------------------------------------------------------------------------


def _tokenize(processor, texts: list[str]):
    # A TVTSv2Processor applies its own text defaults (padding to 77, truncation keeping EOT); a bare tokenizer
    # gets the same settings explicitly.
    if hasattr(processor, "tokenizer"):
        return processor(text=texts, return_tensors="pt")
    return processor(texts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")


@torch.no_grad()
def embed_texts(
    model,
    processor,
    texts: Sequence[str],
    batch_size: int = 256,
    *,
    normalize: bool = True,
    progress: Callable[[int], Any] | None = None,
) -> torch.Tensor:
    """Embeds texts in batches of `batch_size`, tokenised with the processor's settings (CLIP BPE, 77 tokens).

    Args:
        processor: a `TVTSv2Processor` or a bare tokenizer.
        normalize: L2-normalise each batch's embeddings on the model's device.
        progress: called after each batch with its number of texts.

    Returns:
        `[N, D]` float32 embeddings on the CPU (`[0, D]` for no texts).
    """
    texts = list(texts)
    device, _ = model_device_dtype(model)
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        inputs = _tokenize(processor, batch)
        mask = inputs.get("attention_mask")
        output = model.get_text_features(
            input_ids=inputs["input_ids"].to(device), attention_mask=None if mask is None else mask.to(device)
        )
        embeddings = output.pooler_output.float()
        chunks.append((F.normalize(embeddings, dim=-1) if normalize else embeddings).cpu())
        if progress is not None:
            progress(len(batch))
    return torch.cat(chunks) if chunks else torch.zeros(0, _embedding_size(model))

