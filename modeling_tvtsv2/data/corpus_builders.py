"""Build TVTSv2 pre-training corpora as 🤗 Datasets saved to disk.

Two sources:

* :func:`build_transcript_corpus`: a folder of videos with a transcript next to each one (same stem):
  ``clip.mp4`` + ``clip.json`` (YT-Temporal ASR), ``clip.vtt`` / ``clip.en.vtt`` (WebVTT, YouTube auto-captions
  included) or ``clip.srt``.
* :func:`build_caption_corpus`: a CSV / TSV / JSONL (or JSON list) file of video paths and captions.

Every video is probed with PyAV before it enters the corpus
(:func:`~modeling_tvtsv2.video_decoding_tvtsv2.probe_video`: the file opens, has a video stream, a frame decodes,
and the duration is measured from the demuxed packets rather than trusted from the header). Members that fail
(unreadable video, unparsable subtitle, transcript without words, empty caption, missing file) are reported and
skipped, never fatal. The output folder holds (format ``arrow``) a ``DatasetDict`` (``train`` and,
with ``validation_size``, ``validation``) with the schemas of :mod:`modeling_tvtsv2.data`, a short dataset card
``README.md`` and ``build_report.json`` (every skipped member and why). Load it with
:func:`modeling_tvtsv2.data.schema.load_corpus`.

Videos are either embedded in the dataset (``embed_videos=True``: a ``Video(decode=False)`` column, portable,
larger) or referenced by a path relative to the corpus folder (a ``string`` column; the corpus folder and the videos
may move together). ``output_format`` ``"parquet"`` / ``"webdataset"`` writes shard files with embedded videos that
stream back (:mod:`modeling_tvtsv2.data.corpus_shards`); rows are written as they are made, never all held in
memory; ``shard_index`` / ``num_shards`` (or the launcher's ranks) split a build across machines
(:mod:`modeling_tvtsv2.data.corpus_output`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers.utils import logging

from ..tools.output_folders import FolderReadByName, check_output_folder
from ..tools.package_logging import set_package_log_level
from .corpus_output import CorpusOutput, probed_in_order
from .corpus_shards import SHARD_FORMATS
from .schema import VIDEO_EXTENSIONS, caption_features, relative_video_path, transcript_features
from .sharding import resolve_shard
from .subtitles import (
    SUBTITLE_SUFFIXES,
    Segment,
    SubtitleParseError,
    Transcript,
    load_transcript,
    open_text_file,
    segments_to_rows,
    words_to_rows,
)

logger = logging.get_logger(__name__)

__all__ = [
    "CorpusBuildReport",
    "SkippedMember",
    "build_caption_corpus",
    "build_transcript_corpus",
    "find_transcript_pairs",
    "read_caption_metadata",
]


# --------------------------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedMember:
    """A source member left out of the corpus."""

    source: str
    reason: str
    detail: str = ""


@dataclass
class CorpusBuildReport:
    """Result of a corpus build."""

    output_dir: str
    kind: str
    timing: str | None
    num_rows: dict[str, int]
    skipped: list[SkippedMember] = field(default_factory=list)
    embed_videos: bool = False
    format: str = "arrow"
    shard: dict[str, int] | None = None  # {"index", "count"}: a shard's report, or the merged one of `count` shards
    complete: bool = True  # False: the report of one shard, before the merge

    @property
    def skipped_counts(self) -> dict[str, int]:
        return dict(Counter(member.reason for member in self.skipped))

    def summary(self) -> str:
        rows = ", ".join(f"{split}: {n}" for split, n in self.num_rows.items())
        skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped_counts.items())) or "none"
        if not self.complete:
            return (f"shard {self.shard['index']} of {self.shard['count']} of {self.output_dir} done ({rows} rows; "
                    f"skipped {len(self.skipped)}: {skipped}); the shards are merged when all are done")
        return f"{self.kind} corpus at {self.output_dir} ({rows} rows); skipped {len(self.skipped)} ({skipped})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped_counts"] = self.skipped_counts
        return data


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------


LOADING = {
    "arrow": 'Load with `modeling_tvtsv2.data.schema.load_corpus(path, split="train")` (or '
             "`datasets.load_from_disk(path)`).",
    "parquet": "Parquet shards with embedded videos: `modeling_tvtsv2.data.schema.load_corpus(path)` or "
               "`datasets.load_dataset(path, streaming=True)`.",
    "webdataset": "WebDataset tars (`KEY.mp4` + `KEY.json`): `modeling_tvtsv2.data.schema.load_corpus(path)` or "
                  "`datasets.load_dataset(path, streaming=True)` (then `schema.as_corpus`).",
}


def _write_card(output_dir: Path, report: CorpusBuildReport, source: str) -> None:
    """A short dataset card (``README.md``) and the full report (``build_report.json``)."""
    video = ("`Video(decode=False)` (embedded bytes)" if report.embed_videos
             else "`string` (path relative to this folder)")
    columns = [("video", video), ("video_id", "`string`"), ("duration", "`float32` seconds, measured by demuxing")]
    if report.kind == "caption":
        columns.append(("caption", "`string`"))
    elif report.timing == "words":
        columns.append(("words", "`List({word: string, time: float32})`"))
    else:
        columns.append(("segments", "`List({start: float32, end: float32, text: string})`"))
    schema = "\n".join(["| column | type |", "|---|---|"] + [f"| `{name}` | {kind} |" for name, kind in columns])
    splits = "\n".join(["| split | rows |", "|---|---|"] + [f"| `{n}` | {rows} |" for n, rows in report.num_rows.items()])
    if report.skipped:
        lines = ["| member | reason | detail |", "|---|---|---|"]
        for member in report.skipped[:50]:
            detail = member.detail[:120].replace("|", "/").replace("\n", " ")
            lines.append(f"| `{Path(member.source).name}` | {member.reason} | {detail} |")
        if len(report.skipped) > 50:
            lines.append(f"\n... and {len(report.skipped) - 50} more (see `build_report.json`).")
        skipped = "\n".join(lines)
    else:
        skipped = "None."
    card = f"""---
tags:
- video
- tvtsv2
- {report.kind}-corpus
---

# TVTSv2 {report.kind} corpus

Built by `modeling_tvtsv2.data.corpus_builders` from `{source}`.
{LOADING[report.format]}

## Splits

{splits}

## Schema

{schema}

## Skipped members ({len(report.skipped)})

{skipped}
"""
    (output_dir / "README.md").write_text(card, encoding="utf-8")
    (output_dir / "build_report.json").write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------
# Transcript corpora
# --------------------------------------------------------------------------------------------------------------


def _transcript_candidates(video: Path) -> list[Path]:
    """Transcripts for ``video``: ``<stem><suffix>`` first, then ``<stem>.<tag><suffix>`` (e.g. ``clip.en.vtt``),
    in the order of :data:`SUBTITLE_SUFFIXES`."""
    found: list[Path] = []
    for suffix in SUBTITLE_SUFFIXES:
        exact = video.with_suffix(suffix)
        if exact.is_file():
            found.append(exact)
        found.extend(sorted(p for p in video.parent.glob(f"{video.stem}.*{suffix}") if p.is_file() and p != exact))
    return found


def find_transcript_pairs(
    videos_dir: str | os.PathLike[str],
    *,
    video_extensions: Iterable[str] = VIDEO_EXTENSIONS,
    recursive: bool = True,
) -> list[tuple[Path, Path | None]]:
    """``(video, transcript or None)`` for every video under ``videos_dir`` (sorted, deterministic)."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in video_extensions}
    pattern = "**/*" if recursive else "*"
    videos = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in extensions)
    pairs = []
    for video in videos:
        candidates = _transcript_candidates(video)
        pairs.append((video, candidates[0] if candidates else None))
    return pairs


def _check_storable(transcript: Transcript) -> None:
    """Refuses what Arrow would refuse at save time (after every video was probed) or what breaks windows later:
    text that is not valid Unicode (lone surrogates from JSON escapes) and non-finite times."""
    for word in transcript.words or ():
        if not math.isfinite(word.time):
            raise SubtitleParseError(f"word {word.word!r} has time {word.time}")
        word.word.encode("utf-8")  # UnicodeEncodeError for a lone surrogate
    for segment in transcript.segments:
        if not (math.isfinite(segment.start) and math.isfinite(segment.end)):
            raise SubtitleParseError(f"segment {segment.text[:40]!r} has times {segment.start}..{segment.end}")
        segment.text.encode("utf-8")


def _words_as_segments(transcript: Transcript) -> list[Segment]:
    return [Segment(w.time, w.time, w.word) for w in transcript.to_words()]


def _select_transcript(video: Path, min_words: int, use_denoised: bool
                       ) -> tuple[Transcript | None, SkippedMember | None]:
    """The first usable transcript next to ``video``, else the first failure (e.g. a youtube-dl
    ``<stem>.info.json`` is not a transcript, ``<stem>.en.vtt`` is)."""
    failure = None
    for candidate in _transcript_candidates(video):
        try:
            parsed = load_transcript(candidate, use_denoised=use_denoised)
            _check_storable(parsed)
        except (SubtitleParseError, OSError, UnicodeError) as error:
            failure = failure or SkippedMember(str(candidate), "unparsable_transcript", str(error))
            continue
        except Exception as error:  # noqa: BLE001 - one hostile file must not stop a build
            detail = f"{type(error).__name__}: {str(error)[:200]}"
            failure = failure or SkippedMember(str(candidate), "unparsable_transcript", detail)
            continue
        if len(parsed) < min_words:
            failure = failure or SkippedMember(str(candidate), "no_words", f"{len(parsed)} words")
            continue
        return parsed, None
    return None, failure or SkippedMember(str(video), "no_transcript", "no .json/.vtt/.srt with the same stem")


def _video_value(path: Path, embed_videos: bool, output_dir: Path) -> Any:
    # Embedded: the writer reads the file's bytes (the path becomes the file name). Else a path relative to the
    # corpus folder, so that the folder and its videos can move together.
    return {"bytes": None, "path": str(path)} if embed_videos else relative_video_path(path, output_dir)


def build_transcript_corpus(
    videos_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    embed_videos: bool = False,
    timing: Literal["auto", "segments", "words"] = "auto",
    validation_size: float | int = 0,
    min_words: int = 1,
    video_extensions: Iterable[str] = VIDEO_EXTENSIONS,
    recursive: bool = True,
    num_workers: int = 1,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    log_report: bool = True,
    use_denoised: bool = True,
    output_format: str = "arrow",
    shard_index: int | None = None,
    num_shards: int | None = None,
    rows_per_file: int = 1000,
    use_launcher: bool = False,
) -> CorpusBuildReport:
    """Build a transcript corpus from a folder of videos with ``.json`` / ``.vtt`` / ``.srt`` transcripts.

    Args:
        videos_dir: folder to scan (recursively by default).
        output_dir: where the corpus and its card go.
        embed_videos: embed the video bytes (``Video(decode=False)``) instead of keeping paths (relative to
            ``output_dir``: the corpus folder and the videos may move together).
        timing: ``"words"`` (word-level column), ``"segments"`` (cue-level column) or ``"auto"``: words when any
            transcript has word timings (YT-Temporal JSON, YouTube auto-captions), else segments. Cue-only
            transcripts in a words corpus are spread over their cues; word-only ones in a segments corpus become
            one-word segments. ``"auto"`` reads transcripts until it finds word timings (every one, for a
            cue-only corpus): pass the timing to skip that pass.
        validation_size: fraction (< 1) or number of rows for a ``validation`` split (0: ``train`` only).
        min_words: transcripts with fewer words are skipped.
        video_extensions, recursive: which files are videos.
        num_workers: processes for probing videos.
        seed: seed of the train/validation split.
        overwrite: replace a non-empty ``output_dir``.
        progress: optional wrapper of the video-probing loop for progress display (e.g. ``tqdm.tqdm``).
        log_report: log the skipped pairs and the summary (the scripts print the report themselves: ``False``).
        use_denoised: YT-Temporal JSON with a ``denoised`` text: store its words, aligned to the ASR timings as the
            original did (a few seconds per 10-minute transcript); ``False`` keeps the raw ASR words.
        output_format: ``"arrow"`` (``save_to_disk``), ``"parquet"`` or ``"webdataset"`` shard files (videos
            embedded; :mod:`modeling_tvtsv2.data.corpus_shards`).
        shard_index, num_shards: build only this shard of the members; the last shard to finish merges.
        use_launcher: also split by the launcher's ``RANK`` / ``WORLD_SIZE`` (the scripts do; off for the API: a
            build inside a multi-process run, e.g. the demo corpus, stays whole).
        rows_per_file: rows per Parquet / WebDataset file.

    Returns:
        A :class:`CorpusBuildReport` (of the whole corpus once merged, else of this shard: ``complete`` is False);
        skipped members are also logged.
    """
    output_dir = Path(output_dir)
    root = Path(videos_dir)
    spec = resolve_shard(shard_index, num_shards, use_launcher=use_launcher)
    embed_videos = embed_videos or output_format != "arrow"
    check_output_folder(output_dir, overwrite=overwrite, inputs=[root])
    pairs = find_transcript_pairs(root, video_extensions=video_extensions, recursive=recursive)
    if timing == "auto":  # over every member (not only this shard's): all shards must agree
        timing = "words" if any(
            transcript is not None and transcript.has_word_timings
            for transcript, _ in (_select_transcript(video, min_words, use_denoised) for video, _ in pairs)
        ) else "segments"
    if timing not in ("segments", "words"):
        raise ValueError(f"timing must be 'auto', 'segments' or 'words', got {timing!r}")
    settings = {"kind": "transcript", "source": str(root.resolve()), "timing": timing, "embed_videos": embed_videos,
                "min_words": min_words, "use_denoised": use_denoised, "num_members": len(pairs)}
    out = CorpusOutput(output_dir, fmt=output_format, spec=spec, settings=settings, overwrite=overwrite,
                       inputs=[root], validation_size=validation_size, seed=seed, rows_per_file=rows_per_file)
    skipped: list[SkippedMember] = []
    start, stop = spec.bounds(len(pairs))

    def members() -> Iterator[tuple[int, Path, Transcript]]:
        for index in range(start, stop):
            video = pairs[index][0]
            transcript, failure = _select_transcript(video, min_words, use_denoised)
            if transcript is None:
                skipped.append(failure)
            else:
                yield index, video, transcript

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        probed = probed_in_order(members(), lambda member: str(member[1]), num_workers)
        for (index, video, transcript), probe, error in (progress or iter)(probed):
            if probe is None:
                skipped.append(SkippedMember(str(video), "unreadable_video", error))
                continue
            words = transcript.to_words()
            if transcript.words is not None or timing == "words":
                beyond = sum(1 for w in words if w.time > probe.duration)
            else:
                beyond = sum(1 for s in transcript.segments if s.start > probe.duration)
            if beyond:
                logger.info("%s: %d transcript entries start after the video ends (%.2f s)", video, beyond,
                            probe.duration)
            row: dict[str, Any] = {
                "video": _video_value(video.resolve(), embed_videos, output_dir),
                "video_id": video.relative_to(root).with_suffix("").as_posix(),
                "duration": probe.duration,
            }
            if timing == "words":
                row["words"] = words_to_rows(words)
            else:
                segments = transcript.segments if transcript.words is None else _words_as_segments(transcript)
                row["segments"] = segments_to_rows(segments)
            yield index, row

    features = transcript_features(timing, embed_videos=embed_videos)
    return _run_build(out, rows(), features, len(pairs), skipped, "transcript", timing, embed_videos, str(root),
                      f"no usable video/transcript pair under {root}", log_report)


def _run_build(out: CorpusOutput, rows: Iterator[tuple[int, dict[str, Any]]], features, num_members: int,
               skipped: list[SkippedMember], kind: str, timing: str | None, embed_videos: bool, source: str,
               nothing_usable: str, log_report: bool = True) -> CorpusBuildReport:
    """Writes this shard's rows (unless an earlier run did), records its report and, when every shard is done,
    merges them (:class:`~modeling_tvtsv2.data.corpus_output.CorpusOutput`); logs the report if `log_report`."""
    spec = out.spec
    done = out.begin()
    if done is None:
        try:
            num_rows = out.write_rows(rows, features, num_members)
        except BaseException:
            if spec.is_single:
                out.discard()
            raise
        for member in skipped if log_report else ():
            logger.warning("skipped %s (%s): %s", member.source, member.reason, member.detail)
        done = CorpusBuildReport(str(out.output_dir), kind, timing, num_rows, skipped, embed_videos,
                                 out.fmt, spec.to_json(), complete=False).to_json()
        out.finish_shard(done)
    elif not spec.is_single:
        logger.warning("%s of %s: already done by an earlier run", spec.name, out.output_dir)
    shard_report = _report_from_json(done)
    reports = out.shard_reports()
    if reports is None:
        logger.info("%s done; the corpus is merged when every shard is done", spec.name)
        return shard_report
    all_skipped = [SkippedMember(**member) for report in reports for member in report["skipped"]]
    if not sum(n for report in reports for n in report["num_rows"].values()):
        out.discard()
        raise ValueError(f"{nothing_usable} ({len(all_skipped)} skipped)")
    merged: dict[str, CorpusBuildReport] = {}

    def write_extras(folder: Path, num_rows: dict[str, int]) -> None:
        merged["report"] = CorpusBuildReport(str(out.output_dir), kind, timing, num_rows, all_skipped, embed_videos,
                                             out.fmt, {"index": 0, "count": spec.count})
        _write_card(folder, merged["report"], source)

    if out.merge(reports, write_extras) is None:
        logger.info("%s done; another worker merges the shards", spec.name)
        return shard_report
    if log_report:
        logger.info(merged["report"].summary())
    return merged["report"]


def _report_from_json(data: dict[str, Any]) -> CorpusBuildReport:
    fields = {key: data[key] for key in ("output_dir", "kind", "timing", "num_rows", "embed_videos", "format",
                                         "shard", "complete")}
    return CorpusBuildReport(skipped=[SkippedMember(**member) for member in data["skipped"]], **fields)


# --------------------------------------------------------------------------------------------------------------
# Caption corpora
# --------------------------------------------------------------------------------------------------------------


def _caption_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """``(where, record or None, problem)`` per row of a metadata file, read line by line (never whole, except a
    JSON list); ``where`` is ``file:line`` (or ``file:item N`` for a JSON list). Bad rows come back with a problem
    instead of stopping the read."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".json"):
        raise ValueError(f"unsupported metadata file {path} (expected .csv, .tsv, .jsonl or .json)")

    def record(where: str, value: Any) -> tuple[str, dict[str, Any] | None, str]:
        if isinstance(value, dict):
            return where, value, ""
        return where, None, f"a JSON {type(value).__name__}, not an object"

    with open_text_file(path, newline="" if suffix in (".csv", ".tsv") else "\n") as handle:  # BOMs, UTF-8, cp1252
        if suffix in (".csv", ".tsv"):
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            try:
                for row in reader:
                    yield f"{path.name}:{reader.line_num}", row, ""
            except csv.Error as error:
                yield f"{path.name}:{reader.line_num}", None, f"CSV error: {error}"
            return
        first = handle.read(1)
        while first.isspace():
            first = handle.read(1)
        handle.seek(0)
        if suffix == ".json" and first == "[":
            try:
                items = json.loads(handle.read().lstrip("\ufeff"))
            except (ValueError, RecursionError) as error:  # JSONDecodeError, 4300-digit integers, deep nesting
                raise ValueError(f"{path}: not a JSON list ({type(error).__name__}: {str(error)[:200]})") from None
            for number, item in enumerate(items, start=1):
                yield record(f"{path.name}:item {number}", item)
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip() or (number == 1 and not line.lstrip("\ufeff").strip()):
                continue
            try:
                yield record(f"{path.name}:{number}", json.loads(line.lstrip("\ufeff")))
            except (ValueError, RecursionError) as error:
                problem = f"not JSON ({type(error).__name__}: {str(error)[:120]})"
                yield f"{path.name}:{number}", None, problem


def read_caption_metadata(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a metadata file: ``.csv`` (comma), ``.tsv`` (tab), ``.jsonl`` (one object a line) or ``.json`` (a
    list of objects, or JSON lines). CSV/TSV files need a header line. Text is UTF-8 (a BOM is honoured) or, when it
    does not decode as UTF-8, cp1252. Rows that are not objects or not JSON are logged (file and line) and left out
    (:func:`build_caption_corpus` reports them)."""
    rows = []
    for where, record, problem in _caption_records(Path(path)):
        if record is None:
            logger.warning("%s: %s", where, problem)
        else:
            rows.append(record)
    return rows


def _caption_text(value: Any) -> str | None:
    """The caption as one line of text; ``None`` for a list, dict or other non-text value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _caption_entry(where: str, record: dict[str, Any], *, video_column: str, caption_column: str,
                   id_column: str | None, root: Path, video_suffix: str
                   ) -> tuple[tuple[Path, str, str] | None, SkippedMember | None]:
    """``((video path, video id, caption), None)`` for a usable metadata record, else ``(None, why not)``."""
    raw_value = record.get(video_column)
    if raw_value is not None and not isinstance(raw_value, str):
        return None, SkippedMember(where, "no_video_path", f"column {video_column!r} holds a "
                                   f"{type(raw_value).__name__}, not a path")
    raw_path = (raw_value or "").strip()
    caption = _caption_text(record.get(caption_column))
    if caption is None:
        kind = type(record.get(caption_column)).__name__
        return None, SkippedMember(where, "bad_caption", f"column {caption_column!r} holds a {kind}, not text")
    if not raw_path:
        return None, SkippedMember(where, "no_video_path", f"column {video_column!r} empty or missing")
    path = Path(raw_path)
    if video_suffix and not path.suffix:
        path = path.with_name(path.name + video_suffix)
    if not path.is_absolute():
        path = root / path
    if not caption:
        return None, SkippedMember(str(path), "empty_caption")
    try:
        found = path.is_file()
    except (OSError, ValueError) as error:  # e.g. a NUL byte in the path
        return None, SkippedMember(where, "no_video_path", f"{type(error).__name__}: {error}")
    if not found:
        return None, SkippedMember(str(path), "missing_video", "file not found")
    video_id = str(record.get(id_column) or "") if id_column else ""
    video_id = video_id or Path(raw_path).with_suffix("").as_posix()
    try:  # Arrow refuses lone surrogates (JSON "\ud83d") only at write time
        caption.encode("utf-8"), video_id.encode("utf-8")
    except UnicodeEncodeError as error:
        return None, SkippedMember(where, "bad_caption", f"not valid Unicode text ({error.reason})")
    return (path, video_id, caption), None


def build_caption_corpus(
    metadata: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    video_column: str = "video",
    caption_column: str = "caption",
    id_column: str | None = None,
    video_root: str | os.PathLike[str] | None = None,
    video_suffix: str = "",
    embed_videos: bool = False,
    validation_size: float | int = 0,
    num_workers: int = 1,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    output_format: str = "arrow",
    shard_index: int | None = None,
    num_shards: int | None = None,
    rows_per_file: int = 1000,
    use_launcher: bool = False,
    log_report: bool = True,
) -> CorpusBuildReport:
    """Build a caption corpus from a metadata file of video paths and captions.

    Args:
        metadata: ``.csv`` / ``.tsv`` / ``.jsonl`` / ``.json`` file (see :func:`read_caption_metadata`).
        output_dir: where the corpus and its card go.
        video_column, caption_column: column names of the video path and the caption.
        id_column: column with a video id (default: the video path without its suffix).
        video_root: folder relative video paths start from (default: the metadata file's folder).
        video_suffix: appended to paths that have no suffix (WebVid's metadata lists ids without ``.mp4``).
        embed_videos, validation_size, num_workers, seed, overwrite, progress, output_format, shard_index,
            num_shards, rows_per_file, use_launcher, log_report: as :func:`build_transcript_corpus`.
    """
    metadata = Path(metadata)
    output_dir = Path(output_dir)
    root = Path(video_root) if video_root is not None else metadata.parent
    spec = resolve_shard(shard_index, num_shards, use_launcher=use_launcher)
    embed_videos = embed_videos or output_format != "arrow"
    inputs: list[Any] = [metadata, FolderReadByName(video_root) if video_root is not None else None]
    check_output_folder(output_dir, overwrite=overwrite, inputs=inputs)
    num_records = sum(1 for _ in _caption_records(metadata))  # a first pass: the shards split the records
    settings = {"kind": "caption", "source": str(metadata.resolve()), "video_column": video_column,
                "caption_column": caption_column, "id_column": id_column, "video_root": str(root.resolve()),
                "video_suffix": video_suffix, "embed_videos": embed_videos, "num_members": num_records}
    out = CorpusOutput(output_dir, fmt=output_format, spec=spec, settings=settings, overwrite=overwrite,
                       inputs=inputs, validation_size=validation_size, seed=seed, rows_per_file=rows_per_file)
    skipped: list[SkippedMember] = []
    start, stop = spec.bounds(num_records)
    video_folders: set[str] = set()  # a path corpus's videos must survive a later --overwrite of the output

    def entries() -> Iterator[tuple[int, Path, str, str]]:
        for index, (where, record, problem) in enumerate(_caption_records(metadata)):
            if not start <= index < stop:
                continue
            if record is None:
                skipped.append(SkippedMember(where, "bad_row", problem))
                continue
            entry, failure = _caption_entry(where, record, video_column=video_column, caption_column=caption_column,
                                            id_column=id_column, root=root, video_suffix=video_suffix)
            if entry is None:
                skipped.append(failure)
            else:
                video_folders.add(str(entry[0].parent))
                yield index, *entry

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        probed = probed_in_order(entries(), lambda entry: str(entry[1]), num_workers)
        for (index, path, video_id, caption), probe, error in (progress or iter)(probed):
            if probe is None:
                skipped.append(SkippedMember(str(path), "unreadable_video", error))
                continue
            video = _video_value(path.resolve(), embed_videos, output_dir)
            yield index, {"video": video, "video_id": video_id, "caption": caption, "duration": probe.duration}
        out.inputs.extend(FolderReadByName(folder) for folder in sorted(video_folders))

    features = caption_features(embed_videos=embed_videos)
    return _run_build(out, rows(), features, num_records, skipped, "caption", None, embed_videos, str(metadata),
                      f"no usable row in {metadata}", log_report)


# --------------------------------------------------------------------------------------------------------------
# Command line: `processing/prepare_transcript_corpus.py`, `processing/prepare_caption_corpus.py`
# --------------------------------------------------------------------------------------------------------------


def _rows_or_fraction(text: str) -> float | int:
    """`--validation_size`: a fraction (< 1) or a number of rows."""
    number = float(text)
    return int(number) if number >= 1 else number


@dataclass
class _CorpusBuildArguments:
    """The settings every corpus builder script takes (keyword-only: listed after each script's own)."""

    validation_size: float = field(
        default=0,
        kw_only=True,
        metadata={
            "help": "fraction (<1) or number of rows held out as the 'validation' split",
            "type": _rows_or_fraction,
        },
    )
    num_workers: int = field(default=1, kw_only=True, metadata={"help": "processes probing videos"})
    format: str = field(default="arrow", kw_only=True, metadata={"choices": list(SHARD_FORMATS), "help": "arrow "
                        "(save_to_disk folder), or shard files with embedded videos that stream back with "
                        "load_dataset(..., streaming=True): parquet, webdataset (.tar: KEY.mp4 + KEY.json)"})
    rows_per_file: int = field(default=1000, kw_only=True, metadata={"help": "rows per parquet/webdataset file"})
    shard_index: int | None = field(
        default=None,
        kw_only=True,
        metadata={"help": "build only this shard (0-based) of --num_shards (e.g. $SLURM_ARRAY_TASK_ID); the last "
                  "shard to finish merges. torchrun / accelerate launch ranks split the work too"},
    )
    num_shards: int | None = field(default=None, kw_only=True, metadata={"help": "number of shards (with --shard_index)"})
    seed: int = field(default=0, kw_only=True, metadata={"help": "seed of the train/validation split"})
    overwrite: bool = field(
        default=False,
        kw_only=True,
        metadata={"help": "replace a non-empty output folder as a whole, once the new corpus is complete"},
    )

    def __post_init__(self):
        if self.validation_size >= 1:  # a number of rows (an argument file may give 100.0)
            self.validation_size = int(self.validation_size)


@dataclass
class TranscriptCorpusArguments(_CorpusBuildArguments):
    """`processing/prepare_transcript_corpus.py` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`,
    argument files)."""

    videos: str = field(metadata={"help": "folder of videos with transcripts (searched recursively)"})
    output: str = field(metadata={"help": "output folder (a DatasetDict, README.md, build_report.json)"})
    embed_videos: bool = field(
        default=False, metadata={"help": "embed video bytes (default: paths relative to the output; parquet and "
                                 "webdataset always embed)"}
    )
    timing: str = field(
        default="auto",
        metadata={
            "help": "transcript column: word-level 'words', cue-level 'segments', or auto",
            "choices": ["auto", "segments", "words"],
        },
    )
    min_words: int = field(default=1, metadata={"help": "skip transcripts with fewer words"})
    raw_asr_words: bool = field(
        default=False,
        metadata={"help": "YT-Temporal JSON: keep the raw ASR words instead of the 'denoised' text aligned to them"},
    )
    extensions: list[str] = field(
        default_factory=lambda: list(VIDEO_EXTENSIONS), metadata={"help": "video file suffixes"}
    )
    no_recursive: bool = field(default=False, metadata={"help": "only scan the top folder"})


@dataclass
class CaptionCorpusArguments(_CorpusBuildArguments):
    """`processing/prepare_caption_corpus.py` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`,
    argument files)."""

    metadata: str = field(metadata={"help": ".csv, .tsv (with a header line), .jsonl or .json file"})
    output: str = field(metadata={"help": "output folder (a DatasetDict, README.md, build_report.json)"})
    video_column: str = field(default="video", metadata={"help": "column of the video path"})
    caption_column: str = field(default="caption", metadata={"help": "column of the caption"})
    id_column: str | None = field(
        default=None, metadata={"help": "column of a video id (default: path without suffix)"}
    )
    video_root: str | None = field(default=None, metadata={"help": "folder relative paths start from"})
    video_suffix: str = field(default="", metadata={"help": "suffix added to paths without one (WebVid: .mp4)"})
    embed_videos: bool = field(
        default=False, metadata={"help": "embed video bytes (default: paths relative to the output; parquet and "
                                 "webdataset always embed)"}
    )


TRANSCRIPT_CORPUS_DESCRIPTION = (
    "Build a TVTSv2 transcript corpus (🤗 Dataset on disk) from a folder of videos with transcripts next to them."
)
CAPTION_CORPUS_DESCRIPTION = (
    "Build a TVTSv2 caption corpus (🤗 Dataset on disk, WebVid style) from a CSV / TSV / JSONL file of video "
    "paths and captions."
)


def transcript_corpus_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`processing/prepare_transcript_corpus.py ...`: returns the exit status (2 with one `error: ...` line for a
    user mistake or a corpus without a usable member)."""
    from ..tools.arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(
        TranscriptCorpusArguments, argv, prog=prog, description=TRANSCRIPT_CORPUS_DESCRIPTION
    )
    return _build_and_report(
        build_transcript_corpus,
        args.videos,
        args.output,
        embed_videos=args.embed_videos,
        timing=args.timing,
        validation_size=args.validation_size,
        min_words=args.min_words,
        video_extensions=args.extensions,
        recursive=not args.no_recursive,
        num_workers=args.num_workers,
        seed=args.seed,
        overwrite=args.overwrite,
        use_denoised=not args.raw_asr_words,
        **_output_options(args),
    )


def caption_corpus_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`processing/prepare_caption_corpus.py ...`: returns the exit status (2 with one `error: ...` line for a
    user mistake or a corpus without a usable member)."""
    from ..tools.arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(CaptionCorpusArguments, argv, prog=prog, description=CAPTION_CORPUS_DESCRIPTION)
    return _build_and_report(
        build_caption_corpus,
        args.metadata,
        args.output,
        video_column=args.video_column,
        caption_column=args.caption_column,
        id_column=args.id_column,
        video_root=args.video_root,
        video_suffix=args.video_suffix,
        embed_videos=args.embed_videos,
        validation_size=args.validation_size,
        num_workers=args.num_workers,
        seed=args.seed,
        overwrite=args.overwrite,
        **_output_options(args),
    )


def _output_options(args: _CorpusBuildArguments) -> dict[str, Any]:
    return {"output_format": args.format, "rows_per_file": args.rows_per_file, "shard_index": args.shard_index,
            "num_shards": args.num_shards, "use_launcher": True}


def _build_and_report(build: Callable[..., CorpusBuildReport], *args: Any, **kwargs: Any) -> int:
    import logging as std_logging
    import sys

    from tqdm.auto import tqdm

    set_package_log_level(std_logging.INFO)  # progress through transformers' handler
    try:
        progress = lambda items: tqdm(items, desc="probing videos", unit="video")  # noqa: E731
        report = build(*args, progress=progress, log_report=False, **kwargs)  # printed below, once
    except (OSError, ValueError) as error:  # bad --output/--videos/--metadata, or no usable row at all
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    for member in report.skipped:
        print(f"  skipped {member.source}: {member.reason} {member.detail}".rstrip())
    return 0
