"""Where a corpus build writes, shard by shard: rows as they are made, one report per shard, one merge.

A build (:mod:`modeling_tvtsv2.data.corpus_builders`) runs as shard ``I`` of ``N``
(:mod:`modeling_tvtsv2.data.sharding`); one shard is the usual single-process build. Every shard works in the
hidden folder ``.<output name>.build`` beside the output (same file system, shared by the machines of a job):

* ``settings.json``: the build's settings, written by the first shard; a shard with other settings is refused;
* rows, written as they are made (never all in memory): ``arrow`` — ``Dataset.from_generator`` into this shard's
  ``arrow/<shard>`` dataset; ``parquet`` / ``webdataset`` — shard files ``<split>/<shard>-<part>.parquet|.tar``
  (:mod:`modeling_tvtsv2.data.corpus_shards`), the rows of the validation split chosen up front from the member
  list (seeded), so every shard agrees;
* ``reports/build_report.<shard>.json``: written last (atomically) — a shard whose report exists is done, and a
  rerun of that shard skips it (resume per shard).

The worker that completes the last report merges (claimed with :func:`~modeling_tvtsv2.data.sharding.claim`):
``arrow`` shards are concatenated in shard order and split into ``train`` / ``validation`` exactly as a one-shard
build does (so N shards give the one-shard corpus), shard files are moved into place; the merged
``build_report.json`` and the card are written, and the result replaces the output under the output-folder policy
(:mod:`modeling_tvtsv2.tools.output_folders`). A failed one-shard build leaves nothing behind.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..tools.output_folders import check_output_folder, staged_output_folder
from .corpus_shards import SHARD_FORMATS, open_shard_writer
from .sharding import ShardSpec, claim, read_shard_reports, shard_report_path, write_json_atomic

__all__ = ["CorpusOutput", "dataset_from_rows", "probed_in_order", "validation_members"]

REPORT_STEM = "build_report"


def validation_members(num_members: int, validation_size: float | int, seed: int) -> set[int]:
    """The member indices (of ``num_members``) whose rows go to ``validation`` in a shard-file build: a seeded
    choice of ``validation_size`` (a fraction, or a number) of them. Members that are later skipped do not count
    twice: the validation split may come out smaller by the skipped members."""
    if not validation_size or num_members < 2:
        return set()
    count = int(validation_size) if validation_size >= 1 else round(validation_size * num_members)
    count = min(max(count, 0), num_members - 1)
    return {int(i) for i in np.random.default_rng(seed).choice(num_members, size=count, replace=False)}


class CorpusOutput:
    """One shard's view of a corpus build's output (see the module docstring).

    Args:
        output_dir: the corpus folder.
        fmt: ``"arrow"`` (``save_to_disk``), ``"parquet"`` or ``"webdataset"``.
        spec: this worker's shard.
        settings: everything that determines the rows (all shards of a build must agree).
        overwrite, inputs: the output-folder policy.
        validation_size, seed: the ``validation`` split.
        rows_per_file: rows per Parquet / WebDataset file.
    """

    def __init__(self, output_dir: str | os.PathLike[str], *, fmt: str, spec: ShardSpec, settings: dict[str, Any],
                 overwrite: bool, inputs: Iterable[Any], validation_size: float | int, seed: int,
                 rows_per_file: int = 1000):
        if fmt not in SHARD_FORMATS:
            raise ValueError(f"--format must be one of {', '.join(SHARD_FORMATS)}, got {fmt!r}")
        self.output_dir, self.fmt, self.spec = Path(output_dir), fmt, spec
        self.overwrite, self.inputs = overwrite, list(inputs)
        self.validation_size, self.seed, self.rows_per_file = validation_size, seed, rows_per_file
        self.settings = {**settings, "format": fmt, "num_shards": spec.count, "validation_size": validation_size,
                         "seed": seed, "rows_per_file": rows_per_file}
        self.work = self.output_dir.with_name(f".{self.output_dir.name}.build")

    # -- start -----------------------------------------------------------------------------------------------
    def begin(self) -> dict[str, Any] | None:
        """Checks the output and the work folder; returns this shard's report when an earlier run finished it."""
        check_output_folder(self.output_dir, overwrite=self.overwrite, inputs=self.inputs)
        if self.spec.is_single:  # leftovers of an interrupted one-shard build: nobody else uses them, start over
            self.discard()
        self.work.mkdir(parents=True, exist_ok=True)
        settings_path = self.work / "settings.json"
        try:  # the first shard records the settings; O_EXCL: exactly one writer
            with open(settings_path, "x", encoding="utf-8") as handle:
                json.dump(self.settings, handle, indent=2, ensure_ascii=False, default=str)
        except FileExistsError:
            found = json.loads(settings_path.read_text(encoding="utf-8"))
            expected = json.loads(json.dumps(self.settings, default=str))
            differences = [key for key in sorted(set(found) | set(expected)) if found.get(key) != expected.get(key)]
            if differences:
                raise ValueError(
                    f"{self.work} holds shards of a build with other settings ({', '.join(differences)}); rerun "
                    "with the same settings to resume it, or delete that folder to start over"
                ) from None
        try:
            return json.loads(shard_report_path(self.work / "reports", REPORT_STEM, self.spec).read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    # -- rows ------------------------------------------------------------------------------------------------
    def write_rows(self, rows: Iterable[tuple[int, dict[str, Any]]], features, num_members: int) -> dict[str, int]:
        """Writes ``(member index, row)`` pairs as they come; returns the number of rows per split."""
        if self.fmt == "arrow":
            return self._write_arrow(rows, features)
        validation = validation_members(num_members, self.validation_size, self.seed)
        for split in ("train", "validation"):  # leftovers of an interrupted run of this shard
            for stale in (self.work / split).glob(f"{self.spec.name}-*"):
                stale.unlink()
            for stale in (self.work / split).glob(f".{self.spec.name}-*"):
                stale.unlink()
        writers = {split: open_shard_writer(self.fmt, self.work / split, self.spec.name, features, self.rows_per_file)
                   for split in ("train", "validation")}
        try:
            for member, row in rows:
                writers["validation" if member in validation else "train"].write(row)
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for writer in writers.values():
            writer.close()
        return {split: writer.num_rows for split, writer in writers.items() if writer.num_rows or split == "train"}

    def _write_arrow(self, rows: Iterable[tuple[int, dict[str, Any]]], features) -> dict[str, int]:
        target = self.work / "arrow" / self.spec.name
        cache = self.work / "cache" / f"{self.spec.name}-{os.getpid()}"
        shutil.rmtree(target, ignore_errors=True)
        iterator = iter(rows)
        first = next(iterator, None)
        if first is None:  # a shard without a usable member: no dataset (the merge leaves it out)
            return {"train": 0}
        try:
            # A fresh cache folder per run: from_generator caches by its arguments, which do not see the files.
            dataset = dataset_from_rows((row for _, row in itertools.chain([first], iterator)), features, cache)
            temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            shutil.rmtree(temporary, ignore_errors=True)
            dataset.save_to_disk(str(temporary))
            del dataset
            os.replace(temporary, target)
            from datasets import load_from_disk

            return {"train": len(load_from_disk(str(target)))}
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def finish_shard(self, report: dict[str, Any]) -> None:
        """Records this shard as done (its report)."""
        write_json_atomic(shard_report_path(self.work / "reports", REPORT_STEM, self.spec), report)

    # -- merge -----------------------------------------------------------------------------------------------
    def shard_reports(self) -> list[dict[str, Any]] | None:
        return read_shard_reports(self.work / "reports", REPORT_STEM, self.spec.count)

    def merge(self, reports: list[dict[str, Any]], write_extras: Callable[[Path, dict[str, int]], None]
              ) -> dict[str, int] | None:
        """When every shard is done and this worker wins the claim: builds the corpus folder from the shards,
        calls ``write_extras(folder, num_rows)`` (card, merged report) and moves it into place. Returns the rows
        per split, or ``None`` when another worker merges."""
        if not claim(self.work / "merge.claim"):
            return None
        with staged_output_folder(self.output_dir, overwrite=self.overwrite, inputs=self.inputs) as staging:
            if self.fmt == "arrow":
                num_rows = self._merge_arrow(staging)
            else:
                num_rows = {}
                for split in ("train", "validation"):
                    files = sorted((self.work / split).glob("shard-*")) if (self.work / split).is_dir() else []
                    if files or split == "train":
                        (staging / split).mkdir()
                        num_rows[split] = sum(report["num_rows"].get(split, 0) for report in reports)
                    for file in files:
                        os.replace(file, staging / split / file.name)
            (staging / "reports").mkdir()
            for file in sorted((self.work / "reports").glob("*.json")):
                shutil.copy2(file, staging / "reports" / file.name)
            write_extras(staging, num_rows)
        shutil.rmtree(self.work, ignore_errors=True)
        return num_rows

    def _merge_arrow(self, staging: Path) -> dict[str, int]:
        from datasets import DatasetDict, concatenate_datasets, load_from_disk

        folders = [self.work / "arrow" / ShardSpec(i, self.spec.count).name for i in range(self.spec.count)]
        parts = [load_from_disk(str(folder)) for folder in folders if folder.is_dir()]  # shards with rows
        dataset = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
        if self.validation_size and len(dataset) > 1:
            split = dataset.train_test_split(test_size=self.validation_size, seed=self.seed, shuffle=True,
                                             test_indices_cache_file_name=str(self.work / "cache" / "split-test.arrow"),
                                             train_indices_cache_file_name=str(self.work / "cache" / "split.arrow"))
            splits = DatasetDict({"train": split["train"], "validation": split["test"]})
        else:
            splits = DatasetDict({"train": dataset})
        splits.save_to_disk(str(staging))
        return {name: len(split) for name, split in splits.items()}

    def discard(self) -> None:
        """Removes the work folder (a failed one-shard build leaves nothing behind)."""
        shutil.rmtree(self.work, ignore_errors=True)


class _Once:
    """Wraps an iterator for ``from_generator``'s ``gen_kwargs``: hashed by identity (no pickling of the rows)."""

    def __init__(self, iterator: Iterator[tuple[int, dict[str, Any]]]):
        self.iterator = iterator

    def __reduce__(self):  # datasets fingerprints gen_kwargs by pickling; the cache folder is per run anyway
        return (_Once, (iter(()),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _rows_of(rows: _Once) -> Iterator[dict[str, Any]]:
    yield from rows.iterator


def dataset_from_rows(rows: Iterable[dict[str, Any]], features, cache_dir: str | os.PathLike[str]):
    """``Dataset.from_generator`` over rows as they come (an iterator, read once; never all in memory), written to
    ``cache_dir`` (use a fresh folder: from_generator caches by its arguments, which do not see the rows). At least
    one row is needed."""
    from datasets import Dataset

    return Dataset.from_generator(_rows_of, features=features, cache_dir=str(cache_dir),
                                  gen_kwargs={"rows": _Once(iter(rows))}, keep_in_memory=False)


# --------------------------------------------------------------------------------------------------------------
# Probing videos as rows are made
# --------------------------------------------------------------------------------------------------------------


def _probe_one(path: str) -> tuple[str, Any, str]:
    from ..video_decoding_tvtsv2 import VideoProbeError, probe_video

    try:
        return path, probe_video(path), ""
    except VideoProbeError as error:
        return path, None, str(error)
    except Exception as error:  # noqa: BLE001 - one bad file must not stop a build
        return path, None, f"{type(error).__name__}: {error}"


def probed_in_order(items: Iterable[Any], path_of: Callable[[Any], str], num_workers: int = 1, *,
                    chunk_size: int = 64, cache_size: int = 4096) -> Iterator[tuple[Any, Any, str]]:
    """``(item, probe or None, error)`` for every item, in order, probing ``path_of(item)`` with PyAV
    (:func:`~modeling_tvtsv2.video_decoding_tvtsv2.probe_video`) in ``num_workers`` processes, a chunk at a time:
    memory is bounded by ``chunk_size`` items and the ``cache_size`` most recent probes (a path listed again, e.g.
    several captions of one video, is probed once while it is in the cache)."""
    from collections import OrderedDict
    from concurrent.futures import ProcessPoolExecutor
    from itertools import islice

    cache: OrderedDict[str, tuple[Any, str]] = OrderedDict()
    pool = ProcessPoolExecutor(max_workers=num_workers) if num_workers > 1 else None
    iterator = iter(items)
    try:
        while chunk := list(islice(iterator, chunk_size)):
            paths = [path_of(item) for item in chunk]
            new = sorted({path for path in paths if path not in cache})
            results = pool.map(_probe_one, new, chunksize=4) if pool is not None and len(new) > 1 else map(
                _probe_one, new)
            for path, probe, error in results:
                cache[path] = (probe, error)
            for item, path in zip(chunk, paths):
                cache.move_to_end(path)
                yield item, *cache[path]
            while len(cache) > max(cache_size, chunk_size):
                cache.popitem(last=False)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
