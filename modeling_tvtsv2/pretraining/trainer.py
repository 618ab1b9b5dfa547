"""`TVTSv2Trainer`: the TVTSv2 pre-training recipe on top of `transformers.Trainer`.

* loss = contrastive loss over the **global** batch (features gathered from every process) + `sort_loss_weight` ×
  transcript-sorting cross-entropy (local); both terms are logged separately. `contrastive_gradient` chooses the
  multi-process gradient of the contrastive term: `global` (exactly one process's) or `original` (1/world_size);
* four optimiser groups (`modeling_tvtsv2.pretraining.optimization`): new parameters (time attention, its LayerNorm, sort head)
  at `learning_rate` (paper 1e-4) and CLIP-initialised ones at `clip_learning_rate` (paper 1e-7), each split into
  decay / no-decay; any optimiser class of `--optim` / `optimizer_cls_and_kwargs` that takes parameter groups, and
  `--optim adamw_original` (the original's AdamW rule, `OriginalAdamW`);
* `zero_grad_to_none=False` clears gradients by zero-filling them (the original under torch 1.11), so AdamW keeps
  moving a parameter on steps that give it no gradient (the sort head on caption steps);
* layer-freezing schedules (`modeling_tvtsv2.pretraining.freezing`), applied so that DDP ranks stay consistent;
* the original step schedule (lr × 0.1 at 60 % and 80 % of training) as `lr_milestones`, after any warmup;
* skipped samples are counted and logged; training stops with an error when more than `max_skip_fraction` of the
  recent samples were skipped; the time each step waits for data is logged next to the step time;
* evaluation: sort accuracy (per transcript, whole order), zero-shot retrieval R@1/5/10, median rank, speed;
* uint8 pixel batches (the collator's `pixel_dtype="uint8"`) are normalised on the training device, after the inputs
  were moved there, with the collator's `rescale_factor`/`image_mean`/`image_std` (`normalize_video_pixels`);
* resuming continues the freezing schedule (a function of the global step), the data order and the RNG state;
* `--torch_compile` compiles static-shape graphs, one per batch shape (`modeling_tvtsv2.pretraining.torch_compile`);
* streamed corpora (`MixedCorpusBatchStream`) get a DataLoader that accelerate does not shard again, and their
  position is saved in every checkpoint (`modeling_tvtsv2.pretraining.streaming`).

The arguments live in `modeling_tvtsv2.pretraining.training_args`, the optimiser groups in `modeling_tvtsv2.pretraining.optimization`.
"""

from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.trainer_optimizer import is_optimizer_factory
from transformers.utils import logging

from ..modeling_tvtsv2 import contrastive_loss, transcript_sort_loss
from ..tools.package_logging import set_package_log_level
from ..video_transforms_tvtsv2 import normalize_video_pixels
from .distributed import gather_with_grad
from .evaluation_loop import PretrainingEvaluationMixin
from .freezing import FreezeSchedule, check_schedule_supported
from .monitoring import (
    SKIP_REASONS_KEY,
    SkipReasonsCollator,
    StepTimerCallback,
    TooManySkippedSamplesError,
    TrainingMonitor,
)
from .optimization import (
    ORIGINAL_ADAMW,
    OriginalAdamW,
    check_optimizer_supported,
    parameter_groups,
    parameter_groups_for,
    parse_milestones,
    warmup_then_step_decay,
)
from .streaming import StreamingDataMixin
from .torch_compile import StaticShapeCompileMixin
from .training_args import TVTSv2TrainingArguments, default_dataloader_num_workers

logger = logging.get_logger(__name__)

__all__ = [
    "FreezeScheduleCallback",
    "OriginalAdamW",
    "TVTSv2Trainer",
    "TVTSv2TrainingArguments",
    "TooManySkippedSamplesError",
    "ZeroFilledGradientsCallback",
    "check_schedule_supported",
    "parameter_groups",
    "parse_milestones",
]

# Optimiser kwargs with which transformers' optimiser handlers replace the parameter groups (GaLore, LOMO, ...).
_GROUP_REPLACING_KWARGS = ("params", "model", "optimizer_dict")


def _collator_pixel_normalization(collator: Any) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """`(rescale_factor, image_mean, image_std)` of a collator (its attributes; a `SkipReasonsCollator` forwards
    them), ImageNet's for a collator without them."""
    return (
        getattr(collator, "rescale_factor", 1 / 255),
        tuple(getattr(collator, "image_mean", IMAGENET_DEFAULT_MEAN)),
        tuple(getattr(collator, "image_std", IMAGENET_DEFAULT_STD)),
    )


class FreezeScheduleCallback(TrainerCallback):
    """Toggles `requires_grad` at step boundaries, after the Trainer wrapped the model (DDP-safe)."""

    def __init__(self, trainer: "TVTSv2Trainer"):
        self.trainer = trainer
        self._current: frozenset[str] | None = None

    def _apply(self, step: int) -> None:
        trainer = self.trainer
        frozen = frozenset(trainer.freeze_schedule.apply(trainer.model, step, only=trainer.scheduled_parameter_names))
        if frozen != self._current:
            if self._current is not None:
                logger.info("step %d: freezing schedule now freezes %d tensors", step, len(frozen))
            self._current = frozen

    def on_train_begin(self, args, state, control, **kwargs):
        self._apply(state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self._apply(state.global_step)


class ZeroFilledGradientsCallback(TrainerCallback):
    """Gradient clearing as torch 1.11's `zero_grad()` (the original's): a gradient, once created, is kept and set
    to zero after each optimiser step instead of dropped. The Trainer drops them (`model.zero_grad()` after the
    step); this keeps the tensors (zeroed in place) and gives them back before the next step's first forward, to
    parameters that still require gradients (a freeze schedule may have frozen some meanwhile). Gradients do not
    survive a resume, as in the original (a fresh process starts without them)."""

    def __init__(self, trainer: "TVTSv2Trainer"):
        self.trainer = trainer
        self._kept: list[tuple[nn.Parameter, torch.Tensor]] = []

    def on_optimizer_step(self, args, state, control, **kwargs):
        self._kept = []
        for param in self.trainer.model.parameters():
            if param.grad is not None:
                self._kept.append((param, param.grad.zero_()))

    def on_step_begin(self, args, state, control, **kwargs):
        for param, grad in self._kept:
            if param.requires_grad and param.grad is None:
                param.grad = grad
        self._kept = []


class TVTSv2Trainer(PretrainingEvaluationMixin, StaticShapeCompileMixin, StreamingDataMixin, Trainer):
    """`transformers.Trainer` for TVTSv2 pre-training (see the module docstring).

    Takes the usual Trainer arguments; `args` should be a `TVTSv2TrainingArguments` (plain `TrainingArguments` get
    the recipe's group learning rates and no skip limit). The batches come from
    `modeling_tvtsv2.data.collator.TVTSv2PretrainingCollator`; uint8 `pixel_values_videos` are normalised on the device in
    `_prepare_inputs` with the training collator's normalisation (`self.pixel_normalization`), which an
    `eval_data_collator` must share.
    """

    # Our losses are batch means: let the Trainer divide by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, freeze_schedule: "str | FreezeSchedule | None" = None, eval_data_collator=None, **kwargs):
        super().__init__(*args, **kwargs)
        # `--log_level` / `--log_level_replica` (the process's level) for this package too; the root logger is left alone
        set_package_log_level(self.args.get_process_log_level())
        # Batches carry their skip reasons when the collator counts them (it may run in DataLoader workers).
        if hasattr(self.data_collator, "skip_counter"):
            self.data_collator = SkipReasonsCollator(self.data_collator)
        # Evaluation samples deterministically (no augmentation, no masking): it may need its own collator.
        self.eval_data_collator = eval_data_collator
        # uint8 batches of either collator are normalised in `_prepare_inputs`, which cannot tell them apart.
        self.pixel_normalization = _collator_pixel_normalization(self.data_collator)
        eval_normalization = _collator_pixel_normalization(eval_data_collator)
        if eval_data_collator is not None and eval_normalization != self.pixel_normalization:
            raise ValueError(
                "data_collator and eval_data_collator normalise pixels differently (rescale_factor, image_mean, "
                "image_std); they must agree"
            )
        if self.args.dataloader_num_workers == -1:  # TVTSv2TrainingArguments' "automatic"
            self.args.dataloader_num_workers = default_dataloader_num_workers(
                hasattr(self.data_collator, "skip_counter") or hasattr(eval_data_collator, "skip_counter")
            )
            logger.info("dataloader_num_workers: using %d", self.args.dataloader_num_workers)
        self.monitor = TrainingMonitor(getattr(self.args, "max_skip_fraction", 1.0))
        self.add_callback(StepTimerCallback(self.monitor))
        spec = freeze_schedule if freeze_schedule is not None else getattr(self.args, "freeze_schedule", "paper")
        self.freeze_schedule = FreezeSchedule.parse(spec)
        self._prepare_freezing()
        zero_grad_to_none = getattr(self.args, "zero_grad_to_none", True)
        check_optimizer_supported(self.args.optim, zero_grad_to_none, self.is_fsdp_enabled, self.is_deepspeed_enabled)
        if not zero_grad_to_none:  # after the freeze callback: it runs first at each step begin
            self.add_callback(ZeroFilledGradientsCallback(self))

    @property
    def _skipped_total(self) -> int:
        """Training samples skipped since the trainer was built (all processes)."""
        return self.monitor.skipped_total

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
        """The recipe's parameter groups (per-group lr and weight decay) given to the optimiser class of
        `optimizer_cls_and_kwargs` or `--optim` (with `--optim_args`, betas, epsilon)."""
        if self.optimizer is not None:
            return self.optimizer
        model = model if model is not None else self.model
        args = self.args
        groups = parameter_groups_for(model, args)
        for group in groups:
            group.pop("param_names")
        if self.optimizer_cls_and_kwargs is not None:
            optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
        else:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(args, model)
        optimizer_kwargs = dict(optimizer_kwargs)
        if is_optimizer_factory(optimizer_cls) or any(key in optimizer_kwargs for key in _GROUP_REPLACING_KWARGS):
            raise ValueError(
                f"optimizer {args.optim} builds its own parameter groups, but the TVTSv2 recipe needs its four groups "
                "(new vs CLIP-initialised learning rates, decay vs no decay); use one that takes parameter groups, "
                "e.g. --optim adamw_torch, adamw_torch_fused, adamw_original, adafactor or sgd"
            )
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    @staticmethod
    def get_optimizer_cls_and_kwargs(args, model: nn.Module | None = None) -> tuple[Any, dict[str, Any]]:
        """transformers' `--optim` handlers, plus `adamw_original` (`OriginalAdamW` with the arguments' betas and
        epsilon)."""
        if str(getattr(args.optim, "value", args.optim)) == ORIGINAL_ADAMW:
            kwargs = {"lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon}
            return OriginalAdamW, kwargs
        return Trainer.get_optimizer_cls_and_kwargs(args, model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        milestones = parse_milestones(getattr(self.args, "lr_milestones", None), num_training_steps)
        if not milestones:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            optimizer = optimizer if optimizer is not None else self.optimizer
            warmup = self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, warmup_then_step_decay(warmup, milestones, self.args.lr_gamma)
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # -- loss ----------------------------------------------------------------------------------------------
    def _logit_scale(self, model: nn.Module) -> torch.Tensor | float:
        # keep_torch_compile=False: unwrapping a compiled DDP model while keeping the compile wrapper would re-point
        # the wrapper at the bare model (accelerate re-assigns `_orig_mod`), dropping DDP from the training model.
        unwrapped = self.accelerator.unwrap_model(model, keep_torch_compile=False)
        base = getattr(unwrapped, "get_base_model", lambda: unwrapped)()
        return base.logit_scale_value()

    def _record_training_batch(self, skipped: torch.Tensor | None, reasons: dict | None, used: int, device) -> None:
        """Count the batch's skipped and used samples over every process; stop when too many were skipped (every
        process sees the same sums, so all of them stop together)."""
        self.monitor.record_reasons(reasons)
        counts = torch.tensor([0 if skipped is None else int(skipped.sum()), used], device=device)
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        self.monitor.record_batch(int(counts[0]), int(counts[1]))
        if self.monitor.too_many_skipped():
            reasons = dict(self.monitor.reasons)
            if self.accelerator.num_processes > 1:
                from accelerate.utils import gather_object

                reasons = sum((Counter(r) for r in gather_object([reasons])), Counter())
            raise self.monitor.skip_error(reasons)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        skipped = inputs.pop("num_skipped", None)
        reasons = inputs.pop(SKIP_REASONS_KEY, None)
        inputs["return_loss"] = False  # the losses are computed here over the global batch
        empty = inputs["pixel_values_videos"].shape[0] == 0
        if model.training:
            used = inputs["pixel_values_videos"].shape[0]
            self._record_training_batch(skipped, reasons, used, inputs["pixel_values_videos"].device)
        # Every sample of this batch failed to decode: run one all-zero placeholder sample so that every process
        # still takes part in the forward, the feature gather and DDP's gradient sync; it is masked out of the
        # losses and contributes exactly zero gradient.
        if empty:
            inputs = self._placeholder_batch(inputs)
        outputs = model(**inputs)
        config = self.accelerator.unwrap_model(model, keep_torch_compile=False).config

        video = F.normalize(outputs.video_embeds, dim=-1, eps=1e-8)
        text = F.normalize(outputs.text_embeds, dim=-1, eps=1e-8)
        valid = torch.full((video.shape[0],), not empty, dtype=torch.bool, device=video.device)
        gradient = getattr(self.args, "contrastive_gradient", "global")
        all_valid = gather_with_grad(valid.float()).bool()
        all_video, all_text = gather_with_grad(video, gradient)[all_valid], gather_with_grad(text, gradient)[all_valid]
        logits = all_video @ all_text.t() * self._logit_scale(model)
        # every process's batch was empty: zero (not NaN), still connected to the graph
        contrastive = contrastive_loss(logits) if logits.numel() else logits.sum()
        loss = contrastive
        sort_loss = labels = None
        if outputs.sort_logits is not None:
            sort_loss, labels = transcript_sort_loss(outputs.sort_logits, inputs.get("sort_labels"))
            labels = labels.contiguous()
            loss = loss + config.sort_loss_weight * sort_loss * (0.0 if empty else 1.0)

        if model.training and not empty:
            self.monitor.track_loss("contrastive_loss", contrastive)
            if sort_loss is not None:
                self.monitor.track_loss("sort_loss", sort_loss)
        outputs.loss = loss
        outputs.contrastive_loss = contrastive
        outputs.sort_loss = sort_loss
        outputs.sort_labels = labels  # the labels used (the placeholder's for an empty batch)
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

    # -- logging -------------------------------------------------------------------------------------------
    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # a training log: the two loss terms, skipped samples, step time and data wait
            logs.update(self.monitor.drain())
        if "train_samples_per_second" in logs and logs.get("train_runtime"):
            # transformers counts dataset items, which are whole per-device batches here: count videos instead
            logs["train_samples_per_second"] = round(self.monitor.videos_trained / logs["train_runtime"], 3)
        super().log(logs, *args, **kwargs)

    # -- data ----------------------------------------------------------------------------------------------
    def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The Trainer's device placement, then uint8 pixels (the collator's `pixel_dtype="uint8"`) normalised on
        the device: the model takes float pixels."""
        inputs = super()._prepare_inputs(inputs)
        pixels = inputs.get("pixel_values_videos")
        if isinstance(pixels, torch.Tensor) and pixels.dtype == torch.uint8:
            # through _prepare_input again: DeepSpeed casts float inputs to its dtype, as for float32 batches
            normalized = normalize_video_pixels(pixels, *self.pixel_normalization)
            inputs["pixel_values_videos"] = self._prepare_input(normalized)
        return inputs

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        self.monitor.fetch_started()  # the step starts when it asks for its batches (ends at on_step_end)
        batches = super().get_batch_samples(epoch_iterator, num_batches, device)
        self.monitor.fetch_finished()
        self.record_stream_positions(batches[0])  # streamed batches: where the stream stood (for checkpoints)
        return batches

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if getattr(dataset, "groups_per_step", None) is not None:
            # Items are pre-built per-device batches in step order (the corpus alternation lives in the dataset,
            # which reshuffles itself every epoch): keep that order.
            return torch.utils.data.SequentialSampler(dataset)
        return super()._get_train_sampler(train_dataset)
