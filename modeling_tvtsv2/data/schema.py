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
    "caption_features",
    "corpus_kind",
    "is_saved_dataset",
    "load_corpus",
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


def load_corpus(path: str | os.PathLike[str], split: str = "train") -> "Dataset":
    """Load a corpus saved with ``save_to_disk`` (by :mod:`modeling_tvtsv2.data.corpus_builders` or the demo builder).

    Accepts a saved ``DatasetDict`` (returns ``split``) or a saved ``Dataset`` (returned as is, ``split`` ignored).
    """
    from datasets import DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if isinstance(loaded, DatasetDict):
        if split not in loaded:
            raise KeyError(f"{path} has splits {sorted(loaded)}, not {split!r}")
        return loaded[split]
    return loaded


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

