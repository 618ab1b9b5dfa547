"""`TVTSv2Trainer`'s evaluation: sort accuracy and zero-shot retrieval over the embeddings gathered from every
process, speed metrics, `compute_metrics`, and batches whose samples were all skipped."""

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import EvalPrediction
from transformers.trainer_utils import speed_metrics
from transformers.utils import logging

from .monitoring import SKIP_REASONS_KEY, SkipReasonsCollator

logger = logging.get_logger(__name__)


class PretrainingEvalAccumulator:
    """Collects the (already gathered, valid-only) per-sample outputs of every evaluation batch."""

    def __init__(self):
        self.videos: list[torch.Tensor] = []
        self.texts: list[torch.Tensor] = []
        self.sort_logits: list[torch.Tensor] = []
        self.sort_labels: list[torch.Tensor] = []
        self.losses: list[float] = []
        self.batches = 0
        self.empty_batches = 0  # per-process batches whose samples were all skipped, summed over processes
        self.skipped_samples = 0

    def add(
        self,
        loss: float | None,
        video_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        sort_logits: torch.Tensor | None = None,
        sort_labels: torch.Tensor | None = None,
    ) -> None:
        self.batches += 1
        if video_embeds.shape[0] == 0:  # every process's samples were skipped
            return
        if loss is not None:
            self.losses.append(loss)
        self.videos.append(video_embeds)
        self.texts.append(text_embeds)
        if sort_logits is not None:
            self.sort_logits.append(sort_logits)
            self.sort_labels.append(sort_labels)

    @property
    def num_videos(self) -> int:
        return sum(v.shape[0] for v in self.videos)

    def metrics(self, compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None) -> dict[str, Any]:
        """Unprefixed metrics. `compute_metrics` (the Trainer's argument) receives `EvalPrediction(predictions=
        (video_embeds, text_embeds[, sort_logits]), label_ids=sort_labels or None)` as NumPy arrays."""
        from ..evaluation.metrics import retrieval_metrics, sort_accuracy

        metrics: dict[str, Any] = {}
        if self.losses:
            metrics["loss"] = float(np.mean(self.losses))
        metrics["skipped_samples"] = self.skipped_samples
        metrics["empty_batches"] = self.empty_batches
        if not self.num_videos:
            return metrics
        video = F.normalize(torch.cat(self.videos), dim=-1)
        text = F.normalize(torch.cat(self.texts), dim=-1)
        metrics["num_videos"] = float(video.shape[0])
        retrieval = retrieval_metrics((text @ video.t()).numpy())
        for direction in ("t2v", "v2t"):
            for key in ("R1", "R5", "R10", "MedR"):
                metrics[f"{direction}_{key}"] = float(retrieval[direction][key])
        logits = labels = None
        if self.sort_logits:
            logits, labels = torch.cat(self.sort_logits).numpy(), torch.cat(self.sort_labels).numpy()
            accuracy = sort_accuracy(logits, labels)
            metrics["sort_accuracy"] = accuracy["sort_accuracy"]
            metrics["sort_exact_match"] = accuracy["sort_exact_match"]
        if compute_metrics is not None:
            predictions = (torch.cat(self.videos).numpy(), torch.cat(self.texts).numpy())
            if logits is not None:
                predictions = (*predictions, logits)
            metrics.update(compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels)))
        return metrics


class PretrainingEvaluationMixin:
    """`evaluate()` and its data loader for a `transformers.Trainer` whose `compute_loss` returns outputs with
    `valid` (per-sample mask) and `sort_labels` (see `TVTSv2Trainer`)."""

    def get_eval_dataloader(self, eval_dataset=None):
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator = self.data_collator
        self.data_collator = (
            SkipReasonsCollator(self.eval_data_collator)
            if hasattr(self.eval_data_collator, "skip_counter")
            else self.eval_data_collator
        )
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def _gather_eval(self, tensor: torch.Tensor) -> torch.Tensor:
        """Per-sample tensors from every process, without the samples the distributed sampler duplicated to even
        out the last batch. A rank whose batch lost samples to decode errors is padded first (those rows are
        invalid); if that happens in the very last batch, the de-duplication may drop a few real samples."""
        tensor = self.accelerator.pad_across_processes(tensor, dim=0)
        return self.accelerator.gather_for_metrics(tensor).cpu()

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Sort accuracy and zero-shot retrieval on the held-out split (gathered over every process), the usual
        `{prefix}_runtime` / `_samples_per_second` (videos) / `_steps_per_second`, `compute_metrics` when given,
        and the counts of skipped samples and of batches whose samples were all skipped (these are left out)."""
        start_time = time.time()
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self._wrap_model(self.model, training=False, dataloader=dataloader)
        if len(self.accelerator._models) == 0 and model is self.model:
            model = self.accelerator.prepare_model(model, evaluation_mode=True)
        model.eval()
        accumulator = PretrainingEvalAccumulator()
        skipped = empty = 0
        with torch.no_grad():
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                batch.pop(SKIP_REASONS_KEY, None)
                num_skipped = batch.pop("num_skipped", None)
                skipped += 0 if num_skipped is None else int(num_skipped.sum())
                empty += int(batch["pixel_values_videos"].shape[0] == 0)
                loss, outputs = self.compute_loss(model, batch, return_outputs=True)
                gather = self._gather_eval
                valid = gather(outputs.valid.to(torch.uint8)).bool()
                sort = ()
                if outputs.sort_logits is not None:
                    sort = (gather(outputs.sort_logits.float())[valid], gather(outputs.sort_labels)[valid])
                accumulator.add(
                    float(loss) if valid.any() else None,
                    gather(outputs.video_embeds.float())[valid],
                    gather(outputs.text_embeds.float())[valid],
                    *sort,
                )
        counts = torch.tensor([skipped, empty], device=self.args.device)
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        accumulator.skipped_samples, accumulator.empty_batches = int(counts[0]), int(counts[1])
        if accumulator.empty_batches:
            logger.warning("evaluation: %d batches had every sample skipped", accumulator.empty_batches)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in accumulator.metrics(self.compute_metrics).items()}
        metrics.update(
            speed_metrics(
                metric_key_prefix, start_time, num_samples=accumulator.num_videos, num_steps=accumulator.batches
            )
        )
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics
