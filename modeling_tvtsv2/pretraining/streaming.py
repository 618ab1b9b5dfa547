"""`--streaming`: pre-training on 🤗 `IterableDataset` corpora, each process and DataLoader worker reading a part.

* `StreamingDataMixin` (for `TVTSv2Trainer`): a plain DataLoader over a `MixedCorpusBatchStream` (the stream splits
  itself over ranks and workers with `split_dataset_by_node`; accelerate must not shard it again), the stream
  position of the last batch consumed from each worker, written into every checkpoint as
  `stream_state-rank{r}.json`;
* `load_stream_state`: that file, for `MixedCorpusBatchStream.load_state_dict` when a run resumes;
* `streamed_corpus`: a saved corpus as an `IterableDataset` with as many equal shards as the run has parts
  (processes x DataLoader workers), so that every part reads whole shards; `shuffled`: the shuffle with a buffer.

What is exact and what is not is written in `modeling_tvtsv2.data.corpus_mixing.MixedCorpusBatchStream`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..data.corpus_mixing import STREAM_STATE_KEY

logger = logging.get_logger(__name__)

__all__ = ["StreamingDataMixin", "load_stream_state", "shuffled", "stream_state_file", "streamed_corpus"]

# Shards per part of a saved corpus made streamable: more shards give the shard-order shuffle more to shuffle.
_SHARDS_PER_PART = 8


def stream_state_file(checkpoint: str | os.PathLike[str], rank: int) -> Path:
    """Where a checkpoint holds the stream position of process `rank`."""
    return Path(checkpoint) / f"stream_state-rank{rank}.json"


def load_stream_state(checkpoint: str | os.PathLike[str], rank: int) -> dict[str, Any] | None:
    """The stream position process `rank` saved in `checkpoint`, or None (a checkpoint of a run without streaming)."""
    path = stream_state_file(checkpoint, rank)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def streamed_corpus(dataset: Any, num_parts: int) -> Any:
    """A map-style corpus as an `IterableDataset` whose shards divide evenly over `num_parts` readers (an
    `IterableDataset` is returned as it is)."""
    from datasets import IterableDataset

    if isinstance(dataset, IterableDataset):
        return dataset
    rows = len(dataset)
    shards = num_parts * max(1, min(_SHARDS_PER_PART, rows // max(1, num_parts))) if rows >= num_parts else 1
    # A transform set with `with_transform` (a saved corpus's relative video paths resolved against its folder)
    # cannot be converted by datasets: it is applied to the stream as a batched map instead.
    transform = dataset.format["format_kwargs"].get("transform") if dataset.format["type"] == "custom" else None
    if transform is None:
        return dataset.to_iterable_dataset(num_shards=shards)
    stream = dataset.with_format(None).to_iterable_dataset(num_shards=shards)
    return stream.map(transform, batched=True, features=dataset.features)  # same columns and types


def shuffled(dataset: Any, seed: int, buffer_size: int) -> Any:
    """The stream shuffled (shard order + a buffer of `buffer_size` rows, reseeded every pass); as it is for 0."""
    return dataset.shuffle(seed=seed, buffer_size=buffer_size) if buffer_size > 0 else dataset


class StreamingDataMixin:
    """For `TVTSv2Trainer`: a train dataset with `reads_its_own_part` (a `MixedCorpusBatchStream`) gets a plain
    DataLoader, and its position goes into every checkpoint."""

    def get_train_dataloader(self):
        dataset = self.train_dataset
        if not getattr(dataset, "reads_its_own_part", False):
            return super().get_train_dataloader()
        args = self.args
        workers = args.dataloader_num_workers
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=1,  # each item is a whole per-device batch (a group)
            collate_fn=self.data_collator,
            num_workers=workers,
            pin_memory=args.dataloader_pin_memory,
            prefetch_factor=args.dataloader_prefetch_factor if workers else None,
            multiprocessing_context=args.dataloader_multiprocessing_context if workers else None,
        )

    def record_stream_positions(self, batches: list[Any]) -> None:
        """Remember where each worker's stream stood after the batches the training step consumed."""
        positions = self.__dict__.setdefault("_stream_positions", {})
        for batch in batches:
            state = batch.pop(STREAM_STATE_KEY, None) if isinstance(batch, dict) else None
            if state is not None:
                positions[state["role"]] = state

    def _save_checkpoint(self, model, trial):
        # Written before the Trainer's files: `trainer_state.json`, written last, marks a complete checkpoint.
        positions = self.__dict__.get("_stream_positions")
        dataset = self.train_dataset
        if positions and hasattr(dataset, "checkpoint_state"):
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            state = dataset.checkpoint_state(positions, self.args.dataloader_num_workers)
            stream_state_file(folder, self.args.process_index).write_text(json.dumps(state), encoding="utf-8")
        return super()._save_checkpoint(model, trial)
