"""Corpus feature extraction (`tvtsv2 extract`): L2-normalised TVTSv2 embeddings of every video of a corpus.

Input: a 🤗 Dataset saved to disk (or a `DatasetDict` + `split`), a Hub dataset id, or a folder of video files.
Output: a 🤗 Dataset saved to disk (`datasets.load_from_disk(OUTPUT)`), one row per video (or per window with
`windows=`), with the columns

* `video_id` (str): the dataset's `video_id` column, else the video cell's path, else `row-<i>`; for a folder, the
  file's path relative to the folder;
* `row` (int): the source row (folder: file number in sorted order);
* `start`, `end` (float, seconds; only with `windows`): the window;
* `frame_times` (list of float): the timestamps of the frames that were sampled (the sampling actually used);
* `video_embedding` (`float32` or `float16`, L2-normalised);
* `text`, `text_embedding` (with `text_column`); any `keep_columns` copied from the source (e.g. a label).

The settings (model, frames, sampling strategy, transform, windows, ...) are recorded in `OUTPUT/extraction.json`.

How it works, and why:

* **Shards.** The videos are cut into shards of `shard_size` consecutive videos. Work happens in the sibling folder
  `OUTPUT.partial/`: a shard is written to a temporary folder with its completion marker, then renamed into place
  (atomic), so a shard is either complete or absent. A rerun with the same settings skips complete shards and
  redoes the rest; leftovers of an interrupted shard are discarded, never used. A rerun with other settings is
  refused. When every shard is done, the shards are concatenated into `OUTPUT` and the work folder is removed.
  An existing `OUTPUT` is only replaced with `overwrite=True`, and only once the new result is complete.
* **Processes.** Under `accelerate launch` each process takes every N-th pending shard. Batches never cross shard
  boundaries, so every video goes through the same batch whatever the number of processes: the output does not
  depend on it.
* **Decoding** runs in DataLoader workers (`num_workers`). Videos (or windows) that fail to decode are skipped and
  listed in the report (`extraction.json` → `skipped`).
* **Windows** (`windows=(seconds, stride)`): the duration of every video is measured from its packets
  (:func:`modeling_tvtsv2.video_decoding_tvtsv2.probe_video`), windows `[0, s], [stride, stride + s], ...` are
  laid over it (plus one window ending at the end of the video when the last one stops short of it; a video
  shorter than `s` gives one window, the whole video), and each window is read with the processor's
  `start`/`end` window reader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers.utils import logging

from ..data.schema import VIDEO_EXTENSIONS, corpus_root, is_saved_dataset, load_corpus, undecoded_videos
from ..data.sharding import claim, resolve_shard, write_json_atomic
from ..tools.model_loading import NoSuchLocalPathError, check_local_path, load_model_and_processor, model_fingerprint
from ..tools.output_folders import OutputFolderError, check_not_an_input, publish_folder
from ..video_decoding_tvtsv2 import VideoProbeError, probe_video
from .embedding import DatasetVideos, EmbeddedClips, VideoList, embed_texts, embed_videos, model_device_dtype


logger = logging.get_logger(__name__)

MANIFEST_NAME = "extraction.json"
SHARD_MARKER = "shard_complete.json"
FORMAT_VERSION = 1
EMBEDDING_DTYPES = ("float32", "float16")

__all__ = [
    "ExtractionError",
    "ExtractionReport",
    "VideoTable",
    "embed_table",
    "extract_features",
    "load_model_for_command",
    "open_video_table",
    "parse_windows",
    "print_report",
    "plan_windows",
]


class ExtractionError(ValueError):
    """A user error (bad input, settings that do not match a partial output, ...); the message says what to do."""


# --------------------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class VideoTable:
    """The videos to embed: ids, a picklable `reader(index) -> video`, optional texts and copied columns."""

    video_ids: list[str]
    reader: Callable[[int], Any]  # `embedding.VideoList` / `embedding.DatasetVideos`
    source: str
    texts: list[str] | None = None
    extra_columns: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    extra_features: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.video_ids)


def _ids_from_cells(dataset, column: str) -> list[str]:
    ids = []
    for batch in dataset.select_columns([column]).iter(batch_size=256):
        for cell in batch[column]:
            path = cell.get("path") if isinstance(cell, dict) else cell if isinstance(cell, str) else None
            ids.append(str(path) if path else f"row-{len(ids)}")
    return ids


def open_video_table(
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    video_column: str = "video",
    text_column: str | None = None,
    keep_columns: Sequence[str] = (),
    id_column: str = "video_id",
    video_root: str | None = None,
) -> VideoTable:
    """Opens a corpus: a folder of videos, a dataset saved to disk, or a Hub dataset id.

    Args:
        source: folder of video files (searched recursively, sorted), a corpus folder of Parquet / WebDataset
            shards (`load_corpus`), folder written by `save_to_disk`
            (a `DatasetDict` needs `split`, unless it has a single split), or a Hub dataset id (`split`, default
            `"train"`).
        video_column: the column holding the videos (paths, bytes, or `{"bytes", "path"}` cells).
        text_column: optional column of strings to embed with the text tower.
        keep_columns: columns copied to the output unchanged (e.g. a label for a linear probe).
        id_column: column with video ids, used when present.
        video_root: folder that relative video paths are resolved against (default for a saved dataset: its
            folder, where the corpus tools write paths relative to).

    Raises:
        ExtractionError: a missing source, split or column.
    """
    import datasets

    folder = Path(os.fspath(source))
    shards = folder.is_dir() and any(p.suffix in (".parquet", ".tar") for p in folder.rglob("*") if p.is_file())
    if folder.is_dir() and not is_saved_dataset(folder) and not shards:
        if text_column or keep_columns:
            raise ExtractionError(f"{folder}: a folder of videos has no columns (--text-column/--keep-columns)")
        files = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
        )
        if not files:
            raise ExtractionError(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
        root = folder.resolve()
        # A name that is not UTF-8 (b"caf\xe9.mp4") is read as it is; its id (stored as UTF-8) spells the byte \xe9.
        ids = [name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for name in files]
        return VideoTable(ids, VideoList(os.path.join(root, name) for name in files), str(root))
    if shards and not is_saved_dataset(folder):  # a corpus as Parquet / WebDataset shards (the corpus tools')
        description = str(folder.resolve())
        dataset = load_corpus(folder, split or "train")
    elif folder.is_dir():
        dataset = datasets.load_from_disk(str(folder))
        description = str(folder.resolve())
        video_root = video_root if video_root is not None else str(corpus_root(folder))  # relative paths: here
        if isinstance(dataset, datasets.DatasetDict):
            if split is None and len(dataset) == 1:
                split = next(iter(dataset))
            if split not in dataset:
                raise ExtractionError(f"{folder}: pass --split, one of {sorted(dataset)} (got {split!r})")
            dataset = dataset[split]
    elif folder.exists():
        raise ExtractionError(f"{folder}: not a folder of videos nor a dataset saved with save_to_disk")
    else:
        description = os.fspath(source)
        try:
            dataset = datasets.load_dataset(description, split=split or "train")
        except Exception as error:  # noqa: BLE001 - the Hub/loader raises many types; report one line
            raise ExtractionError(f"{description}: no such folder, and not loadable as a Hub dataset ({error})")
    missing = [c for c in (video_column, text_column, *keep_columns) if c and c not in dataset.column_names]
    if missing:
        raise ExtractionError(f"{description}: column(s) {missing} not found; columns: {dataset.column_names}")
    dataset = undecoded_videos(dataset, video_column)
    if id_column in dataset.column_names:
        video_ids = [str(v) for v in dataset.select_columns([id_column]).to_dict()[id_column]]
    else:
        video_ids = _ids_from_cells(dataset, video_column)
    texts = None
    if text_column:
        texts = dataset.select_columns([text_column]).to_dict()[text_column]
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise ExtractionError(f"{description}: column {text_column!r} must hold one string per row (row {bad})")
    extra_columns = dataset.select_columns(list(keep_columns)).to_dict() if keep_columns else {}
    extra_features = {name: dataset.features[name] for name in keep_columns}
    reader = DatasetVideos(dataset, video_column, video_root, id_column=id_column)
    return VideoTable(video_ids, reader, description, texts, extra_columns, extra_features)


# --------------------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------------------


def parse_windows(value: str | Sequence[float] | None) -> tuple[float, float] | None:
    """`"SECONDS[,STRIDE]"` -> `(seconds, stride)`; the stride defaults to `seconds` (no overlap)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parts = [float(v) for v in value.split(",")]
        except ValueError:
            parts = []
    else:
        parts = [float(v) for v in value]
    if len(parts) == 1:
        parts.append(parts[0])
    if len(parts) != 2 or not all(math.isfinite(p) and p > 0 for p in parts):
        raise ExtractionError(f"--windows: expected SECONDS[,STRIDE] with positive numbers, got {value!r}")
    return parts[0], parts[1]


def plan_windows(duration: float, seconds: float, stride: float) -> list[tuple[float, float]]:
    """Windows `[start, end]` (seconds) over a video of `duration` seconds (see the module docstring)."""
    if duration <= seconds:
        return [(0.0, float(duration))]
    windows, start = [], 0.0
    while start + seconds <= duration + 1e-6:
        windows.append((round(start, 6), round(start + seconds, 6)))
        start += stride
    if windows[-1][1] < duration - 1e-3:
        windows.append((round(duration - seconds, 6), round(float(duration), 6)))
    return windows


# --------------------------------------------------------------------------------------------------------------
# Embedding (in memory)
# --------------------------------------------------------------------------------------------------------------


class _Durations(torch.utils.data.Dataset):
    def __init__(self, reader, indices: list[int]):
        self.reader, self.indices = reader, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[int, float | None, str | None]:
        try:
            video = self.reader(self.indices[k])
            if not isinstance(video, (str, bytes)):
                raise ValueError(f"cannot measure the duration of a {type(video).__name__}")
            return k, probe_video(video).duration, None
        except (VideoProbeError, ValueError, OSError) as error:
            return k, None, str(error)


def _as_list(samples):
    return samples


def _clip_items(table: VideoTable, indices: list[int], windows, num_workers: int, skipped: list[dict]):
    if windows is None:
        return [(i, None, None) for i in indices]
    loader = torch.utils.data.DataLoader(
        _Durations(table.reader, indices), batch_size=8, num_workers=num_workers, collate_fn=_as_list
    )
    items = []
    for batch in loader:
        for k, duration, reason in batch:
            index = indices[k]
            if duration is None:
                skipped.append({"video_id": table.video_ids[index], "row": index, "reason": reason})
                continue
            items.extend((index, start, end) for start, end in plan_windows(duration, *windows))
    return items


def embed_table(
    model,
    processor,
    table: VideoTable,
    indices: Sequence[int] | None = None,
    *,
    windows: tuple[float, float] | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    video_kwargs: dict[str, Any] | None = None,
    progress=None,
) -> EmbeddedClips:
    """Embeds the videos `indices` of `table` (default: all), or their windows, in batches (the engine
    `embedding.embed_videos`, with frame times, L2-normalised).

    Batches are made only from the given indices, in order, so the same indices give the same batches (and the
    same numbers) wherever they are computed. Clips that fail to decode are skipped and reported.

    Args:
        model: a `TVTSv2Model` (or anything with `get_video_features`), on its device and dtype, in eval mode.
        processor: a `TVTSv2Processor` or a video processor.
        windows: `(seconds, stride)` to embed sliding windows instead of whole videos.
        video_kwargs: video processor options (`num_frames`, `sampling`, `transform`).
        progress: a tqdm bar advanced by the number of clips of each batch.

    Returns:
        `EmbeddedClips`; each `skipped` entry is `{"video_id", "row", "reason"}` (+ `"start"`, `"end"`).
    """
    indices = list(range(len(table))) if indices is None else list(indices)
    skipped: list[dict[str, Any]] = []
    clips = embed_videos(
        model, processor, table.reader, _clip_items(table, indices, windows, num_workers, skipped),
        batch_size=batch_size, num_workers=num_workers, video_kwargs=video_kwargs, frame_times=True, on_error="skip",
        progress=None if progress is None else progress.update,
    )  # fmt: skip
    skipped.extend({"video_id": table.video_ids[entry["row"]], **entry} for entry in clips.skipped)
    clips, dropped = clips.without_non_finite()  # a NaN row would be every query's best hit (score nan)
    for index, start, end in dropped:
        window = {"start": start, "end": end} if windows is not None else {}
        skipped.append({"video_id": table.video_ids[index], "row": index, **window, "reason": "embedding not finite"})
    return dataclasses.replace(clips, skipped=skipped)


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------


def load_model_for_command(
    model_name_or_path: str,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
    trust_remote_code: bool = False,
):
    """`tools.model_loading.load_model_and_processor` for `tvtsv2 extract`, `search` and the linear probe: a model
    that cannot be loaded is the one-line user error `--model X: cannot load (...)` (an `ExtractionError`)."""
    try:
        return load_model_and_processor(model_name_or_path, device, dtype, trust_remote_code)
    except NoSuchLocalPathError as error:
        raise ExtractionError(str(error)) from None
    except (OSError, ValueError) as error:
        raise ExtractionError(f"--model {model_name_or_path}: cannot load ({str(error).splitlines()[0]})") from error


# --------------------------------------------------------------------------------------------------------------
# Extraction to disk: shards, resume, processes
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExtractionReport:
    """What `extract_features` did."""

    output: str
    num_videos: int
    num_rows: int
    num_shards: int
    reused_shards: int
    skipped: list[dict[str, Any]]
    already_complete: bool = False
    merged: bool = True  # False: this job's part is done, another job merges

    def summary(self) -> str:
        if not self.merged:
            return f"this job's part of {self.output} is done; the job that finishes last merges"
        if self.already_complete:
            return f"{self.output} is already complete ({self.num_rows} rows): nothing to do"
        reused = f", {self.reused_shards} reused from an earlier run" if self.reused_shards else ""
        return (
            f"wrote {self.num_rows} rows from {self.num_videos} videos to {self.output} "
            f"({self.num_shards} shards{reused}); skipped {len(self.skipped)} unreadable"
        )


def _work_dir(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _write_json(path: Path, value: Any) -> None:
    write_json_atomic(path, value)  # a temporary per host and process: jobs on several machines share the folder


def _differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    keys = sorted(set(expected) | set(found))
    return [f"{k}: {found.get(k)!r} there, {expected.get(k)!r} now" for k in keys if expected.get(k) != found.get(k)]


def _features(dim: int, embedding_dtype: str, table: VideoTable, windows) -> Any:
    import datasets

    columns = {"video_id": datasets.Value("string"), "row": datasets.Value("int64")}
    if windows is not None:
        columns.update(start=datasets.Value("float64"), end=datasets.Value("float64"))
    columns["frame_times"] = datasets.List(datasets.Value("float32"))
    columns["video_embedding"] = datasets.List(datasets.Value(embedding_dtype), length=dim)
    if table.texts is not None:
        columns["text"] = datasets.Value("string")
        columns["text_embedding"] = datasets.List(datasets.Value(embedding_dtype), length=dim)
    columns.update(table.extra_features)
    return datasets.Features(columns)


def _shard_rows(model, processor, table: VideoTable, clips: EmbeddedClips, embedding_dtype: str, windows):
    rows: dict[str, Any] = {
        "video_id": [table.video_ids[i] for i, _, _ in clips.items],
        "row": [i for i, _, _ in clips.items],
    }
    if windows is not None:
        rows["start"] = [s for _, s, _ in clips.items]
        rows["end"] = [e for _, _, e in clips.items]
    rows["frame_times"] = clips.frame_times
    rows["video_embedding"] = clips.embeddings.numpy().astype(embedding_dtype)
    if table.texts is not None:
        videos = sorted({i for i, _, _ in clips.items})
        position = {index: k for k, index in enumerate(videos)}
        texts = [table.texts[i] for i in videos]
        text_embeds = embed_texts(model, processor, texts) if texts else torch.zeros(0, clips.embeddings.shape[1])
        rows["text"] = [table.texts[i] for i, _, _ in clips.items]
        rows["text_embedding"] = text_embeds.numpy().astype(embedding_dtype)[
            [position[i] for i, _, _ in clips.items]
        ]
    for name, values in table.extra_columns.items():
        rows[name] = [values[i] for i, _, _ in clips.items]
    return rows


def _write_shard(work: Path, shard: int, rows: dict[str, Any], features, skipped, settings_digest: str) -> None:
    import datasets

    final = work / "shards" / f"shard-{shard:05d}"
    tmp = work / "shards" / f"shard-{shard:05d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp))
    marker = {"shard": shard, "num_rows": len(rows["video_id"]), "skipped": skipped, "settings": settings_digest}
    _write_json(tmp / SHARD_MARKER, marker)
    if final.exists():  # an incomplete leftover (no marker): never used, replaced
        shutil.rmtree(final)
    os.replace(tmp, final)


def _shard_done(work: Path, shard: int, settings_digest: str) -> dict[str, Any] | None:
    marker = _read_json(work / "shards" / f"shard-{shard:05d}" / SHARD_MARKER)
    if marker and marker.get("settings") == settings_digest and marker.get("shard") == shard:
        return marker
    return None


def check_output(output: str | os.PathLike[str], overwrite: bool = False, inputs: Sequence[str | None] = ()) -> None:
    """Refuses an `output` that is, contains or lies in an input; an existing non-extraction one unless `overwrite`."""
    try:
        check_not_an_input(output, inputs)
    except OutputFolderError as error:
        raise ExtractionError(str(error)) from None
    output = Path(os.fspath(output))
    if output.exists() and not overwrite and _read_json(output / MANIFEST_NAME) is None:
        raise ExtractionError(
            f"--output {output} exists and is not an extraction output; pass --overwrite to replace it "
            "(once the new result is complete) or choose another folder"
        )


def _prepare(output: Path, settings: dict[str, Any], overwrite: bool, is_main: bool, inputs: Sequence[str]) -> str:
    """Checks `output` / its work folder against `settings`; returns "complete", "resume" or "start"."""
    work = _work_dir(output)
    check_output(output, overwrite, inputs)
    if output.exists():
        manifest = _read_json(output / MANIFEST_NAME)
        if manifest is not None and not overwrite:
            differences = _differences(settings, manifest.get("settings", {}))
            if differences:
                raise ExtractionError(
                    f"--output {output} holds an extraction with other settings ({'; '.join(differences)}); "
                    "pass --overwrite to replace it or choose another folder"
                )
            return "complete"
    if work.exists():
        manifest = _read_json(work / MANIFEST_NAME)
        differences = _differences(settings, (manifest or {}).get("settings", {}))
        if differences and not overwrite:
            raise ExtractionError(
                f"{work} holds a partial extraction with other settings ({'; '.join(differences)[:500]}); "
                "rerun with the same settings to resume it, or pass --overwrite to start over"
            )
        if not differences:
            return "resume"
        if is_main:
            shutil.rmtree(work)
    return "start"


def _settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def extract_features(
    model,
    processor,
    table: VideoTable,
    output: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    windows: tuple[float, float] | None = None,
    num_frames: int | None = None,
    sampling: str | None = None,
    transform: str | None = None,
    embedding_dtype: str = "float32",
    shard_size: int = 256,
    batch_size: int = 16,
    num_workers: int = 0,
    overwrite: bool = False,
    show_progress: bool = True,
    settings_extra: dict[str, Any] | None = None,
    shard_index: int | None = None,
    num_shards: int | None = None,
) -> ExtractionReport:
    """Embeds `table` into the 🤗 Dataset folder `output` (shards, resume, `accelerate launch`; module docstring).

    Every process of an `accelerate launch` calls this with the same arguments; the main process merges.

    Args:
        model, processor: see :func:`load_model_for_command`. The model must be on this process's device.
        table: from :func:`open_video_table`.
        model_name: recorded in `extraction.json` (default: `model.name_or_path`); `tvtsv2 search` loads it.
        windows: `(seconds, stride)`: embed sliding windows.
        num_frames, sampling, transform: video processor options (default: the processor's).
        embedding_dtype: `"float32"` or `"float16"` storage.
        shard_size: videos per shard (the unit of resuming and of work split between processes).
        overwrite: replace an existing `output` (only once the new one is complete), or a partial output with
            other settings.
        shard_index, num_shards: this job's part of the work (SLURM arrays, job lists; each job may itself be an
            `accelerate launch`): a contiguous block of the `shard_size` units. The job that completes the last
            unit merges (claimed: one job merges); the others return with `merged=False`.

    Raises:
        ExtractionError: for settings that do not match an existing (partial) output, and other user errors.
    """
    import datasets
    from transformers.utils.logging import tqdm

    if embedding_dtype not in EMBEDDING_DTYPES:
        raise ExtractionError(f"--embedding-dtype must be one of {EMBEDDING_DTYPES}, got {embedding_dtype!r}")
    if shard_size < 1 or batch_size < 1:
        raise ExtractionError("--shard-size and --batch-size must be >= 1")
    if len(table) == 0:
        raise ExtractionError(f"{table.source}: no videos")
    try:  # the launcher's processes are this job's (PartialState below); the flags split across jobs
        job = resolve_shard(shard_index, num_shards, use_launcher=False)
    except ValueError as error:
        raise ExtractionError(str(error)) from None
    state = PartialState(cpu=not torch.cuda.is_available())
    output = Path(os.fspath(output)).absolute()
    work = _work_dir(output)
    video_processor = getattr(processor, "video_processor", processor)
    video_kwargs = {
        "num_frames": num_frames if num_frames is not None else video_processor.num_frames,
        "sampling": sampling or video_processor.sampling,
        "transform": transform or video_processor.transform,
    }
    _, model_dtype = model_device_dtype(model)
    settings = {
        "format_version": FORMAT_VERSION,
        "source": table.source,
        "num_videos": len(table),
        "video_ids_sha1": hashlib.sha1("\n".join(table.video_ids).encode()).hexdigest(),
        "text": table.texts is not None,
        "keep_columns": sorted(table.extra_columns),
        "model": model_name or getattr(model.config, "name_or_path", None),
        "model_fingerprint": model_fingerprint(model),
        "model_dtype": str(model_dtype).replace("torch.", ""),
        "image_size": video_processor.crop_size["height"] if isinstance(video_processor.crop_size, dict)
        else video_processor.crop_size.height,
        **video_kwargs,
        "windows": list(windows) if windows else None,
        "embedding_dtype": embedding_dtype,
        "shard_size": shard_size,
        **(settings_extra or {}),
    }  # fmt: skip
    digest = _settings_digest(settings)
    num_shards = math.ceil(len(table) / shard_size)
    mode = _prepare(output, settings, overwrite, state.is_main_process, [table.source, model_name])
    if mode == "complete":
        manifest = _read_json(output / MANIFEST_NAME) or {}
        return ExtractionReport(
            str(output), len(table), manifest.get("num_rows", 0), num_shards, num_shards,
            manifest.get("skipped", []), already_complete=True,
        )  # fmt: skip
    state.wait_for_everyone()  # the main process may have cleared a stale work folder
    if state.is_main_process:
        (work / "shards").mkdir(parents=True, exist_ok=True)
        for leftover in (work / "shards").glob("*.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted shard: redone, never used
        _write_json(work / MANIFEST_NAME, {"settings": settings, "complete": False})
    # Every process agrees on the pending shards before any of them starts writing.
    state.wait_for_everyone()
    done = [s for s in range(num_shards) if _shard_done(work, s, digest)]
    state.wait_for_everyone()
    pending = [s for s in job.block(range(num_shards)) if s not in set(done)]
    if done and state.is_main_process:
        logger.warning("Resuming %s: %d of %d shards already done", work, len(done), num_shards)
    mine = pending[state.process_index :: state.num_processes]
    features = None
    bar = tqdm(
        total=sum(min(shard_size, len(table) - s * shard_size) for s in mine),
        desc=f"Extracting (process {state.process_index})" if state.num_processes > 1 else "Extracting",
        unit="video" if windows is None else "clip",
        disable=not show_progress,
    )
    for shard in mine:
        indices = list(range(shard * shard_size, min((shard + 1) * shard_size, len(table))))
        if windows is not None:
            bar.total = None  # the number of windows is known per shard only
        clips = embed_table(
            model, processor, table, indices, windows=windows, batch_size=batch_size, num_workers=num_workers,
            video_kwargs=video_kwargs, progress=bar,
        )  # fmt: skip
        dim = clips.embeddings.shape[1] or model.config.projection_dim
        features = features or _features(dim, embedding_dtype, table, windows)
        rows = _shard_rows(model, processor, table, clips, embedding_dtype, windows)
        _write_shard(work, shard, rows, features, clips.skipped, digest)
    bar.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return ExtractionReport(str(output), len(table), 0, num_shards, len(done), [])

    markers = [_shard_done(work, s, digest) for s in range(num_shards)]
    missing = [s for s, marker in enumerate(markers) if marker is None]
    if missing and not job.is_single and not set(missing) & set(job.block(range(num_shards))):
        logger.warning("%s of %s done; %d units left to other jobs (the last one merges)", job.name, work, len(missing))
        return ExtractionReport(str(output), len(table), 0, num_shards, len(done), [], merged=False)
    if missing:
        raise RuntimeError(f"shards {missing} of {work} were not written; rerun to resume")
    if not job.is_single and not claim(work / "merge.claim"):
        return ExtractionReport(str(output), len(table), 0, num_shards, len(done), [], merged=False)
    filled = [s for s in range(num_shards) if markers[s]["num_rows"]]  # a shard of 0 rows has no table to load
    parts = [datasets.load_from_disk(str(work / "shards" / f"shard-{s:05d}")) for s in filled]
    if not parts:
        raise ExtractionError(f"no video of {table.source} could be read: nothing to write (see the skipped list)")
    merged = datasets.concatenate_datasets(parts)
    merged.info.description = f"TVTSv2 embeddings (tvtsv2 extract): {json.dumps(settings)}"
    skipped = [entry for marker in markers for entry in marker["skipped"]]
    staging = work / "merged"
    if staging.exists():
        shutil.rmtree(staging)
    merged.save_to_disk(str(staging))
    _write_json(
        staging / MANIFEST_NAME,
        {"settings": settings, "complete": True, "num_rows": len(merged), "skipped": skipped},
    )
    del merged, parts
    publish_folder(staging, output)  # an existing output only with overwrite (checked by _prepare)
    shutil.rmtree(work)
    report = ExtractionReport(str(output), len(table), _read_json(output / MANIFEST_NAME)["num_rows"], num_shards,
                              len(done), skipped)  # fmt: skip
    return report


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExtractArguments:
    """`tvtsv2 extract` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`, argument files)."""

    model: str = dataclasses.field(metadata={"help": "model folder or Hub id"})
    input: str = dataclasses.field(metadata={"help": "folder of videos, dataset saved with save_to_disk, or Hub id"})
    output: str = dataclasses.field(metadata={"help": "output dataset folder"})
    split: str | None = dataclasses.field(default=None, metadata={"help": "split of a DatasetDict / Hub dataset"})
    video_column: str = dataclasses.field(default="video", metadata={"help": "column of the videos"})
    text_column: str | None = dataclasses.field(default=None, metadata={"help": "also embed this column of strings"})
    keep_columns: str = dataclasses.field(
        default="", metadata={"help": "comma-separated columns copied to the output (e.g. label)"}
    )
    video_root: str | None = dataclasses.field(
        default=None, metadata={"help": "folder that relative video paths are resolved against"}
    )
    windows: str | None = dataclasses.field(
        default=None, metadata={"help": "SECONDS[,STRIDE]: embed sliding windows (rows get start, end)"}
    )
    num_frames: int | None = dataclasses.field(
        default=None, metadata={"help": "frames per clip (default: the processor's)"}
    )
    sampling: str | None = dataclasses.field(
        default=None, metadata={"help": "frame sampling strategy", "choices": ["uniform", "linspace", "random"]}
    )
    transform: str | None = dataclasses.field(
        default=None, metadata={"help": "frame transform", "choices": ["eval", "extract", "train"]}
    )
    embedding_dtype: str = dataclasses.field(
        default="float32", metadata={"help": "storage dtype", "choices": list(EMBEDDING_DTYPES)}
    )
    dtype: str | None = dataclasses.field(
        default=None, metadata={"help": "model compute dtype", "choices": ["float32", "float16", "bfloat16"]}
    )
    shard_size: int = dataclasses.field(default=256, metadata={"help": "videos per shard (unit of resume)"})
    batch_size: int = dataclasses.field(default=16, metadata={"help": "clips per forward pass"})
    num_workers: int = dataclasses.field(default=2, metadata={"help": "DataLoader workers decoding videos"})
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "replace an existing output once the new one is complete"}
    )
    use_cpu: bool = dataclasses.field(default=False, metadata={"help": "run on CPU even when a GPU is available"})
    trust_remote_code: bool = dataclasses.field(default=False, metadata={"help": "allow the model folder's own code"})
    no_progress: bool = dataclasses.field(default=False, metadata={"help": "hide the progress bar"})
    shard_index: int | None = dataclasses.field(
        default=None,
        metadata={"help": "embed only this job's part (0-based) of --num_shards (SLURM arrays, job lists); the job "
                  "that finishes last merges. Processes of an accelerate launch split each part further"},
    )
    num_shards: int | None = dataclasses.field(default=None, metadata={"help": "number of jobs (with --shard_index)"})
    streaming: bool = dataclasses.field(
        default=False,
        metadata={"help": "Hub / remote dataset: each job streams only its part (split_dataset_by_node) to local "
                  "disk instead of every process downloading it whole"},
    )


EXTRACT_DESCRIPTION = (
    "Embed the videos of a folder, a saved 🤗 dataset or a Hub dataset with a TVTSv2 model. Runs under "
    "`accelerate launch` with several processes. A rerun resumes a partial output."
)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`tvtsv2 extract ...`: returns the exit status (2 with one `error: ...` line for a user mistake)."""
    from ..tools.arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(ExtractArguments, argv, prog=prog, description=EXTRACT_DESCRIPTION)
    return run_extract(args)


def run_extract(args: ExtractArguments) -> int:
    """Runs `tvtsv2 extract`; returns the exit status (2 with a one-line error for a user mistake)."""
    import datasets
    datasets.disable_progress_bars()  # one bar (ours) per process
    try:
        windows = parse_windows(args.windows)  # flag syntax first, then paths
        # a mistyped local path fails at once, before anything is tried as a Hub id
        check_local_path(args.model, "--model")
        check_local_path(args.input, "--input")
        try:
            resolve_shard(args.shard_index, args.num_shards, use_launcher=False)  # bad flags: before any work
        except ValueError as error:
            raise ExtractionError(str(error)) from None
        check_output(args.output, args.overwrite, inputs=[args.input, args.model, args.video_root])
        keep = [c.strip() for c in args.keep_columns.split(",") if c.strip()]
        state = PartialState(cpu=args.use_cpu or not torch.cuda.is_available())
        if args.streaming:  # the command line routes it to extract_streaming (which builds on this module)
            raise ExtractionError("--streaming: run it as `tvtsv2 extract` (extract_streaming.extract_command)")
        failure = None
        with state.local_main_process_first():  # a Hub dataset is downloaded once per machine, then read from cache
            try:  # every process leaves the block (its barrier), then each reports the error
                table = open_video_table(
                    args.input, split=args.split, video_column=args.video_column, text_column=args.text_column,
                    keep_columns=keep, video_root=args.video_root,
                )  # fmt: skip
            except ExtractionError as error:
                failure = error
        if failure is not None:
            raise failure
        model, processor = load_model_for_command(args.model, state.device, args.dtype, args.trust_remote_code)
        report = extract_features(
            model, processor, table, args.output, model_name=args.model, windows=windows,
            num_frames=args.num_frames, sampling=args.sampling, transform=args.transform,
            embedding_dtype=args.embedding_dtype, shard_size=args.shard_size, batch_size=args.batch_size,
            num_workers=args.num_workers, overwrite=args.overwrite, show_progress=not args.no_progress,
            shard_index=args.shard_index, num_shards=args.num_shards,
        )  # fmt: skip
    except (ExtractionError, NoSuchLocalPathError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return print_report(report)


def print_report(report: ExtractionReport) -> int:
    """Prints what the main process did (the summary and the first skipped videos); returns 0."""
    if PartialState().is_main_process:
        print(report.summary())
        for entry in report.skipped[:20]:
            where = f" [{entry['start']:g}-{entry['end']:g} s]" if "start" in entry else ""
            print(f"skipped {entry['video_id']}{where}: {entry['reason']}")
        if len(report.skipped) > 20:
            print(f"... {len(report.skipped) - 20} more in {os.path.join(report.output, MANIFEST_NAME)}")
    return 0
