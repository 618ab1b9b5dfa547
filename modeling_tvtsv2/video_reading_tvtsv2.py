"""Reading frames from a video: :func:`read_video` / :func:`read_video_pixels`, frame sampling and read limits.

This file is a flat Hub file: project code comes only from its siblings :mod:`video_decoding_tvtsv2` (PyAV:
opening, indexing, decoding) and :mod:`video_transforms_tvtsv2` (what is kept of each decoded frame).

Reading (:func:`read_video`)
    The frame list of the range (whole video or ``start``/``end`` window) comes from the packets (see
    :mod:`video_decoding_tvtsv2`); sampling runs over it and only the sampled frames are decoded. If a sampled
    frame turns out not to decode (damaged or truncated file), it is dropped from the frame list and sampling is
    redone on the frames that remain, so sampling always runs over frames that decode. Files without usable
    timestamps (raw streams) fall back to decoding the stream from its first byte twice (count, then convert).
    ``max_decode_frames`` caps the decoder's work per call. Each distinct sampled frame is decoded and converted
    once; repeats (short videos) are copies made at the end.

Limits (bounded time and memory)
    ``max_frames`` (default 10,000) caps the frames one call returns: ``num_frames``, or the count that
    ``num_frames=None`` (every frame / every ``1/fps`` step) implies, checked before any position is computed.
    ``max_output_bytes`` (default 4 GiB) caps the returned tensor, checked at the first decoded frame. Both raise
    a ``ValueError`` saying which limit and how to raise it (``None``: no limit).
    :func:`read_video_pixels` (decode + transform, what the training collator uses) reduces every decoded frame to
    its crop at once and repeats frames after the transform, so its memory is about one decoded frame plus the
    output whatever the source resolution; its pixels and random draws are exactly those of
    ``preprocess_frames(read_video(...))``.

Sampling strategies (``sampling=``), applied to the frames of the whole video or of the ``start``/``end`` window
    * ``"uniform"``: the original TVTSv2 evaluation datasets. The ``n`` frames are cut into ``T`` equal segments
      with edges ``linspace(0, n, T + 1)`` (floored); each segment ``[a, b]`` (``b`` = next edge - 1) gives its
      middle frame ``(a + b) // 2``.
    * ``"linspace"``: the original feature-extraction script: frames ``linspace(0, n - 1, T)`` rounded down (the
      first and last frames are included).
    * ``"random"``: training. Same segments as ``"uniform"``, one uniformly random frame in each (use
      ``generator`` for reproducibility). The original code drew from ``range(a, b)`` and so never picked a
      segment's last frame (and failed on one-frame segments); here any frame of ``[a, b]`` can be drawn.
    * ``fps=`` (any strategy name is then ignored): frames at a fixed rate, ``t = t0 + k / fps`` for
      ``k = 0..T-1`` from the window start ``t0`` (0 without a window); each time takes the frame on screen at
      that time. With ``num_frames=None`` all steps up to the end of the window/video are returned.
    * ``num_frames=None`` without ``fps``: every frame of the window/video.

Short videos (fewer than ``T`` frames in the window): frames are repeated, never padded and never an error.
    ``"uniform"`` takes the frame on screen at the middle of each of the ``T`` segments (``floor((i + 0.5) n / T)``),
    so every frame is used, in order, each repeated ``T/n`` times (rounded); ``"random"`` draws a random time in
    each segment; ``"linspace"`` repeats through its own formula; fixed-``fps`` sampling past the end repeats the
    last frame. A window that contains no frame start yields the frame on screen at ``start``.
"""

import bisect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.video_utils import VideoMetadata

from .video_decoding_tvtsv2 import (
    FrameIndexMismatch,
    HeaderIndexMismatch,
    PyAVVideo,
    VideoDecodeError,
    VideoSource,
)
from .video_transforms_tvtsv2 import (
    TRANSFORMS,
    CropConverter,
    FrameConverter,
    SquashConverter,
    is_decoded_video,
    normalize_frames,
    to_uint8_video,
)


__all__ = [
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "PIXEL_DTYPES",
    "SAMPLING_STRATEGIES",
    "TVTSv2VideoMetadata",
    "read_video",
    "read_video_pixels",
    "sample_frame_indices",
    "select_frame_positions",
]

SAMPLING_STRATEGIES = ("uniform", "linspace", "random")
PIXEL_DTYPES = ("float32", "uint8")
# Rounds of "drop the frames that did not decode and sample again".
_MAX_RESAMPLE_ROUNDS = 3


@dataclass
class TVTSv2VideoMetadata(VideoMetadata):
    """``VideoMetadata`` with exact frame times and decode statistics.

    Counts describe what the stream holds, not what its header claims:

    * ``total_num_frames``: frames in the sampled range (the whole video, or the ``start``/``end`` window), counted
      from the demuxed packets, minus any that turned out not to decode.
    * ``frames_indices``: the sampled frames, indices into that range (repeated for short videos).
    * ``fps``: average frame rate measured from the frame timestamps (header rate when only one frame is known).
    * ``duration``: seconds from 0 to the end of the last frame for whole-video reads; for window reads, which do
      not look at the rest of the file, the container's duration (a header value).
    * ``timestamps`` (property): exact presentation time in seconds of each sampled frame.
    * ``decoded_frames``: frames the decoder produced for this read (its cost; ``len(frames_indices)`` is the floor).
    * ``window``: the ``(start, end)`` requested, if any; ``source``: the file name or a description.
    """

    frame_timestamps: list[float] | None = None
    decoded_frames: int = 0
    window: tuple[float | None, float | None] | None = None
    source: str | None = None

    @property
    def timestamps(self) -> list[float]:
        "Timestamps of the sampled frames in seconds."
        if self.frame_timestamps is not None:
            return list(self.frame_timestamps)
        return super().timestamps


# --------------------------------------------------------------------------------------------------------------
# Frame sampling
# --------------------------------------------------------------------------------------------------------------


def _segment_edges(n: int, num_frames: int) -> np.ndarray:
    # Exactly the original's `np.linspace(start=0, stop=vlen, num=num_frames + 1).astype(int)`: computed with
    # numpy so that float rounding at the edges is identical.
    return np.linspace(start=0, stop=n, num=num_frames + 1).astype(int)


def sample_frame_indices(
    num_available: int,
    num_frames: int,
    sampling: str = "uniform",
    generator: torch.Generator | None = None,
) -> list[int]:
    """Indices of ``num_frames`` frames out of ``num_available`` with a named strategy (see the module docstring).

    Fewer available frames than requested repeats frames (in temporal order) instead of failing.
    """
    if num_available < 1:
        raise ValueError("cannot sample from a video with no frames")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    n, t = int(num_available), int(num_frames)
    if sampling == "linspace":
        return np.linspace(0, n - 1, t).astype(int).tolist()
    if sampling not in ("uniform", "random"):
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLING_STRATEGIES} (or pass fps=)")
    if n < t:
        # Short-video policy: T equal segments of the continuous time line [0, n); take the frame on screen at the
        # segment's middle ("uniform") or at a random time inside it ("random").
        if sampling == "uniform":
            offsets = torch.full((t,), 0.5, dtype=torch.float64)
        else:
            offsets = torch.rand(t, generator=generator, dtype=torch.float64)
        positions = (torch.arange(t, dtype=torch.float64) + offsets) * n / t
        return positions.floor().clamp(0, n - 1).long().tolist()
    edges = _segment_edges(n, t)
    starts, ends = edges[:-1], edges[1:] - 1
    if sampling == "uniform":
        return ((starts + ends) // 2).tolist()
    lengths = torch.as_tensor(ends - starts + 1, dtype=torch.float64)
    draws = (torch.rand(t, generator=generator, dtype=torch.float64) * lengths).floor().long()
    return (torch.as_tensor(starts) + torch.minimum(draws, lengths.long() - 1)).tolist()


def select_frame_positions(
    times: Sequence[float],
    num_frames: int | None,
    sampling: str,
    fps: float | None,
    generator: torch.Generator | None,
    t0: float,
    t_end: float,
) -> list[int]:
    """Positions into ``times`` (sorted frame times of the sampling range) for the requested frames.

    ``sampling`` may be a callable ``sampling(times, t0, t_end) -> positions`` (how the video processor routes
    sampling through its ``sample_frames`` hook); it then decides alone.
    """
    if callable(sampling):
        return list(sampling(times, t0, t_end))
    n = len(times)
    if fps is not None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        count = num_frames if num_frames is not None else max(1, math.ceil((t_end - t0) * fps - 1e-9))
        positions = []
        for k in range(count):
            # The frame on screen at time t is the last one that started at or before t (tiny epsilon: times are
            # rationals converted to float, so t0 + k/fps can land a hair before a frame's start).
            pos = bisect.bisect_right(times, t0 + k / fps + 1e-6) - 1
            positions.append(min(max(pos, 0), n - 1))
        return positions
    if num_frames is None:
        return list(range(n))
    return sample_frame_indices(n, num_frames, sampling, generator)


def _window_positions(times: Sequence[float], start: float | None, end: float | None) -> tuple[int, int]:
    """Half-open range ``[lo, hi)`` of positions of the frames that start inside ``[start, end)``."""
    lo = 0 if start is None else bisect.bisect_left(times, start - 1e-9)
    hi = len(times) if end is None else bisect.bisect_left(times, end - 1e-9)
    if hi <= lo:
        # No frame starts inside the window: use the frame on screen at `start` (a window shorter than a frame).
        on_screen = max(bisect.bisect_right(times, (start or 0.0) + 1e-9) - 1, 0)
        return on_screen, on_screen + 1
    return lo, hi


def _check_window(start: float | None, end: float | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and not math.isfinite(value):  # NaN/inf would overflow frame-index arithmetic
            raise ValueError(f"{name} must be a finite number of seconds, got {value}")
    if start is not None and start < 0:
        raise ValueError(f"start must be >= 0 seconds, got {start}")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")


# --------------------------------------------------------------------------------------------------------------
# read_video / read_video_pixels
# --------------------------------------------------------------------------------------------------------------


# Limits on what one read may produce (read_video's and read_video_pixels' max_frames / max_output_bytes): a
# request past them is refused with a ValueError before anything big is allocated or decoded.
DEFAULT_MAX_FRAMES = 10_000
DEFAULT_MAX_OUTPUT_BYTES = 4 * 2**30


def read_video(
    video: VideoSource | np.ndarray | torch.Tensor | Sequence[Any],
    num_frames: int | None = 12,
    sampling: str = "uniform",
    start: float | None = None,
    end: float | None = None,
    fps: float | None = None,
    generator: torch.Generator | None = None,
    max_decode_frames: int | None = None,
    *,
    source_fps: float | None = None,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
    max_output_bytes: int | None = DEFAULT_MAX_OUTPUT_BYTES,
) -> tuple[torch.Tensor, TVTSv2VideoMetadata]:
    """Decode and sample frames of a video.

    Args:
        video: a path, ``bytes``, a binary file object, or an already-decoded video (``[T, H, W, C]`` uint8 array or
            tensor, or a list of ``[H, W, C]`` frames).
        num_frames: frames to return (``T``); ``None`` returns every frame (or every ``1/fps`` step) of the range.
        sampling: ``"uniform"`` (original evaluation), ``"linspace"`` (original feature extraction) or
            ``"random"`` (training); see the module docstring.
        start, end: optional time window in seconds; sampling applies to the frames that start inside it.
        fps: sample at this fixed rate instead (``sampling`` is then ignored).
        generator: random generator for ``sampling="random"``.
        max_decode_frames: hard cap on the number of frames the decoder may produce for this call.
        source_fps: frame rate of an already-decoded input (needed there for ``start``/``end``/``fps``).
        max_frames: most frames one call may return (``num_frames``, or the count that ``fps``/``None`` imply);
            default 10,000, ``None`` for no limit.
        max_output_bytes: most bytes the returned frames may take (``T x H x W x 3``); default 4 GiB, ``None`` for
            no limit. Checked at the first decoded frame, when the size is known.

    Returns:
        ``(frames, metadata)``: uint8 tensor ``[T, H, W, 3]`` and a :class:`TVTSv2VideoMetadata`. Each distinct
        sampled frame is decoded and converted once; repeats (short videos) are copies made for the output.

    Raises:
        VideoDecodeError: (a ``ValueError``) the file cannot be opened, has no video stream, or no frame decodes;
            :class:`VideoFileNotFoundError` for a missing path.
        ValueError: invalid arguments, a window that starts after the end of the video, or a request past
            ``max_frames`` / ``max_output_bytes``.
    """
    distinct, inverse, metadata = _read_distinct(
        video, num_frames, sampling, start, end, fps, generator, max_decode_frames, source_fps, max_frames,
        FrameConverter(max_output_bytes),
    )
    return _repeat(distinct, inverse), metadata


def read_video_pixels(
    video: VideoSource | np.ndarray | torch.Tensor | Sequence[Any],
    num_frames: int | None = 12,
    sampling: str = "uniform",
    start: float | None = None,
    end: float | None = None,
    fps: float | None = None,
    generator: torch.Generator | None = None,
    max_decode_frames: int | None = None,
    *,
    transform: str = "eval",
    image_size: int = 224,
    short_side: int | None = None,
    crop_size: tuple[int, int] | None = None,
    rescale_factor: float | None = 1 / 255,
    image_mean: Sequence[float] | None = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] | None = IMAGENET_DEFAULT_STD,
    source_fps: float | None = None,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
    max_output_bytes: int | None = DEFAULT_MAX_OUTPUT_BYTES,
    pixel_dtype: str = "float32",
) -> tuple[torch.Tensor, TVTSv2VideoMetadata]:
    """:func:`read_video` followed by :func:`preprocess_frames`, with the cost bounded by the output size.

    Gives exactly ``preprocess_frames(read_video(video, ...), transform, image_size, generator)`` (the same random
    draws in the same order), but each decoded frame is reduced to its crop as soon as it comes out (for 4:2:0
    video only the pixels inside the crop are converted to RGB) and repeated frames are repeated after the
    transform, so memory stays near one decoded frame plus the output, whatever the source resolution.
    ``short_side`` / ``crop_size`` default to ``int(1.2 * image_size)`` / ``(image_size, image_size)``. Returns
    float32 pixels ``[T, 3, crop_h, crop_w]`` and the metadata; other arguments as :func:`read_video`
    (``max_output_bytes`` applies to the returned pixels: float32, or uint8 with ``pixel_dtype="uint8"``).

    ``pixel_dtype="uint8"`` returns the same crop as uint8 ``[T, 3, crop_h, crop_w]`` (contiguous), before the
    rescale and normalisation (``rescale_factor``/``image_mean``/``image_std`` are then not applied): 4x fewer
    bytes to move; :func:`normalize_video_pixels` later (e.g. on the accelerator) gives the float32 pixels bit for bit.
    """
    if pixel_dtype not in PIXEL_DTYPES:
        raise ValueError(f"pixel_dtype must be one of {PIXEL_DTYPES}, got {pixel_dtype!r}")
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; expected one of {TRANSFORMS}")
    short_side = short_side if short_side is not None else int(image_size * 1.2)
    crop_size = tuple(crop_size) if crop_size is not None else (image_size, image_size)
    bytes_per_value = 1 if pixel_dtype == "uint8" else 4
    if transform == "extract":
        converter: FrameConverter = SquashConverter(crop_size, max_output_bytes, bytes_per_value)
    else:
        converter = CropConverter(transform, short_side, crop_size, generator, max_output_bytes, bytes_per_value)
    distinct, inverse, metadata = _read_distinct(
        video, num_frames, sampling, start, end, fps, generator, max_decode_frames, source_fps, max_frames, converter
    )
    if pixel_dtype == "uint8":
        pixels = distinct.permute(0, 3, 1, 2).contiguous()
    else:
        pixels = normalize_frames(distinct, rescale_factor, image_mean, image_std)
    return _repeat(pixels, inverse), metadata


def _read_distinct(
    video: Any,
    num_frames: int | None,
    sampling: str,
    start: float | None,
    end: float | None,
    fps: float | None,
    generator: torch.Generator | None,
    max_decode_frames: int | None,
    source_fps: float | None,
    max_frames: int | None,
    converter: FrameConverter,
) -> tuple[torch.Tensor, list[int], TVTSv2VideoMetadata]:
    """Checks the arguments and reads the distinct sampled frames, converted: ``(frames [D, ...], inverse, meta)``
    with ``frames[inverse]`` the requested sequence."""
    _check_window(start, end)
    if fps is None and not callable(sampling) and sampling not in SAMPLING_STRATEGIES:
        raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLING_STRATEGIES} (or pass fps=)")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    if num_frames is not None and max_frames is not None and num_frames > max_frames:
        raise ValueError(
            f"num_frames={num_frames} is more than max_frames={max_frames}; ask for fewer frames or raise "
            "max_frames (None: no limit)"
        )
    limits = _Limits(max_frames, converter)
    if is_decoded_video(video):
        return _read_decoded(video, num_frames, sampling, start, end, fps, generator, source_fps, limits)
    if not isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) and not hasattr(video, "read"):
        raise TypeError(f"cannot read a video from {type(video).__name__}")
    name = _describe(video)
    reader = PyAVVideo(video, name)
    try:
        return _read_container(reader, num_frames, sampling, start, end, fps, generator, max_decode_frames, limits)
    finally:
        reader.close()


def _describe(video: Any) -> str:
    """How error messages name a video: its path, its size in bytes, or its file object's name."""
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    if isinstance(video, (bytes, bytearray, memoryview)):
        return f"<{len(video)} bytes>"
    name = getattr(video, "name", None)
    return name if isinstance(name, str) else f"<{type(video).__name__}>"


@dataclass
class _Limits:
    """What a read may produce, and how each sampled frame is converted."""

    max_frames: int | None
    converter: FrameConverter


def _plan(
    times: list[float],
    video_end: float,
    num_frames: int | None,
    sampling: str,
    start: float | None,
    end: float | None,
    fps: float | None,
    generator: torch.Generator | None,
    name: str,
    limits: _Limits | None = None,
) -> tuple[int, int, list[int]]:
    """Window bounds ``[lo, hi)`` in ``times`` and the sampled positions inside the window.

    The number of frames the request implies is checked against ``limits.max_frames`` before any position is
    computed (``fps=1e7`` over a whole video would otherwise enumerate ten million positions).
    """
    if start is not None and start >= video_end:
        raise ValueError(f"start={start} s is at or after the end of video {name} ({video_end:.3f} s)")
    lo, hi = _window_positions(times, start, end)
    t0 = start if start is not None else 0.0
    t_end = min(end if end is not None else math.inf, video_end)
    max_frames = limits.max_frames if limits is not None else None
    if num_frames is None and max_frames is not None:
        if fps is not None:
            span = t_end - t0
            count = math.ceil(span * fps - 1e-9) if math.isfinite(span) else math.inf
            what = f"fps={fps} over {span:.3f} s gives {count} frames"
        else:
            count = hi - lo
            scope = "window" if start is not None or end is not None else "video"
            what = f"every frame of {name} ({scope}) is {count} frames"
        if count > max_frames:
            raise ValueError(
                f"{what}, more than max_frames={max_frames}; pass num_frames=, a lower fps or a shorter window, or "
                "raise max_frames (None: no limit)"
            )
    selected = select_frame_positions(times[lo:hi], num_frames, sampling, fps, generator, t0, t_end)
    if limits is not None:
        limits.converter.expect(len(selected))
    return lo, hi, selected


def _measured_fps(times: Sequence[float], fallback: float | None) -> float | None:
    if len(times) > 1 and times[-1] > times[0]:
        return (len(times) - 1) / (times[-1] - times[0])
    return fallback


def _distinct(keys: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """Distinct keys in first-seen order and, for each key, its index among them."""
    order: dict[Any, int] = {}
    inverse = [order.setdefault(key, len(order)) for key in keys]
    return list(order), inverse


def _read_decoded(
    video: Any,
    num_frames: int | None,
    sampling: str,
    start: float | None,
    end: float | None,
    fps: float | None,
    generator: torch.Generator | None,
    source_fps: float | None,
    limits: _Limits,
) -> tuple[torch.Tensor, list[int], TVTSv2VideoMetadata]:
    frames = to_uint8_video(video)
    n = frames.shape[0]
    if source_fps is None and (start is not None or end is not None or fps is not None):
        raise ValueError("start/end/fps sampling of an already-decoded video needs its frame rate: pass source_fps")
    if source_fps is not None and source_fps <= 0:
        raise ValueError(f"source_fps must be > 0, got {source_fps}")
    rate = source_fps or 1.0  # without a rate, times are frame numbers (only used for ordering)
    times = [i / rate for i in range(n)]
    lo, hi, selected = _plan(times, n / rate, num_frames, sampling, start, end, fps, generator, "<frames>", limits)
    positions = [lo + s for s in selected]
    metadata = TVTSv2VideoMetadata(
        total_num_frames=hi - lo,
        fps=source_fps,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        duration=n / source_fps if source_fps else None,
        video_backend="decoded",
        frames_indices=list(selected),
        frame_timestamps=[times[p] for p in positions] if source_fps else None,
        decoded_frames=0,
        window=(start, end) if start is not None or end is not None else None,
        source="<frames>",
    )
    converter = limits.converter
    converter.size = (int(frames.shape[2]), int(frames.shape[1]))
    needed = converter.output_bytes(len(positions), *converter.size)
    if converter.max_output_bytes is not None and needed > converter.max_output_bytes:
        raise ValueError(
            f"{len(positions)} frames need {needed / 2**30:.2f} GiB, more than max_output_bytes="
            f"{converter.max_output_bytes}; ask for fewer frames, or raise max_output_bytes (None: no limit)"
        )
    keys, inverse = _distinct(positions)
    distinct = converter.convert_array(frames.index_select(0, torch.tensor(keys, dtype=torch.long)))
    return distinct, inverse, metadata


def _read_container(
    reader: PyAVVideo,
    num_frames: int | None,
    sampling: str,
    start: float | None,
    end: float | None,
    fps: float | None,
    generator: torch.Generator | None,
    max_decode_frames: int | None,
    limits: _Limits,
) -> tuple[torch.Tensor, list[int], TVTSv2VideoMetadata]:
    draws = generator if generator is not None else torch.default_generator  # random sampling draws from it
    state = draws.get_state()
    args = (reader, num_frames, sampling, start, end, fps, generator, max_decode_frames, limits)
    try:
        try:
            return _read_indexed(*args)
        except HeaderIndexMismatch:
            # The sample table's times are not the decoded frames' (a composition offset): index by demuxing and
            # draw again from the same generator state, so that the result is what the demuxed index gives.
            reader.use_header_index = False
            draws.set_state(state)
            limits.converter.reset()
            return _read_indexed(*args)
    except FrameIndexMismatch:
        # The packets' times do not name the decoded frames (AVI / MPEG program streams with B-frames, packets
        # without times): the frame index is the decoder's output order, as a plain full decode delivers it.
        draws.set_state(state)
        limits.converter.reset()
        return _read_sequential(*args)


def _read_indexed(
    reader: PyAVVideo,
    num_frames: int | None,
    sampling: str,
    start: float | None,
    end: float | None,
    fps: float | None,
    generator: torch.Generator | None,
    max_decode_frames: int | None,
    limits: _Limits,
) -> tuple[torch.Tensor, list[int], TVTSv2VideoMetadata]:
    frames = reader.index(start, end)
    if not frames and start:
        # Nothing at/after `start` (or a seek failure): index the whole stream to tell which one it is.
        frames = reader.index(None, end)
    if not frames:
        return _read_sequential(reader, num_frames, sampling, start, end, fps, generator, max_decode_frames, limits)
    reached_eof = reader.index_reached_eof
    cache: dict[int, np.ndarray] = {}  # pts -> converted frame
    dropped: set[int] = set()  # pts of frames that turned out not to decode
    for _ in range(_MAX_RESAMPLE_ROUNDS):
        usable = [pos for pos, f in enumerate(frames) if f.pts not in dropped]
        if not usable:
            break
        times = [reader.seconds(frames[pos].pts) for pos in usable]
        frame_time = 1.0 / (_measured_fps(times, reader.header_fps) or 25.0)
        video_end = times[-1] + frame_time if reached_eof else math.inf
        lo, hi, selected = _plan(
            times, video_end, num_frames, sampling, start, end, fps, generator, reader.name, limits
        )
        positions = [usable[lo + s] for s in selected]
        needed = [pos for pos in set(positions) if frames[pos].pts not in cache]
        pixels, missing, eof_pts = reader.decode_targets(frames, needed, max_decode_frames, limits.converter)
        cache.update({frames[pos].pts: array for pos, array in pixels.items()})
        if not missing:
            window_times = times[lo:hi]
            whole = start is None and end is None
            metadata = TVTSv2VideoMetadata(
                total_num_frames=hi - lo,
                fps=_measured_fps(window_times, None) or _measured_fps(times, reader.header_fps),
                duration=video_end if whole and reached_eof else reader.header_duration,
                video_backend="pyav",
                frames_indices=list(selected),
                frame_timestamps=[reader.seconds(frames[pos].pts) for pos in positions],
                decoded_frames=reader.decoded_frames,
                window=None if whole else (start, end),
                source=reader.name,
            )
            keys, inverse = _distinct([frames[pos].pts for pos in positions])
            return _stack([cache[key] for key in keys], limits.converter, metadata), inverse, metadata
        if max_decode_frames is not None and reader.decoded_frames >= max_decode_frames:
            raise VideoDecodeError(
                f"cannot read video {reader.name}: max_decode_frames={max_decode_frames} reached before the "
                f"{len(missing)} remaining sampled frames decoded"
            )
        dropped.update(frames[pos].pts for pos in missing)
        if eof_pts is not None:  # the stream really ends there: nothing after it decodes either
            dropped.update(f.pts for f in frames if f.pts > eof_pts)
            reached_eof = True
    # Frames keep failing to come out where the packets say they are (broken timestamps, odd codecs): decode
    # the stream once from the start instead, trusting only the decoder's output.
    return _read_sequential(reader, num_frames, sampling, start, end, fps, generator, max_decode_frames, limits)


def _read_sequential(
    reader: PyAVVideo,
    num_frames: int | None,
    sampling: str,
    start: float | None,
    end: float | None,
    fps: float | None,
    generator: torch.Generator | None,
    max_decode_frames: int | None,
    limits: _Limits,
) -> tuple[torch.Tensor, list[int], TVTSv2VideoMetadata]:
    """Fallback without seeking or packet timestamps: pass 1 decodes the stream from its first byte to count the
    clean frames and read their times (nothing is converted), pass 2 decodes again and converts the sampled ones."""
    budget = max_decode_frames if max_decode_frames is not None else math.inf
    rate = reader.header_fps or 25.0
    reader.rewind()
    times: list[float] = []
    stats: dict[str, bool] = {}
    for frame, clean in reader.frames_from(None, stats, require_key=False, strict_order=False):
        if clean:
            known = frame.pts is not None and reader.time_base is not None
            times.append(reader.seconds(frame.pts) if known else math.nan)
            if end is not None and times[-1] >= end + 1.0:
                break
        if reader.decoded_frames >= budget:
            break
    if not times:
        raise VideoDecodeError(f"cannot read video {reader.name}: no frame decodes")
    if any(math.isnan(t) for t in times) or any(b <= a for a, b in zip(times, times[1:])):
        times = [i / rate for i in range(len(times))]  # unusable timestamps: frame counter at the header rate
    video_end = times[-1] + 1.0 / (_measured_fps(times, rate) or rate)
    lo, hi, selected = _plan(times, video_end, num_frames, sampling, start, end, fps, generator, reader.name, limits)
    positions = [lo + s for s in selected]
    wanted = set(positions)
    reader.rewind()
    pixels: dict[int, np.ndarray] = {}
    count = 0
    for frame, clean in reader.frames_from(None, stats, require_key=False, strict_order=False):
        if not clean:
            continue
        if count in wanted:
            pixels[count] = limits.converter(frame)
        count += 1
        if count > max(wanted):
            break
    if not pixels:
        raise VideoDecodeError(f"cannot read video {reader.name}: no frame decodes")
    if len(pixels) < len(wanted):  # pass 2 saw fewer frames than pass 1: use the nearest that came out
        decoded = sorted(pixels)
        positions = [min(decoded, key=lambda d: abs(d - p)) for p in positions]
    whole = start is None and end is None
    metadata = TVTSv2VideoMetadata(
        total_num_frames=hi - lo,
        fps=_measured_fps(times, rate),
        duration=video_end if whole else reader.header_duration,
        video_backend="pyav",
        frames_indices=list(selected),
        frame_timestamps=[times[p] for p in positions],
        decoded_frames=reader.decoded_frames,
        window=None if whole else (start, end),
        source=reader.name,
    )
    keys, inverse = _distinct(positions)
    return _stack([pixels[key] for key in keys], limits.converter, metadata), inverse, metadata


def _stack(arrays: list[np.ndarray], converter: FrameConverter, metadata: TVTSv2VideoMetadata) -> torch.Tensor:
    """The distinct converted frames as one tensor; the metadata gets the decoded frame size."""
    if converter.size is not None:
        metadata.width, metadata.height = converter.size
    return torch.from_numpy(np.stack(arrays))


def _repeat(distinct: torch.Tensor, inverse: list[int]) -> torch.Tensor:
    """``distinct[inverse]`` (no copy when every frame is used once, in order)."""
    if inverse == list(range(distinct.shape[0])):
        return distinct
    return distinct.index_select(0, torch.tensor(inverse, dtype=torch.long))


# --------------------------------------------------------------------------------------------------------------
