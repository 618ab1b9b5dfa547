"""Video decoding, frame sampling and pixel preprocessing for TVTSv2 (torch + PyAV, no torchvision).

transformers' stock ``BaseVideoProcessor`` needs torchvision, which cannot be installed beside the CPU torch
build this project targets, so :class:`TVTSv2VideoProcessor` is built directly on ``VideoProcessorMixin`` and
decodes with PyAV (``av``). This file is a flat Hub file: it imports no project module, and ``av`` is imported
inside ``try`` so that transformers' remote-code import check does not require it.

Decoding (:func:`read_video`)
    Container headers are not trusted. The frame list of the video stream is built from the demuxed packets
    (no decoding: presentation timestamps and keyframe flags), skipping packets the demuxer marks as discarded
    (e.g. outside an MP4 edit list: ``park.mp4``'s header says 18 frames, 17 are presented and decode). Only the
    sampled frames are decoded: the reader seeks to the keyframe before each needed frame and stops once the last
    needed frame is out. If a sampled frame turns out not to decode (damaged or truncated file), it is dropped from
    the frame list and sampling is redone on the frames that remain, so sampling always runs over frames that
    decode. Frames that come out after a packet failed to decode are not trusted until the next keyframe (they
    are error-concealment pictures), so a partly corrupt file yields the clean frames, in order. A time window
    (``start``/``end``) is indexed from the keyframe before ``start`` only: the start of a long file is neither
    decoded nor demuxed. Files without usable timestamps (raw streams) fall back to decoding the stream from its
    first byte twice (count, then convert). Costs are bounded: every decoding run makes progress or ends, runs of
    undecodable packets end a run, and ``max_decode_frames`` caps the decoder's work per call. On the way to a
    sampled frame the decoder skips frames that no other frame refers to (``skip_frame="NONREF"``: most B-frames
    of H.264/HEVC/MPEG video; no decoded picture changes). Each distinct sampled frame is decoded and converted
    once; repeats (short videos) are copies made at the end.

Threads
    A video is decoded with frame + slice threading. In the main process FFmpeg picks the thread count (one per
    CPU the process may use); inside a torch DataLoader worker the process's CPUs are divided among the workers
    (at least one thread each), so ``N`` workers never start ``N x CPUs`` decoder threads. A process pinned to one
    core (``taskset -c 0``) decodes with one thread.

Limits (bounded time and memory)
    ``max_frames`` (default 10,000) caps the frames one call returns: ``num_frames``, or the count that
    ``num_frames=None`` (every frame / every ``1/fps`` step) implies, checked before any position is computed.
    ``max_output_bytes`` (default 4 GiB) caps the returned tensor, checked at the first decoded frame. Both raise
    a ``ValueError`` saying which limit and how to raise it (``None``: no limit).
    :func:`read_video_pixels` (decode + transform, what the training collator uses) reduces every decoded frame to
    its crop at once (for 4:2:0 video converting only those pixels to RGB) and repeats frames after the
    transform, so its memory is about one decoded frame plus the output whatever the source resolution; its
    pixels and random draws are exactly those of ``preprocess_frames(read_video(...))``.

Errors
    A path that does not exist raises :class:`VideoFileNotFoundError`; an empty file, a file FFmpeg cannot open,
    a file without a video stream (an audio file, cover art only) or one from which no frame decodes raises
    :class:`VideoDecodeError`. Both are ``ValueError`` subclasses and name the file and the reason.

Timestamps
    Seconds on the player's timeline: 0 is the container's start time (e.g. a video stream that starts 0.5 s after
    its audio has its first frame at 0.5 s). They come from the frames' own timestamps, so variable frame rate
    videos get their true times.

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

Transforms (:func:`preprocess_frames`, ``S`` = image size, 224 for all released models)
    * ``"eval"``: shorter side to ``int(1.2 S)`` (268) with Pillow-exact NEAREST interpolation (longer side
      ``int(268 * long / short)``), centre crop ``S`` (torchvision's ``round((size - S) / 2)`` offsets), /255,
      ImageNet mean/std. This is the original evaluation transform, bit-exact with Pillow.
    * ``"extract"``: bilinear squash to ``S x S`` (no crop), as the original feature-extraction script did with
      ``torchvision.transforms.Resize((S, S))`` on PIL images. torch's antialiased uint8 bilinear kernel is used;
      it matches Pillow's bilinear within one grey level (about 99 % of values identical).
    * ``"train"``: the ``"eval"`` resize, then one random ``S x S`` crop shared by all frames (no flip, no colour
      jitter), as the original training transform.
    ImageNet mean/std are the defaults because every original TVTSv2 pipeline used them, not CLIP's constants.
"""

import bisect
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, BinaryIO, Union

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import validate_typed_dict
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, validate_kwargs
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata


try:  # optional at import time (transformers' check_imports ignores imports inside try blocks)
    import av
except ImportError:  # pragma: no cover - exercised only without PyAV installed
    av = None


__all__ = [
    "SAMPLING_STRATEGIES",
    "TRANSFORMS",
    "TVTSv2VideoMetadata",
    "TVTSv2VideoProcessor",
    "TVTSv2VideoProcessorKwargs",
    "TVTSv2VideosKwargs",
    "VideoDecodeError",
    "VideoFileNotFoundError",
    "normalize_video_pixels",
    "preprocess_frames",
    "read_video",
    "read_video_pixels",
    "sample_frame_indices",
]

SAMPLING_STRATEGIES = ("uniform", "linspace", "random")
TRANSFORMS = ("eval", "extract", "train")
PIXEL_DTYPES = ("float32", "uint8")

# A few packets the demuxer returns after the window end can still be frames inside it (B-frame reordering).
_REORDER_SLACK_PACKETS = 32
# Seeking is skipped when the next needed keyframe is this close: decoding through is cheaper than a flush.
_MIN_FRAMES_SKIPPED_BY_SEEK = 8
# A run of this many packets in a row that all fail to decode ends the run (damaged stream).
_MAX_CONSECUTIVE_DECODE_ERRORS = 64
# Decoders whose skip_frame="NONREF" skips exactly the frames no other frame refers to (H.264/HEVC: nal_ref_idc
# 0; MPEG-1/2/4 part 2: B-frames). Others decode every frame on the way to a target.
_SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4"})
# Rounds of "drop the frames that did not decode and sample again".
_MAX_RESAMPLE_ROUNDS = 3
_NETWORK_TIMEOUT_S = 60.0
# FFmpeg's stream probing (avformat_find_stream_info) decodes frames to learn what the sample table of an MP4/MOV
# file already holds (pixel format, reorder delay): ~4 ms per prepared 476x268 file, ~25 ms per 720p one, paid at
# every open. MP4/MOV files with a sample table in their header are opened with probing cut to one packet and no
# decoding (`_open_av_container`); the result is checked, anything else gets the full probe.
_QUICK_PROBE_OPTIONS = {"skip_frame": "all", "probesize": "32"}
_ISO_BMFF_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


class VideoDecodeError(ValueError):
    """A video cannot be read: the file cannot be opened, has no video stream, or no frame decodes.

    The message names the file and the reason.
    """


class VideoFileNotFoundError(VideoDecodeError, FileNotFoundError):
    """The video path does not exist (both a :class:`VideoDecodeError` and a ``FileNotFoundError``)."""


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


# ----------------------------------------------------------------------------------------------------------------
# Frame sampling
# ----------------------------------------------------------------------------------------------------------------


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


def _select_positions(
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


# ----------------------------------------------------------------------------------------------------------------
# PyAV decoding
# ----------------------------------------------------------------------------------------------------------------


def _describe(video: Any) -> str:
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    if isinstance(video, (bytes, bytearray, memoryview)):
        return f"<{len(video)} bytes>"
    name = getattr(video, "name", None)
    return name if isinstance(name, str) else f"<{type(video).__name__}>"


@dataclass
class _Frame:
    """One entry of the frame list built from the demuxed packets, in presentation order."""

    pts: int
    keyframe: bool


class _PyAVContainer:
    """An open container and its video stream: opening, rewinding, timestamps, demuxing and seeking.

    Frame identity is the presentation timestamp (pts) in the stream's time base; decoded frames are matched to
    the frame list by pts, which is what lets the reader seek and still know exactly which frame it holds.
    """

    def __init__(self, video: VideoSource, name: str):
        if av is None:
            raise ImportError("reading video files needs PyAV: pip install av")
        self.name = name
        if isinstance(video, (bytes, bytearray, memoryview)):
            if len(video) == 0:
                raise VideoDecodeError(f"cannot read video {name}: the data is empty (0 bytes)")
            source: Any = io.BytesIO(bytes(video))
        elif isinstance(video, (str, os.PathLike)):
            path = os.fspath(video)
            if "://" in path and not os.path.exists(path):
                source = path  # a URL: FFmpeg's protocols (http, https, rtmp, ...) open it
            elif not os.path.exists(path):
                raise VideoFileNotFoundError(f"cannot read video {name}: no such file")
            elif os.path.isdir(path):
                raise VideoDecodeError(f"cannot read video {name}: it is a directory")
            elif os.path.getsize(path) == 0:
                raise VideoDecodeError(f"cannot read video {name}: the file is empty (0 bytes)")
            else:
                source = path
        else:  # a binary file object; PyAV needs read() and seek(), so buffer non-seekable streams
            seekable = getattr(video, "seekable", None)
            source = video if seekable is not None and seekable() else io.BytesIO(video.read())
        self._source = source
        self._source_pos = source.tell() if hasattr(source, "tell") else 0
        self._open()
        self.decoded_frames = 0
        self.index_reached_eof = False
        self.skipped_pts: set[int] = set()
        self.use_header_index = True
        self.header_index_used = False  # the last index() came from the sample table, not from demuxing
        self._header_index_ok: bool | None = None

    def _open(self) -> None:
        name = self.name
        try:
            self.container = _open_av_container(self._source, self._source_pos)
        except av.FFmpegError as err:
            raise VideoDecodeError(f"cannot read video {name}: FFmpeg cannot open it as media ({err})") from err
        try:
            self.stream = self._pick_stream()
        except Exception:
            self.container.close()
            raise
        self._fresh = True
        # Frame + slice threading (PyAV's default is slice threading only), with a thread count that does not
        # oversubscribe the CPUs when several DataLoader workers decode at once (see _decoder_thread_count).
        self.stream.thread_type = "AUTO"
        self.stream.thread_count = _decoder_thread_count()
        self.time_base = self.stream.time_base
        if self.time_base is not None:
            self._tb_num, self._tb_den = self.time_base.numerator, self.time_base.denominator
        if self.container.start_time is not None:  # AV_TIME_BASE units (microseconds)
            self.origin = self.container.start_time / 1_000_000
        elif self.stream.start_time is not None and self.time_base is not None:
            self.origin = float(self.stream.start_time * self.time_base)
        else:
            self.origin = 0.0

    def rewind(self) -> None:
        """Start again from the first byte (does not rely on seeking, which some files do not support)."""
        if self._fresh:
            return
        self.container.close()
        if hasattr(self._source, "seek"):
            self._source.seek(self._source_pos)
        self._open()

    def _pick_stream(self):
        videos = [s for s in self.container.streams.video if not _is_attached_picture(s)]
        if not videos:
            detail = "only a cover picture" if self.container.streams.video else "no video stream"
            raise VideoDecodeError(f"cannot read video {self.name}: {detail}")
        try:
            best = self.container.streams.best("video")
        except Exception:  # noqa: BLE001 - best() is a convenience; fall back to the first stream
            best = None
        return best if best in videos else videos[0]

    def close(self) -> None:
        self.container.close()

    # -- timestamps ------------------------------------------------------------------------------------------
    def seconds(self, pts: int) -> float:
        # pts * num / den in integers, one correctly rounded division: the same float as float(pts * time_base)
        # without building a Fraction per frame (which cost ~10 % of a prepared-file read).
        return (pts * self._tb_num) / self._tb_den - self.origin

    def to_pts(self, seconds: float) -> int:
        return int(math.floor((seconds + self.origin) / self.time_base))

    @property
    def header_fps(self) -> float | None:
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        return float(rate) if rate else None

    @property
    def header_duration(self) -> float | None:
        if self.container.duration is not None:
            return self.container.duration / 1_000_000
        if self.stream.duration is not None and self.time_base is not None:
            return float(self.stream.duration * self.time_base)
        return None

    def _packets(self):
        """Video packets from the current position; a demuxer error ends the stream (truncated/damaged tail)."""
        self._fresh = False
        yield from _demux_until_error(self.container, self.stream)

    def _seek(self, pts: int) -> bool:
        self._fresh = False
        try:
            self.container.seek(int(pts), backward=True, any_frame=False, stream=self.stream)
        except (av.FFmpegError, OSError):
            return False
        return True



def _demux_until_error(container, stream):
    """Packets of ``stream`` from the container's current position; a demuxer error ends them (a truncated or
    damaged tail is the end of the video, not a failure)."""
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except (StopIteration, av.FFmpegError, EOFError, OSError):
            return
        yield packet


def _starts_like_iso_bmff(source: Any, position: int) -> bool:
    """Whether the first box of ``source`` (a path or a seekable binary file) names an MP4/MOV box."""
    try:
        if isinstance(source, str):
            with open(source, "rb") as file:
                head = file.read(8)
        else:
            source.seek(position)
            head = source.read(8)
            source.seek(position)
    except (OSError, ValueError, AttributeError):
        return False
    return len(head) == 8 and head[4:8] in _ISO_BMFF_FIRST_BOXES


def _open_av_container(source: Any, position: int = 0):
    """``av.open`` for reading, with the cheap probe for MP4/MOV files whose header holds the sample table.

    The quick open is kept only where the full probe could not have told more: an MP4/MOV demuxer and a video
    stream whose frame count comes from the header (a fragmented MP4 keeps its samples, and its reorder delay,
    in later fragments). On every other file the full probe runs. Network sources get a timeout (seconds, for
    opening and for each read) so that a stalled server cannot hang.
    """
    network = isinstance(source, str) and "://" in source
    if not network and _starts_like_iso_bmff(source, position):
        try:
            container = av.open(source, mode="r", metadata_errors="ignore", options=dict(_QUICK_PROBE_OPTIONS))
        except av.FFmpegError:
            container = None  # the full open below reports what is wrong, if anything
        if container is not None:
            video = container.streams.video
            if container.format.name.startswith("mov") and video and all(stream.frames > 0 for stream in video):
                return container
            container.close()
        if hasattr(source, "seek"):
            source.seek(position)
    return av.open(source, mode="r", metadata_errors="ignore", timeout=_NETWORK_TIMEOUT_S if network else None)


class _IndexedVideo(_PyAVContainer):
    """Adds the packet-level frame list (presentation times and keyframe flags, nothing decoded)."""

    def index(self, start: float | None, end: float | None) -> list[_Frame]:
        """Frames whose packets lie around ``[start, end)``, from the packets alone (nothing is decoded).

        Without ``start`` the list starts at the beginning of the stream; with it, at the keyframe before
        ``start`` (the file before it is not read). Without ``end`` it runs to the end of the stream. An empty
        list after a seek means nothing starts at or after ``start``.
        """
        self.header_index_used = False
        if self.time_base is None:
            return []
        # +1: a frame that starts before `end` by less than a time-base tick must stay in the list.
        end_pts = self.to_pts(end) + 1 if end is not None else None
        frames = self._header_index(self.to_pts(start) if start else None, end_pts)
        if frames is not None:
            self.header_index_used = True
            return frames
        if start:
            start_pts = self.to_pts(start)
            # Some containers seek imprecisely and land after the target: back off, finally read from the start.
            for backoff in (0.0, 5.0, 60.0):
                if self._seek(start_pts - int(backoff / self.time_base)):
                    frames = self._scan(end_pts)
                    if not frames or frames[0].pts <= start_pts:
                        return frames
        self.rewind()
        return self._scan(end_pts)

    def _header_index(self, start_pts: int | None, end_pts: int | None) -> list[_Frame] | None:
        """The frame list from the MP4/MOV sample table instead of demuxing the window, for all-intra streams.

        A sample table lists decode times; they are the presentation times when every frame is a keyframe (decode
        order is then presentation order; prepare-videos writes such files). Used only where the demuxed list
        would be the same: a sample table covering the whole stream and present in the file (not truncated),
        every listed frame of the window a keyframe with data; decoding checks that each packet it reads has its
        presentation time equal to its decode time (else ``_HeaderIndexMismatch``, and the read starts again with
        the demuxed list). Saves demuxing (reading) every packet of the window: ~4 ms of a 20 s window at
        10 fps on one core.
        """
        if not self.use_header_index or not self._header_index_possible():
            return None
        entries = self.stream.index_entries
        count = len(entries)
        timestamps = _EntryTimestamps(entries)
        first = 0 if start_pts is None else max(0, bisect.bisect_right(timestamps, start_pts) - 1)
        stop = count if end_pts is None else bisect.bisect_left(timestamps, end_pts, lo=first)
        frames = []
        previous = None
        for position in range(first, stop):
            entry = entries[position]
            pts = entry.timestamp
            if not entry.is_keyframe or entry.is_discard or entry.size <= 0 or (previous is not None and pts <= previous):
                return None
            frames.append(_Frame(pts=pts, keyframe=True))
            previous = pts
        self.index_reached_eof = stop == count
        return frames

    def _header_index_possible(self) -> bool:
        """MP4/MOV sample table listing every frame, whose last sample lies inside the file (computed once)."""
        known = self._header_index_ok
        if known is None:
            known = False
            entries = self.stream.index_entries
            if self.container.format.name.startswith("mov") and 0 < len(entries) == (self.stream.frames or 0):
                last = entries[len(entries) - 1]
                size = _source_size(self._source)
                known = size is not None and last.pos >= 0 and last.pos + last.size <= size
            self._header_index_ok = known
        return known

    def _scan(self, end_pts: int | None) -> list[_Frame]:
        by_pts: dict[int, _Frame] = {}
        after_end = 0
        self.index_reached_eof = False
        for packet in self._packets():
            if packet.size == 0 or packet.is_discard:
                continue  # flush packet / outside the edit list: never presented
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                continue
            if end_pts is not None and pts >= end_pts:
                # Decode order != presentation order: keep reading a few packets in case a B-frame inside the
                # window follows. Once dts (monotonic) passes the end, nothing earlier can follow.
                if packet.dts is not None and packet.dts >= end_pts:
                    break
                after_end += 1
                if after_end > _REORDER_SLACK_PACKETS:
                    break
            entry = by_pts.get(pts)
            if entry is None:
                by_pts[pts] = _Frame(pts=pts, keyframe=bool(packet.is_keyframe))
            elif packet.is_keyframe:
                entry.keyframe = True
        else:
            self.index_reached_eof = True
        return sorted(by_pts.values(), key=lambda f: f.pts)



class _EntryTimestamps:
    """The decode times of a stream's index entries as a sequence, for ``bisect`` (reads only what it probes)."""

    def __init__(self, entries):
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, position: int) -> int:
        return self.entries[position].timestamp


def _source_size(source: Any) -> int | None:
    """Size in bytes of a local path or a seekable binary file; None when unknown."""
    try:
        if isinstance(source, str):
            return os.path.getsize(source)
        position = source.tell()
        size = source.seek(0, os.SEEK_END)
        source.seek(position)
        return size
    except (OSError, ValueError, AttributeError):
        return None


class _HeaderIndexMismatch(Exception):
    """A packet's presentation time is not its decode time: the frame list from the sample table is wrong."""


class _PyAVVideo(_IndexedVideo):
    """Adds the targeted decoder: decode from the keyframe before each needed frame, stop after the last one."""

    def frames_from(
        self,
        seek_pts: int | None,
        stats: dict[str, bool],
        require_key: bool = True,
        wanted_pts: set[int] | None = None,
    ):
        """Decode from the keyframe at or before ``seek_pts`` (from the current position if None).

        With ``wanted_pts``, packets of other frames are decoded only if other frames refer to them: the decoder
        skips non-reference frames there (``skip_frame="NONREF"``, codecs in ``_SKIP_NONREF_CODECS``), which
        changes no decoded picture (nothing refers to a skipped frame) but saves most B-frames on the way to a
        target. Their pts are recorded in ``self.skipped_pts`` (they come out of no run, but are not damaged).

        Yields ``(frame, clean)``. A frame is *clean* when it can be trusted as the picture its pts names: it
        comes after a keyframe of this run (``require_key``), no packet failed to decode since the last keyframe
        (frames referencing lost data are concealment garbage), FFmpeg did not flag it corrupt, and its pts moves
        forward. Undecodable packets are skipped; a long run of them ends the stream, which bounds the cost.
        ``stats["eof"]`` is set when the stream is exhausted rather than abandoned by the caller.
        """
        stats["eof"] = False
        if seek_pts is not None and not self._seek(seek_pts):
            stats["eof"] = True
            return
        errors = 0
        tainted = require_key  # until a keyframe comes out
        failed_pts = -math.inf  # highest pts of a packet that failed to decode
        last_pts = -math.inf
        codec = self.stream.codec_context
        skipping = wanted_pts is not None and codec.name in _SKIP_NONREF_CODECS
        skip_mode = None
        try:
            for packet in self._packets():
                if self.header_index_used and packet.pts != packet.dts:
                    raise _HeaderIndexMismatch(f"packet pts {packet.pts} != dts {packet.dts}")
                if skipping:
                    wanted = packet.pts is None or packet.pts in wanted_pts
                    if skip_mode != ("DEFAULT" if wanted else "NONREF"):
                        skip_mode = "DEFAULT" if wanted else "NONREF"
                        codec.skip_frame = skip_mode  # read by the decoder for each packet it is given
                    if not wanted:
                        self.skipped_pts.add(packet.pts)
                try:
                    decoded = packet.decode()
                except (av.FFmpegError, ValueError):
                    errors += 1
                    tainted = True
                    failed_pts = max(failed_pts, packet.pts if packet.pts is not None else last_pts)
                    if errors > _MAX_CONSECUTIVE_DECODE_ERRORS:
                        break
                    continue
                errors = 0
                for frame in decoded:
                    self.decoded_frames += 1
                    pts = frame.pts
                    if frame.key_frame and (pts is None or pts > failed_pts):
                        tainted = False
                    if pts is not None and pts <= last_pts:
                        tainted = True  # the decoder lost its order: distrust it until the next keyframe
                        yield frame, False
                        continue
                    if pts is not None:
                        last_pts = pts
                    # A frame without pts can still be clean (raw streams); the targeted reader skips it anyway.
                    yield frame, not tainted and not frame.is_corrupt
            else:
                stats["eof"] = True
        finally:  # also when the caller abandons the run: the next run must start decoding every frame
            if skip_mode not in (None, "DEFAULT"):
                codec.skip_frame = "DEFAULT"
        if errors > _MAX_CONSECUTIVE_DECODE_ERRORS:
            stats["eof"] = True

    def decode_targets(
        self, frames: list[_Frame], targets: Sequence[int], budget: int | None, convert: "_FrameConverter"
    ) -> tuple[dict[int, np.ndarray], set[int], int | None]:
        """Decode the frames at positions ``targets`` of ``frames`` (the packet-level frame list).

        Returns ``(converted pixels by position, positions found not to decode, eof_pts)``; ``convert`` turns each
        needed decoded frame into its array as soon as it comes out (nothing else is kept). Besides failed targets, the
        positions found not to decode include every listed frame a run went past without a clean picture, so a
        resampling round avoids all of them at once. ``eof_pts`` is the last pts that came out when a run reached
        the end of the stream before its frames (a truncated tail), else None.
        Each run seeks to the keyframe before its first frame, continues through the frames it needs and seeks
        again only when the next needed keyframe is well ahead.
        """
        wanted = sorted(set(targets))
        pts_list = [f.pts for f in frames]
        wanted_pts = {pts_list[pos] for pos in wanted}
        key_before = []
        last_key = 0
        for pos, f in enumerate(frames):
            if f.keyframe:
                last_key = pos
            key_before.append(last_key)
        out: dict[int, np.ndarray] = {}
        bad: set[int] = set()
        eof_pts: int | None = None
        i = 0
        while i < len(wanted):
            if budget is not None and self.decoded_frames >= budget:
                bad.update(wanted[i:])
                break
            target_pts = pts_list[wanted[i]]
            key_pts = pts_list[key_before[wanted[i]]]
            # Seek to the keyframe before the target. Some containers (MPEG-TS, raw streams) seek imprecisely and
            # land after it: then back off 1 s and 5 s, finally re-open the file and decode from its start.
            starts: list[int | None] = [key_pts, key_pts - int(1 / self.time_base), key_pts - int(5 / self.time_base)]
            starts = list(dict.fromkeys(starts)) + [None]
            for attempt, seek_pts in enumerate(starts):
                stats: dict[str, bool] = {}
                if seek_pts is None:
                    self.rewind()
                stream = self.frames_from(seek_pts, stats, wanted_pts=wanted_pts)
                first = next(((f, ok) for f, ok in stream if ok and f.pts is not None), None)
                if (first is not None and first[0].pts <= target_pts) or attempt == len(starts) - 1:
                    break
                stream.close()  # nothing decoded, or landed after the target: start earlier
            settled_before = i
            clean_pts: set[int] = set()
            run_first = first[0].pts if first is not None else None
            last_pts = None
            item = first
            while item is not None:
                frame, clean = item
                pts = frame.pts
                if pts is not None:
                    last_pts = pts if last_pts is None else max(last_pts, pts)
                    if clean:
                        clean_pts.add(pts)
                    # Clean frames come out in presentation order: every wanted pts <= this one is now settled.
                    while i < len(wanted) and pts >= pts_list[wanted[i]]:
                        if clean and pts == pts_list[wanted[i]]:
                            out[wanted[i]] = convert(frame)
                        else:
                            bad.add(wanted[i])
                        i += 1
                    if i == len(wanted) or (budget is not None and self.decoded_frames >= budget):
                        break
                    # Seek ahead instead of decoding the frames in between, but only once this run has settled a
                    # frame: every run then makes progress, even where seeking lands somewhere unexpected.
                    if i > settled_before and pts < pts_list[key_before[wanted[i]]]:
                        current = bisect.bisect_right(pts_list, pts) - 1
                        gap = key_before[wanted[i]] - current
                        # A target that is itself a keyframe (all-intra files from prepare-videos) decodes alone
                        # after a seek, while decoding through decodes every frame in between.
                        if gap > _MIN_FRAMES_SKIPPED_BY_SEEK or (gap > 1 and frames[wanted[i]].keyframe):
                            break
                item = next(stream, None)
            stream.close()
            if run_first is not None and last_pts is not None:
                lo = bisect.bisect_left(pts_list, run_first)
                hi = bisect.bisect_right(pts_list, last_pts)
                bad.update(
                    p for p in range(lo, hi) if pts_list[p] not in clean_pts and pts_list[p] not in self.skipped_pts
                )
            if item is None and stats.get("eof"):
                # The stream ended before these frames came out: they do not decode (truncated/damaged tail).
                eof_pts = last_pts if last_pts is not None else pts_list[0] - 1
                bad.update(wanted[i:])
                break
        return out, bad - set(out), eof_pts


def _is_attached_picture(stream) -> bool:
    """Cover art in audio/MP4 files is a one-picture "video" stream; it is not a video."""
    flag = getattr(getattr(av, "stream", None), "Disposition", None)
    disposition = getattr(stream, "disposition", None)
    try:
        return bool(flag is not None and disposition is not None and disposition & flag.attached_pic)
    except TypeError:
        return False


def _decoder_thread_count() -> int:
    """Decoder threads for one open video (``0`` = FFmpeg's automatic count: one per CPU this process may use).

    In the main process every CPU helps one decode. Inside a torch DataLoader worker the process's CPUs are
    divided among the workers (at least one thread each), so ``N`` workers never start ``N x CPUs`` decoder
    threads between them: parallelism then comes from the workers, each decoding its own videos.
    """
    worker = torch.utils.data.get_worker_info()
    if worker is None:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, worker.num_workers))


# ----------------------------------------------------------------------------------------------------------------
# Frame conversion: what is kept of each decoded frame
# ----------------------------------------------------------------------------------------------------------------


def _plane(plane, height: int, width: int) -> np.ndarray:
    """A zero-copy ``[height, width]`` view of one plane of a decoded frame (rows are ``line_size`` apart)."""
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


_YUV420_FORMATS = ("yuv420p", "yuvj420p")


def _yuv420_pixels_to_rgb(frame, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``frame.to_ndarray(format="rgb24")[rows][:, cols]`` for a 4:2:0 frame, converting only those pixels.

    Each selected luma sample is written into a 2x2 block of a small 4:2:0 frame whose chroma sample for that block
    is the selected pixel's own; FFmpeg's converter takes the chroma of a 4:2:0 pixel from its block (no
    interpolation), so every block converts to exactly the colour the pixel gets in a full-size conversion (tested
    against it on real and generated files). Converting ``2 x crop`` pixels instead of the whole frame bounds memory
    for huge sources and saves work on large ones. (Resizing inside libswscale, even with point sampling, is not
    an option: its sampling positions and colour path differ from Pillow's NEAREST and FFmpeg's full-size
    conversion in almost every pixel.) Only for even frame sizes: FFmpeg converts odd sizes differently.
    """
    height, width = frame.height, frame.width
    chroma_h, chroma_w = (height + 1) // 2, (width + 1) // 2
    luma = _plane(frame.planes[0], height, width)
    rows2, cols2 = np.repeat(rows, 2), np.repeat(cols, 2)
    chroma_rows, chroma_cols = rows // 2, cols // 2
    parts = [luma.take(rows2, axis=0).take(cols2, axis=1).ravel()]
    for index in (1, 2):
        chroma = _plane(frame.planes[index], chroma_h, chroma_w)
        parts.append(chroma.take(chroma_rows, axis=0).take(chroma_cols, axis=1).ravel())
    packed = np.concatenate(parts).reshape(3 * len(rows), 2 * len(cols))
    small = av.VideoFrame.from_ndarray(packed, format=frame.format.name)
    small.colorspace = frame.colorspace
    small.color_range = frame.color_range
    return small.to_ndarray(format="rgb24")[::2, ::2]


class _FrameConverter:
    """Turns each sampled decoded frame into the array a read keeps, as soon as it comes out of the decoder.

    This one keeps whole RGB frames (:func:`read_video`). All frames of a read get the size of the first converted
    one (a resolution change mid-stream is rescaled). ``expect(count)`` announces how many frames the read will
    return, so that the output size is checked against ``max_output_bytes`` at the first frame, before the rest
    is decoded.
    """

    def __init__(self, max_output_bytes: int | None = None):
        self.size: tuple[int, int] | None = None  # (width, height) of the first converted frame
        self.max_output_bytes = max_output_bytes
        self.count = 0

    def expect(self, count: int) -> None:
        self.count = count

    def reset(self) -> None:
        """Forget the first frame's size (and what ``setup`` drew from it): the read starts again."""
        self.size = None

    def output_bytes(self, count: int, width: int, height: int) -> int:
        return count * width * height * 3

    def __call__(self, frame) -> np.ndarray:
        if self.size is None:
            self.size = (frame.width, frame.height)
            needed = self.output_bytes(self.count, *self.size)
            if self.max_output_bytes is not None and needed > self.max_output_bytes:
                raise ValueError(
                    f"{self.count} frames of {self.size[0]}x{self.size[1]} need {needed / 2**30:.2f} GiB, more than "
                    f"max_output_bytes={self.max_output_bytes} ({self.max_output_bytes / 2**30:.2f} GiB); ask for "
                    "fewer frames, or raise max_output_bytes (None: no limit)"
                )
            self.setup(*self.size)
        return self.convert(frame)

    def setup(self, width: int, height: int) -> None:
        """Called once, with the size of the first converted frame."""

    def rgb(self, frame) -> np.ndarray:
        width, height = self.size
        if (frame.width, frame.height) != self.size:
            return frame.to_ndarray(format="rgb24", width=width, height=height)
        return frame.to_ndarray(format="rgb24")

    def convert(self, frame) -> np.ndarray:
        return self.rgb(frame)

    def convert_array(self, frames: torch.Tensor) -> torch.Tensor:
        """The same for already-decoded uint8 frames ``[D, H, W, 3]``."""
        return frames


class _CropConverter(_FrameConverter):
    """Keeps only the resized crop of each frame (``"eval"``/``"train"`` transforms), uint8 ``[crop_h, crop_w, 3]``.

    The crop geometry (and the random crop of ``"train"``) is drawn at the first converted frame, i.e. after the
    frame sampling drew its numbers: the same order of draws as ``preprocess_frames(read_video(...))``.
    """

    def __init__(self, mode: str, short_side: int, crop_size: tuple[int, int], generator, max_output_bytes=None,
                 bytes_per_value: int = 4):
        super().__init__(max_output_bytes)
        self.mode, self.short_side, self.crop_size, self.generator = mode, short_side, crop_size, generator
        self.bytes_per_value = bytes_per_value  # of the returned pixels: 4 (float32) or 1 (uint8)

    def output_bytes(self, count: int, width: int, height: int) -> int:
        return count * 3 * self.crop_size[0] * self.crop_size[1] * self.bytes_per_value

    def setup(self, width: int, height: int) -> None:
        rows, cols = _crop_indices(height, width, self.mode, self.short_side, self.crop_size, self.generator)
        self.rows, self.cols = rows.numpy(), cols.numpy()
        # Frames whose shorter side already has the resized size (prepared files) need no resampling: the crop is
        # then a plain window, cut as a view (two gathers cost ~0.4 ms per 224 crop of a 476x268 frame).
        self.window = _as_slice(self.rows), _as_slice(self.cols)

    def convert(self, frame) -> np.ndarray:
        # Odd sizes are converted differently by FFmpeg at full size (chroma is not taken block by block there).
        even = frame.width % 2 == 0 and frame.height % 2 == 0
        # The partial conversion costs about the same whatever the frame size (~0.9 ms for a 224 crop, 4 pixels
        # per output pixel, plus the gathers), a full conversion grows with the frame (~0.5 ms at 640x480, 1 ms at
        # 720p, 6 ms at 4K on one core): partial from about 720p up, which also bounds memory for huge frames.
        smaller = 12 * len(self.rows) * len(self.cols) < frame.width * frame.height
        same_size = (frame.width, frame.height) == self.size
        if smaller and even and same_size and frame.format.name in _YUV420_FORMATS:
            return _yuv420_pixels_to_rgb(frame, self.rows, self.cols)
        rows, cols = self.window
        if rows is not None and cols is not None and same_size:
            return self.rgb(frame)[rows, cols]
        return self.rgb(frame).take(self.rows, axis=0).take(self.cols, axis=1)

    def convert_array(self, frames: torch.Tensor) -> torch.Tensor:
        _, height, width, _ = frames.shape
        self.size = (width, height)
        self.setup(width, height)
        return frames.index_select(1, torch.from_numpy(self.rows)).index_select(2, torch.from_numpy(self.cols))


def _as_slice(indices: np.ndarray) -> slice | None:
    """``slice(a, b)`` when ``indices`` is exactly ``a, a + 1, ..., b - 1``, else None."""
    if len(indices) and indices[-1] - indices[0] == len(indices) - 1 and np.all(np.diff(indices) == 1):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return None


class _SquashConverter(_FrameConverter):
    """Keeps each frame squashed to the crop size (``"extract"`` transform), uint8 ``[crop_h, crop_w, 3]``."""

    def __init__(self, crop_size: tuple[int, int], max_output_bytes=None, bytes_per_value: int = 4):
        super().__init__(max_output_bytes)
        self.crop_size = crop_size
        self.bytes_per_value = bytes_per_value

    def output_bytes(self, count: int, width: int, height: int) -> int:
        return count * 3 * self.crop_size[0] * self.crop_size[1] * self.bytes_per_value

    def convert(self, frame) -> np.ndarray:
        return self.convert_array(torch.from_numpy(self.rgb(frame))[None])[0].numpy()

    def convert_array(self, frames: torch.Tensor) -> torch.Tensor:
        return _squash(frames, self.crop_size)


# ----------------------------------------------------------------------------------------------------------------
# read_video
# ----------------------------------------------------------------------------------------------------------------


def _is_decoded_video(video: Any) -> bool:
    """An already-decoded video: a [T, H, W, C] array/tensor or a list of [H, W, C] frames."""
    if isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)):
        return False
    if isinstance(video, torch.Tensor) or hasattr(video, "__array_interface__") or hasattr(video, "__array__"):
        return True
    if isinstance(video, (list, tuple)):
        return len(video) > 0 and all(_is_frame(f) for f in video)
    return False


def _is_frame(frame: Any) -> bool:
    if isinstance(frame, torch.Tensor):
        return frame.ndim == 3
    if isinstance(frame, np.ndarray):
        return frame.ndim == 3
    # PIL images and other array-likes
    return hasattr(frame, "__array_interface__") or hasattr(frame, "__array__")


def _to_uint8_video(video: Any) -> torch.Tensor:
    """An already-decoded video as a uint8 tensor [T, H, W, 3] (channels last)."""
    if isinstance(video, (list, tuple)):
        frames = [f if isinstance(f, torch.Tensor) else torch.as_tensor(np.asarray(f)) for f in video]
        if any(f.ndim == 2 for f in frames):  # greyscale frames
            frames = [f[..., None] if f.ndim == 2 else f for f in frames]
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"the frames of one video must all have the same shape, got {sorted(shapes)}")
        tensor = torch.stack(frames)
    elif isinstance(video, torch.Tensor):
        tensor = video
    else:
        tensor = torch.as_tensor(np.asarray(video))
    if tensor.ndim != 4:
        shape = list(tensor.shape)
        raise ValueError(f"a decoded video must be [T, H, W, C] (or a list of [H, W, C] frames), got {shape}")
    if tensor.shape[-1] not in (1, 3, 4) and tensor.shape[1] in (1, 3, 4):
        tensor = tensor.permute(0, 2, 3, 1)  # channels-first input
    channels = tensor.shape[-1]
    if channels == 4:
        tensor = tensor[..., :3]  # drop alpha
    elif channels == 1:
        tensor = tensor.expand(-1, -1, -1, 3)
    elif channels != 3:
        raise ValueError(f"expected 1, 3 or 4 channels (last dimension), got shape {list(tensor.shape)}")
    if tensor.dtype != torch.uint8:
        if tensor.is_floating_point() or tensor.is_complex():
            raise ValueError(
                f"decoded frames must be uint8 (0..255), got {tensor.dtype}; convert with (x * 255).round() if "
                "they are in [0, 1]"
            )
        if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) > 255):
            raise ValueError(f"integer frames must hold values 0..255, got {int(tensor.min())}..{int(tensor.max())}")
        tensor = tensor.to(torch.uint8)
    if tensor.shape[0] == 0:
        raise ValueError("the decoded video has no frames")
    return tensor.contiguous()


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
        _FrameConverter(max_output_bytes),
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
        converter: _FrameConverter = _SquashConverter(crop_size, max_output_bytes, bytes_per_value)
    else:
        converter = _CropConverter(transform, short_side, crop_size, generator, max_output_bytes, bytes_per_value)
    distinct, inverse, metadata = _read_distinct(
        video, num_frames, sampling, start, end, fps, generator, max_decode_frames, source_fps, max_frames, converter
    )
    if pixel_dtype == "uint8":
        pixels = distinct.permute(0, 3, 1, 2).contiguous()
    else:
        pixels = _normalize(distinct, rescale_factor, image_mean, image_std)
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
    converter: _FrameConverter,
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
    if _is_decoded_video(video):
        return _read_decoded(video, num_frames, sampling, start, end, fps, generator, source_fps, limits)
    if not isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) and not hasattr(video, "read"):
        raise TypeError(f"cannot read a video from {type(video).__name__}")
    name = _describe(video)
    reader = _PyAVVideo(video, name)
    try:
        return _read_container(reader, num_frames, sampling, start, end, fps, generator, max_decode_frames, limits)
    finally:
        reader.close()


@dataclass
class _Limits:
    """What a read may produce, and how each sampled frame is converted."""

    max_frames: int | None
    converter: _FrameConverter


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
    selected = _select_positions(times[lo:hi], num_frames, sampling, fps, generator, t0, t_end)
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
    frames = _to_uint8_video(video)
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
    reader: _PyAVVideo,
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
    try:
        return _read_indexed(reader, num_frames, sampling, start, end, fps, generator, max_decode_frames, limits)
    except _HeaderIndexMismatch:
        # The sample table's times are not the decoded frames' (a composition offset): index by demuxing and
        # draw again from the same generator state, so that the result is what the demuxed index gives.
        reader.use_header_index = False
        draws.set_state(state)
        limits.converter.reset()
        return _read_indexed(reader, num_frames, sampling, start, end, fps, generator, max_decode_frames, limits)


def _read_indexed(
    reader: _PyAVVideo,
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
    reader: _PyAVVideo,
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
    for frame, clean in reader.frames_from(None, stats, require_key=False):
        if clean:
            known = frame.pts is not None and reader.time_base is not None
            times.append(reader.seconds(frame.pts) if known else math.nan)
            if end is not None and times[-1] >= end + 1.0:
                break
        if reader.decoded_frames >= budget:
            break
    if not times:
        raise VideoDecodeError(f"cannot read video {reader.name}: no frame decodes")
    if any(math.isnan(t) for t in times):
        times = [i / rate for i in range(len(times))]  # unusable timestamps: frame counter at the header rate
    video_end = times[-1] + 1.0 / (_measured_fps(times, rate) or rate)
    lo, hi, selected = _plan(times, video_end, num_frames, sampling, start, end, fps, generator, reader.name, limits)
    positions = [lo + s for s in selected]
    wanted = set(positions)
    reader.rewind()
    pixels: dict[int, np.ndarray] = {}
    count = 0
    for frame, clean in reader.frames_from(None, stats, require_key=False):
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


def _stack(arrays: list[np.ndarray], converter: _FrameConverter, metadata: TVTSv2VideoMetadata) -> torch.Tensor:
    """The distinct converted frames as one tensor; the metadata gets the decoded frame size."""
    if converter.size is not None:
        metadata.width, metadata.height = converter.size
    return torch.from_numpy(np.stack(arrays))


def _repeat(distinct: torch.Tensor, inverse: list[int]) -> torch.Tensor:
    """``distinct[inverse]`` (no copy when every frame is used once, in order)."""
    if inverse == list(range(distinct.shape[0])):
        return distinct
    return distinct.index_select(0, torch.tensor(inverse, dtype=torch.long))


# ----------------------------------------------------------------------------------------------------------------
# Pixel transforms
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _pil_nearest_indices(size_in: int, size_out: int) -> torch.Tensor:
    """Source index of each output pixel of Pillow's NEAREST resize along one axis.

    Pillow (``ImagingScaleAffine``) walks a double ``x = scale / 2`` and adds ``scale = in / out`` once per output
    pixel, truncating to int. The rounding of that running sum is what ``F.interpolate`` does not reproduce, so
    the same sequential double-precision loop is run here (Python floats are IEEE doubles).
    """
    scale = size_in / size_out
    x = scale * 0.5
    indices = []
    for _ in range(size_out):
        indices.append(min(int(x), size_in - 1))
        x += scale
    return torch.tensor(indices, dtype=torch.long)


def _short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """torchvision ``Resize(int)`` on a PIL image: the shorter side becomes ``short_side``, the other
    ``int(short_side * long / short)`` (truncated)."""
    if width <= height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def _center_offsets(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """torchvision ``CenterCrop`` offsets: ``int(round((size - crop) / 2))`` (Python's round: halves to even)."""
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))


def _normalize(frames_uint8: torch.Tensor, scale: float | None, mean, std) -> torch.Tensor:
    """[T, H, W, 3] uint8 -> [T, 3, H, W] float32, rescaled and normalised (contiguous, in-place arithmetic)."""
    x = frames_uint8.permute(0, 3, 1, 2).contiguous().to(torch.float32)  # reorder as bytes: 4x less to move
    return _rescale_and_normalize_(x, scale, mean, std)


def _rescale_and_normalize_(x: torch.Tensor, scale: float | None, mean, std) -> torch.Tensor:
    """In place on float32 ``[..., 3, H, W]``: ``(x * scale - mean) / std`` in torchvision's operation order."""
    if scale is not None:
        # Divide by 255 rather than multiply by 1/255, as torchvision's ToTensor does, so that the output is
        # bit-identical to the original pipeline (x * (1/255) rounds differently for some values).
        divisor = 1.0 / scale
        if abs(divisor - round(divisor)) < 1e-6:
            x.div_(round(divisor))
        else:
            x.mul_(scale)
    if mean is not None and std is not None:
        x.sub_(torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1, 1, 1))
        x.div_(torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1, 1, 1))
    return x


def normalize_video_pixels(
    pixels_uint8: torch.Tensor,
    rescale_factor: float | None = 1 / 255,
    image_mean: Sequence[float] | None = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] | None = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """uint8 pixels ``[..., 3, H, W]`` (``read_video_pixels(..., pixel_dtype="uint8")``, the pre-training collator's
    ``pixel_dtype="uint8"`` batches) -> float32, rescaled and normalised, on the tensor's own device.

    The same operations in the same order as the float32 path of :func:`read_video_pixels` (convert, divide by 255,
    subtract the mean, divide by the std), so on CPU the result is bit-identical to it. A new tensor is returned.
    """
    if not isinstance(pixels_uint8, torch.Tensor) or pixels_uint8.dtype != torch.uint8:
        kind = pixels_uint8.dtype if isinstance(pixels_uint8, torch.Tensor) else type(pixels_uint8).__name__
        raise ValueError(f"normalize_video_pixels expects a uint8 tensor [..., 3, H, W], got {kind}")
    channels = len(image_mean) if image_mean is not None else 3
    if pixels_uint8.ndim < 3 or pixels_uint8.shape[-3] != channels:
        raise ValueError(
            f"normalize_video_pixels expects pixels [..., {channels}, H, W] (channels first), got shape "
            f"{tuple(pixels_uint8.shape)}"
        )
    return _rescale_and_normalize_(pixels_uint8.to(torch.float32), rescale_factor, image_mean, image_std)


def _transform(
    frames: torch.Tensor,
    mode: str,
    short_side: int,
    crop_size: tuple[int, int],
    generator: torch.Generator | None = None,
    rescale_factor: float | None = 1 / 255,
    image_mean=IMAGENET_DEFAULT_MEAN,
    image_std=IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """The three TVTSv2 transforms on uint8 frames [T, H, W, 3] -> float32 [T, 3, crop_h, crop_w]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    _, height, width, _ = frames.shape
    if mode == "extract":
        return _normalize(_squash(frames, crop_size), rescale_factor, image_mean, image_std)
    if mode not in ("eval", "train"):
        raise ValueError(f"unknown transform {mode!r}; expected one of {TRANSFORMS}")
    # Resize and crop in one gather: only the source pixels that land inside the crop are read.
    rows, cols = _crop_indices(height, width, mode, short_side, crop_size, generator)
    cropped = frames.index_select(1, rows).index_select(2, cols)
    return _normalize(cropped, rescale_factor, image_mean, image_std)


def _squash(frames: torch.Tensor, crop_size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> ``[T, crop_h, crop_w, 3]``: the ``"extract"`` bilinear squash (no crop).

    torchvision Resize((S, S)) on PIL = Pillow bilinear with antialiasing; torch's uint8 antialiased kernel follows
    Pillow's fixed-point algorithm (within one grey level). Each frame is computed on its own (batch-independent).
    """
    squashed = F.interpolate(
        frames.permute(0, 3, 1, 2), size=tuple(crop_size), mode="bilinear", antialias=True, align_corners=False
    )
    return squashed.permute(0, 2, 3, 1)


def _crop_indices(
    height: int,
    width: int,
    mode: str,
    short_side: int,
    crop_size: tuple[int, int],
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows and columns of the ``"eval"``/``"train"`` output: Pillow-NEAREST resize of the shorter side to
    ``short_side``, then the centre crop (eval) or one random crop drawn from ``generator`` (train)."""
    crop_h, crop_w = crop_size
    new_h, new_w = _short_side_size(height, width, short_side)
    if new_h < crop_h or new_w < crop_w:
        raise ValueError(f"resized frames {new_h}x{new_w} are smaller than the crop {crop_h}x{crop_w}")
    if mode == "eval":
        top, left = _center_offsets(new_h, new_w, crop_h, crop_w)
    else:  # torchvision RandomCrop.get_params: one location for the whole clip
        top = int(torch.randint(0, new_h - crop_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, new_w - crop_w + 1, (1,), generator=generator))
    rows = _pil_nearest_indices(height, new_h)[top : top + crop_h]
    cols = _pil_nearest_indices(width, new_w)[left : left + crop_w]
    return rows, cols


def preprocess_frames(
    frames: torch.Tensor,
    mode: str = "eval",
    image_size: int = 224,
    generator: torch.Generator | None = None,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """Turn uint8 frames ``[T, H, W, 3]`` into model pixels ``[T, 3, S, S]`` (float32), ``S = image_size``.

    ``mode``: ``"eval"`` (shorter side to ``int(1.2 S)`` with Pillow-exact NEAREST, centre crop), ``"extract"``
    (bilinear squash to ``S x S``) or ``"train"`` (eval resize + one random crop for all frames, drawn from
    ``generator``). Pixels are scaled to [0, 1] and normalised with ``image_mean``/``image_std`` (ImageNet).
    """
    frames = _to_uint8_video(frames) if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 else frames
    return _transform(
        frames,
        mode,
        short_side=int(image_size * 1.2),
        crop_size=(image_size, image_size),
        generator=generator,
        image_mean=image_mean,
        image_std=image_std,
    )


# ----------------------------------------------------------------------------------------------------------------
# The transformers video processor
# ----------------------------------------------------------------------------------------------------------------


class TVTSv2VideoProcessorKwargs(VideosKwargs, total=False):
    """``VideosKwargs`` plus the TVTSv2 options (all optional at call time; defaults come from the processor).

    sampling: ``"uniform"`` | ``"linspace"`` | ``"random"``.
    transform: ``"eval"`` | ``"extract"`` | ``"train"``.
    start, end: time window in seconds, one value for the batch or a list with one value (or None) per video.
    generator: ``torch.Generator`` for random sampling and random crops.
    max_decode_frames: cap on decoded frames per video.
    short_videos: ``"repeat"`` (default) | ``"pad"``: what a window with fewer than ``num_frames`` frames gives.
    """

    sampling: str | None
    transform: str | None
    start: float | int | list[float | int | None] | None
    end: float | int | list[float | int | None] | None
    generator: Any
    max_decode_frames: int | None
    short_videos: str | None


TVTSv2VideosKwargs = TVTSv2VideoProcessorKwargs
"""Former name of :class:`TVTSv2VideoProcessorKwargs` (kept as an alias)."""

SHORT_VIDEO_POLICIES = ("repeat", "pad")
# Interpolation each transform uses, as PIL resampling codes (NEAREST = 0, BILINEAR = 2): `resample=` may name it.
_TRANSFORM_RESAMPLE = {"eval": 0, "train": 0, "extract": 2}


def _per_video(value: Any, batch_size: int, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != batch_size:
            raise ValueError(f"{name} has {len(value)} values for a batch of {batch_size} videos")
        return list(value)
    return [value] * batch_size


def _per_video_metadata(value: Any, batch_size: int) -> list[Any]:
    """``video_metadata`` in any layout transformers accepts: one dict/``VideoMetadata`` for the batch, a list with
    one per video, or the nested ``[[...]]`` form (one inner list per video, holding that video's metadata)."""
    items = _per_video(value, batch_size, "video_metadata")
    flat = []
    for item in items:
        if isinstance(item, (list, tuple)):
            if len(item) != 1:
                raise ValueError(f"video_metadata: each video takes one metadata entry, got a list of {len(item)}")
            item = item[0]
        if item is not None and not isinstance(item, (dict, VideoMetadata)):
            raise ValueError(f"video_metadata entries must be dicts or VideoMetadata, got {type(item).__name__}")
        flat.append(item)
    return flat


def _frame_rate(metadata: Any) -> float | None:
    rate = metadata.get("fps") if metadata is not None else None
    return float(rate) if rate else None


def _channels_last(video: Any, input_data_format: Any) -> Any:
    """A decoded video in ``input_data_format`` ("channels_first" / "channels_last") as channels-last frames."""
    fmt = getattr(input_data_format, "value", input_data_format)
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}")
    if fmt == "channels_last" or not _is_decoded_video(video):
        return video  # files are decoded to channels-last frames whatever the setting
    if isinstance(video, (list, tuple)):
        return [_channels_last(frame[None], fmt)[0] for frame in video]
    tensor = video if isinstance(video, torch.Tensor) else torch.as_tensor(np.asarray(video))
    return tensor.movedim(-3, -1)


def _as_video_batch(videos: Any) -> list[Any]:
    """One video or a batch of videos, as a list of videos."""
    if isinstance(videos, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(videos, "read"):
        return [videos]
    if isinstance(videos, (torch.Tensor, np.ndarray)):
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim == 4:
            return [videos]
        raise ValueError(f"videos must be [T, H, W, C] or [B, T, H, W, C], got shape {list(videos.shape)}")
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("no videos given")
        if all(_is_frame(v) and not _is_decoded_video_like(v) for v in videos):
            return [videos]  # one video given as a list of frames
        return list(videos)
    raise TypeError(f"cannot read videos from {type(videos).__name__}")


def _check_fixed_options(kwargs: dict[str, Any], transform: str) -> None:
    """Options transformers accepts that this processor cannot change: accepted when they agree, else an error."""
    if kwargs.get("do_resize") is False or kwargs.get("do_center_crop") is False or kwargs.get("do_pad"):
        raise ValueError("resizing and cropping are set by transform= ('eval', 'extract', 'train')")
    if kwargs.get("do_convert_rgb") is False:
        raise ValueError("do_convert_rgb=False is not supported: frames are always converted to RGB")
    data_format = getattr(kwargs.get("data_format"), "value", kwargs.get("data_format"))
    if data_format not in (None, "channels_first"):
        raise ValueError(f"data_format must be 'channels_first' (the model's layout), got {data_format!r}")
    resample = kwargs.get("resample")
    if resample is not None and int(resample) != _TRANSFORM_RESAMPLE[transform]:
        raise ValueError(
            f"resample={resample!r} is not what transform={transform!r} uses; the interpolation is set by "
            "transform= ('eval'/'train': NEAREST, 'extract': BILINEAR)"
        )


class TVTSv2VideoProcessor(VideoProcessorMixin):
    r"""TVTSv2 video processor: decode (PyAV), sample frames and transform them, torch only.

    ``processor(videos, num_frames=12, sampling="uniform", start=None, end=None, transform="eval",
    return_tensors="pt", return_metadata=False)`` returns a ``BatchFeature`` with ``pixel_values_videos``
    ``[B, T, 3, S, S]``. ``videos`` is one video or a list of videos; a video is a path, ``bytes``, a binary file
    object, a ``[T, H, W, C]`` uint8 array/tensor or a list of ``[H, W, C]`` frames, and videos of different
    lengths and sizes can share a batch. With ``return_tensors=None`` (the transformers default)
    ``pixel_values_videos`` is a list of ``[T, 3, S, S]`` tensors. With ``return_metadata=True`` the output also
    holds ``video_metadata``, one :class:`TVTSv2VideoMetadata` per video.

    Frame sampling goes through :meth:`sample_frames` (override it in a subclass to change the sampling).
    ``num_frames`` and ``fps`` are alternatives, as in transformers: ``fps=`` in a call samples every ``1/fps`` s
    over the clip or window (the processor's default ``num_frames`` is not applied), ``num_frames=`` in a call
    replaces a saved ``fps``; both in one call ask for ``num_frames`` frames at that rate from the window start.

    Short videos (``short_videos=``, fewer than ``num_frames`` frames in the clip or window):

    * ``"repeat"`` (default): frames are repeated in temporal order so every video gives ``T`` real frames (see
      the module docstring); the model never sees blank frames.
    * ``"pad"``: the original TVTSv2 data loaders: every frame once, in order (their ``min(T, n)`` sampling), then
      zero frames *after* normalisation (the mean colour) up to ``T``. Use it to reproduce the original numbers
      on datasets with very short clips.

    Other ``VideosKwargs``: ``video_metadata`` (a dict/``VideoMetadata``, a list with one per video, or the nested
    ``[[...]]`` form) gives the frame rate of decoded-array inputs; ``device`` places the output tensors there
    (the transforms run on CPU); ``input_data_format`` says where the channels of decoded-array inputs are
    (otherwise they are detected); ``data_format`` can only be ``"channels_first"``; ``resample`` can only name
    the interpolation the transform uses (NEAREST for eval/train, BILINEAR for extract) since the transform
    decides it; ``size`` must be ``{"shortest_edge": N}`` (or an int); ``do_resize``/``do_center_crop`` cannot be
    switched off and ``do_convert_rgb`` is always on. Other values are a ``ValueError`` naming the argument.

    Saved attributes: ``size["shortest_edge"]`` (the eval/train resize, ``int(1.2 S)``), ``crop_size`` (``S``),
    ``num_frames``, ``fps``, ``sampling``, ``transform``, ``short_videos``, rescale and normalisation settings.
    ``TVTSv2VideoProcessor(image_size=S)`` derives ``size`` and ``crop_size`` from the model's image size.
    """

    valid_kwargs = TVTSv2VideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    size = {"shortest_edge": 268}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    do_sample_frames = True
    num_frames = 12
    sampling = "uniform"
    transform = "eval"
    short_videos = "repeat"
    return_metadata = False

    def __init__(self, image_size: int | None = None, **kwargs: Unpack[TVTSv2VideoProcessorKwargs]) -> None:
        if image_size is not None:
            kwargs.setdefault("size", {"shortest_edge": int(image_size * 1.2)})
            kwargs.setdefault("crop_size", {"height": image_size, "width": image_size})
        if kwargs.get("fps") is not None and "num_frames" not in kwargs:
            kwargs["num_frames"] = None  # fps and num_frames are alternatives: fps replaces the default count
        super().__init__(**kwargs)
        # VideoProcessorMixin does not resolve attributes itself (the torchvision backend does): set every valid
        # kwarg from kwargs or the class default so that save_pretrained writes them all.
        self._set_attributes(**kwargs)

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: float | None = None,
        sampling: str | None = None,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of the frames to take from a video (or window) described by ``metadata`` (transformers hook).

        ``preprocess`` calls it for every video, with a :class:`TVTSv2VideoMetadata` of the frames in the clip or
        ``start``/``end`` window: ``total_num_frames``, ``fps`` (measured), ``frame_timestamps`` (each frame's
        start time in seconds) and ``window`` (the ``(start, end)`` seconds sampled). A plain ``VideoMetadata``
        (``total_num_frames``, ``fps``) works too. The indices are positions ``0 .. total_num_frames - 1``.

        ``num_frames`` and ``fps`` are alternatives: with neither, the processor's own setting is used; with only
        ``fps``, every ``1/fps`` s of the range (the frame on screen at each time); with both, ``num_frames``
        steps at ``fps`` (past the end the last frame repeats).
        """
        n = int(metadata.total_num_frames)
        if num_frames is None and fps is None:
            num_frames, fps = self.num_frames, self.fps
        sampling = sampling or self.sampling
        if fps is None:
            if num_frames is None:
                return np.arange(n)
            return np.array(sample_frame_indices(n, num_frames, sampling, generator))
        times = getattr(metadata, "frame_timestamps", None)
        window = getattr(metadata, "window", None)
        if times is not None and window is not None and len(times) == n:
            t0, t_end = window
        else:
            if not metadata.fps:
                raise ValueError("fps sampling needs the video's frame rate (metadata.fps)")
            times = [i / metadata.fps for i in range(n)]
            t0, t_end = 0.0, n / metadata.fps
        return np.array(_select_positions(times, num_frames, sampling, fps, generator, t0, t_end))

    def _sample_window(
        self,
        times: Sequence[float],
        t0: float,
        t_end: float,
        *,
        num_frames: int | None,
        fps: float | None,
        sampling: str,
        generator: torch.Generator | None,
        short_videos: str,
    ) -> list[int]:
        """The sampler ``read_video`` calls with the frame times of the range: goes through :meth:`sample_frames`."""
        n = len(times)
        measured = (n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else None
        metadata = TVTSv2VideoMetadata(
            total_num_frames=n,
            fps=measured,
            duration=t_end - t0 if math.isfinite(t_end) else None,
            frame_timestamps=list(times),
            window=(t0, t_end),
        )
        if short_videos == "pad" and fps is None and num_frames is not None and n < num_frames:
            num_frames = n  # the original's min(T, n): every frame once; zero frames are appended later
        indices = self.sample_frames(metadata, num_frames=num_frames, fps=fps, sampling=sampling, generator=generator)
        positions = [int(i) for i in np.asarray(indices).reshape(-1)]
        if not positions or any(p < 0 or p >= n for p in positions):
            raise ValueError(f"{type(self).__name__}.sample_frames returned indices outside 0..{n - 1}: {positions}")
        return positions

    def _resolve(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Call kwargs over the processor's defaults, with ``fps``/``num_frames`` as alternatives."""
        call_fps, call_count = kwargs.get("fps") is not None, kwargs.get("num_frames") is not None
        if call_fps and not call_count:
            kwargs["num_frames"] = None
        elif call_count and not call_fps:
            kwargs["fps"] = None
        for name in self.valid_kwargs.__annotations__:
            kwargs.setdefault(name, getattr(self, name, None))
        kwargs = self._standardize_kwargs(**kwargs)
        size = kwargs["size"]
        if size is None or size.shortest_edge is None or size.height is not None or size.width is not None:
            raise ValueError(
                f"size must be {{'shortest_edge': N}} (or an int N): the eval/train transforms resize the shorter "
                f"side to N and crop crop_size; got size={dict(size) if size is not None else None}"
            )
        if kwargs["crop_size"] is None or kwargs["crop_size"].height is None:
            raise ValueError("crop_size must be {'height': S, 'width': S} (or an int S)")
        kwargs["transform"] = kwargs["transform"] or "eval"
        if kwargs["transform"] not in TRANSFORMS:
            raise ValueError(f"unknown transform {kwargs['transform']!r}; expected one of {TRANSFORMS}")
        kwargs["sampling"] = kwargs["sampling"] or "uniform"
        if kwargs["sampling"] not in SAMPLING_STRATEGIES:
            raise ValueError(f"unknown sampling {kwargs['sampling']!r}; expected one of {SAMPLING_STRATEGIES}")
        kwargs["short_videos"] = kwargs["short_videos"] or "repeat"
        if kwargs["short_videos"] not in SHORT_VIDEO_POLICIES:
            raise ValueError(f"short_videos must be one of {SHORT_VIDEO_POLICIES}, got {kwargs['short_videos']!r}")
        _check_fixed_options(kwargs, kwargs["transform"])
        return kwargs

    def preprocess(self, videos: Any, **kwargs: Unpack[TVTSv2VideoProcessorKwargs]) -> BatchFeature:
        validate_kwargs(
            captured_kwargs=kwargs.keys(),
            valid_processor_keys=list(self.valid_kwargs.__annotations__.keys()) + ["return_tensors"],
        )
        validate_typed_dict(self.valid_kwargs, kwargs)
        kwargs = self._resolve(dict(kwargs))
        size, crop_size, transform = kwargs["size"], kwargs["crop_size"], kwargs["transform"]
        generator = kwargs["generator"]
        batch = _as_video_batch(videos)
        starts = _per_video(kwargs["start"], len(batch), "start")
        ends = _per_video(kwargs["end"], len(batch), "end")
        metadata_in = _per_video_metadata(kwargs.get("video_metadata"), len(batch))
        scale = kwargs["rescale_factor"] if kwargs["do_rescale"] else None
        mean, std = (kwargs["image_mean"], kwargs["image_std"]) if kwargs["do_normalize"] else (None, None)
        if kwargs["do_sample_frames"] is False:
            num_frames, sampling, pad_to = None, kwargs["sampling"], None  # every frame of the clip/window
        else:
            num_frames = kwargs["num_frames"]
            sampling = partial(
                self._sample_window,
                num_frames=num_frames,
                fps=kwargs["fps"],
                sampling=kwargs["sampling"],
                generator=generator,
                short_videos=kwargs["short_videos"],
            )
            pad_to = num_frames if kwargs["short_videos"] == "pad" and kwargs["fps"] is None else None

        pixel_values, metadata = [], []
        for video, start, end, meta in zip(batch, starts, ends, metadata_in):
            decoded = _is_decoded_video(video)
            if kwargs["input_data_format"] is not None:
                video = _channels_last(video, kwargs["input_data_format"])
            # Each decoded frame is reduced to its crop as it comes out (same pixels and random draws as
            # read_video + the transform), so memory stays bounded by the output whatever the source size.
            pixels, info = read_video_pixels(
                video,
                num_frames=num_frames,
                sampling=sampling,
                start=start,
                end=end,
                fps=kwargs["fps"],
                generator=generator,
                max_decode_frames=kwargs["max_decode_frames"],
                transform=transform,
                short_side=size.shortest_edge,
                crop_size=(crop_size.height, crop_size.width),
                rescale_factor=scale,
                image_mean=mean,
                image_std=std,
                source_fps=_frame_rate(meta) if decoded else None,
            )
            if pad_to is not None and pixels.shape[0] < pad_to:
                # Zeros after normalisation (the mean colour), as the original data loaders pad short clips.
                pixels = torch.cat([pixels, pixels.new_zeros(pad_to - pixels.shape[0], *pixels.shape[1:])])
            pixel_values.append(pixels)
            metadata.append(info)
        return_tensors = kwargs.get("return_tensors")
        if return_tensors is not None and len({p.shape for p in pixel_values}) > 1:
            raise ValueError(
                "videos gave different numbers of frames and cannot be stacked into one tensor; pass num_frames= "
                "(or return_tensors=None for a list)"
            )
        if kwargs["device"] is not None:
            pixel_values = [p.to(kwargs["device"]) for p in pixel_values]
        data = {"pixel_values_videos": torch.stack(pixel_values) if return_tensors else pixel_values}
        output = BatchFeature(data=data, tensor_type=return_tensors)
        if kwargs["return_metadata"]:
            output["video_metadata"] = metadata
        return output


def _is_decoded_video_like(x: Any) -> bool:
    """A 4-D array/tensor (a whole video), as opposed to a single 3-D frame."""
    ndim = getattr(x, "ndim", None)
    if ndim is None and hasattr(x, "__array_interface__"):
        ndim = len(x.__array_interface__["shape"])
    return ndim == 4
