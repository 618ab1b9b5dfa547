"""`--dry_run`: everything a pre-training run would do, resolved and described as one JSON-ready dict.

The model is built on the meta device (no memory, no weights: an H/14 plan takes a second), so that the optimiser
groups and the freeze schedule are those of the real run: they come from the same functions the trainer uses.
"""

from __future__ import annotations

import re
from typing import Any

from .arguments import PretrainingArguments
from .freezing import FreezeSchedule
from .optimization import ORIGINAL_ADAMW, parameter_groups_for, parse_milestones
from .sources import ModelSource

_TEXT_LAYER = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.")


def _value(setting: Any) -> Any:
    """Enum settings of `TrainingArguments` as their plain value."""
    return getattr(setting, "value", setting)


def precision(training_args) -> str:
    """"fp32", "fp16" (autocast + gradient scaling) or "bf16" (autocast). An accelerate launch configuration's
    `mixed_precision` applies when neither `--fp16` nor `--bf16` is given (transformers reads it from the
    environment), so it is read from the resolved arguments."""
    mode = getattr(training_args, "mixed_precision", None)
    if mode is None:
        mode = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no"
    return {"no": "fp32"}.get(mode, mode)


def _lr_schedule(training_args) -> dict[str, Any]:
    milestones = getattr(training_args, "lr_milestones", None)
    schedule: dict[str, Any] = {"warmup_steps": training_args.warmup_steps}
    if milestones:
        fractions = [float(part) for part in milestones.split(",")]
        schedule.update(type="step", milestones=milestones, gamma=training_args.lr_gamma)
        if training_args.max_steps <= 0 and all(f < 1 for f in fractions):
            # fractions of the run: with a number of epochs they fall after these epochs
            schedule["after_epochs"] = [round(f * training_args.num_train_epochs, 6) for f in fractions]
        elif training_args.max_steps > 0:
            schedule["after_steps"] = parse_milestones(milestones, training_args.max_steps)
    else:
        schedule["type"] = _value(training_args.lr_scheduler_type)
    return schedule


_UPDATE_RULES = {
    ORIGINAL_ADAMW: "the original's (transformers 4.10 AdamW): eps added to sqrt(v) before the bias correction, "
    "decoupled weight decay after the Adam step",
    "adamw_torch": "torch.optim.AdamW: eps added after the bias correction, weight decay before the Adam step",
    "adamw_torch_fused": "torch.optim.AdamW (fused): eps added after the bias correction, weight decay before the "
    "Adam step",
}


def _optimizer(model, training_args, frozen: set[str]) -> dict[str, Any]:
    groups = parameter_groups_for(model, training_args)
    described = []
    for group in groups:
        sizes = dict(zip(group["param_names"], (p.numel() for p in group["params"])))
        described.append(
            {
                "name": group["name"],
                "lr": group["lr"],
                "weight_decay": group["weight_decay"],
                "tensors": len(sizes),
                "parameters": sum(sizes.values()),
                "trainable_parameters_at_start": sum(n for name, n in sizes.items() if name not in frozen),
            }
        )
    name = _value(training_args.optim)
    zero_grad_to_none = getattr(training_args, "zero_grad_to_none", True)
    return {
        "name": name,
        "update_rule": _UPDATE_RULES.get(name, "as transformers' --optim " + str(name)),
        "betas": [training_args.adam_beta1, training_args.adam_beta2],
        "eps": training_args.adam_epsilon,
        "zero_grad_to_none": zero_grad_to_none,
        "gradient_clearing": "set to None after each step: parameters without a gradient on a step stand still"
        if zero_grad_to_none
        else "zero-filled after each step (torch 1.11, the original): AdamW keeps moving parameters that had a "
        "gradient before",
        "groups": described,
    }


def _layer_ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    ranges, start = [], None
    for i, index in enumerate(indices):
        if start is None:
            start = index
        if i + 1 == len(indices) or indices[i + 1] != index + 1:
            ranges.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ", ".join(ranges)


def describe_run(arguments: PretrainingArguments, source: ModelSource) -> dict[str, Any]:
    """The resolved run (see the module docstring)."""
    model_args, data_args, training_args = arguments.model, arguments.data, arguments.training
    model = source.build_empty()
    config = model.config
    sizes = {name: param.numel() for name, param in model.named_parameters()}

    lora = bool(model_args.lora_target_modules)
    schedule = FreezeSchedule.parse("none" if lora else training_args.freeze_schedule)
    num_frozen = getattr(config, "num_frozen_text_layers", 0)
    frozen = schedule.always_frozen_names(sizes, num_frozen)
    frozen_text_layers = sorted({int(m.group(1)) for m in map(_TEXT_LAYER.match, frozen) if m})

    per_device = training_args.per_device_train_batch_size
    world_size = training_args.world_size
    accumulation = training_args.gradient_accumulation_steps
    corpora: dict[str, Any] = {
        "transcript": "embedded demo corpus" if arguments.is_demo else data_args.transcript_dataset,
        "caption": data_args.caption_dataset,
        "eval": data_args.eval_dataset or "the validation/test/eval split of the transcript corpus, if any",
        "ratio": data_args.corpus_ratio,
        "alternation": "one optimiser step per corpus batch, corpora taking turns in the ratio (the original: a "
        "transcript step, then a caption step)",
        "num_frames": data_args.num_frames,
        "num_transcripts": data_args.num_transcripts,
        "pixel_dtype": data_args.pixel_dtype,
    }
    if arguments.is_demo:
        corpora["demo_dir"] = data_args.demo_dir
        corpora["caption"] = "embedded demo captions" if data_args.demo_captions else None
    if data_args.dataset_config_name:
        corpora["dataset_config_name"] = data_args.dataset_config_name

    return {
        "mode": "demo" if arguments.is_demo else ("recipe" if arguments.recipe_path else "custom"),
        "recipe": arguments.recipe_path,
        "model": {
            **source.describe(),
            "parameters": sum(sizes.values()),
            "trainable_parameters_at_start": sum(n for name, n in sizes.items() if name not in frozen),
            "lora_target_modules": model_args.lora_target_modules,
            "attn_implementation": model_args.attn_implementation,
        },
        "mask_ratio": config.pretraining_mask_ratio if data_args.mask_ratio is None else data_args.mask_ratio,
        "precision": precision(training_args),
        "max_grad_norm": training_args.max_grad_norm,
        "contrastive_gradient": training_args.contrastive_gradient,
        "max_skip_fraction": training_args.max_skip_fraction,
        "optimizer": _optimizer(model, training_args, frozen),
        "freeze_schedule": {
            "spec": str(schedule),
            "frozen_for_whole_run": {
                "tensors": len(frozen),
                "parameters": sum(sizes[name] for name in frozen),
                "text_layers": _layer_ranges(frozen_text_layers),
                "num_text_layers": config.text_config.num_hidden_layers,
            },
            "changes_at_steps": schedule.boundaries(),
        },
        "lr_schedule": _lr_schedule(training_args),
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "batch_size": {
            "per_device_train": per_device,
            "per_device_eval": training_args.per_device_eval_batch_size,
            "gradient_accumulation_steps": accumulation,
            "world_size": world_size,
            "global_train": per_device * world_size * accumulation,
        },
        "corpora": corpora,
        "output_dir": training_args.output_dir,
        "overwrite_output_dir": arguments.run.overwrite_output_dir,
        "save_strategy": _value(training_args.save_strategy),
        "eval_strategy": _value(training_args.eval_strategy),
        "seed": training_args.seed,
    }
