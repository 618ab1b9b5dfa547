"""Declarative layer-freezing schedules for TVTSv2 pre-training.

A schedule is a list of rules; a rule freezes a *group* of parameters for a range of optimiser steps:

    text_layers<9                  # the paper's recipe for B: text blocks 0-8 frozen for the whole run
    backbone@0:500; text_layers<9  # also freeze every CLIP-initialised weight for the first 500 steps
    text_layers<9@0:1000; text_layers<6@1000:2000; text_layers<3@2000:3000   # progressive unfreezing

Syntax: rules separated by `;` (or newlines); each rule is `GROUP[@START:END]` with END optional (open-ended).
A parameter is frozen at step s when any rule that covers s selects it. Groups:

    text_layers<K      text blocks 0..K-1          text        the whole text tower (+ text projection)
    vision             the whole video tower      backbone    every CLIP-initialised weight (not the new ones)
    new                time attention, its LayerNorm, temporal embedding, sort head
    re:PATTERN         parameters whose name matches the regular expression
    paper              text_layers<config.num_frozen_text_layers (9 of 12 for B, 18 of 24 for H)
    none               nothing

Recipes may also be JSON: `[{"group": "text_layers<9"}, {"group": "backbone", "start": 0, "end": 500}]`.

Distributed training: parameters whose state never changes are frozen *before* the model is wrapped (DDP then
ignores them). Parameters whose state changes are left trainable at wrap time and toggled afterwards at step
boundaries, which needs `ddp_find_unused_parameters=True` (toggling before wrapping makes DDP ranks silently
diverge). FSDP and DeepSpeed only support schedules that do not change over training.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

# Names of the parameters that TVTSv2 adds to CLIP (trained at the high learning rate by the original recipe).
NEW_PARAMETER_PATTERN = re.compile(r"(temporal_attn\.|temporal_layer_norm\.|sort_head\.|logit_scale)")
TEMPORAL_EMBEDDING_PATTERN = re.compile(r"temporal_embedding")
_TEXT_LAYER = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.")


@dataclass(frozen=True)
class FreezeRule:
    """Freeze `group` for optimiser steps in `[start, end)` (`end=None`: until the end of training)."""

    group: str
    start: int = 0
    end: int | None = None

    def __post_init__(self):
        _validate_group(self.group)
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ValueError(f"freeze rule {self.group!r}: need 0 <= start < end, got start={self.start} end={self.end}")

    def active(self, step: int) -> bool:
        return self.start <= step and (self.end is None or step < self.end)

    def __str__(self) -> str:
        if self.start == 0 and self.end is None:
            return self.group
        return f"{self.group}@{self.start}:{'' if self.end is None else self.end}"


def _validate_group(group: str) -> None:
    if group in ("text", "vision", "backbone", "new", "paper", "none"):
        return
    if re.fullmatch(r"text_layers<\d+", group):
        return
    if group.startswith("re:"):
        re.compile(group[3:])
        return
    raise ValueError(
        f"unknown freeze group {group!r}; use text_layers<K, text, vision, backbone, new, paper, none or re:PATTERN"
    )


def parameter_in_group(name: str, group: str, num_frozen_text_layers: int) -> bool:
    """Whether parameter `name` (a name of TVTSv2Model/TVTSv2ForPreTraining) belongs to `group`."""
    name = re.sub(r"^(module\.|base_model\.model\.)+", "", name)  # DDP / PEFT wrappers
    if group == "none":
        return False
    if group == "paper":
        group = f"text_layers<{num_frozen_text_layers}"
    if group.startswith("text_layers<"):
        match = _TEXT_LAYER.match(name)
        return match is not None and int(match.group(1)) < int(group.split("<")[1])
    if group == "text":
        return name.startswith(("text_model.", "text_projection."))
    if group == "vision":
        return name.startswith(("vision_model.", "visual_projection."))
    if group == "new":
        return bool(NEW_PARAMETER_PATTERN.search(name) or TEMPORAL_EMBEDDING_PATTERN.search(name))
    if group == "backbone":
        return not (NEW_PARAMETER_PATTERN.search(name) or TEMPORAL_EMBEDDING_PATTERN.search(name))
    if group.startswith("re:"):
        return re.search(group[3:], name) is not None
    raise ValueError(f"unknown freeze group {group!r}")


def check_schedule_supported(schedule: "FreezeSchedule", fsdp: bool, deepspeed: bool) -> None:
    """FSDP and DeepSpeed fix their parameter groups (flat parameters / ZeRO partitions) when they wrap the model:
    only schedules that never change can be applied (before wrapping). Raise for the others."""
    if schedule.changes_over_training and (fsdp or deepspeed):
        backend = "FSDP" if fsdp else "DeepSpeed"
        raise ValueError(
            f"freeze schedule '{schedule}' changes over training, which {backend} does not support (it fixes its "
            "parameter groups when it wraps the model). Use a static schedule (rules without @start:end), or DDP."
        )


@dataclass(frozen=True)
class FreezeSchedule:
    rules: tuple[FreezeRule, ...] = ()

    @classmethod
    def parse(cls, spec: "str | Iterable[FreezeRule] | FreezeSchedule | None") -> "FreezeSchedule":
        """From the text syntax (module docstring), a JSON list, a path to a `.json` recipe, or rules."""
        if spec is None:
            return cls()
        if isinstance(spec, FreezeSchedule):
            return spec
        if not isinstance(spec, str):
            return cls(tuple(spec))
        text = spec.strip()
        if text.endswith(".json") and Path(text).is_file():
            text = Path(text).read_text(encoding="utf-8").strip()
        if text.startswith("["):
            entries = json.loads(text)
            return cls(tuple(FreezeRule(e["group"], int(e.get("start", 0)), e.get("end")) for e in entries))
        rules = []
        for part in re.split(r"[;\n]", text):
            part = part.strip()
            if not part:
                continue
            group, _, steps = part.partition("@")
            start, end = 0, None
            if steps:
                match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", steps)
                if match is None:
                    raise ValueError(f"freeze rule {part!r}: steps must look like START:END (END may be empty)")
                start = int(match.group(1) or 0)
                end = int(match.group(2)) if match.group(2) else None
            rules.append(FreezeRule(group.strip(), start, end))
        return cls(tuple(rules))

    def __str__(self) -> str:
        return "; ".join(str(rule) for rule in self.rules) or "none"

    @property
    def changes_over_training(self) -> bool:
        return any(rule.start > 0 or rule.end is not None for rule in self.rules)

    def boundaries(self) -> list[int]:
        """Steps at which the frozen set may change."""
        steps = {rule.start for rule in self.rules} | {rule.end for rule in self.rules if rule.end is not None}
        return sorted(s for s in steps if s > 0)

    def frozen_names(self, names: Iterable[str], step: int, num_frozen_text_layers: int) -> set[str]:
        active = [rule.group for rule in self.rules if rule.active(step)]
        return {n for n in names if any(parameter_in_group(n, g, num_frozen_text_layers) for g in active)}

    def always_frozen_names(self, names: Iterable[str], num_frozen_text_layers: int) -> set[str]:
        """Parameters frozen by an open-ended rule that starts at step 0: frozen for the whole run."""
        static = [rule.group for rule in self.rules if rule.start == 0 and rule.end is None]
        return {n for n in names if any(parameter_in_group(n, g, num_frozen_text_layers) for g in static)}

    def apply(self, model: nn.Module, step: int, only: set[str] | None = None) -> set[str]:
        """Set `requires_grad` on `model` for `step` (restricted to names in `only` when given); returns the frozen
        names."""
        num_frozen = getattr(getattr(model, "config", None), "num_frozen_text_layers", 0)
        named = dict(model.named_parameters())
        frozen = self.frozen_names(named, step, num_frozen)
        for name, param in named.items():
            if only is None or name in only:
                param.requires_grad_(name not in frozen)
        return frozen
