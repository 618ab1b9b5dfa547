"""The TVTSv2 recipe's optimiser groups and step learning-rate schedule."""

import re
from collections.abc import Callable
from typing import Any

from torch import nn

from .freezing import NEW_PARAMETER_PATTERN, TEMPORAL_EMBEDDING_PATTERN

GROUP_NAMES = ("new_decay", "new_no_decay", "clip_decay", "clip_no_decay")


def parameter_groups(
    model: nn.Module,
    learning_rate: float,
    clip_learning_rate: float,
    weight_decay: float,
    temporal_embedding_lr: str = "clip",
) -> list[dict[str, Any]]:
    """The recipe's optimiser groups over **all** parameters (frozen ones included, so that a schedule can unfreeze
    them later; optimisers skip parameters without gradients). Each group carries `name` and `param_names`."""
    groups: dict[str, list[nn.Parameter]] = {key: [] for key in GROUP_NAMES}
    names: dict[str, list[str]] = {key: [] for key in GROUP_NAMES}
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
        for key in GROUP_NAMES
        if groups[key]
    ]



def parameter_groups_for(model: nn.Module, args: Any) -> list[dict[str, Any]]:
    """:func:`parameter_groups` with the learning rates and decay of training arguments (`TVTSv2TrainingArguments`;
    plain `TrainingArguments` get the recipe's CLIP rate and temporal-embedding rule)."""
    return parameter_groups(
        model,
        learning_rate=args.learning_rate,
        clip_learning_rate=getattr(args, "clip_learning_rate", 1e-7),
        weight_decay=args.weight_decay,
        temporal_embedding_lr=getattr(args, "temporal_embedding_lr", "clip"),
    )

def parse_milestones(spec: str | None, max_steps: int) -> list[int]:
    """`"0.6,0.8"` (fractions of `max_steps`) or `"600,800"` (steps) -> sorted optimiser steps."""
    if not spec:
        return []
    milestones = []
    for part in spec.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--lr_milestones: {part.strip()!r} is not a number (expected e.g. '0.6,0.8')") from None
        if value < 0:
            raise ValueError(f"--lr_milestones: {value} is negative")
        milestones.append(int(round(value * max_steps)) if value < 1 else int(value))
    return sorted(milestones)


def warmup_then_step_decay(warmup_steps: int, milestones: list[int], gamma: float) -> Callable[[int], float]:
    """lr multiplier at optimiser step `step`: linear warmup from 0 over `warmup_steps` (as transformers' linear
    schedules), then × `gamma` at every milestone reached."""

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return gamma ** sum(step >= m for m in milestones)

    return multiplier
