"""Mixing corpora: one corpus per optimiser step (the original's YT-Temporal / WebVid alternation).

With ``transformers.Trainer``: :class:`MixedCorpusBatchDataset` is a map-style dataset whose *items are whole
per-device batches* (a "group" of rows from one corpus). Use it with::

    TrainingArguments(per_device_train_batch_size=1, train_sampling_strategy="sequential",
                      remove_unused_columns=False, ...)

Item ``i`` belongs to optimizer step ``i // (world_size * gradient_accumulation_steps)``. accelerate's
``BatchSamplerShard`` gives rank ``r`` the items ``r, r + world_size, ...``, so on every optimizer step all ranks
read different rows of the *same* corpus (the global batch is homogeneous, as in the original) and the schedule of
corpora follows ``ratio`` (default 1:1, i.e. YT, WebVid, YT, ...). Resuming skips items through the batch
sampler without loading them. Shuffling comes from per-epoch permutations seeded by ``(seed, corpus, epoch)``;
the Trainer calls ``set_epoch`` (through accelerate) before each epoch. Do not use persistent DataLoader workers:
they would keep the previous epoch.

:class:`MixedCorpusBatchStream` does the same for streaming (🤗 ``IterableDataset``) corpora, each rank and each
DataLoader worker reading only its own part of every corpus (``split_dataset_by_node``); its groups carry their
position in the stream (:data:`STREAM_STATE_KEY`) so that a resumed run continues where it stopped.

A group is a dict marked with :data:`GROUP_FLAG`: ``corpus``, ``kind``, ``step``, ``rows``/``keys`` (the batch)
and ``reserve_rows``/``reserve_keys`` (replacements for samples that fail); :func:`unpack_groups` reads groups back.
"""

from __future__ import annotations

import itertools
import os
from functools import partial
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from datasets.distributed import split_dataset_by_node

from .schema import CorpusKind, corpus_kind

__all__ = [
    "GROUP_FLAG",
    "STREAM_STATE_KEY",
    "MixedCorpusBatchDataset",
    "MixedCorpusBatchStream",
    "iter_collated",
    "unpack_groups",
]

#: Marks a dict as a group of rows (not a corpus row).
GROUP_FLAG = "__tvtsv2_group__"
#: A streamed group's (and its batch's) position in the stream, for resuming (see :class:`MixedCorpusBatchStream`).
STREAM_STATE_KEY = "__tvtsv2_stream_state__"


def _group(
    corpus: str, kind: CorpusKind, step: int, entries: Iterable[tuple[Any, Any]], reserves: Iterable[tuple[Any, Any]]
) -> dict[str, Any]:
    """A group (the format :func:`unpack_groups` reads) from ``(row, key)`` pairs of the batch and of its reserves."""
    entries, reserves = list(entries), list(reserves)
    return {
        GROUP_FLAG: True,
        "corpus": corpus,
        "kind": kind,
        "step": step,
        "rows": [row for row, _ in entries],
        "keys": [key for _, key in entries],
        "reserve_rows": [row for row, _ in reserves],
        "reserve_keys": [key for _, key in reserves],
    }


def _env_world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def _weighted_pattern(names: Sequence[str], weights: Sequence[int]) -> list[str]:
    """One round of smooth weighted round-robin: ``[a, b]`` for 1:1, ``[a, b, a]`` for 2:1, ``[a, a, b, a]`` ..."""
    current = [0] * len(names)
    total = sum(weights)
    pattern = []
    for _ in range(total):
        current = [c + w for c, w in zip(current, weights)]
        best = max(range(len(names)), key=lambda i: (current[i], -i))
        current[best] -= total
        pattern.append(names[best])
    return pattern


def _normalise_corpora(corpora, ratio):
    if isinstance(corpora, Mapping):
        names, datasets_ = list(corpora.keys()), list(corpora.values())
    else:
        datasets_ = list(corpora)
        names = [f"corpus{i}" for i in range(len(datasets_))]
    if not datasets_:
        raise ValueError("no corpus given")
    if ratio is None:
        weights = [1] * len(names)
    elif isinstance(ratio, Mapping):
        weights = [int(ratio.get(name, 0)) for name in names]
    else:
        weights = [int(w) for w in ratio]
    if len(weights) != len(names) or any(w < 0 for w in weights) or weights[0] <= 0:
        raise ValueError(f"ratio {ratio!r} must give a non-negative integer per corpus and > 0 for the first one")
    return names, datasets_, weights


def _init_mixing(mixer, corpora, batch_size, ratio, world_size, gradient_accumulation_steps, num_reserve, seed):
    """The schedule state shared by the map-style and the streaming mixer."""
    mixer.names, mixer.corpora, mixer.weights = _normalise_corpora(corpora, ratio)
    mixer.batch_size = batch_size
    mixer.world_size = world_size or _env_world_size()
    mixer.gradient_accumulation_steps = gradient_accumulation_steps
    mixer.num_reserve = num_reserve
    mixer.seed = seed
    mixer.epoch = 0
    mixer.pattern = _weighted_pattern(mixer.names, mixer.weights)
    mixer.groups_per_step = mixer.world_size * mixer.gradient_accumulation_steps


class MixedCorpusBatchDataset(torch.utils.data.Dataset):
    """Map-style dataset whose items are whole per-device batches ("groups") drawn from one corpus each.

    Args:
        corpora: ``{name: dataset}`` (or a sequence); map-style datasets (🤗 ``Dataset`` or anything with
            ``__len__``/``__getitem__``) of the schemas above. The **first** corpus is the primary one: an epoch is
            one pass over it, as the original's epoch was one pass of YT-Temporal; the others are cycled through
            (a fresh permutation each time one is exhausted).
        batch_size: rows per group, i.e. the per-device batch size.
        ratio: optimizer steps per corpus in one round, e.g. ``{"yt": 1, "webvid": 1}`` (default: 1 each), giving
            YT, WebVid, YT, WebVid, ... (smooth weighted round-robin for other ratios).
        world_size: number of data-parallel processes (default: ``WORLD_SIZE`` from the launcher, else 1). Must
            be the same value on every rank.
        gradient_accumulation_steps: micro-batches per optimizer step; an optimizer step never mixes corpora.
        num_reserve: extra rows per group used to replace samples that fail to decode.
        seed: base seed of the shuffling (the collator has its own seed for augmentation).

    Item ``i`` is ``{"__tvtsv2_group__": True, "corpus": name, "kind": "transcript"|"caption", "rows": [...],
    "keys": [...], "reserve_rows": [...], "reserve_keys": [...], "step": optimizer step}``; rows are read from the
    corpus in the DataLoader worker that asks for the item. Use with
    ``TrainingArguments(per_device_train_batch_size=1, train_sampling_strategy="sequential",
    remove_unused_columns=False)``.
    """

    def __init__(
        self,
        corpora: Mapping[str, Any] | Sequence[Any],
        batch_size: int,
        *,
        ratio: Mapping[str, int] | Sequence[int] | None = None,
        world_size: int | None = None,
        gradient_accumulation_steps: int = 1,
        num_reserve: int = 2,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        _init_mixing(self, corpora, batch_size, ratio, world_size, gradient_accumulation_steps, num_reserve, seed)
        self.kinds = [corpus_kind(corpus) for corpus in self.corpora]
        self.sizes = [len(corpus) for corpus in self.corpora]
        primary_steps = self.sizes[0] // (self.batch_size * self.groups_per_step)
        self.rounds = primary_steps // self.weights[0]
        if self.rounds == 0:
            raise ValueError(
                f"the primary corpus ({self.sizes[0]} rows) is smaller than one optimizer step of "
                f"{self.batch_size} x {self.groups_per_step} groups x {self.weights[0]} (ratio)"
            )
        for name, size in zip(self.names, self.sizes):
            if size == 0:
                raise ValueError(f"corpus {name!r} is empty")
        self._permutation_cache: dict[tuple[int, int], np.ndarray] = {}

    # -- schedule ------------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate / the Trainer before each epoch; changes the shuffling."""
        self.epoch = int(epoch)

    @property
    def num_steps(self) -> int:
        """Optimizer steps per epoch."""
        return self.rounds * len(self.pattern)

    def __len__(self) -> int:
        return self.num_steps * self.groups_per_step

    def step_corpus(self, step: int) -> str:
        """Name of the corpus of optimizer step ``step`` (within an epoch)."""
        return self.pattern[step % len(self.pattern)]

    def _occurrence(self, step: int, corpus: int) -> int:
        """How many steps of ``corpus`` precede ``step`` in this epoch."""
        full_rounds, offset = divmod(step, len(self.pattern))
        name = self.names[corpus]
        return full_rounds * self.weights[corpus] + self.pattern[:offset].count(name)

    def _permutation(self, corpus: int, cycle: int) -> np.ndarray:
        key = (corpus, cycle)
        if key not in self._permutation_cache:
            if len(self._permutation_cache) > 4:
                self._permutation_cache.clear()
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, corpus, cycle]))
            dtype = np.int32 if self.sizes[corpus] < 2**31 else np.int64
            self._permutation_cache[key] = rng.permutation(self.sizes[corpus]).astype(dtype)
        return self._permutation_cache[key]

    def _row_index(self, corpus: int, position: int) -> tuple[int, int]:
        """Row of the ``position``-th draw of ``corpus`` -> (row index, cycle)."""
        size = self.sizes[corpus]
        if corpus == 0:  # the primary corpus: one permutation per epoch
            cycle = self.epoch
        else:  # secondary corpora continue across epochs and restart with a new permutation when exhausted
            per_epoch = self.rounds * self.weights[corpus] * self.groups_per_step * self.batch_size
            position += self.epoch * per_epoch
            cycle = position // size
        return int(self._permutation(corpus, cycle)[position % size]), cycle

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        step, within = divmod(index, self.groups_per_step)
        name = self.step_corpus(step)
        corpus = self.names.index(name)
        group_number = self._occurrence(step, corpus) * self.groups_per_step + within
        rows, keys = [], []
        for j in range(self.batch_size):
            row_index, cycle = self._row_index(corpus, group_number * self.batch_size + j)
            rows.append(self.corpora[corpus][row_index])
            keys.append((corpus, cycle, row_index, self.epoch))
        # Reserves: random rows of the same corpus, drawn from the group's own RNG (deterministic).
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7919, corpus, self.epoch, index]))
        reserve_rows, reserve_keys = [], []
        for j in range(self.num_reserve):
            row_index = int(rng.integers(self.sizes[corpus]))
            reserve_rows.append(self.corpora[corpus][row_index])
            reserve_keys.append((corpus, 1_000_003 + j, row_index, self.epoch, index))
        return _group(name, self.kinds[corpus], step, zip(rows, keys), zip(reserve_rows, reserve_keys))


def _part_state(pass_number: int, position: int, dataset: Any) -> dict[str, Any]:
    return {"pass": pass_number, "position": position, "dataset": dataset.state_dict()}


def _env_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


class MixedCorpusBatchStream(torch.utils.data.IterableDataset):
    """Streaming counterpart of :class:`MixedCorpusBatchDataset` for 🤗 ``IterableDataset`` corpora: the same kind of
    groups, one corpus per optimiser step, and every process and DataLoader worker reads only its own part.

    Schedule. Output ``n`` of a rank (DataLoader order: with ``W`` workers, worker ``n % W`` makes it) is the group of
    micro-step ``n``: corpus ``pattern[(n // gradient_accumulation_steps) % len(pattern)]`` (by ``ratio``), the same
    on every rank, so an optimiser step never mixes corpora.

    Parts. The ``k`` workers that make the groups of a corpus (:meth:`reader_roles`: with two corpora alternating and
    two workers, worker 0 makes every transcript group and worker 1 every caption group) split it: reader ``j`` of
    rank ``r`` reads part ``r * k + j`` of ``world_size * k``, by ``datasets.distributed.split_dataset_by_node``,
    which gives it whole shards when the corpus has a multiple of ``world_size * k`` shards (files of a
    Hub/parquet/WebDataset corpus, ``to_iterable_dataset(num_shards=...)`` of a saved one) and otherwise every
    ``world_size * k``-th row (each part then reads every row and keeps its own). Reserve rows (replacements for
    samples that fail) come from the same part. The DataLoader must not be sharded again (no accelerate
    ``IterableDatasetShard``; ``TVTSv2Trainer`` builds a plain DataLoader for this class, see
    :attr:`reads_its_own_part`).

    Passes. A part that is exhausted starts again, the next *pass* (``set_epoch(pass)`` on the streamed dataset: a
    shuffled one gets a new shard order and buffer seed): the stream is endless and the length of training is
    ``max_steps``. When all parts of the primary corpus hold the same number of rows (and its readers make the same
    number of its groups, true for the usual schedules), a pass of every part is one epoch, in which every row of
    the corpus is read exactly once across ranks and workers; otherwise a part that is read faster starts its next
    pass earlier.

    Resume. Each group carries, under :data:`STREAM_STATE_KEY`, its output index and where its worker's parts stood
    after it (``IterableDataset.state_dict()`` per corpus, with the pass and position); the collator passes it on
    with the batch. ``TVTSv2Trainer`` keeps the state of the last batch it consumed from each worker and writes it
    into every checkpoint (``stream_state-rank{r}.json``); :meth:`load_state_dict` with it continues with the next
    group each worker would have made. This is exact (the same rows in the same order, so the same weights) for
    unshuffled streams; datasets does not save the content of a shuffle buffer (``shuffle(buffer_size=...)``), so
    after resuming a shuffled stream the rows that were in the buffers are not read in that pass. Resuming needs the
    same ``world_size``, number of DataLoader workers, batch size and corpora.
    """

    #: The stream splits itself over ranks and workers: a DataLoader over it must not shard it again.
    reads_its_own_part = True

    def __init__(
        self,
        corpora: Mapping[str, Any] | Sequence[Any],
        batch_size: int,
        *,
        ratio: Mapping[str, int] | Sequence[int] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        gradient_accumulation_steps: int = 1,
        num_reserve: int = 1,
        seed: int = 0,
        kinds: Sequence[CorpusKind] | None = None,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        _init_mixing(self, corpora, batch_size, ratio, world_size, gradient_accumulation_steps, num_reserve, seed)
        self.rank = _env_rank() if rank is None else rank
        self.kinds = list(kinds) if kinds is not None else [corpus_kind(c) for c in self.corpora]
        self._resume: dict[str, Any] = {}

    def set_epoch(self, epoch: int) -> None:
        """Kept for the Trainer's API: passes are counted per part (see the class docstring)."""
        self.epoch = int(epoch)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue after the groups recorded in ``state`` (see :meth:`checkpoint_state`)."""
        if state.get("world_size") != self.world_size or state.get("batch_size") != self.batch_size:
            raise ValueError(
                f"the stream state was saved with world_size={state.get('world_size')} and batch_size="
                f"{state.get('batch_size')}; this run has {self.world_size} and {self.batch_size}"
            )
        self._resume = dict(state)

    def checkpoint_state(self, group_states: Mapping[int, Mapping[str, Any]], num_workers: int) -> dict[str, Any]:
        """The state to save from the :data:`STREAM_STATE_KEY` entries of the last consumed group of each worker
        role (``{role: entry}``)."""
        consumed = max((entry["index"] + 1 for entry in group_states.values()), default=0)
        return {
            "consumed": consumed,
            "num_workers": max(1, num_workers),
            "world_size": self.world_size,
            "rank": self.rank,
            "batch_size": self.batch_size,
            "roles": {str(role): entry["corpora"] for role, entry in group_states.items()},
        }

    def reader_roles(self, name: str, num_workers: int) -> list[int]:
        """The workers (``output index % num_workers``) that make the groups of corpus ``name``."""
        ga, pattern = self.gradient_accumulation_steps, self.pattern
        period = len(pattern) * ga * num_workers
        return sorted({n % num_workers for n in range(period) if pattern[(n // ga) % len(pattern)] == name})

    def _rows(self, corpus: int, part: int, num_parts: int, start: Mapping[str, Any] | None):
        """Endless ``(row, key, state)`` of one corpus's part; ``state()`` is where the part stands after the row."""
        pass_number, position = (start["pass"], start["position"]) if start else (0, 0)
        dataset_state = start["dataset"] if start else None
        while True:
            dataset = split_dataset_by_node(self.corpora[corpus], rank=part, world_size=num_parts)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(pass_number)
            if dataset_state is not None:
                dataset.load_state_dict(dataset_state)
            found = False
            # `.iter()` reads this part only; iterating the dataset itself in a DataLoader worker would split it
            # over the workers once more.
            for batch in dataset.iter(batch_size=1):
                found = True
                row = {column: values[0] for column, values in batch.items()}
                position += 1
                state = partial(_part_state, pass_number, position, dataset)
                yield row, (corpus, pass_number, part, position - 1), state
            if not found and dataset_state is None:
                raise ValueError(f"corpus {self.names[corpus]!r} has no rows for part {part} of {num_parts}")
            pass_number, position, dataset_state = pass_number + 1, 0, None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        resume = self._resume
        if resume and resume.get("num_workers") != num_workers:
            raise ValueError(
                f"the stream state was saved with {resume.get('num_workers')} DataLoader workers per process; this "
                f"run has {num_workers} (set --dataloader_num_workers to the saved value to resume)"
            )
        consumed = resume.get("consumed", 0)
        role = (consumed + worker) % num_workers  # the worker that made output `consumed + worker` before
        saved = resume.get("roles", {}).get(str(role), {})
        streams = []
        for i, name in enumerate(self.names):
            readers = self.reader_roles(name, num_workers)
            if role not in readers:
                streams.append(None)  # this worker never makes a group of this corpus
                continue
            part, num_parts = self.rank * len(readers) + readers.index(role), self.world_size * len(readers)
            streams.append(self._rows(i, part, num_parts, saved.get(name)))
        latest = {name: saved.get(name) for name in self.names}
        for index in itertools.count(consumed + worker, num_workers):
            step = index // self.gradient_accumulation_steps
            name = self.pattern[step % len(self.pattern)]
            corpus = self.names.index(name)
            taken = [next(streams[corpus]) for _ in range(self.batch_size + self.num_reserve)]
            latest[name] = taken[-1][2]()
            entries = [(row, key) for row, key, _ in taken]
            group = _group(name, self.kinds[corpus], step, entries[: self.batch_size], entries[self.batch_size :])
            group[STREAM_STATE_KEY] = {"index": index, "role": role, "corpora": dict(latest)}
            yield group


def iter_collated(dataset: Iterable[Any], collator: Callable[[list[Any]], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Collate each group of ``dataset`` on its own (a small helper for scripts and tests)."""
    for group in dataset:
        yield collator([group])


def unpack_groups(features: Sequence[Mapping[str, Any]]) -> tuple[CorpusKind, list, list] | None:
    """``(kind, [(row, key)], [(row, key)] reserves)`` of a list of groups, merged; ``None`` for plain rows.

    Raises:
        ValueError: groups mixed with plain rows, or groups of different corpus kinds.
    """
    if not features[0].get(GROUP_FLAG):
        return None
    entries, reserves, kinds = [], [], set()
    for group in features:
        if not group.get(GROUP_FLAG):
            raise ValueError("cannot mix groups and plain rows in one batch")
        kinds.add(group["kind"])
        entries.extend(zip(group["rows"], group["keys"]))
        reserves.extend(zip(group["reserve_rows"], group["reserve_keys"]))
    if len(kinds) != 1:
        raise ValueError(f"groups of different corpus kinds in one batch: {sorted(kinds)}")
    return kinds.pop(), entries, reserves
