"""Mixing corpora: one corpus per optimiser step (the original's YT-Temporal / WebVid alternation).

With ``transformers.Trainer``: :class:`MixedCorpusBatchDataset` is a map-style dataset whose *items are whole
per-device batches* (a "group" of rows from one corpus). `TVTSv2Trainer` loads one item per DataLoader batch, in
order (`per_device_train_batch_size` keeps its meaning: videos per device); with a plain `Trainer` use::

    TrainingArguments(per_device_train_batch_size=1, train_sampling_strategy="sequential",
                      remove_unused_columns=False, ...)

Item ``i`` belongs to optimizer step ``i // (world_size * gradient_accumulation_steps)``. accelerate's
``BatchSamplerShard`` gives rank ``r`` the items ``r, r + world_size, ...``, so on every optimizer step all ranks
read different rows of the *same* corpus (the global batch is homogeneous, as in the original) and the schedule of
corpora follows ``ratio`` (default 1:1, i.e. YT, WebVid, YT, ...). Resuming skips items through the batch
sampler without loading them. Shuffling comes from per-epoch permutations seeded by ``(seed, corpus, epoch)``;
the Trainer calls ``set_epoch`` (through accelerate) before each epoch. Do not use persistent DataLoader workers:
they would keep the previous epoch.

:class:`MixedCorpusBatchStream` does the same for streaming (🤗 ``IterableDataset``) corpora. In a multi-process
run it needs ``TrainingArguments(accelerator_config={"dispatch_batches": False})`` (each rank reads and decodes
its own batches); it orders its output so that accelerate's ``IterableDatasetShard`` and the DataLoader workers
give every rank the same corpus at every step.

A group is a dict marked with :data:`GROUP_FLAG`: ``corpus``, ``kind``, ``step``, ``rows``/``keys`` (the batch)
and ``reserve_rows``/``reserve_keys`` (replacements for samples that fail); :func:`unpack_groups` reads groups back.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .schema import CorpusKind, corpus_kind

__all__ = [
    "GROUP_FLAG",
    "MixedCorpusBatchDataset",
    "MixedCorpusBatchStream",
    "is_pre_batched",
    "iter_collated",
    "unpack_groups",
]

#: Marks a dict as a group of rows (not a corpus row).
GROUP_FLAG = "__tvtsv2_group__"


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


def _iterate_rows(dataset: Any, chunk: int = 64) -> Iterator[dict[str, Any]]:
    """All rows of ``dataset``, also inside a DataLoader worker.

    A 🤗 ``IterableDataset`` iterated with ``for`` in a DataLoader worker yields only that worker's shards; its
    public ``.iter(batch_size)`` does not, and gives the same rows in the same order.
    """
    from datasets import IterableDataset as HFIterableDataset

    if isinstance(dataset, HFIterableDataset):
        for batch in dataset.iter(batch_size=chunk):
            columns = list(batch)
            for i in range(len(batch[columns[0]]) if columns else 0):
                yield {column: batch[column][i] for column in columns}
    else:
        yield from dataset


class MixedCorpusBatchStream(torch.utils.data.IterableDataset):
    """Streaming counterpart of :class:`MixedCorpusBatchDataset` for 🤗 ``IterableDataset`` corpora.

    Yields the same kind of groups. An epoch ends when the primary (first) stream is exhausted; the other streams
    restart when exhausted. Shuffle the streams yourself (``ds.shuffle(seed=..., buffer_size=...)``);
    ``set_epoch`` is forwarded to them so that the shuffle changes every epoch and every restart.

    Layout. The output is a sequence of *blocks*, one per per-rank micro-step ``n``: ``world_size`` consecutive
    groups from the corpus of optimizer step ``n // gradient_accumulation_steps`` (by ``ratio``), group ``r`` for
    rank ``r``. accelerate's ``IterableDatasetShard`` (``dispatch_batches=False``) hands position ``r`` of every
    block to rank ``r``, so all ranks train on the same corpus at every step, on different rows.

    DataLoader workers: worker ``w`` of ``W`` emits the blocks ``n = w, w + W, ...`` and the DataLoader's
    round-robin over workers restores the order ``n = 0, 1, 2, ...``. To know which rows belong to which block,
    every worker (and every rank) reads the whole streams and drops the rows of other blocks: reading costs
    ``W x world_size`` times the data, decoding (the expensive part, in the collator) is not repeated.
    """

    def __init__(
        self,
        corpora: Mapping[str, Any] | Sequence[Any],
        batch_size: int,
        *,
        ratio: Mapping[str, int] | Sequence[int] | None = None,
        world_size: int | None = None,
        gradient_accumulation_steps: int = 1,
        num_reserve: int = 1,
        seed: int = 0,
        kinds: Sequence[CorpusKind] | None = None,
    ):
        _init_mixing(self, corpora, batch_size, ratio, world_size, gradient_accumulation_steps, num_reserve, seed)
        self.kinds = list(kinds) if kinds is not None else [corpus_kind(c) for c in self.corpora]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _stream(self, corpus: int) -> Iterator[tuple[dict[str, Any], tuple[int, ...]]]:
        """Rows of one corpus with their keys; secondary corpora restart forever."""
        dataset = self.corpora[corpus]
        cycle = 0
        while True:
            if hasattr(dataset, "set_epoch"):
                # a distinct shuffle per epoch and per restart, the same on every rank and worker
                dataset.set_epoch(self.epoch * 1000 + cycle)
            position = -1
            for position, row in enumerate(_iterate_rows(dataset)):
                yield row, (corpus, self.epoch, cycle, position)
            if corpus == 0 or position < 0:
                return
            cycle += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        streams = [self._stream(i) for i in range(len(self.corpora))]
        group_size = self.batch_size + self.num_reserve
        for micro_step in itertools.count():
            step = micro_step // self.gradient_accumulation_steps
            name = self.pattern[step % len(self.pattern)]
            corpus = self.names.index(name)
            # Read the whole block first: an incomplete block ends the epoch (on every rank and worker alike).
            block = []
            for _ in range(self.world_size * group_size):
                try:
                    block.append(next(streams[corpus]))
                except StopIteration:
                    return
            if micro_step % num_workers != worker:
                continue  # another worker's block: its rows were read only to stay in step
            for rank in range(self.world_size):
                taken = block[rank * group_size : (rank + 1) * group_size]
                rows, reserves = taken[: self.batch_size], taken[self.batch_size :]
                yield _group(name, self.kinds[corpus], step, rows, reserves)


def is_pre_batched(dataset: Any) -> bool:
    """Whether the dataset's items are whole per-device batches (the mixers here mark themselves with
    `groups_per_step`; a DataLoader over them loads one item per batch)."""
    return getattr(dataset, "groups_per_step", None) is not None


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
