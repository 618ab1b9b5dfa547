"""The TVTSv2 recipe's optimiser groups, the original's AdamW rule (`--optim adamw_original`) and the step
learning-rate schedule."""

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import torch
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

ORIGINAL_ADAMW = "adamw_original"


class OriginalAdamW(torch.optim.Optimizer):
    """AdamW with the update rule of transformers 4.10's `transformers.AdamW` (`correct_bias=True`), the optimiser
    the original TVTSv2 trainer used (`--optim adamw_original`).

    Per tensor, at its step t (counted per tensor, from its first gradient):

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g²
        p -= lr · sqrt(1 - b2^t) / (1 - b1^t) · m / (sqrt(v) + eps)     # eps before the bias correction
        p -= lr · weight_decay · p                                       # decoupled decay, after the Adam step

    `torch.optim.AdamW` adds eps *after* correcting v, so at t = 1 this rule's effective eps is eps / sqrt(1 - b2)
    (32 × eps at b2 = 0.999), and it decays the weights *before* the Adam step. A tensor whose gradient is None is
    skipped; a zero gradient still moves it (momentum and decay), as in the original under torch 1.11's zero-filling
    `zero_grad()` (see `TVTSv2TrainingArguments.zero_grad_to_none`). `foreach=True` updates the tensors of a group
    that share a step count with one `torch._foreach_*` call per operation (fewer kernel launches on accelerators,
    but every intermediate of the batch alive at once); `False` loops over them; `None` (default) uses foreach on
    accelerators and the loop on CPU, where it measured 0.71x foreach's time at B/16 (benchmarks/README.md). The
    arithmetic (operations and their order) is the same either way: the results are bit-identical.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
    ):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate {lr} (must be >= 0)")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas} (each must be in [0, 1))")
        if eps < 0.0:
            raise ValueError(f"invalid epsilon {eps} (must be >= 0)")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "foreach": foreach}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # the step size depends on the step count: one batch of tensors per (count, device, dtype)
            batches: dict[tuple, list[torch.Tensor]] = {}
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError("adamw_original does not support sparse gradients")
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                batches.setdefault((state["step"], param.device, param.dtype), []).append(param)
            for (step, _, _), params in batches.items():
                self._update(group, step, params)
        return loss

    def _update(self, group: dict[str, Any], step: int, params: list[torch.Tensor]) -> None:
        beta1, beta2 = group["betas"]
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        grads = [param.grad for param in params]
        exp_avgs = [self.state[param]["exp_avg"] for param in params]
        exp_avg_sqs = [self.state[param]["exp_avg_sq"] for param in params]
        # the bias corrections are folded into the step size (Python floats, in this order)
        step_size = lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
        foreach = group["foreach"] if group["foreach"] is not None else params[0].device.type != "cpu"
        if foreach:
            torch._foreach_mul_(exp_avgs, beta1)
            torch._foreach_add_(exp_avgs, grads, alpha=1.0 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
            denominators = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denominators, value=-step_size)
            if weight_decay > 0.0:
                torch._foreach_add_(params, params, alpha=-lr * weight_decay)
            return
        for param, grad, exp_avg, exp_avg_sq in zip(params, grads, exp_avgs, exp_avg_sqs):
            exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            denominator = exp_avg_sq.sqrt().add_(eps)
            param.addcdiv_(exp_avg, denominator, value=-step_size)
            if weight_decay > 0.0:
                param.add_(param, alpha=-lr * weight_decay)


def check_optimizer_supported(optim: str, zero_grad_to_none: bool, fsdp: bool, deepspeed: bool) -> None:
    """FSDP and DeepSpeed own the optimiser state (sharded) and the gradients: refuse the recipe's original-code
    options there, naming the flag to change."""
    if not (fsdp or deepspeed):
        return
    backend = "FSDP" if fsdp else "DeepSpeed"
    if str(getattr(optim, "value", optim)) == ORIGINAL_ADAMW:
        raise ValueError(
            f"--optim {ORIGINAL_ADAMW} is not supported with {backend} (it shards the optimiser state and steps "
            "it itself); use --optim adamw_torch (eps after the bias correction: the update differs from the "
            "original's in the first ~1000 steps)"
        )
    if not zero_grad_to_none:
        raise ValueError(
            f"--zero_grad_to_none false is not supported with {backend} (it manages the gradient buffers itself); "
            "use --zero_grad_to_none true (parameters without a gradient on a step then stand still)"
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
