"""Evaluation metrics of `TVTSv2Trainer.evaluate`: sort accuracy and zero-shot retrieval over gathered embeddings."""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import EvalPrediction


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
        from .metrics import retrieval_metrics, sort_accuracy

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
