"""What `TVTSv2Trainer` watches while training: the two loss terms, skipped samples (and when to give up), videos
trained, and the time each step waits for data."""

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import TrainerCallback

# Batch key under which `SkipReasonsCollator` passes the per-reason skip counts of one batch to the trainer.
SKIP_REASONS_KEY = "skip_reasons"
# Recent batches over which `max_skip_fraction` is checked.
SKIP_WINDOW_BATCHES = 50


class TooManySkippedSamplesError(RuntimeError):
    """Most recent samples could not be used: the corpus (or its videos) is unusable, training stops."""


class SkipReasonsCollator:
    """Wraps a collator with a `skip_counter` (`TVTSv2PretrainingCollator`) and adds to each batch the per-reason
    counts of the samples it skipped. It runs where the collator runs (DataLoader workers keep their own counters),
    so the reasons reach the trainer with the batch."""

    def __init__(self, collator: Callable[[Any], dict[str, Any]]):
        self.collator = collator

    def __getattr__(self, name: str) -> Any:  # the wrapped collator's attributes (skip_counter, tokenizer, ...)
        if name == "collator":
            raise AttributeError(name)
        return getattr(self.collator, name)

    def __call__(self, features):
        before = Counter(self.collator.skip_counter.as_dict())
        batch = self.collator(features)
        after = Counter(self.collator.skip_counter.as_dict())
        if isinstance(batch, dict):
            batch[SKIP_REASONS_KEY] = dict(after - before)
        return batch


class TrainingMonitor:
    """Per-logging-interval statistics and the skipped-sample guard (one per trainer, identical on every rank for
    the quantities that are reduced across processes)."""

    def __init__(self, max_skip_fraction: float = 0.5, window: int = SKIP_WINDOW_BATCHES):
        self.max_skip_fraction = max_skip_fraction
        self.loss_sums = {"contrastive_loss": 0.0, "sort_loss": 0.0}
        self.loss_counts = {"contrastive_loss": 0, "sort_loss": 0}
        self.recent = deque(maxlen=window)  # (skipped, attempted) per batch, summed over processes
        self.reasons: Counter[str] = Counter()  # this process's skip reasons since the start
        self.skipped_since_log = 0
        self.skipped_total = 0
        self.videos_trained = 0  # over every process, this `train()` call
        self.data_wait = 0.0
        self.step_time = 0.0
        self.timed_steps = 0
        self._fetch_started: float | None = None

    # -- losses ---------------------------------------------------------------------------------------------
    def track_loss(self, name: str, value: torch.Tensor) -> None:
        self.loss_sums[name] += float(value.detach())
        self.loss_counts[name] += 1

    # -- skipped samples ------------------------------------------------------------------------------------
    def record_reasons(self, reasons: Mapping[str, int] | None) -> None:
        if reasons:
            self.reasons.update({k: int(v) for k, v in reasons.items()})

    def record_batch(self, skipped: int, used: int) -> None:
        """Counts of one training batch, summed over processes."""
        self.skipped_since_log += skipped
        self.skipped_total += skipped
        self.videos_trained += used
        self.recent.append((skipped, skipped + used))

    def skip_fraction(self) -> tuple[int, int, float]:
        skipped = sum(s for s, _ in self.recent)
        attempted = sum(a for _, a in self.recent)
        return skipped, attempted, (skipped / attempted if attempted else 0.0)

    def too_many_skipped(self) -> bool:
        skipped, attempted, fraction = self.skip_fraction()
        return attempted > 0 and fraction > self.max_skip_fraction

    def skip_error(self, reasons: Mapping[str, int]) -> TooManySkippedSamplesError:
        skipped, attempted, fraction = self.skip_fraction()
        why = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items(), key=lambda x: -x[1]))
        return TooManySkippedSamplesError(
            f"{skipped} of the {attempted} samples of the last {len(self.recent)} batches were skipped "
            f"({fraction:.0%} > max_skip_fraction={self.max_skip_fraction:g}); reasons since the start: "
            f"{why or 'unknown (the collator keeps no skip_counter)'}. Check that the corpus' videos exist and "
            "decode (the warnings above name the first samples), or raise --max_skip_fraction."
        )

    # -- timing ---------------------------------------------------------------------------------------------
    def fetch_started(self) -> None:
        self._fetch_started = time.perf_counter()

    def fetch_finished(self) -> None:
        if self._fetch_started is not None:
            self.data_wait += time.perf_counter() - self._fetch_started

    def step_finished(self) -> None:
        if self._fetch_started is not None:
            self.step_time += time.perf_counter() - self._fetch_started
            self.timed_steps += 1
            self._fetch_started = None

    # -- logging --------------------------------------------------------------------------------------------
    def drain(self) -> dict[str, float]:
        """The training-log entries of the interval since the last call (and reset them)."""
        logs: dict[str, float] = {}
        for name in self.loss_sums:
            if self.loss_counts[name]:
                logs[name] = round(self.loss_sums[name] / self.loss_counts[name], 4)
            self.loss_sums[name], self.loss_counts[name] = 0.0, 0
        logs["skipped_samples"] = self.skipped_since_log
        self.skipped_since_log = 0
        if self.timed_steps:
            logs["step_time_s"] = round(self.step_time / self.timed_steps, 4)
            logs["data_wait_s"] = round(self.data_wait / self.timed_steps, 4)
            logs["data_wait_fraction"] = round(self.data_wait / max(self.step_time, 1e-12), 4)
        self.data_wait = self.step_time = 0.0
        self.timed_steps = 0
        return logs


class StepTimerCallback(TrainerCallback):
    """Ends the timing of an optimiser step (it starts when the trainer begins fetching the step's batches); counts
    videos per `train()` call."""

    def __init__(self, monitor: TrainingMonitor):
        self.monitor = monitor

    def on_train_begin(self, args, state, control, **kwargs):
        self.monitor.videos_trained = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.monitor.step_finished()
