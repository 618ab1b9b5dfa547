"""PyAV layer of TVTSv2's video reading: opening, probing, indexing, seeking and decoding video files.

A flat Hub file: it imports no project module (``av`` inside ``try``, for transformers' remote-code import check).
What to do with the decoded frames (sampling, limits, conversion) is :mod:`video_reading_tvtsv2`'s business.

Opening
    Every reader of this project opens a video with :func:`open_av_container` (tags that are not UTF-8 ignored;
    MP4/MOV files whose header holds the sample table opened without FFmpeg's decoding stream probe) and takes its
    video stream with :func:`select_video_stream` (cover art, a one-picture "video" stream, is not a video).
    What a source may be (a path, bytes, a file object, a URL read through fsspec) and how it is opened:
    :mod:`video_sources_tvtsv2`, which also defines the errors below.

Probing (:func:`probe_video`, :func:`probe_header_duration`)
    :func:`probe_video` checks that a video is usable before it enters a corpus (it opens, has a video stream, a
    frame decodes) and measures its duration on the reader's timeline from the demuxed packets (outliers ignored).
    :func:`probe_header_duration`, for rows without a duration at training time, reads only the header.

Indexing and decoding (:class:`PyAVVideo`)
    Headers are not trusted: the frame list comes from the demuxed packets (presentation times and keyframe flags,
    discarded packets skipped: ``park.mp4``'s header says 18 frames, 17 are presented), or from the sample table of
    all-intra MP4/MOV files, checked while decoding. A window is indexed from the keyframe before its start only.
    Only the requested frames are decoded (seek to the keyframe before each, stop after the last; frames nothing
    refers to are skipped on the way). Frames after a failed packet are not trusted until the next keyframe
    (error concealment), and every decoding run makes progress or ends, so damaged files cost bounded time.

Threads
    Frame + slice threading: one thread per usable CPU; inside DataLoader workers the CPUs are divided among them.

Errors
    A missing path raises :class:`VideoFileNotFoundError`; an empty file, one FFmpeg cannot open, without a video
    stream or from which no frame decodes :class:`VideoDecodeError` (the probe: :class:`VideoProbeError`, a
    subclass); all are ``ValueError`` and name the file and the reason.

Timestamps
    Seconds on the player's timeline (:func:`timeline_origin`: a video stream that starts 0.5 s after its audio has
    its first frame at 0.5 s), from the frames' own timestamps (variable frame rates get true times).
    Where the packets' times cannot name the decoded frames (AVI / MPEG program streams whose muxer repeats a time,
    packets without times, decoded frames the packets do not list: :class:`FrameIndexMismatch`), the reader decodes
    the stream in order instead: a frame's index is then its place in the decoder's output, as in a plain decode.
"""

import bisect
import contextlib
import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from .video_sources_tvtsv2 import (
    VideoDecodeError,
    VideoFileNotFoundError,
    VideoSource,
    is_video_url,
    open_video_source,
)

try:  # optional at import time (transformers' check_imports ignores imports inside try blocks)
    import av
except ImportError:  # pragma: no cover - exercised only without PyAV installed
    av = None

logger = logging.get_logger(__name__)

__all__ = [
    "MAX_CONSECUTIVE_DECODE_ERRORS",
    "VIDEO_EXTENSIONS",
    "FrameIndexMismatch",
    "HeaderIndexMismatch",
    "PyAVVideo",
    "VideoDecodeError",
    "VideoFileNotFoundError",
    "VideoProbe",
    "VideoProbeError",
    "VideoSource",
    "demux_until_error",
    "is_attached_picture",
    "open_av_container",
    "probe_header_duration",
    "probe_video",
    "robust_timestamp_span",
    "select_video_stream",
    "timeline_origin",
]

#: Video file suffixes (lower case): what a folder scan picks up, and what marks a text argument as a file name.
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ts", ".wmv", ".3gp", ".gif", ".ogv"
)  # fmt: skip

# A few packets the demuxer returns after the window end can still be frames inside it (B-frame reordering).
_REORDER_SLACK_PACKETS = 32
# Seeking is skipped when the next needed keyframe is this close: decoding through is cheaper than a flush.
_MIN_FRAMES_SKIPPED_BY_SEEK = 8
# A run of this many packets in a row that all fail to decode ends the run (damaged stream).
MAX_CONSECUTIVE_DECODE_ERRORS = 64
# Decoders whose skip_frame="NONREF" skips exactly the frames no other frame refers to (H.264/HEVC: nal_ref_idc
# 0; MPEG-1/2/4 part 2: B-frames). Others decode every frame on the way to a target.
_SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4"})
# FFmpeg's stream probing (avformat_find_stream_info) decodes frames to learn what the sample table of an MP4/MOV
# file already holds (pixel format, reorder delay): ~4 ms per prepared 476x268 file, ~25 ms per 720p one, paid at
# every open. MP4/MOV files with a sample table in their header are opened with probing cut to one packet and no
# decoding (`open_av_container`); the result is checked, anything else gets the full probe.
_QUICK_PROBE_OPTIONS = {"skip_frame": "all", "probesize": "32"}
_ISO_BMFF_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


# -- Opening a container ---------------------------------------------------------------------------------------


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


def open_av_container(source: Any, position: int = 0) -> "av.container.InputContainer":
    """``av.open`` for reading, with the cheap probe for MP4/MOV files whose header holds the sample table.

    The quick open is kept only where the full probe could not have told more: an MP4/MOV demuxer and a video
    stream whose frame count comes from the header (a fragmented MP4 keeps its samples, and its reorder delay,
    in later fragments). On every other file the full probe runs. Sources (paths, bytes, URLs) come from
    :func:`open_video_source`.
    """
    if _starts_like_iso_bmff(source, position):
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
    return av.open(source, mode="r", metadata_errors="ignore")


def is_attached_picture(stream: Any) -> bool:
    """Cover art in audio/MP4 files is a one-picture "video" stream; it is not a video."""
    flag = getattr(getattr(av, "stream", None), "Disposition", None)
    disposition = getattr(stream, "disposition", None)
    try:
        return bool(flag is not None and disposition is not None and disposition & flag.attached_pic)
    except TypeError:
        return False


def select_video_stream(container: Any) -> Any | None:
    """The video stream a reader reads: FFmpeg's best video stream that is not cover art (None without one)."""
    videos = [s for s in container.streams.video if not is_attached_picture(s)]
    if not videos:
        return None
    try:
        best = container.streams.best("video")
    except Exception:  # noqa: BLE001 - best() is a convenience; fall back to the first stream
        best = None
    return best if best in videos else videos[0]


def demux_until_error(container: Any, stream: Any) -> Iterator[Any]:
    """Packets of ``stream`` from the container's current position; a demuxer error ends them.

    A truncated or damaged tail is the end of the video, not a failure.
    """
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except (StopIteration, av.FFmpegError, EOFError, OSError):
            return
        yield packet


def _decoder_thread_count() -> int:
    """Decoder threads for one open video (``0`` = FFmpeg's automatic count: one per CPU this process may use).

    In the main process every CPU helps one decode. Inside a DataLoader worker the CPUs are divided among the
    workers (at least one each): ``N`` workers never start ``N x CPUs`` threads; parallelism comes from the workers.
    """
    worker = torch.utils.data.get_worker_info()
    if worker is None:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, worker.num_workers))


# -- Probing: is a video usable, and how long is it ------------------------------------------------------------


class VideoProbeError(VideoDecodeError):
    """A video cannot be used (the message names it and says why)."""


@dataclass(frozen=True)
class VideoProbe:
    """What :func:`probe_video` measured."""

    duration: float
    width: int
    height: int
    num_packets: int
    header_duration: float | None


def _probe_source(video: str | os.PathLike[str] | bytes) -> Any:
    if isinstance(video, bytes):
        return io.BytesIO(video)
    path = os.fspath(video)
    return open_video_source(path, path) if is_video_url(path) and not os.path.exists(path) else path


def _stream_header_duration(container: Any, stream: Any | None) -> float | None:
    """The header's duration of ``stream`` (the container's when the stream has none)."""
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def probe_video(video: str | os.PathLike[str] | bytes, *, max_first_frame_packets: int = 512) -> VideoProbe:
    """Quick check that a video is usable, and its duration.

    The file must open, have a video stream (:func:`select_video_stream`), and decode a frame within the first
    ``max_first_frame_packets`` video packets. The duration is the span of the video packets' timestamps
    (demuxing only, no decoding: cheap, and it sees truncation and wrong headers) counted from the container's start,
    the reader's 0 (:func:`timeline_origin`; a video stream that starts late lasts to its end), outliers ignored
    (:func:`robust_timestamp_span`), falling back to the header when packets carry no timestamps. Opened as the
    reader opens (:func:`open_av_container`): tags that are not UTF-8 are ignored.

    Raises:
        VideoProbeError: with the reason.
    """
    if av is None:
        raise ImportError("reading video files needs PyAV: pip install av")
    name = "<bytes>" if isinstance(video, bytes) else str(video)
    try:
        container = open_av_container(_probe_source(video))
    except Exception as error:  # noqa: BLE001 - PyAV raises many error types for bad input
        raise VideoProbeError(f"{name}: cannot open ({type(error).__name__}: {error})") from error
    with container:
        stream = select_video_stream(container)
        if stream is None:
            raise VideoProbeError(f"{name}: no video stream")
        header_duration = _stream_header_duration(container, stream)

        # 1) a frame decodes
        decoded = None
        packets_seen = 0
        try:
            for packet in container.demux(stream):
                packets_seen += 1
                for frame in packet.decode():
                    decoded = frame
                    break
                if decoded is not None or packets_seen >= max_first_frame_packets:
                    break
        except Exception as error:  # noqa: BLE001
            raise VideoProbeError(f"{name}: decoding failed ({type(error).__name__}: {error})") from error
        if decoded is None:
            raise VideoProbeError(f"{name}: no frame decodes in the first {packets_seen} packets")
        width, height = decoded.width, decoded.height

        # 2) duration from the packets (the last packets may be damaged: keep what was demuxed)
        starts: list[int] = []
        ends: list[int] = []
        with contextlib.suppress(Exception):  # unseekable input: fall back to the header
            container.seek(0, stream=stream)
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                starts.append(packet.pts)
                ends.append(packet.pts + (packet.duration or 0))
        except Exception:  # noqa: BLE001
            logger.debug("%s: demuxing stopped early", name)
        duration = None
        if starts and stream.time_base:
            seconds = float(stream.time_base)
            origin = timeline_origin(container, stream)
            duration = robust_timestamp_span([t * seconds for t in starts], [t * seconds for t in ends], origin=origin)
        if not duration or duration <= 0 or not math.isfinite(duration):
            duration = header_duration
        if not duration or duration <= 0 or not math.isfinite(duration):
            raise VideoProbeError(f"{name}: duration unknown")
    return VideoProbe(duration, width, height, len(starts), header_duration)


def probe_header_duration(video: str | os.PathLike[str] | bytes) -> float | None:
    """Duration in seconds of the video stream :func:`probe_video` would measure, from the header only.

    Nothing is demuxed or decoded (cheap enough for every training sample whose row has no duration); ``None``
    when the file cannot be opened, has no video stream or no duration in its header (the reader reports a bad
    file when it decodes it).
    """
    if av is None:
        return None
    try:
        with open_av_container(_probe_source(video)) as container:
            stream = select_video_stream(container)
            return _stream_header_duration(container, stream) if stream is not None else None
    except Exception:  # noqa: BLE001 - a bad file is reported later by the decoder
        return None


def timeline_origin(container: Any, stream: Any) -> float:
    """The time that is 0 on the reader's timeline (and for every duration measured for it), in stream seconds.

    MP4/MOV and Matroska/WebM count from their own 0 (a video stream alone from 1.5 s, as prepare-videos writes one
    whose audio started at 0, reads from 1.5 s); others (MPEG-TS/PS clocks) and negative starts from the start."""
    start = container.start_time / 1_000_000 if container.start_time is not None else None  # from microseconds
    if start is None and stream.start_time is not None and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base)
    if start is None:
        return 0.0
    own_zero = container.format.name.startswith("mov") or "matroska" in container.format.name
    return min(start, 0.0) if own_zero else start


def robust_timestamp_span(
    starts: Sequence[float], ends: Sequence[float] | None = None, *, min_gap: float = 60.0, origin: float | None = None
) -> float:
    """Seconds covered by packets starting at ``starts`` (and ending at ``ends``) seconds, ignoring outliers.

    A damaged or hostile file may carry a few packets whose timestamps lie far away from the others (one packet at
    30 days in a 2-second clip); the plain ``max(end) - min(start)`` would then make every window of the video
    fall outside its transcript. The sorted timestamps are cut at gaps longer than ``max(100 x the median spacing,
    min_gap)`` (by default 60 s, far longer than any still picture of a variable-frame-rate video), and groups at
    either end holding at most ``max(2, 1%)`` of the packets are dropped before measuring. Non-finite values are
    ignored. With ``origin``, the seconds from ``origin`` (not from the first packet) to the end of the last one.
    """
    begin = np.asarray(starts, dtype=np.float64)
    finish = np.asarray(ends if ends is not None else starts, dtype=np.float64)
    keep = np.isfinite(begin) & np.isfinite(finish)
    begin, finish = begin[keep], np.maximum(finish[keep], begin[keep])
    if begin.size == 0:
        return 0.0
    order = np.argsort(begin, kind="stable")
    begin, finish = begin[order], finish[order]
    if begin.size > 2:
        spacing = np.diff(begin)
        positive = spacing[spacing > 0]
        median = float(np.median(positive)) if positive.size else 0.0
        breaks = np.flatnonzero(spacing > max(100.0 * median, min_gap)) + 1
        groups = np.split(np.arange(begin.size), breaks)
        small = max(2, int(0.01 * begin.size))
        while len(groups) > 1 and min(len(groups[0]), len(groups[-1])) <= small:
            groups.pop(0 if len(groups[0]) <= len(groups[-1]) else -1)
        kept = np.concatenate(groups)
        begin, finish = begin[kept], finish[kept]
    return float(finish.max() - (begin.min() if origin is None else origin))


# -- Indexing and decoding -------------------------------------------------------------------------------------


@dataclass
class _Frame:  # one entry of the frame list built from the demuxed packets, in presentation order
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
        source = open_video_source(video, name)
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
            self.container = open_av_container(self._source, self._source_pos)
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
        self.origin = timeline_origin(self.container, self.stream)

    def rewind(self) -> None:
        """Start again from the first byte (does not rely on seeking, which some files do not support)."""
        if self._fresh:
            return
        self.container.close()
        if hasattr(self._source, "seek"):
            self._source.seek(self._source_pos)
        self._open()

    def _pick_stream(self):
        stream = select_video_stream(self.container)
        if stream is None:
            detail = "only a cover picture" if self.container.streams.video else "no video stream"
            raise VideoDecodeError(f"cannot read video {self.name}: {detail}")
        return stream

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
        yield from demux_until_error(self.container, self.stream)

    def _seek(self, pts: int) -> bool:
        self._fresh = False
        try:
            self.container.seek(int(pts), backward=True, any_frame=False, stream=self.stream)
        except (av.FFmpegError, OSError):
            return False
        return True


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
        presentation time equal to its decode time (else ``HeaderIndexMismatch``, and the read starts again with
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
            pts = packet.pts
            if pts is None:  # dts is not the presentation time once a codec reorders frames (AVI, MPEG-PS)
                raise FrameIndexMismatch(f"a packet at dts {packet.dts} has no presentation time")
            if end_pts is not None and pts >= end_pts:
                # Decode order != presentation order: keep reading a few packets in case a B-frame inside the
                # window follows. Once dts (monotonic) passes the end, nothing earlier can follow.
                if packet.dts is not None and packet.dts >= end_pts:
                    break
                after_end += 1
                if after_end > _REORDER_SLACK_PACKETS:
                    break
            if pts in by_pts:  # two pictures with one time: the packets cannot say which frame is which
                raise FrameIndexMismatch(f"two packets have the presentation time {pts}")
            by_pts[pts] = _Frame(pts=pts, keyframe=bool(packet.is_keyframe))
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


class FrameIndexMismatch(Exception):
    """The packets' frame list is not what the decoder delivers: the reader decodes the stream in order instead."""


class HeaderIndexMismatch(FrameIndexMismatch):
    """A packet's presentation time is not its decode time: the frame list from the sample table is wrong."""


class PyAVVideo(_IndexedVideo):
    """A video opened for reading frames: its frame list (:meth:`index`) and the targeted decoder.

    :meth:`decode_targets` decodes from the keyframe before each needed frame and stops after the last one.
    """

    def frames_from(
        self,
        seek_pts: int | None,
        stats: dict[str, bool],
        require_key: bool = True,
        wanted_pts: set[int] | None = None,
        strict_order: bool = True,
    ):
        """Decode from the keyframe at or before ``seek_pts`` (from the current position if None).

        With ``wanted_pts``, the decoder skips non-reference frames that are not wanted (``skip_frame="NONREF"``,
        codecs in ``_SKIP_NONREF_CODECS``): no decoded picture changes, most B-frames on the way to a target are
        saved. Their pts are recorded in ``self.skipped_pts`` (they come out of no run, but are not damaged).

        Yields ``(frame, clean)``. A frame is *clean* when it can be trusted as the picture its pts names: it
        comes after a keyframe of this run (``require_key``), no packet failed to decode since the last keyframe
        (frames referencing lost data are concealment garbage), FFmpeg did not flag it corrupt, and its pts moves
        forward (``strict_order``; a decode from the first byte passes False: the decoder's order is then the
        presentation order). Undecodable packets are skipped; a long run of them ends the stream (bounded cost).
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
                    raise HeaderIndexMismatch(f"packet pts {packet.pts} != dts {packet.dts}")
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
                    if errors > MAX_CONSECUTIVE_DECODE_ERRORS:
                        break
                    continue
                errors = 0
                for frame in decoded:
                    self.decoded_frames += 1
                    pts = frame.pts
                    if frame.key_frame and (pts is None or pts > failed_pts):
                        tainted = False
                    if strict_order and pts is not None and pts <= last_pts:
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
        if errors > MAX_CONSECUTIVE_DECODE_ERRORS:
            stats["eof"] = True

    def decode_targets(
        self, frames: list[_Frame], targets: Sequence[int], budget: int | None, convert: Callable[[Any], np.ndarray]
    ) -> tuple[dict[int, np.ndarray], set[int], int | None]:
        """Decode the frames at positions ``targets`` of ``frames`` (the packet-level frame list).

        Returns ``(converted pixels by position, positions found not to decode, eof_pts)``; ``convert`` turns each
        needed frame into its array as it comes out. Positions found not to decode: failed targets and every listed
        frame a run went past without a clean picture (one resampling round avoids them all). ``eof_pts``: the last
        pts out when a run reached the end of the stream before its frames (truncated tail), else None. Each run
        seeks to the keyframe before its first frame and seeks again only when the next one is well ahead. A clean
        frame the list does not hold raises :class:`FrameIndexMismatch`.
        """
        wanted = sorted(set(targets))
        pts_list = [f.pts for f in frames]
        wanted_pts = {pts_list[pos] for pos in wanted}
        listed = set(pts_list)
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
                        if pts not in listed and pts_list[0] < pts < pts_list[-1]:
                            raise FrameIndexMismatch(f"decoded a frame at {pts}, which the packets do not list")
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
