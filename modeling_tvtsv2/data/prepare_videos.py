"""Transcode videos into training-ready files (``tvtsv2 prepare-videos``, ``processing/prepare_videos.py``).

Raw web videos are expensive to sample from: large frames, keyframes many seconds apart (every sampled frame costs
the decode from its keyframe), audio to demux. Every TVTSv2 transform reads frames resized so that their shorter
side is 268 (``int(1.2 * 224)``), so a corpus can be transcoded once into files that are cheap to sample:

* H.264 (``libx264``, bundled with PyAV's FFmpeg) in MP4, 4:2:0, ``--crf`` 23, ``--preset`` ``veryfast``, tuned
  for fast decoding (``tune=fastdecode``: no CABAC, no deblocking, so decoding costs less per frame);
* at most ``--max_fps`` 10 frames per second, **every frame a keyframe** (``--keyframe_seconds`` 0.1: a GOP of
  one frame at 10 fps), so each sampled frame costs the decode of that frame alone. A training sample takes 12
  frames over ~20 s (one per 1.7 s segment) and an evaluation clip 12 frames spread over the clip, so a 0.1 s grid
  changes which instant a sampled frame shows by at most 0.1 s; measured 1.5-1.7x the samples/s of the previous
  defaults (all frames, a keyframe every second) at 2-3x their file size (``benchmarks/README.md``, "Data path
  per core"). The kept frames keep their times; sampling picks among them.
  Reading every frame of a prepared file gives at most 10 per second: keep all frames with ``--max_fps none``
  (and ``--keyframe_seconds 1`` for the previous defaults, smaller files) when dense frames matter;
* shorter side ``--short_side`` (268) with an area-averaging downscale (antialiased; sources already at or below
  it keep their size; sizes are rounded down to even numbers, which 4:2:0 H.264 needs);
* a keyframe every ``--keyframe_seconds`` (GOP = ``ceil(fps * keyframe_seconds)`` frames at the output rate),
  so reaching any frame decodes at most that much video;
* no audio, no subtitles, no metadata streams;
* timestamps preserved: each frame keeps its presentation time (same time base, times counted from the input's
  start), so transcripts stay aligned with the pictures; variable frame rates stay variable.

Outputs mirror the input tree: ``IN/a/b.webm`` -> ``OUT/a/b.mp4``, and the transcripts next to a video
(``b.json``, ``b.vtt``, ``b.en.vtt``, ``b.srt``) are copied beside it, so ``prepare_transcript_corpus.py --videos
OUT`` builds the corpus from the prepared files unchanged (``video_id`` = relative path without suffix, as from
the originals). A saved corpus (a 🤗 ``Dataset``/``DatasetDict`` folder with a ``video`` column) can be the input
too: its videos are transcoded to ``OUT/videos/<video_id>.mp4`` and a copy of the corpus whose ``video`` column
points at them (a plain path column, also for corpora with embedded videos) is saved to ``OUT/corpus`` (a rerun
keeps an existing copy unless ``--overwrite``). ``OUT/prepare_videos_report.json`` maps every input to its output.

Failure behaviour: an input that cannot be read or transcoded is skipped with one line naming it and the reason
and listed in the report; finished outputs are never re-done or overwritten (a rerun resumes) unless
``overwrite=True``, and then only once the new file is complete: every output is written to a temporary name in
its folder and renamed into place on success. An output folder that equals, contains or lies inside the input is
refused (:func:`~modeling_tvtsv2.tools.output_folders.check_not_an_input`). Outputs derived from data stay inside
the output: a corpus row whose ``video_id`` names a path outside ``OUT/videos`` (``../../x``, an absolute path) is
skipped and reported, as are inputs that would share one output (``clip.avi`` and ``clip.mp4`` side by side: both
would become ``clip.mp4`` and ``clip.srt`` could not say which video it describes; rename one).

Across machines: ``--shard_index I --num_shards N`` (or the launcher's ranks) transcodes one contiguous block of the
sorted inputs per shard, each shard writes ``prepare_videos_report.shard-0000I-of-0000N.json``, and the shard that
completes the set writes the merged ``prepare_videos_report.json`` (and the corpus copy, whose paths are relative to
it, or ``--corpus_format parquet|webdataset`` shards with the prepared videos embedded).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from transformers.utils import logging

from ..tools.output_folders import OutputFolderError, check_not_an_input, path_inside
from ..video_decoding_tvtsv2 import (
    MAX_CONSECUTIVE_DECODE_ERRORS,
    VIDEO_EXTENSIONS,
    demux_until_error,
    is_attached_picture,
    open_av_container,
    timeline_origin,
)
from .corpus_shards import SHARD_FORMATS, open_shard_writer
from .schema import corpus_root, is_saved_dataset, relative_video_path
from .sharding import ShardSpec, claim, read_shard_reports, resolve_shard, shard_report_path, write_json_atomic


logger = logging.get_logger(__name__)

__all__ = ["PrepareVideosReport", "TranscodeSettings", "prepare_videos", "transcode_video"]

DEFAULT_SHORT_SIDE = 268
REPORT_NAME = "prepare_videos_report.json"
_SIDECAR_SUFFIXES = (".json", ".vtt", ".srt")
_TEMP_MARK = ".tmp-"
_REFUSED = "\0refused:"  # planned-output key of a corpus row whose id leads outside the output (never a path)


@dataclass(frozen=True)
class TranscodeSettings:
    """How each video is transcoded (see the module docstring)."""

    short_side: int = DEFAULT_SHORT_SIDE
    crf: int = 23
    preset: str = "veryfast"
    tune: str | None = "fastdecode"
    interpolation: str = "AREA"
    # All-intra at <= 10 fps (measured fastest per sample; see the module docstring). The previous defaults, all
    # frames and a keyframe every second, are max_fps=None, keyframe_seconds=1.0.
    keyframe_seconds: float = 0.1
    max_fps: float | None = 10.0  # drop frames to at most this rate (kept frames keep their times); None: keep all
    bframes: int = 3
    threads: int = 0  # encoder/decoder threads per process; 0 = FFmpeg's automatic count


@dataclass
class PrepareVideosReport:
    """What a run did; saved as ``prepare_videos_report.json`` in the output folder."""

    output: str
    settings: dict[str, Any]
    transcoded: list[dict[str, Any]] = field(default_factory=list)
    already_done: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    corpus: str | None = None
    seconds: float = 0.0
    shard: dict[str, int] | None = None  # {"index", "count"}; the merged report of N shards has index 0, count N
    complete: bool = True  # False: one shard's report, before every shard is done

    def summary(self) -> str:
        shard = "" if self.complete else f"shard {self.shard['index']} of {self.shard['count']}: "
        return (
            f"{shard}prepared videos in {self.output}: {len(self.transcoded)} transcoded, {len(self.already_done)} already "
            f"done, {len(self.failed)} failed ({self.seconds:.1f} s)"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = {
            "transcoded": len(self.transcoded),
            "already_done": len(self.already_done),
            "failed": len(self.failed),
        }
        return data


class PrepareVideosError(ValueError):
    """A user error that stops the whole run (bad input/output folder, nothing to do)."""


# ----------------------------------------------------------------------------------------------------------------
# One video
# ----------------------------------------------------------------------------------------------------------------


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(width, height)`` of the prepared video: shorter side ``short_side`` (never upscaled), even sizes."""
    short = min(width, height)
    if short <= short_side:
        return _even(width), _even(height)
    if width <= height:
        return _even(short_side), _even(short_side * height / width)
    return _even(short_side * width / height), _even(short_side)


def transcode_video(source: str | os.PathLike[str], destination: str | os.PathLike[str],
                    settings: TranscodeSettings = TranscodeSettings()) -> dict[str, Any]:
    """Transcode one video to ``destination`` (written under a temporary name, renamed on success).

    Returns a summary (frames, size, frame rate). Raises ``ValueError`` naming the file and the reason when the
    input cannot be read or yields no frame; the temporary file is removed then.
    """
    import av

    source, destination = Path(source), Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.stem}{_TEMP_MARK}{os.getpid()}{destination.suffix}")
    try:
        info = _transcode(av, source, temporary, settings)
        os.replace(temporary, destination)
    finally:
        if temporary.exists():
            temporary.unlink()
    return info


def _transcode(av, source: Path, target: Path, settings: TranscodeSettings) -> dict[str, Any]:
    try:
        container = open_av_container(str(source))  # as the reader opens: tags not UTF-8 are ignored
    except (av.FFmpegError, OSError) as error:
        raise ValueError(f"cannot read video {source}: FFmpeg cannot open it as media ({error})") from None
    with container:
        streams = [s for s in container.streams.video if not is_attached_picture(s)]
        if not streams:
            raise ValueError(f"cannot read video {source}: no video stream")
        stream = streams[0]
        stream.thread_type = "AUTO"
        stream.thread_count = settings.threads
        time_base = stream.time_base
        if time_base is None:
            raise ValueError(f"cannot read video {source}: the video stream has no time base")
        # Times are counted from read_video's 0 (timeline_origin) and written to an MP4, which keeps them: a video
        # that starts 1.5 s after its audio reads from 1.5 s before and after (transcripts stay aligned).
        origin_pts = int(round(timeline_origin(container, stream) / time_base))
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 25.0
        slots_per_tick = None  # max_fps: time-base ticks -> 1/max_fps slots; one frame kept per slot
        if settings.max_fps is not None and fps > settings.max_fps:
            fps, rate = settings.max_fps, Fraction(settings.max_fps).limit_denominator(1001)
            slots_per_tick = Fraction(time_base) * rate
        gop = max(1, math.ceil(fps * settings.keyframe_seconds))
        last_slot = None
        frames = dropped = 0
        last_pts = None
        output = None
        try:
            for frame in _decoded_frames(av, container, stream):
                if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                    dropped += 1  # no usable timestamp, or out of order: the time line must stay monotonic
                    continue
                last_pts = frame.pts
                if slots_per_tick is not None:
                    # The first frame in each 1/max_fps slot of the time line is kept, with its own time. Slots
                    # rather than "at least 1/max_fps after the last kept frame": a 12 fps source keeps ~10 fps,
                    # not every other frame (6 fps).
                    slot = math.floor((frame.pts - origin_pts) * slots_per_tick)
                    if last_slot is not None and slot <= last_slot:
                        dropped += 1
                        continue
                    last_slot = slot
                if output is None:
                    width, height = output_size(frame.width, frame.height, settings.short_side)
                    output, out_stream = _open_output(av, target, width, height, rate, time_base, gop, settings)
                picture = frame.reformat(width=width, height=height, format="yuv420p",
                                         interpolation=settings.interpolation)
                picture.pts = frame.pts - origin_pts
                picture.time_base = time_base
                output.mux(out_stream.encode(picture))
                frames += 1
            if output is None:
                raise ValueError(f"cannot read video {source}: no frame decodes")
            output.mux(out_stream.encode())
        finally:
            if output is not None:
                output.close()
    return {"frames": frames, "dropped_frames": dropped, "width": width, "height": height, "fps": round(fps, 3),
            "keyframe_interval": gop}


def _decoded_frames(av, container, stream):
    """Frames in presentation order; undecodable packets are skipped, a demuxer error ends the stream."""
    errors = 0
    for packet in demux_until_error(container, stream):
        try:
            decoded = packet.decode()
        except (av.FFmpegError, ValueError):
            errors += 1
            if errors > MAX_CONSECUTIVE_DECODE_ERRORS:
                break
            continue
        errors = 0
        yield from decoded


def _open_output(av, target: Path, width: int, height: int, rate, time_base, gop: int, settings: TranscodeSettings):
    # The sample table (moov) first: readers that stream the file (HTTP range requests, object stores) get the
    # index with the first bytes, and a truncated copy still opens.
    output = av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"})
    stream = output.add_stream("libx264", rate=rate or 25)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    stream.thread_count = settings.threads
    # B-frames that no frame refers to (no B-pyramid): the reader skips them on its way to a target frame, so
    # reaching a frame decodes about a quarter of the frames before it in its GOP.
    options = {"crf": str(settings.crf), "preset": settings.preset, "g": str(gop),
               "keyint_min": str(min(gop, max(1, gop // 2))), "bf": str(settings.bframes), "b-pyramid": "none"}
    if settings.tune:
        options["tune"] = settings.tune
    stream.options = options
    return output, stream


# ----------------------------------------------------------------------------------------------------------------
# A folder or a corpus
# ----------------------------------------------------------------------------------------------------------------


def _sidecars(video: Path) -> list[Path]:
    """Transcripts next to a video: ``<stem><suffix>`` and ``<stem>.<tag><suffix>`` (e.g. ``clip.en.vtt``)."""
    found = []
    for suffix in _SIDECAR_SUFFIXES:
        found.extend(p for p in video.parent.glob(f"{_glob_escape(video.stem)}*{suffix}")
                     if p.is_file() and (p.stem == video.stem or p.stem.startswith(video.stem + ".")))
    return sorted(set(found))


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _check_folders(source: Path, output: Path) -> None:
    try:
        check_not_an_input(output, [source])
    except OutputFolderError as error:
        raise PrepareVideosError(str(error)) from None


def _lies_in(path: Path, folder: Path) -> bool:
    """Whether ``path`` (links resolved) is inside ``folder``."""
    try:
        return folder.resolve() in path.resolve().parents
    except (OSError, ValueError):
        return False


def _refused(source: str, destination: str | None, reason: str) -> dict[str, Any]:
    """A report entry (``failed``) for an input refused before any work."""
    logger.warning("skipped %s: %s", source, reason)
    return {"input": source, "output": destination, "reason": reason}


def _job(args: tuple[str, str, TranscodeSettings, bool]) -> dict[str, Any]:
    source, destination, settings, overwrite = args
    record: dict[str, Any] = {"input": source, "output": destination}
    if os.path.exists(destination) and not overwrite:
        record["status"] = "already_done"
        return record
    for stale in Path(destination).parent.glob(f".{_glob_escape(Path(destination).stem)}{_TEMP_MARK}*"):
        stale.unlink(missing_ok=True)  # left by an interrupted run
    started = time.perf_counter()
    try:
        record.update(transcode_video(source, destination, settings))
    except Exception as error:  # noqa: BLE001 - one bad input must not stop the run
        message = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        record.update(status="failed", reason=message)
        return record
    record.update(status="transcoded", seconds=round(time.perf_counter() - started, 3))
    return record


def _run_jobs(jobs: list[tuple[str, str, TranscodeSettings, bool]], num_workers: int, report: PrepareVideosReport,
              progress: bool) -> None:
    from transformers.utils.logging import tqdm

    if num_workers > 1 and len(jobs) > 1:
        executor = ProcessPoolExecutor(num_workers)
        results: Iterable[dict[str, Any]] = executor.map(_job, jobs, chunksize=1)
    else:
        executor, results = None, map(_job, jobs)
    try:
        for record in tqdm(results, total=len(jobs), desc="prepare videos", disable=not progress):
            status = record.pop("status")
            if status == "failed":
                logger.warning("skipped %s: %s", record["input"], record["reason"])
                report.failed.append(record)
            elif status == "already_done":
                report.already_done.append(record)
            else:
                report.transcoded.append(record)
    finally:
        if executor is not None:
            executor.shutdown()


def prepare_videos(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    settings: TranscodeSettings = TranscodeSettings(),
    num_workers: int = 1,
    overwrite: bool = False,
    extensions: Sequence[str] | None = None,
    progress: bool = True,
    shard_index: int | None = None,
    num_shards: int | None = None,
    corpus_format: str = "arrow",
    rows_per_file: int = 1000,
    use_launcher: bool = False,
) -> PrepareVideosReport:
    """Transcode a folder of videos (recursively) or a saved corpus into ``output`` (see the module docstring).

    ``shard_index`` / ``num_shards`` (and, with ``use_launcher`` as the command line does, the launcher's ``RANK`` /
    ``WORLD_SIZE``, :mod:`modeling_tvtsv2.data.sharding`) make this run one shard: it transcodes its contiguous block of the sorted
    videos and writes ``prepare_videos_report.<shard>.json``; the shard that completes the set writes the merged
    ``prepare_videos_report.json`` (and, for a corpus input, the corpus copy). ``corpus_format``: the corpus copy
    as a ``save_to_disk`` folder (``"arrow"``, paths relative to it) or as ``"parquet"`` / ``"webdataset"`` shard
    files with the prepared videos embedded (``rows_per_file`` rows each).

    Returns the report (also saved as ``output/prepare_videos_report.json``). Raises :class:`PrepareVideosError`
    (a ``ValueError``) for a missing input, an input without videos, or an output that equals/contains the input.
    """

    source, output = Path(source), Path(output)
    if not source.exists():
        raise PrepareVideosError(f"input {source} does not exist")
    if not source.is_dir():
        raise PrepareVideosError(f"input {source} is not a folder (of videos, or a saved corpus)")
    if num_workers < 1:
        raise PrepareVideosError(f"num_workers must be >= 1, got {num_workers}")
    if corpus_format not in SHARD_FORMATS:
        raise PrepareVideosError(f"--corpus_format must be one of {', '.join(SHARD_FORMATS)}, got {corpus_format!r}")
    try:
        spec = resolve_shard(shard_index, num_shards, use_launcher=use_launcher)
    except ValueError as error:
        raise PrepareVideosError(str(error)) from None
    _check_folders(source, output)
    started = time.perf_counter()
    if settings.threads == 0 and num_workers > 1:
        # Parallelism comes from the processes; FFmpeg's own threads would oversubscribe the CPUs.
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        settings = TranscodeSettings(**{**asdict(settings), "threads": max(1, cpus // num_workers)})
    report = PrepareVideosReport(str(output), asdict(settings), shard=spec.to_json(), complete=spec.is_single)
    if not overwrite:
        _check_earlier_settings(output, report.settings)
    output.mkdir(parents=True, exist_ok=True)
    corpus_input = is_saved_dataset(source) or (source / "train").is_dir() and is_saved_dataset(source / "train")
    if corpus_input:
        _prepare_corpus(source, output, settings, num_workers, overwrite, report, progress, spec)
    else:
        suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in (extensions or VIDEO_EXTENSIONS)}
        videos = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                        and _TEMP_MARK not in p.name)
        if not videos:
            raise PrepareVideosError(f"no videos ({', '.join(sorted(suffixes))}) found in {source}")
        jobs = []
        claimed: dict[Path, list[Path]] = {}  # over all inputs, so that every shard refuses the same ones
        for video in videos:
            claimed.setdefault(output / video.relative_to(source).with_suffix(".mp4"), []).append(video)
        for video in spec.block(videos):  # a contiguous block of the sorted list: shards never share an output
            destination = output / video.relative_to(source).with_suffix(".mp4")
            sharing = claimed[destination]
            if len(sharing) > 1:  # clip.avi + clip.mp4: one output name, and clip.srt would follow either
                names = ", ".join(str(v.relative_to(source)) for v in sharing)
                reason = f"{names} would all become {destination.name}; rename all but one"
                report.failed.append(_refused(str(video), str(destination), reason))
            elif _lies_in(video, output):  # a link into the output: replacing the output would edit this input
                reason = f"it is a link to {video.resolve()}, inside the output folder"
                report.failed.append(_refused(str(video), str(destination), reason))
            else:
                jobs.append((str(video), str(destination), settings, overwrite))
        _run_jobs(jobs, num_workers, report, progress)
        done = {r["input"] for r in report.transcoded + report.already_done}
        for video in videos:
            if str(video) in done:
                for sidecar in _sidecars(video):
                    target = output / sidecar.relative_to(source)
                    if overwrite or not target.exists():
                        shutil.copy2(sidecar, target)
    report.seconds = time.perf_counter() - started
    if spec.is_single:
        if corpus_input:
            _save_corpus_copy(source, output, overwrite, report, corpus_format, rows_per_file)
        _save_report(output, report)
        logger.info(report.summary())
        return report
    write_json_atomic(shard_report_path(output, REPORT_NAME.removesuffix(".json"), spec), report.to_json())
    merged = _merged_report(output, spec, report)
    if merged is None:
        logger.info("%s; the reports are merged when every shard is done", report.summary())
        return report
    if corpus_input and claim(output / ".corpus.claim"):
        try:
            _save_corpus_copy(source, output, overwrite, merged, corpus_format, rows_per_file)
        finally:
            shutil.rmtree(output / ".corpus.claim", ignore_errors=True)
    merged.corpus = str(output / "corpus") if corpus_input else None
    _save_report(output, merged)
    logger.info(merged.summary())
    return merged


def _merged_report(output: Path, spec: ShardSpec, report: PrepareVideosReport) -> PrepareVideosReport | None:
    """The report of every shard of the run, once each has written its own (shard order), else ``None``."""
    reports = read_shard_reports(output, REPORT_NAME.removesuffix(".json"), spec.count)
    if reports is None:
        return None
    merged = PrepareVideosReport(report.output, report.settings, shard={"index": 0, "count": spec.count})
    for part in reports:
        merged.transcoded += part["transcoded"]
        merged.already_done += part["already_done"]
        merged.failed += part["failed"]
        merged.seconds += part["seconds"]
    return merged


def _check_earlier_settings(output: Path, settings: dict[str, Any]) -> None:
    """Refuses to resume into ``output`` when its report says its files were made with other settings (they would
    count as done and the new report would describe files it did not make). Threads change no output."""
    try:
        earlier = json.loads((output / REPORT_NAME).read_text(encoding="utf-8")).get("settings")
    except FileNotFoundError:
        return
    except (OSError, ValueError, AttributeError) as error:
        raise PrepareVideosError(f"{output / REPORT_NAME} cannot be read ({error}); pass --overwrite to redo") from None
    if not isinstance(earlier, dict):
        raise PrepareVideosError(f"{output / REPORT_NAME} has no settings; pass --overwrite to redo the videos")
    differences = [
        f"{name}: {earlier.get(name)!r} there, {value!r} now"
        for name, value in settings.items()
        if name != "threads" and earlier.get(name) != value
    ]
    if differences:
        raise PrepareVideosError(
            f"--output {output} holds videos prepared with other settings ({'; '.join(differences)}); rerun with "
            "the same settings to resume, pass --overwrite to redo every video, or choose another folder"
        )


def _save_report(output: Path, report: PrepareVideosReport) -> None:
    path = output / REPORT_NAME
    temporary = path.with_name(path.name + ".tmp")
    try:
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a file name that is not UTF-8: \udcXX escapes (json.load gives the name back)
        text = json.dumps(report.to_json(), indent=2).encode("ascii")
    temporary.write_bytes(text)
    os.replace(temporary, path)


def _corpus_splits(source: Path):
    import datasets

    corpus = datasets.load_from_disk(str(source))
    splits = corpus if isinstance(corpus, datasets.DatasetDict) else {"train": corpus}
    for split in splits.values():
        if "video" not in split.column_names:
            raise PrepareVideosError(f"corpus {source} has no 'video' column")
    return corpus, splits


def _prepared_paths(output: Path, split) -> list[Path | None]:
    """Where each row's prepared video goes: ``videos/<video_id or row number>.mp4``; None for an id that leads
    outside ``videos/`` (``../../x``, an absolute path, a link out): that row is refused."""
    ids = split["video_id"] if "video_id" in split.column_names else [None] * len(split)
    paths: list[Path | None] = []
    for index, video_id in enumerate(ids):
        try:
            paths.append(_corpus_destination(output, str(video_id or index)))
        except ValueError:
            paths.append(None)
    return paths


def _prepare_corpus(source: Path, output: Path, settings: TranscodeSettings, num_workers: int, overwrite: bool,
                    report: PrepareVideosReport, progress: bool, spec: ShardSpec = ShardSpec()) -> None:
    """Transcode this shard's videos of a saved corpus (its block of the distinct outputs, in corpus order)."""
    _, splits = _corpus_splits(source)
    embedded = output / "videos" / f".embedded-{spec.name}"  # per shard: shards never share a scratch file
    planned: dict[str, tuple[str, int, str]] = {}  # output -> (split, row, video id): the first row that names it
    for name, split in splits.items():
        ids = split["video_id"] if "video_id" in split.column_names else [None] * len(split)
        for index, path in enumerate(_prepared_paths(output, split)):
            # A refused row gets its own key, so that exactly one shard reports it.
            key = str(path) if path is not None else f"{_REFUSED}{ids[index] or index}"
            planned.setdefault(key, (name, index, path.stem if path is not None else str(ids[index])))
    jobs: list[tuple[str, str, TranscodeSettings, bool]] = []
    for destination, (name, index, video_id) in spec.block(list(planned.items())):
        if destination.startswith(_REFUSED):
            reason = f"video_id {video_id!r} names a path outside {output / 'videos'}"
            report.failed.append(_refused(str(splits[name][index]["video"])[:200], None, reason))
            continue
        if Path(destination).exists() and not overwrite:  # done by an earlier run: no need to extract its bytes
            jobs.append((destination, destination, settings, overwrite))
            continue
        path = _corpus_video_path(splits[name][index]["video"], embedded, video_id)
        if path is not None and not os.path.isabs(path):  # saved corpora store paths relative to their folder
            path = os.path.normpath(os.path.join(corpus_root(source), path))
        if path is not None and _lies_in(Path(path), output) and not path.startswith(str(embedded)):
            reason = f"the video {path} lies inside the output folder (a prepared file as an input?)"
            report.failed.append(_refused(path, destination, reason))
        elif path is not None:
            jobs.append((path, destination, settings, overwrite))
    _run_jobs(jobs, num_workers, report, progress)
    shutil.rmtree(embedded, ignore_errors=True)


def _save_corpus_copy(source: Path, output: Path, overwrite: bool, report: PrepareVideosReport, corpus_format: str,
                      rows_per_file: int) -> None:
    """Save ``output/corpus``: the rows whose video was prepared, pointing at the prepared files (paths relative to
    the copy for ``arrow``; embedded for ``parquet`` / ``webdataset``)."""
    import datasets

    corpus, splits = _corpus_splits(source)
    ready = {r["output"] for r in report.transcoded + report.already_done}
    target = output / "corpus"
    report.corpus = str(target)
    if target.exists() and not overwrite:
        logger.warning("kept the existing %s (a finished run's copy); pass --overwrite to rebuild it", target)
        return
    temporary = output / f".corpus{_TEMP_MARK}{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    prepared = {}
    for name, split in splits.items():
        paths = _prepared_paths(output, split)
        keep = [index for index, path in enumerate(paths) if str(path) in ready]  # rows whose video transcoded
        split = split.select(keep).remove_columns(["video"])
        if corpus_format == "arrow":  # a plain path column (embedded bytes in the input become paths)
            prepared[name] = split.add_column("video", [relative_video_path(paths[i], target) for i in keep])
            continue
        features = datasets.Features({"video": datasets.Video(decode=False), **split.features})
        with open_shard_writer(corpus_format, temporary / name, "corpus", features, rows_per_file) as writer:
            for index, row in zip(keep, split):
                writer.write({"video": str(paths[index].resolve()), **row})
    if corpus_format == "arrow":
        out = datasets.DatasetDict(prepared) if isinstance(corpus, datasets.DatasetDict) else prepared["train"]
        out.save_to_disk(str(temporary))
    if target.exists():
        shutil.rmtree(target)
    os.replace(temporary, target)


def _corpus_destination(output: Path, video_id: str) -> Path:
    """``OUT/videos/<video_id>.mp4``; a ValueError when the id leads outside ``OUT/videos``."""
    return path_inside(output / "videos", f"{video_id}.mp4")


def _corpus_video_path(value: Any, embedded: Path, video_id: str) -> str | None:
    """A path to read the corpus row's video from: its path, or its embedded bytes written to a scratch file."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            embedded.mkdir(parents=True, exist_ok=True)
            scratch = embedded / f"{len(list(embedded.iterdir()))}.bin"  # the folder is this shard's own
            scratch.write_bytes(value["bytes"])
            return str(scratch)
        return value.get("path")
    return None


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


_DEFAULTS = TranscodeSettings()


def _optional_rate(text: str) -> float | None:
    """``--max_fps``: a number, or ``none`` for no cap."""
    if text.strip().lower() == "none":
        return None
    return float(text)


@dataclass
class PrepareVideosArguments:
    """``tvtsv2 prepare-videos`` and ``processing/prepare_videos.py`` (parsed by ``modeling_tvtsv2.tools.arguments``:
    ``--a_b`` and ``--a-b``, argument files)."""

    input: str = field(metadata={"help": "folder of videos (searched recursively) or a saved corpus"})
    output: str = field(metadata={"help": "output folder (mirrors the input tree)"})
    short_side: int = field(
        default=_DEFAULTS.short_side, metadata={"help": "shorter side of the prepared videos (never upscaled)"}
    )
    crf: int = field(default=_DEFAULTS.crf, metadata={"help": "x264 quality"})
    preset: str = field(default=_DEFAULTS.preset, metadata={"help": "x264 preset"})
    tune: str | None = field(default=_DEFAULTS.tune, metadata={"help": "x264 tune ('none' for none)"})
    interpolation: str = field(default=_DEFAULTS.interpolation, metadata={"help": "libswscale downscale filter"})
    keyframe_seconds: float = field(
        default=_DEFAULTS.keyframe_seconds,
        metadata={
            "help": "most seconds between keyframes (with the default --max_fps every frame is a keyframe; "
            "previous default 1)"
        },
    )
    max_fps: float | None = field(
        default=_DEFAULTS.max_fps,
        metadata={
            "help": "keep at most this many frames per second (kept frames keep their times; 'none' keeps every "
            "frame). The defaults (all-intra at 10 fps) measured 1.5-1.7x the samples/s of '--max_fps none "
            "--keyframe_seconds 1' (the previous defaults) at 2-3x their file size: see benchmarks/README.md",
            "type": _optional_rate,
        },
    )
    num_workers: int = field(default=1, metadata={"help": "parallel processes"})
    extensions: list[str] | None = field(
        default=None, metadata={"help": "video file suffixes (default: the usual)"}
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "transcode again videos whose output exists (replaced once the new file is complete)"},
    )
    shard_index: int | None = field(
        default=None,
        metadata={"help": "transcode only this shard (0-based) of --num_shards (e.g. $SLURM_ARRAY_TASK_ID); "
                  "torchrun / accelerate launch ranks split the work too"},
    )
    num_shards: int | None = field(default=None, metadata={"help": "number of shards (with --shard_index)"})
    corpus_format: str = field(
        default="arrow",
        metadata={"help": "a saved-corpus input's copy: arrow (save_to_disk, relative paths), or parquet / "
                  "webdataset shards with the prepared videos embedded", "choices": list(SHARD_FORMATS)},
    )
    rows_per_file: int = field(default=1000, metadata={"help": "rows per parquet/webdataset file of the copy"})


def run_from_args(args) -> int:
    """Run with parsed arguments; user errors are one line on stderr and exit code 2."""
    import sys

    tune = None if str(args.tune).lower() in ("", "none") else args.tune
    if args.short_side < 2 or args.keyframe_seconds <= 0 or (args.max_fps is not None and not args.max_fps > 0):
        print("error: --short_side must be >= 2, --keyframe_seconds and --max_fps > 0", file=sys.stderr)
        return 2
    settings = TranscodeSettings(short_side=args.short_side, crf=args.crf, preset=args.preset, tune=tune,
                                 interpolation=args.interpolation, keyframe_seconds=args.keyframe_seconds,
                                 max_fps=args.max_fps)
    try:
        report = prepare_videos(args.input, args.output, settings=settings, num_workers=args.num_workers,
                                overwrite=args.overwrite, extensions=args.extensions, shard_index=args.shard_index,
                                num_shards=args.num_shards, corpus_format=args.corpus_format,
                                rows_per_file=args.rows_per_file, use_launcher=True)
    except PrepareVideosError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the output itself cannot be written (full disk, read-only mount): one line, status 1
        print(f"error: --output {args.output}: {error.strerror or error} ({error.filename or args.output})",
              file=sys.stderr)  # fmt: skip
        return 1
    print(report.summary())
    if report.complete:
        print(f"report: {Path(args.output) / REPORT_NAME}")
    return 1 if report.failed and not (report.transcoded or report.already_done) else 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``tvtsv2 prepare-videos ...`` / ``processing/prepare_videos.py``: returns the exit status (2 with one
    ``error: ...`` line for a user mistake)."""
    from ..tools.arguments import parse_tool_arguments

    description = __doc__.split("\n\n")[0]
    (args,) = parse_tool_arguments(PrepareVideosArguments, argv, prog=prog, description=description)
    return run_from_args(args)
