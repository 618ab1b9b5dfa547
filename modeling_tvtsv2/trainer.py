"""`TVTSv2Trainer`: the TVTSv2 pre-training recipe on top of `transformers.Trainer`.

* loss = contrastive loss over the **global** batch (features gathered from every process, gradients exact) +
  `sort_loss_weight` × transcript-sorting cross-entropy (local); both terms are logged separately;
* four optimiser groups: new parameters (time attention, its LayerNorm, sort head) at `learning_rate` (paper 1e-4)
  and CLIP-initialised ones at `clip_learning_rate` (paper 1e-7), each split into decay / no-decay (biases, norms);
* layer-freezing schedules (`modeling_tvtsv2.freezing`), applied so that DDP ranks stay consistent;
* the original step schedule (lr × 0.1 at 60 % and 80 % of training) as `lr_milestones`;
* evaluation: sort accuracy (per transcript, whole order) and zero-shot retrieval R@1/5/10, median rank;
* resuming continues the freezing schedule (a function of the global step), the data order and the RNG state.
"""

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from .distributed import distributed_world_size, gather_with_grad
from .freezing import NEW_PARAMETER_PATTERN, TEMPORAL_EMBEDDING_PATTERN, FreezeSchedule

logger = logging.getLogger(__name__)

# Batch keys that are bookkeeping, not model inputs.
_BOOKKEEPING_KEYS = ("num_skipped",)


@dataclass
class TVTSv2TrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the TVTSv2 recipe's knobs (defaults = the paper's B recipe)."""

    clip_learning_rate: float = field(
        default=1e-7, metadata={"help": "learning rate of CLIP-initialised parameters (new ones use learning_rate)"}
    )
    freeze_schedule: str = field(
        default="paper",
        metadata={"help": "layer-freezing schedule, e.g. 'paper', 'text_layers<9; backbone@0:500', or a .json recipe"},
    )
    lr_milestones: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated fractions (<1) or steps at which every lr is multiplied by lr_gamma, e.g. "
            "'0.6,0.8' for the original 10-epoch schedule; overrides lr_scheduler_type"
        },
    )
    lr_gamma: float = field(default=0.1, metadata={"help": "lr multiplier at each milestone"})
    temporal_embedding_lr: str = field(
        default="clip",
        metadata={
            "help": "'clip' (the original: temporal_embedding trains at clip_learning_rate, which defines the released "
            "weights) or 'new' (at learning_rate)"
        },
    )


def parameter_groups(
    model: nn.Module,
    learning_rate: float,
    clip_learning_rate: float,
    weight_decay: float,
    temporal_embedding_lr: str = "clip",
) -> list[dict[str, Any]]:
    """The recipe's optimiser groups over **all** parameters (frozen ones included, so that a schedule can unfreeze
    them later; AdamW skips parameters without gradients)."""
    groups = {key: [] for key in ("new_decay", "new_no_decay", "clip_decay", "clip_no_decay")}
    names = {key: [] for key in groups}
    for name, param in model.named_parameters():
        is_new = bool(NEW_PARAMETER_PATTERN.search(name)) or (
            temporal_embedding_lr == "new" and bool(TEMPORAL_EMBEDDING_PATTERN.search(name))
        )
        # Original no-decay test: names with "bias" or a norm ("norm", "ln_"); ours spell norms "*norm*"/"layrnorm".
        no_decay = "bias" in name or re.search(r"norm", name, re.IGNORECASE) is not None
        key = ("new" if is_new else "clip") + ("_no_decay" if no_decay else "_decay")
        groups[key].append(param)
        names[key].append(name)
    settings = {
        "new_decay": (learning_rate, weight_decay),
        "new_no_decay": (learning_rate, 0.0),
        "clip_decay": (clip_learning_rate, weight_decay),
        "clip_no_decay": (clip_learning_rate, 0.0),
    }
    return [
        {"params": groups[key], "lr": settings[key][0], "weight_decay": settings[key][1], "name": key,
         "param_names": names[key]}
        for key in groups
        if groups[key]
    ]


def _sort_labels(inputs: dict[str, Any], sort_logits: torch.Tensor) -> torch.Tensor:
    """The batch's `sort_labels`, or the chronological order `0..K-1` (the model's default)."""
    labels = inputs.get("sort_labels")
    if labels is None:
        labels = torch.arange(sort_logits.shape[1], device=sort_logits.device).expand(sort_logits.shape[0], -1)
    return labels.contiguous()


def parse_milestones(spec: str | None, max_steps: int) -> list[int]:
    if not spec:
        return []
    milestones = []
    for part in spec.split(","):
        value = float(part)
        milestones.append(int(round(value * max_steps)) if value < 1 else int(value))
    return sorted(milestones)


def check_schedule_supported(schedule: FreezeSchedule, fsdp: bool, deepspeed: bool) -> None:
    """FSDP and DeepSpeed fix their parameter groups (flat parameters / ZeRO partitions) when they wrap the model:
    only schedules that never change can be applied (before wrapping). Raise for the others."""
    if schedule.changes_over_training and (fsdp or deepspeed):
        backend = "FSDP" if fsdp else "DeepSpeed"
        raise ValueError(
            f"freeze schedule '{schedule}' changes over training, which {backend} does not support (it fixes its "
            "parameter groups when it wraps the model). Use a static schedule (rules without @start:end), or DDP."
        )


class FreezeScheduleCallback(TrainerCallback):
    """Toggles `requires_grad` at step boundaries, after the Trainer wrapped the model (DDP-safe)."""

    def __init__(self, trainer: "TVTSv2Trainer"):
        self.trainer = trainer
        self._current: frozenset[str] | None = None

    def _apply(self, step: int) -> None:
        trainer = self.trainer
        frozen = trainer.freeze_schedule.apply(trainer.model, step, only=trainer.scheduled_parameter_names)
        frozen = frozenset(frozen)
        if frozen != self._current:
            if self._current is not None:
                logger.info("step %d: freezing schedule now freezes %d tensors", step, len(frozen))
            self._current = frozen

    def on_train_begin(self, args, state, control, **kwargs):
        self._apply(state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self._apply(state.global_step)


class TVTSv2Trainer(Trainer):
    """`transformers.Trainer` for TVTSv2 pre-training (see the module docstring).

    Takes the usual Trainer arguments; `args` should be a `TVTSv2TrainingArguments` (plain `TrainingArguments` get
    the recipe defaults). The batches come from `modeling_tvtsv2.data.TVTSv2PretrainingCollator`.
    """

    # Our losses are batch means: let the Trainer divide by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        freeze_schedule: "str | FreezeSchedule | None" = None,
        eval_data_collator=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        # Evaluation samples deterministically (no augmentation, no masking): it may need its own collator.
        self.eval_data_collator = eval_data_collator
        spec = freeze_schedule if freeze_schedule is not None else getattr(self.args, "freeze_schedule", "paper")
        self.freeze_schedule = FreezeSchedule.parse(spec)
        self._loss_sums = {"contrastive_loss": 0.0, "sort_loss": 0.0}
        self._loss_counts = {"contrastive_loss": 0, "sort_loss": 0}
        self._skipped_since_log = 0
        self._skipped_total = 0
        self._prepare_freezing()

    # -- freezing ------------------------------------------------------------------------------------------
    def _prepare_freezing(self) -> None:
        model = self.model
        if hasattr(model, "peft_config"):
            # PEFT already froze the base model; a schedule on top would fight it.
            self.scheduled_parameter_names = set()
            if str(self.freeze_schedule) not in ("none", "paper"):
                raise ValueError("freeze schedules cannot be combined with LoRA/PEFT; use freeze_schedule='none'")
            return
        names = [name for name, _ in model.named_parameters()]
        num_frozen = getattr(model.config, "num_frozen_text_layers", 0)
        always = self.freeze_schedule.always_frozen_names(names, num_frozen)
        ever = set()
        for step in [0, *self.freeze_schedule.boundaries()]:
            ever |= self.freeze_schedule.frozen_names(names, step, num_frozen)
        # Frozen for the whole run: freeze now, before the model is wrapped (DDP then ignores them).
        for name, param in model.named_parameters():
            if name in always:
                param.requires_grad_(False)
        # Parameters whose state changes stay trainable until wrapped, then the callback toggles them.
        self.scheduled_parameter_names = ever - always
        if self.scheduled_parameter_names:
            check_schedule_supported(self.freeze_schedule, self.is_fsdp_enabled, self.is_deepspeed_enabled)
            if self.args.parallel_mode.value == "distributed" and not self.args.ddp_find_unused_parameters:
                logger.warning("freeze schedule changes over training: setting ddp_find_unused_parameters=True")
                self.args.ddp_find_unused_parameters = True
            self.add_callback(FreezeScheduleCallback(self))
        logger.info(
            "freeze schedule %s: %d tensors frozen for the whole run, %d toggled at steps %s",
            self.freeze_schedule, len(always), len(self.scheduled_parameter_names), self.freeze_schedule.boundaries(),
        )

    # -- optimiser and schedule ----------------------------------------------------------------------------
    def create_optimizer(self, model: nn.Module | None = None):
        if self.optimizer is not None:
            return self.optimizer
        model = model if model is not None else self.model
        args = self.args
        groups = parameter_groups(
            model,
            learning_rate=args.learning_rate,
            clip_learning_rate=getattr(args, "clip_learning_rate", 1e-7),
            weight_decay=args.weight_decay,
            temporal_embedding_lr=getattr(args, "temporal_embedding_lr", "clip"),
        )
        for group in groups:
            group.pop("param_names")
        self.optimizer = torch.optim.AdamW(
            groups, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon
        )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        milestones = parse_milestones(getattr(self.args, "lr_milestones", None), num_training_steps)
        if not milestones:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            gamma = self.args.lr_gamma
            optimizer = optimizer if optimizer is not None else self.optimizer
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: gamma ** sum(step >= m for m in milestones)
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # -- loss ----------------------------------------------------------------------------------------------
    def _logit_scale(self, model: nn.Module) -> torch.Tensor | float:
        unwrapped = self.accelerator.unwrap_model(model)
        base = getattr(unwrapped, "get_base_model", lambda: unwrapped)()
        return base.logit_scale_value()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        skipped = inputs.pop("num_skipped", None)
        if skipped is not None and model.training:
            count = int(skipped.sum())
            self._skipped_since_log += count
            self._skipped_total += count
        inputs["return_loss"] = False  # the losses are computed here over the global batch
        # Every sample of this batch failed to decode: run one all-zero placeholder sample so that every process
        # still takes part in the forward, the feature gather and DDP's gradient sync; it is masked out of the
        # losses and contributes exactly zero gradient.
        empty = inputs["pixel_values_videos"].shape[0] == 0
        if empty:
            inputs = self._placeholder_batch(inputs)
        outputs = model(**inputs)
        config = self.accelerator.unwrap_model(model).config

        video = F.normalize(outputs.video_embeds, dim=-1, eps=1e-8)
        text = F.normalize(outputs.text_embeds, dim=-1, eps=1e-8)
        valid = torch.full((video.shape[0],), not empty, dtype=torch.bool, device=video.device)
        all_valid = gather_with_grad(valid.float()).bool()
        all_video, all_text = gather_with_grad(video)[all_valid], gather_with_grad(text)[all_valid]
        logits = all_video @ all_text.t() * self._logit_scale(model)
        targets = torch.arange(logits.shape[0], device=logits.device)
        contrastive = F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)
        loss = contrastive
        sort_loss = None
        if outputs.sort_logits is not None:
            labels = _sort_labels(inputs, outputs.sort_logits)
            sort_loss = F.cross_entropy(
                outputs.sort_logits.reshape(-1, outputs.sort_logits.shape[-1]), labels.reshape(-1)
            )
            loss = loss + config.sort_loss_weight * sort_loss * (0.0 if empty else 1.0)

        if model.training and not empty:
            self._track("contrastive_loss", contrastive)
            if sort_loss is not None:
                self._track("sort_loss", sort_loss)
        outputs.loss = loss
        outputs.contrastive_loss = contrastive
        outputs.sort_loss = sort_loss
        outputs.valid = valid
        return (loss, outputs) if return_outputs else loss

    @staticmethod
    def _placeholder_batch(inputs: dict[str, Any]) -> dict[str, Any]:
        pixels, ids = inputs["pixel_values_videos"], inputs["input_ids"]
        placeholder = dict(inputs)
        placeholder["pixel_values_videos"] = pixels.new_zeros((1, *pixels.shape[1:]))
        placeholder["input_ids"] = ids.new_zeros((1, *ids.shape[1:]))
        placeholder["input_ids"][..., 1] = 1  # any id; the tower pools at the last position without an EOT
        if inputs.get("attention_mask") is not None:
            placeholder["attention_mask"] = inputs["attention_mask"].new_ones((1, *ids.shape[1:]))
        if inputs.get("keep_indices") is not None:
            keep = inputs["keep_indices"]
            placeholder["keep_indices"] = torch.arange(keep.shape[1], device=keep.device)[None]
        if inputs.get("sort_labels") is not None:
            labels = inputs["sort_labels"]
            placeholder["sort_labels"] = torch.arange(labels.shape[1], device=labels.device)[None]
        return placeholder

    def _track(self, name: str, value: torch.Tensor) -> None:
        self._loss_sums[name] += float(value.detach())
        self._loss_counts[name] += 1

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # a training log: add the two terms and the skipped-sample count
            for name in self._loss_sums:
                if self._loss_counts[name]:
                    logs[name] = round(self._loss_sums[name] / self._loss_counts[name], 4)
                self._loss_sums[name], self._loss_counts[name] = 0.0, 0
            logs["skipped_samples"] = self._skipped_since_log
            self._skipped_since_log = 0
        super().log(logs, *args, **kwargs)

    # -- data ----------------------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if getattr(dataset, "groups_per_step", None) is not None:
            # Items are pre-built per-device batches in step order (the corpus alternation lives in the dataset,
            # which reshuffles itself every epoch): keep that order.
            return torch.utils.data.SequentialSampler(dataset)
        return super()._get_train_sampler(train_dataset)

    def get_eval_dataloader(self, eval_dataset=None):
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    # -- evaluation ----------------------------------------------------------------------------------------
    def _gather_eval(self, tensor: torch.Tensor) -> torch.Tensor:
        """Per-sample tensors from every process, without the samples the distributed sampler duplicated to even
        out the last batch. A rank whose batch lost samples to decode errors is padded first (those rows are
        invalid); if that happens in the very last batch, the de-duplication may drop a few real samples."""
        tensor = self.accelerator.pad_across_processes(tensor, dim=0)
        return self.accelerator.gather_for_metrics(tensor).cpu()

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Sort accuracy and zero-shot retrieval on the held-out split (gathered over every process)."""
        from .metrics import retrieval_metrics, sort_accuracy

        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self._wrap_model(self.model, training=False, dataloader=dataloader)
        if len(self.accelerator._models) == 0 and model is self.model:
            model = self.accelerator.prepare_model(model, evaluation_mode=True)
        model.eval()
        videos, texts, sort_logits, sort_labels, losses = [], [], [], [], []
        with torch.no_grad():
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                batch.pop("num_skipped", None)
                loss, outputs = self.compute_loss(model, batch, return_outputs=True)
                gather = self._gather_eval
                valid = gather(outputs.valid.to(torch.uint8)).bool()
                if valid.any():
                    losses.append(float(loss))
                videos.append(gather(outputs.video_embeds.float())[valid])
                texts.append(gather(outputs.text_embeds.float())[valid])
                if outputs.sort_logits is not None:
                    labels = _sort_labels(batch, outputs.sort_logits)
                    sort_logits.append(gather(outputs.sort_logits.float())[valid])
                    sort_labels.append(gather(labels)[valid])
        metrics: dict[str, float] = {}
        if losses:
            metrics["loss"] = float(np.mean(losses))
        if videos and sum(v.shape[0] for v in videos):
            video = F.normalize(torch.cat(videos), dim=-1)
            text = F.normalize(torch.cat(texts), dim=-1)
            metrics["num_videos"] = float(video.shape[0])
            retrieval = retrieval_metrics((text @ video.t()).numpy())
            for direction in ("t2v", "v2t"):
                for key in ("R1", "R5", "R10", "MedR"):
                    metrics[f"{direction}_{key}"] = float(retrieval[direction][key])
        if sort_logits:
            accuracy = sort_accuracy(torch.cat(sort_logits).numpy(), torch.cat(sort_labels).numpy())
            metrics["sort_accuracy"] = accuracy["sort_accuracy"]
            metrics["sort_exact_match"] = accuracy["sort_exact_match"]
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics
