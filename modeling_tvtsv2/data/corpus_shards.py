"""Corpora as shards that travel: Parquet / WebDataset shard writers, and WebDataset shards made elsewhere read as
corpus rows.

Two formats besides ``save_to_disk``'s Arrow folder, both with the videos *embedded*, both streamable with
``datasets.load_dataset(FOLDER, streaming=True)`` (and uploadable to the Hub as they are):

* ``parquet``: ``FOLDER/<split>/<prefix>-<part>.parquet``, the corpus schema of :mod:`modeling_tvtsv2.data.schema`
  with ``video`` a ``Video(decode=False)`` column (``{"bytes", "path"}``, the file's bytes); small row groups
  (``rows_per_row_group``), so a stream holds a few videos at a time.
* ``webdataset``: ``FOLDER/<split>/<prefix>-<part>.tar``, the layout video2dataset writes: per row ``KEY.mp4``
  (the video's bytes, under its own suffix), ``KEY.json`` (``video_id``, ``duration`` and ``caption`` or
  ``segments`` / ``words``) and, for captions, ``KEY.txt``.

Writers take rows as they are made (one at a time) and hold at most one row group (Parquet) or one row
(WebDataset) in memory. :func:`webdataset_to_corpus` maps what 🤗 Datasets' ``webdataset`` builder yields for such
tars, also tars made by other tools (``__key__``, ``mp4``/``webm``/..., ``json``, ``txt``, ``srt``/``vtt``), to
the corpus row schema.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .subtitles import SubtitleParseError, decode_subtitle_bytes, parse_subtitles, segments_to_rows, words_to_rows

__all__ = [
    "SHARD_FORMATS",
    "ParquetShardWriter",
    "WebDatasetShardWriter",
    "is_webdataset_layout",
    "open_shard_writer",
    "webdataset_to_corpus",
]

#: Output formats of the corpus tools: ``arrow`` is ``save_to_disk``'s folder, the others are shard files.
SHARD_FORMATS = ("arrow", "parquet", "webdataset")
_VIDEO_KEYS = ("mp4", "webm", "mkv", "mov", "avi", "m4v", "ts", "mpg", "mpeg", "flv", "ogv")


def _video_cell(value: Any) -> tuple[bytes, str]:
    """``(bytes, file name)`` of a row's video: a path to read, or a ``{"bytes", "path"}`` cell."""
    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return bytes(data), os.path.basename(path or "video.mp4")
        value = path
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value).read_bytes(), os.path.basename(os.fspath(value))
    raise ValueError(f"row has no video to embed (got {type(value).__name__})")


class _RollingWriter:
    """Files ``<prefix>-<part:05d><suffix>`` in ``folder``, a new one every ``rows_per_file`` rows; each is written
    under a temporary name and renamed when closed (a file that exists is complete)."""

    suffix = ""

    def __init__(self, folder: str | os.PathLike[str], prefix: str, rows_per_file: int = 1000):
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
        self.folder, self.prefix, self.rows_per_file = Path(folder), prefix, rows_per_file
        self.files: list[Path] = []
        self.num_rows = 0
        self._rows_in_file = 0
        self._temporary: Path | None = None

    def _next_path(self) -> tuple[Path, Path]:
        final = self.folder / f"{self.prefix}-{len(self.files):05d}{self.suffix}"
        return final, final.with_name(f".{final.name}.tmp-{os.getpid()}")

    def write(self, row: Mapping[str, Any]) -> None:
        if self._temporary is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            final, self._temporary = self._next_path()
            self.files.append(final)
            self._open(self._temporary)
        self._write(row)
        self.num_rows += 1
        self._rows_in_file += 1
        if self._rows_in_file >= self.rows_per_file:
            self._finish_file()

    def _finish_file(self) -> None:
        if self._temporary is not None:
            self._close()
            os.replace(self._temporary, self.files[-1])
            self._temporary, self._rows_in_file = None, 0

    def close(self) -> list[Path]:
        """Finishes the last file; returns every file written."""
        self._finish_file()
        return list(self.files)

    def abort(self) -> None:
        if self._temporary is not None:
            try:
                self._close()
            finally:
                self._temporary.unlink(missing_ok=True)
                self._temporary = None
                self.files.pop()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, path: Path) -> None:
        raise NotImplementedError

    def _write(self, row: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class ParquetShardWriter(_RollingWriter):
    """Parquet shard files of corpus rows with embedded videos (see the module docstring).

    Args:
        folder, prefix, rows_per_file: where the files go and how they are named / cut.
        features: the corpus features (:func:`~modeling_tvtsv2.data.schema.transcript_features` /
            ``caption_features`` with ``embed_videos=True``); stored in the files' schema, so ``load_dataset``
            gives back the same features (``video`` a ``Video(decode=False)`` column).
        rows_per_row_group: rows buffered before a row group is written (the memory held while writing and while
            streaming back).
    """

    suffix = ".parquet"

    def __init__(self, folder, prefix: str, features, rows_per_file: int = 1000, rows_per_row_group: int = 16):
        super().__init__(folder, prefix, rows_per_file)
        self.features = features
        self.rows_per_row_group = max(1, rows_per_row_group)
        self._buffer: list[dict[str, Any]] = []
        self._writer = None

    def _open(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(str(path), self.features.arrow_schema)

    def _write(self, row: Mapping[str, Any]) -> None:
        data, name = _video_cell(row["video"])
        self._buffer.append({**row, "video": {"bytes": data, "path": name}})
        if len(self._buffer) >= self.rows_per_row_group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._buffer:
            encoded = [self.features.encode_example(row) for row in self._buffer]
            self._writer.write_table(pa.Table.from_pylist(encoded, schema=self.features.arrow_schema))
            self._buffer = []

    def _close(self) -> None:
        try:
            self._flush()
        finally:
            self._writer.close()
            self._writer, self._buffer = None, []


class WebDatasetShardWriter(_RollingWriter):
    """WebDataset tar shards of corpus rows: ``KEY.<video suffix>`` + ``KEY.json`` (+ ``KEY.txt`` for a caption).

    Keys are ``<prefix>-<row number in this writer>`` (no dots: WebDataset splits a member name at its first dot);
    the row's ``video_id`` is in the JSON.
    """

    suffix = ".tar"

    def __init__(self, folder, prefix: str, rows_per_file: int = 1000):
        super().__init__(folder, prefix, rows_per_file)
        if "." in prefix:
            raise ValueError(f"a WebDataset key prefix cannot contain '.', got {prefix!r}")
        self._tar: tarfile.TarFile | None = None

    def _open(self, path: Path) -> None:
        self._tar = tarfile.open(path, mode="w", format=tarfile.USTAR_FORMAT)

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        self._tar.addfile(info, io.BytesIO(data))

    def _write(self, row: Mapping[str, Any]) -> None:
        key = f"{self.prefix}-{self.num_rows:08d}"
        data, name = _video_cell(row["video"])
        suffix = Path(name).suffix.lower().lstrip(".")
        self._member(f"{key}.{suffix if suffix in _VIDEO_KEYS else 'mp4'}", data)
        metadata = {name: value for name, value in row.items() if name != "video"}
        self._member(f"{key}.json", json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
        if isinstance(row.get("caption"), str):
            self._member(f"{key}.txt", row["caption"].encode("utf-8"))

    def _close(self) -> None:
        self._tar.close()
        self._tar = None


def open_shard_writer(fmt: str, folder, prefix: str, features, rows_per_file: int = 1000) -> _RollingWriter:
    """A writer of shard format ``fmt`` (``"parquet"`` or ``"webdataset"``)."""
    if fmt == "parquet":
        return ParquetShardWriter(folder, prefix, features, rows_per_file)
    if fmt == "webdataset":
        return WebDatasetShardWriter(folder, prefix, rows_per_file)
    raise ValueError(f"unknown shard format {fmt!r}; expected parquet or webdataset")


# --------------------------------------------------------------------------------------------------------------
# Reading WebDataset shards
# --------------------------------------------------------------------------------------------------------------


def _columns(dataset: Any) -> list[str]:
    features = getattr(dataset, "features", None)
    if features is not None:
        return list(features)
    return list(getattr(dataset, "column_names", None) or [])


def is_webdataset_layout(dataset: Any) -> bool:
    """True for what the ``webdataset`` builder yields (a ``__key__`` column and a video member column)."""
    columns = _columns(dataset)
    return "__key__" in columns and any(key in columns for key in _VIDEO_KEYS)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return decode_subtitle_bytes(bytes(value))
    return str(value)


def _metadata(example: Mapping[str, Any]) -> dict[str, Any]:
    value = example.get("json")
    if isinstance(value, (bytes, bytearray, str)):
        try:
            value = json.loads(_text(value))
        except ValueError:
            value = None
    return dict(value) if isinstance(value, Mapping) else {}


def _duration(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if math.isfinite(number) and number > 0 else float("nan")  # NaN: probed when used


class _WebDatasetRow:
    """One WebDataset example -> one corpus row of ``kind``/``timing`` (picklable, for ``map`` and workers)."""

    def __init__(self, video_key: str, kind: str, timing: str | None):
        self.video_key, self.kind, self.timing = video_key, kind, timing

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        metadata = _metadata(example)
        key = str(example.get("__key__") or "")
        cell = example.get(self.video_key)
        data = cell.get("bytes") if isinstance(cell, Mapping) else cell
        row: dict[str, Any] = {
            "video": {"bytes": bytes(data) if data else None, "path": f"{os.path.basename(key)}.{self.video_key}"},
            "video_id": str(metadata.get("video_id") or metadata.get("key") or key),
            "duration": _duration(metadata.get("duration")),
        }
        if self.kind == "caption":
            caption = metadata.get("caption")
            row["caption"] = " ".join((caption if isinstance(caption, str) else _text(example.get("txt"))).split())
            return row
        words, segments = _transcript(example, metadata)
        if self.timing == "words":
            row["words"] = words if words is not None else [
                {"word": w, "time": s["start"]} for s in segments for w in s["text"].split()
            ]
        else:
            row["segments"] = segments if segments else [
                {"start": w["time"], "end": w["time"], "text": w["word"]} for w in words or []
            ]
        return row


def _transcript(example: Mapping[str, Any], metadata: Mapping[str, Any]):
    """``(words, segments)`` rows of an example: from its JSON, else from its ``.srt`` / ``.vtt`` member."""
    words = metadata.get("words")
    segments = metadata.get("segments")
    if words is not None or segments is not None:
        return (list(words) if words is not None else None), list(segments or [])
    for fmt in ("srt", "vtt"):
        if example.get(fmt) is not None:
            try:
                transcript = parse_subtitles(_text(example[fmt]), fmt)
            except SubtitleParseError:
                return None, []  # an empty transcript: the collator skips the row and counts it
            words = words_to_rows(transcript.words) if transcript.words is not None else None
            return words, segments_to_rows(transcript.segments)
    return None, []


def _first_example(dataset: Any) -> Mapping[str, Any]:
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        return dataset[0] if len(dataset) else {}
    return next(iter(dataset), {})


def webdataset_to_corpus(dataset: Any, corpus_features: Callable[[str, str | None], Any]) -> Any:
    """A ``Dataset`` / ``IterableDataset`` loaded by the ``webdataset`` builder, as corpus rows (module docstring).

    The corpus kind comes from the first example: ``segments``/``words`` in its JSON or an ``.srt``/``.vtt``
    member make a transcript corpus (word-level when it has word timings), otherwise a caption corpus (``caption``
    in the JSON, else the ``.txt`` member). A map-style dataset is mapped once (cached by 🤗 Datasets); an
    iterable one lazily. ``corpus_features(kind, timing)`` gives the target features (the schema's; passed in, as
    :mod:`modeling_tvtsv2.data.schema` builds on this module).
    """
    columns = _columns(dataset)
    video_key = next(key for key in _VIDEO_KEYS if key in columns)
    features = getattr(dataset, "features", None)
    if features is not None and hasattr(features[video_key], "decode"):
        from datasets import Video

        dataset = dataset.cast_column(video_key, Video(decode=False))  # PyAV decodes, not datasets
    first = _first_example(dataset)
    metadata = _metadata(first)
    words, segments = _transcript(first, metadata)
    if "words" in metadata or "segments" in metadata or "srt" in columns or "vtt" in columns:
        kind, timing = "transcript", "words" if words is not None else "segments"
    else:
        kind, timing = "caption", None
    target = corpus_features(kind, timing)
    convert = _WebDatasetRow(video_key, kind, timing)
    return dataset.map(convert, remove_columns=columns, features=target)
