"""The corpus format: columns, 🤗 Datasets features, loading a saved corpus, and what a ``video`` cell points to.

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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, Features, List, Value, Video

from ..video_decoding_tvtsv2 import VIDEO_EXTENSIONS  # the suffixes a folder scan picks up (one list, for all)
from ..video_sources_tvtsv2 import is_video_url

__all__ = [
    "CAPTION_FEATURES",
    "CAPTION_PATH_FEATURES",
    "SEGMENTS_FEATURE",
    "TRANSCRIPT_SEGMENTS_FEATURES",
    "TRANSCRIPT_SEGMENTS_PATH_FEATURES",
    "TRANSCRIPT_WORDS_FEATURES",
    "TRANSCRIPT_WORDS_PATH_FEATURES",
    "VIDEO_EXTENSIONS",
    "WORDS_FEATURE",
    "as_corpus",
    "caption_features",
    "corpus_kind",
    "corpus_root",
    "is_saved_dataset",
    "load_corpus",
    "relative_video_path",
    "undecoded_videos",
    "video_source",
]

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


def load_corpus(path: str | os.PathLike[str], split: str = "train", *, streaming: bool = False) -> Any:
    """Load a corpus folder: one saved with ``save_to_disk`` (by :mod:`modeling_tvtsv2.data.corpus_builders` or the
    demo builder), or a folder of shards (``<split>/*.parquet`` or WebDataset ``<split>/*.tar``, made by the corpus
    tools or elsewhere) read with ``datasets.load_dataset`` (``streaming=True``: an ``IterableDataset``).

    Accepts a saved ``DatasetDict`` (returns ``split``) or a saved ``Dataset`` (returned as is, ``split`` ignored).
    The result is in the corpus row schema (:func:`as_corpus`): WebDataset members mapped to columns, relative video
    paths resolved against the corpus folder.
    """
    from datasets import DatasetDict, IterableDatasetDict, load_dataset, load_from_disk

    if is_saved_dataset(path):
        loaded = load_from_disk(str(path))
    else:
        loaded = load_dataset(str(path), streaming=streaming)
    if isinstance(loaded, (DatasetDict, IterableDatasetDict)):
        if split not in loaded:
            raise KeyError(f"{path} has splits {sorted(loaded)}, not {split!r}")
        loaded = loaded[split]
    return as_corpus(loaded, path)


def corpus_root(path: str | os.PathLike[str]) -> Path:
    """The folder that a saved corpus's relative video paths start from: the corpus folder (the one holding
    ``dataset_dict.json``), also when ``path`` is one of its split folders."""
    path = Path(path).absolute()
    if not (path / "dataset_dict.json").is_file() and (path.parent / "dataset_dict.json").is_file():
        return path.parent
    return path


def relative_video_path(video: str | os.PathLike[str], corpus_folder: str | os.PathLike[str]) -> str:
    """How a corpus at ``corpus_folder`` stores the path of ``video``: relative to the corpus folder (POSIX
    separators), so that the corpus keeps working when the folder and its videos move together."""
    relative = os.path.relpath(Path(video).absolute(), Path(corpus_folder).absolute())
    return Path(relative).as_posix()


class _ResolveVideoPaths:
    """Batch transform: relative ``video`` paths -> absolute ones under ``root`` (picklable for DataLoader workers)."""

    def __init__(self, root: str, column: str = "video"):
        self.root, self.column = root, column

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value and not os.path.isabs(value) and "://" not in value:
            return os.path.normpath(os.path.join(self.root, value))
        return value

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if self.column in batch:
            batch[self.column] = [self.resolve(value) for value in batch[self.column]]
        return batch

    def row(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, self.column: self.resolve(row.get(self.column))} if self.column in row else row


def as_corpus(dataset: Any, folder: str | os.PathLike[str] | None = None) -> Any:
    """``dataset`` (a ``Dataset`` or ``IterableDataset``) in the corpus row schema.

    * WebDataset shards (``__key__`` + ``mp4``/``json``/``txt``/``srt`` columns, e.g. made by video2dataset) are
      mapped to ``video`` / ``video_id`` / ``duration`` / ``caption`` or ``segments``/``words``
      (:func:`modeling_tvtsv2.data.corpus_shards.webdataset_to_corpus`);
    * a string ``video`` column's relative paths are resolved against the corpus folder ``folder`` (see
      :func:`corpus_root`), lazily: a ``Dataset`` gets an on-access transform (nothing is rewritten, the folder
      may be read-only), an ``IterableDataset`` a lazy ``map``;
    * ``datasets.Video`` columns are read undecoded (:func:`undecoded_videos`).
    """
    from .corpus_shards import is_webdataset_layout, webdataset_to_corpus

    if is_webdataset_layout(dataset):
        return webdataset_to_corpus(
            dataset, lambda kind, timing: caption_features() if kind == "caption" else transcript_features(timing)
        )
    dataset = undecoded_videos(dataset)
    features = getattr(dataset, "features", None)
    if folder is None or features is None or features.get("video") != Value("string"):
        return dataset
    resolver = _ResolveVideoPaths(str(corpus_root(folder)))
    if isinstance(dataset, Dataset):
        return dataset.with_transform(resolver)
    return dataset.map(resolver.row, features=features)  # same columns and types


def is_saved_dataset(folder: str | os.PathLike[str]) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``: the files
    ``datasets.load_from_disk`` looks for (``dataset_info.json`` + ``state.json``, or ``dataset_dict.json``)."""
    folder = Path(folder)
    if (folder / "dataset_dict.json").is_file():
        return True
    return (folder / "dataset_info.json").is_file() and (folder / "state.json").is_file()


def undecoded_videos(dataset: Any, video_column: str | None = "video") -> Any:
    """``dataset`` with its ``datasets.Video`` column (every one when ``video_column`` is ``None``) read as
    ``{"bytes", "path"}`` cells: datasets' own video decoding needs torchcodec, PyAV decodes them here instead."""
    features = getattr(dataset, "features", None)
    if features is None:
        return dataset
    for column in [video_column] if video_column else list(features):
        feature = features.get(column)
        if isinstance(feature, Video) and feature.decode:
            dataset = dataset.cast_column(column, Video(decode=False))
    return dataset


def video_source(value: Any, video_root: str | os.PathLike[str] | None = None) -> str | bytes:
    """What to hand the video decoder for a row's ``video`` field: embedded bytes when present, else the path or
    URL.

    A URL (``scheme://...``: ``https://``, ``hf://``, ``s3://``, any fsspec protocol) is returned unchanged and read
    through fsspec by the decoder. A relative path is resolved against ``video_root`` when given; ``video_root``
    may itself be a URL (``https://host/videos`` + ``a/b.mp4`` -> ``https://host/videos/a/b.mp4``).
    """
    if isinstance(value, Mapping):
        data = value.get("bytes")
        if data:
            return bytes(data)
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)) and str(value):
        text = os.fspath(value)
        if is_video_url(text):
            return text
        if video_root is not None and is_video_url(os.fspath(video_root)) and not Path(text).is_absolute():
            return os.fspath(video_root).rstrip("/") + "/" + text.replace(os.sep, "/").lstrip("/")
        path = Path(text)
        if video_root is not None and not path.is_absolute():
            path = Path(video_root) / path
        return str(path)
    raise ValueError(f"row has no usable video (got {type(value).__name__})")

