"""`TVTSv2Trainer`'s evaluation through `Trainer.evaluate()` / `predict()`: `prediction_step` returns the per-sample
outputs, Trainer's `evaluation_loop` gathers them over the processes (with `eval_accumulation_steps`), and the sort
accuracy and zero-shot retrieval are computed from the gathered predictions, then `compute_metrics`; batches whose
samples were all skipped are counted."""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import EvalPrediction
from transformers.trainer_utils import EvalLoopOutput
from transformers.utils import logging

from ..data.corpus_mixing import is_pre_batched
from .monitoring import SKIP_REASONS_KEY, SkipReasonsCollator

logger = logging.get_logger(__name__)


def pretraining_metrics(
    video_embeds: np.ndarray,
    text_embeds: np.ndarray,
    sort_logits: np.ndarray | None = None,
    sort_labels: np.ndarray | None = None,
) -> dict[str, float]:
    """Unprefixed metrics of the gathered valid samples: zero-shot retrieval both ways (R@1/5/10, median rank) on
    the cosine similarities and, with a sort head, the transcript-sort accuracy (per transcript, whole order)."""
    from ..evaluation.metrics import retrieval_metrics, sort_accuracy

    if len(video_embeds) == 0:
        return {}
    video = F.normalize(torch.from_numpy(np.asarray(video_embeds, dtype=np.float32)), dim=-1)
    text = F.normalize(torch.from_numpy(np.asarray(text_embeds, dtype=np.float32)), dim=-1)
    metrics = {"num_videos": float(video.shape[0])}
    retrieval = retrieval_metrics((text @ video.t()).numpy())
    for direction in ("t2v", "v2t"):
        for key in ("R1", "R5", "R10", "MedR"):
            metrics[f"{direction}_{key}"] = float(retrieval[direction][key])
    if sort_logits is not None and sort_labels is not None:
        accuracy = sort_accuracy(np.asarray(sort_logits), np.asarray(sort_labels))
        metrics["sort_accuracy"] = accuracy["sort_accuracy"]
        metrics["sort_exact_match"] = accuracy["sort_exact_match"]
    return metrics


class PretrainingEvaluationMixin:
    """Trainer's `evaluate()` / `predict()` for a `transformers.Trainer` whose `compute_loss` returns outputs with
    `valid` (per-sample mask) and `sort_labels` (see `TVTSv2Trainer`).

    `predictions` are `(video_embeds, text_embeds[, sort_logits])` and `label_ids` the sort labels (or `None` without
    a sort head), per valid sample, as NumPy arrays: what `compute_metrics` receives in its `EvalPrediction` and what
    `predict()` returns. The metrics are `{prefix}_loss`, the retrieval and sort metrics, `{prefix}_num_videos`,
    `{prefix}_skipped_samples` and `{prefix}_empty_batches`, then `compute_metrics`'s, with Trainer's speed metrics
    (samples = videos), logging and `on_evaluate` callbacks.
    """

    compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        dataset = self.eval_dataset[dataset] if isinstance(dataset, str) else dataset
        trainer_loader = super().get_eval_dataloader
        return self._held_out_dataloader(lambda: trainer_loader(eval_dataset), dataset, "Evaluation")

    def get_test_dataloader(self, test_dataset):
        trainer_loader = super().get_test_dataloader
        return self._held_out_dataloader(lambda: trainer_loader(test_dataset), test_dataset, "test")

    def _held_out_dataloader(self, build: Callable[[], Any], dataset: Any, description: str):
        """Trainer's evaluation/test DataLoader with the evaluation collator (deterministic, no mask); one item per
        batch when the items are pre-built batches, as in training."""
        train_collator = self.data_collator
        if self.eval_data_collator is not None:
            self.data_collator = (
                SkipReasonsCollator(self.eval_data_collator)
                if hasattr(self.eval_data_collator, "skip_counter")
                else self.eval_data_collator
            )
        try:
            if is_pre_batched(dataset):
                return self._get_dataloader(dataset, description, 1, sampler_fn=self._get_eval_sampler)
            return build()
        finally:
            self.data_collator = train_collator

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """`(loss, (video_embeds, text_embeds[, sort_logits]), sort_labels)` of the batch's valid samples (always the
        embeddings: the TVTSv2 metrics need them even without `compute_metrics`)."""
        inputs = self._prepare_inputs(inputs)
        inputs.pop(SKIP_REASONS_KEY, None)
        num_skipped = inputs.pop("num_skipped", None)
        self._eval_counts[0] += 0 if num_skipped is None else int(num_skipped.sum())
        self._eval_counts[1] += int(inputs["pixel_values_videos"].shape[0] == 0)
        with torch.no_grad():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        valid = outputs.valid
        predictions = (outputs.video_embeds.float()[valid], outputs.text_embeds.float()[valid])
        labels = None
        if outputs.sort_logits is not None:
            predictions = (*predictions, outputs.sort_logits.float()[valid])
            labels = outputs.sort_labels[valid]
        return loss.detach(), predictions, labels

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ) -> EvalLoopOutput:
        # Trainer's loop gathers the predictions; compute_metrics runs after the TVTSv2 metrics, on the same ones.
        compute_metrics, self.compute_metrics = self.compute_metrics, None
        self._eval_counts = [0, 0]
        try:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only=False, ignore_keys=ignore_keys,
                metric_key_prefix=metric_key_prefix,
            )  # fmt: skip
        finally:
            self.compute_metrics = compute_metrics
        counts = torch.tensor(self._eval_counts, device=self.args.device)
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        skipped, empty = int(counts[0]), int(counts[1])
        if empty:
            logger.warning("evaluation: %d batches had every sample skipped", empty)
        predictions, labels = output.predictions, output.label_ids
        if predictions is None:  # no batch at all
            predictions, labels = (np.zeros((0, 0), np.float32),) * 2, None
        metrics = pretraining_metrics(*predictions[:2], *(predictions[2:3] or [None]), labels)
        metrics.update(skipped_samples=skipped, empty_batches=empty)
        if compute_metrics is not None and len(predictions[0]):
            metrics.update(compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels)))
        all_metrics = dict(output.metrics)
        for key, value in metrics.items():
            all_metrics[key if key.startswith(f"{metric_key_prefix}_") else f"{metric_key_prefix}_{key}"] = value
        return EvalLoopOutput(
            predictions=predictions, label_ids=labels, metrics=all_metrics, num_samples=len(predictions[0])
        )
