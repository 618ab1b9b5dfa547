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
skipped, never fatal. The output folder holds a ``DatasetDict`` (``train`` and,
with ``validation_size``, ``validation``) with the schemas of :mod:`modeling_tvtsv2.data`, a short dataset card
``README.md`` and ``build_report.json`` (every skipped member and why). Load it with
:func:`modeling_tvtsv2.data.schema.load_corpus`.

Videos are either embedded in the dataset (``embed_videos=True``: a ``Video(decode=False)`` column, portable,
larger) or referenced by absolute path (a ``string`` column; the files must stay where they are).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers.utils import logging

from ..tools.output_folders import check_output_folder, staged_output_folder
from ..tools.package_logging import set_package_log_level
from ..video_decoding_tvtsv2 import VideoProbe, VideoProbeError, probe_video
from .schema import VIDEO_EXTENSIONS, caption_features, transcript_features
from .subtitles import (
    SUBTITLE_SUFFIXES,
    Segment,
    SubtitleParseError,
    Transcript,
    decode_subtitle_bytes,
    load_transcript,
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

    @property
    def skipped_counts(self) -> dict[str, int]:
        return dict(Counter(member.reason for member in self.skipped))

    def summary(self) -> str:
        rows = ", ".join(f"{split}: {n}" for split, n in self.num_rows.items())
        skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped_counts.items())) or "none"
        return f"{self.kind} corpus at {self.output_dir} ({rows} rows); skipped {len(self.skipped)} ({skipped})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped_counts"] = self.skipped_counts
        return data


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------


def _probe_one(path: str) -> tuple[str, VideoProbe | None, str]:
    try:
        return path, probe_video(path), ""
    except VideoProbeError as error:
        return path, None, str(error)
    except Exception as error:  # noqa: BLE001 - one bad file must not stop a build
        return path, None, f"{type(error).__name__}: {error}"


def _probe_all(
    paths: Sequence[str], num_workers: int, progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None
) -> dict[str, tuple[VideoProbe | None, str]]:
    wrap = progress if progress is not None else (lambda iterable: iterable)
    if num_workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            results = list(wrap(pool.map(_probe_one, paths, chunksize=8)))
    else:
        results = [_probe_one(path) for path in wrap(paths)]
    return {path: (probe, error) for path, probe, error in results}


def _video_value(path: Path, embed_videos: bool) -> Any:
    # With a Video column, save_to_disk reads the file and embeds its bytes (the path becomes the file name).
    return {"bytes": None, "path": str(path)} if embed_videos else str(path)


def _save(
    rows: list[dict[str, Any]],
    features,
    output_dir: Path,
    *,
    validation_size: float | int,
    seed: int,
) -> dict[str, int]:
    from datasets import Dataset, DatasetDict

    dataset = Dataset.from_list(rows, features=features)
    if validation_size and len(dataset) > 1:
        split = dataset.train_test_split(test_size=validation_size, seed=seed, shuffle=True)
        splits = DatasetDict({"train": split["train"], "validation": split["test"]})
    else:
        splits = DatasetDict({"train": dataset})
    splits.save_to_disk(str(output_dir))
    return {name: len(split) for name, split in splits.items()}


def _write_card(output_dir: Path, report: CorpusBuildReport, source: str) -> None:
    """A short dataset card (``README.md``) and the full report (``build_report.json``)."""
    video = "`Video(decode=False)` (embedded bytes)" if report.embed_videos else "`string` (absolute path)"
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
Load with `modeling_tvtsv2.data.schema.load_corpus(path, split="train")` (or `datasets.load_from_disk(path)`).

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
) -> CorpusBuildReport:
    """Build a transcript corpus from a folder of videos with ``.json`` / ``.vtt`` / ``.srt`` transcripts.

    Args:
        videos_dir: folder to scan (recursively by default).
        output_dir: where the ``DatasetDict`` and its card go.
        embed_videos: embed the video bytes (``Video(decode=False)``) instead of keeping absolute paths.
        timing: ``"words"`` (word-level column), ``"segments"`` (cue-level column) or ``"auto"``: words when any
            transcript has word timings (YT-Temporal JSON, YouTube auto-captions), else segments. Cue-only
            transcripts in a words corpus are spread over their cues; word-only ones in a segments corpus become
            one-word segments.
        validation_size: fraction (< 1) or number of rows for a ``validation`` split (0: ``train`` only).
        min_words: transcripts with fewer words are skipped.
        video_extensions, recursive: which files are videos.
        num_workers: processes for probing videos.
        seed: seed of the train/validation split.
        overwrite: replace a non-empty ``output_dir``.
        progress: optional wrapper of the video-probing loop for progress display (e.g. ``tqdm.tqdm``).
        log_report: log the skipped pairs (warnings) and the summary (info); the command-line scripts print the
            report themselves and pass ``False`` (each line once).
        use_denoised: YT-Temporal JSON with a ``denoised`` text: store its words, aligned to the ASR timings as the
            original did (a few seconds per 10-minute transcript); ``False`` keeps the raw ASR words.

    Returns:
        A :class:`CorpusBuildReport`; skipped members are also logged.
    """
    output_dir = Path(output_dir)
    root = Path(videos_dir)
    check_output_folder(output_dir, overwrite=overwrite, inputs=[root])
    skipped: list[SkippedMember] = []
    parsed: list[tuple[Path, str, Transcript]] = []

    for video, first_candidate in find_transcript_pairs(root, video_extensions=video_extensions, recursive=recursive):
        if first_candidate is None:
            skipped.append(SkippedMember(str(video), "no_transcript", "no .json/.vtt/.srt with the same stem"))
            continue
        # Try the candidates in order: e.g. a youtube-dl "<stem>.info.json" is not a transcript, "<stem>.en.vtt" is.
        transcript, failure = None, None
        for candidate in _transcript_candidates(video):
            try:
                parsed_candidate = load_transcript(candidate, use_denoised=use_denoised)
                _check_storable(parsed_candidate)
            except (SubtitleParseError, OSError, UnicodeError) as error:
                failure = failure or SkippedMember(str(candidate), "unparsable_transcript", str(error))
                continue
            except Exception as error:  # noqa: BLE001 - one hostile file must not stop a build
                detail = f"{type(error).__name__}: {str(error)[:200]}"
                failure = failure or SkippedMember(str(candidate), "unparsable_transcript", detail)
                continue
            if len(parsed_candidate) < min_words:
                failure = failure or SkippedMember(str(candidate), "no_words", f"{len(parsed_candidate)} words")
                continue
            transcript = parsed_candidate
            break
        if transcript is None:
            assert failure is not None
            skipped.append(failure)
            continue
        video_id = video.relative_to(root).with_suffix("").as_posix()
        parsed.append((video, video_id, transcript))

    probes = _probe_all([str(video) for video, _, _ in parsed], num_workers, progress)
    if timing == "auto":
        timing = "words" if any(t.has_word_timings for _, _, t in parsed) else "segments"
    if timing not in ("segments", "words"):
        raise ValueError(f"timing must be 'auto', 'segments' or 'words', got {timing!r}")

    rows: list[dict[str, Any]] = []
    for video, video_id, transcript in parsed:
        probe, error = probes[str(video)]
        if probe is None:
            skipped.append(SkippedMember(str(video), "unreadable_video", error))
            continue
        words = transcript.to_words()
        if transcript.words is not None or timing == "words":
            beyond = sum(1 for w in words if w.time > probe.duration)
        else:
            beyond = sum(1 for s in transcript.segments if s.start > probe.duration)
        if beyond:
            logger.info("%s: %d transcript entries start after the video ends (%.2f s)", video, beyond, probe.duration)
        row: dict[str, Any] = {
            "video": _video_value(video.resolve(), embed_videos),
            "video_id": video_id,
            "duration": probe.duration,
        }
        if timing == "words":
            row["words"] = words_to_rows(words)
        else:
            segments = transcript.segments if transcript.words is None else _words_as_segments(transcript)
            row["segments"] = segments_to_rows(segments)
        rows.append(row)

    for member in skipped if log_report else ():
        logger.warning("skipped %s (%s): %s", member.source, member.reason, member.detail)
    if not rows:
        raise ValueError(f"no usable video/transcript pair under {root} ({len(skipped)} skipped)")
    # Built beside the output and moved into place when complete: a failed build leaves an old corpus as it was.
    with staged_output_folder(output_dir, overwrite=overwrite, inputs=[root]) as staging:
        num_rows = _save(rows, transcript_features(timing, embed_videos=embed_videos), staging,
                         validation_size=validation_size, seed=seed)
        report = CorpusBuildReport(str(output_dir), "transcript", timing, num_rows, skipped, embed_videos)
        _write_card(staging, report, str(root))
    if log_report:
        logger.info(report.summary())
    return report


# --------------------------------------------------------------------------------------------------------------
# Caption corpora
# --------------------------------------------------------------------------------------------------------------


def _caption_records(path: Path) -> list[tuple[str, dict[str, Any] | None, str]]:
    """``(where, record or None, problem)`` per row of a metadata file; ``where`` is ``file:line`` (or
    ``file:item N`` for a JSON list). Bad rows come back with a problem instead of stopping the read."""
    text = decode_subtitle_bytes(path.read_bytes())  # BOMs, UTF-8, else cp1252 (never fails)
    suffix = path.suffix.lower()
    records: list[tuple[str, dict[str, Any] | None, str]] = []

    def add(where: str, value: Any) -> None:
        if isinstance(value, dict):
            records.append((where, value, ""))
        else:
            records.append((where, None, f"a JSON {type(value).__name__}, not an object"))

    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            for record in reader:
                records.append((f"{path.name}:{reader.line_num}", record, ""))
        except csv.Error as error:
            records.append((f"{path.name}:{reader.line_num}", None, f"CSV error: {error}"))
        return records
    if suffix in (".jsonl", ".json"):
        stripped = text.strip()
        if suffix == ".json" and stripped.startswith("["):
            try:
                items = json.loads(stripped)
            except (ValueError, RecursionError) as error:  # JSONDecodeError, 4300-digit integers, deep nesting
                raise ValueError(f"{path}: not a JSON list ({type(error).__name__}: {str(error)[:200]})") from None
            for number, item in enumerate(items, start=1):
                add(f"{path.name}:item {number}", item)
            return records
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                add(f"{path.name}:{number}", json.loads(line))
            except (ValueError, RecursionError) as error:
                problem = f"not JSON ({type(error).__name__}: {str(error)[:120]})"
                records.append((f"{path.name}:{number}", None, problem))
        return records
    raise ValueError(f"unsupported metadata file {path} (expected .csv, .tsv, .jsonl or .json)")


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
    log_report: bool = True,
) -> CorpusBuildReport:
    """Build a caption corpus from a metadata file of video paths and captions.

    Args:
        metadata: ``.csv`` / ``.tsv`` / ``.jsonl`` / ``.json`` file (see :func:`read_caption_metadata`).
        output_dir: where the ``DatasetDict`` and its card go.
        video_column, caption_column: column names of the video path and the caption.
        id_column: column with a video id (default: the video path without its suffix).
        video_root: folder relative video paths start from (default: the metadata file's folder).
        video_suffix: appended to paths that have no suffix (WebVid's metadata lists ids without ``.mp4``).
        embed_videos, validation_size, num_workers, seed, overwrite, progress, log_report: as
            :func:`build_transcript_corpus`.
    """
    metadata = Path(metadata)
    output_dir = Path(output_dir)
    root = Path(video_root) if video_root is not None else metadata.parent
    inputs = [metadata, video_root]
    check_output_folder(output_dir, overwrite=overwrite, inputs=inputs)
    skipped: list[SkippedMember] = []
    entries: list[tuple[Path, str, str]] = []
    for where, record, problem in _caption_records(metadata):
        if record is None:
            skipped.append(SkippedMember(where, "bad_row", problem))
            continue
        raw_value = record.get(video_column)
        if raw_value is not None and not isinstance(raw_value, str):
            skipped.append(SkippedMember(where, "no_video_path", f"column {video_column!r} holds a "
                                         f"{type(raw_value).__name__}, not a path"))
            continue
        raw_path = (raw_value or "").strip()
        caption = _caption_text(record.get(caption_column))
        if caption is None:
            kind = type(record.get(caption_column)).__name__
            skipped.append(SkippedMember(where, "bad_caption", f"column {caption_column!r} holds a {kind}, not text"))
            continue
        if not raw_path:
            skipped.append(SkippedMember(where, "no_video_path", f"column {video_column!r} empty or missing"))
            continue
        path = Path(raw_path)
        if video_suffix and not path.suffix:
            path = path.with_name(path.name + video_suffix)
        if not path.is_absolute():
            path = root / path
        if not caption:
            skipped.append(SkippedMember(str(path), "empty_caption"))
            continue
        try:
            found = path.is_file()
        except (OSError, ValueError) as error:  # e.g. a NUL byte in the path
            skipped.append(SkippedMember(where, "no_video_path", f"{type(error).__name__}: {error}"))
            continue
        if not found:
            skipped.append(SkippedMember(str(path), "missing_video", "file not found"))
            continue
        video_id = str(record.get(id_column) or "") if id_column else ""
        video_id = video_id or Path(raw_path).with_suffix("").as_posix()
        try:  # Arrow refuses lone surrogates (JSON "\ud83d") only at save time, after every video was probed
            caption.encode("utf-8"), video_id.encode("utf-8")
        except UnicodeEncodeError as error:
            skipped.append(SkippedMember(where, "bad_caption", f"not valid Unicode text ({error.reason})"))
            continue
        entries.append((path, video_id, caption))

    probes = _probe_all(sorted({str(p) for p, _, _ in entries}), num_workers, progress)
    rows = []
    for path, video_id, caption in entries:
        probe, error = probes[str(path)]
        if probe is None:
            skipped.append(SkippedMember(str(path), "unreadable_video", error))
            continue
        rows.append(
            {
                "video": _video_value(path.resolve(), embed_videos),
                "video_id": video_id,
                "caption": caption,
                "duration": probe.duration,
            }
        )
    for member in skipped if log_report else ():
        logger.warning("skipped %s (%s): %s", member.source, member.reason, member.detail)
    if not rows:
        raise ValueError(f"no usable row in {metadata} ({len(skipped)} skipped)")
    # The videos a path corpus refers to must survive a later --overwrite of this folder.
    inputs += [path for path, _, _ in entries]
    with staged_output_folder(output_dir, overwrite=overwrite, inputs=inputs) as staging:
        num_rows = _save(rows, caption_features(embed_videos=embed_videos), staging,
                         validation_size=validation_size, seed=seed)
        report = CorpusBuildReport(str(output_dir), "caption", None, num_rows, skipped, embed_videos)
        _write_card(staging, report, str(metadata))
    if log_report:
        logger.info(report.summary())
    return report


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
        default=False, metadata={"help": "embed video bytes (default: keep absolute paths)"}
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
        default=False, metadata={"help": "embed video bytes (default: keep absolute paths)"}
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
    )


def _build_and_report(build: Callable[..., CorpusBuildReport], *args: Any, **kwargs: Any) -> int:
    import logging as std_logging
    import sys

    from tqdm.auto import tqdm

    set_package_log_level(std_logging.INFO)  # progress through transformers' handler
    try:
        report = build(
            *args, progress=lambda items: tqdm(items, desc="probing videos", unit="video"), log_report=False, **kwargs
        )  # printed below, once
    except (OSError, ValueError) as error:  # bad --output/--videos/--metadata, or no usable row at all
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    for member in report.skipped:
        print(f"  skipped {member.source}: {member.reason} {member.detail}".rstrip())
    return 0
