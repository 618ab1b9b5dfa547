"""Skipped samples: the exception a sample builder raises, the per-reason counter, the empty-batch marker.

A sample is skipped (never crashing the run) when its video cannot be decoded (``"decode_error"``), when no span
with words in every window can be drawn (``"no_words"``) or when a caption is empty (``"empty_caption"``). The
collator

* logs each skip (the first ``SkipCounter.log_first`` per reason at WARNING, then every ``log_every``-th),
* keeps cumulative per-reason counts in :attr:`TVTSv2PretrainingCollator.skip_counter` (per process: with
  DataLoader workers every worker holds its own copy, which is why the batch also carries the count),
* puts ``num_skipped`` (``int64`` tensor of shape ``[1]``) into every batch: the number of samples skipped while
  building *this* batch. A trainer pops it before the forward pass and sums it (across ranks) for logging.

Replacements: a group produced by :class:`~modeling_tvtsv2.data.corpus_mixing.MixedCorpusBatchDataset` carries a
few *reserve* rows from the same corpus; failed samples are replaced by reserves so that the batch keeps its size.
Without reserves (plain row batches) the batch shrinks. If every sample fails, the collator returns an **empty
batch**: the same keys, every tensor with batch dimension 0 (``batch["pixel_values_videos"].shape[0] == 0``); use
:func:`is_empty_batch`. Under DDP a trainer must still take part in the collective operations for such a step
(e.g. run a zero loss), or all ranks must agree to skip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = ["SampleSkipped", "SkipCounter", "is_empty_batch"]


class SampleSkipped(Exception):
    """A sample cannot be built; ``reason`` is a short counter key (``"no_words"``, ``"decode_error"``, ...)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail



class SkipCounter:
    """Counts skipped samples per reason and logs them without flooding the log.

    The first ``log_first`` skips of each reason are logged at WARNING with the sample and the cause, then every
    ``log_every``-th with the running count.
    """

    def __init__(self, log_first: int = 10, log_every: int = 100):
        self.counts: Counter[str] = Counter()
        self.log_first = log_first
        self.log_every = log_every

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(self, reason: str, sample: str = "", detail: str = "") -> None:
        self.counts[reason] += 1
        count = self.counts[reason]
        if count <= self.log_first or count % self.log_every == 0:
            logger.warning(
                "skipped sample %s (%s, %d so far in this process)%s",
                sample or "?",
                reason,
                count,
                f": {detail}" if detail else "",
            )

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


def is_empty_batch(batch: Mapping[str, Any]) -> bool:
    """True for the collator's empty-batch marker (every sample of the batch was skipped)."""
    pixels = batch.get("pixel_values_videos")
    return pixels is None or pixels.shape[0] == 0
