"""`TVTSv2TrainingArguments`: `transformers.TrainingArguments` with the TVTSv2 recipe's knobs and defaults."""

import os
from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.training_args import OptimizerNames

from .optimization import ORIGINAL_ADAMW

CONTRASTIVE_GRADIENTS = ("global", "original")
TEMPORAL_EMBEDDING_LRS = ("clip", "new")


MAX_DEFAULT_WORKERS = 16


def default_dataloader_num_workers(decodes_videos: bool) -> int:
    """Workers when `dataloader_num_workers` is left unset, for a collator that decodes videos (else 0): this
    process's share of the CPU cores minus one (kept for the training process), at most 16.

    The share divides the cores among the training processes of this machine (`LOCAL_WORLD_SIZE`, set by
    `accelerate launch`/`torchrun`), so 8 GPU processes on a 128-core machine get 15 workers each, not 8 x 127
    workers between them. A prepared 12-frame sample costs ~35 ms of a core: 15 workers feed ~400 videos/s.
    """
    if not decodes_videos:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        processes = 1
    return max(0, min(MAX_DEFAULT_WORKERS, cpus // processes - 1))


@dataclass
class TVTSv2TrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the TVTSv2 recipe's knobs. The defaults are the original's B recipe where it has one:
    learning_rate 1e-4 (new parameters), clip_learning_rate 1e-7, weight_decay 0.05, adam_epsilon 1e-6, no gradient
    clipping."""

    learning_rate: float = field(
        default=1e-4, metadata={"help": "learning rate of the new parameters (time attention, its norm, sort head)"}
    )
    weight_decay: float = field(
        default=0.05, metadata={"help": "decoupled weight decay (not applied to biases and norms)"}
    )
    adam_epsilon: float = field(default=1e-6, metadata={"help": "Adam epsilon (the original's: 1e-6)"})
    optim: str = field(
        default=TrainingArguments.__dataclass_fields__["optim"].default,
        metadata={
            "help": "the optimiser: one of transformers' (e.g. adamw_torch) or adamw_original (the original's rule, "
            "transformers 4.10 AdamW: eps added before the bias correction, weight decay after the Adam step; the "
            "paper_* recipes' choice)",
            "choices": [*(name.value for name in OptimizerNames), ORIGINAL_ADAMW],
        },
    )
    max_grad_norm: float = field(
        default=0.0, metadata={"help": "gradient clipping norm; 0 = no clipping (the original never clips)"}
    )
    dataloader_num_workers: int = field(
        default=-1,
        metadata={
            "help": "DataLoader worker processes; -1 (default): when the collator decodes videos "
            "(TVTSv2PretrainingCollator), this process's share of the CPU cores (cores / LOCAL_WORLD_SIZE) minus "
            "one, at most 16; else 0. Watch the logged data_wait_fraction: near 1 means training waits "
            "for data (add workers or prepare the videos)"
        },
    )
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
            "'0.6,0.8' for the original 10-epoch schedule; replaces lr_scheduler_type (warmup_steps/warmup_ratio "
            "still apply: linear warmup, then the steps)"
        },
    )
    lr_gamma: float = field(default=0.1, metadata={"help": "lr multiplier at each milestone"})
    temporal_embedding_lr: str = field(
        default="clip",
        metadata={
            "help": "'clip' (the original: temporal_embedding trains at clip_learning_rate, which defines the released "
            "weights) or 'new' (at learning_rate)",
            "choices": list(TEMPORAL_EMBEDDING_LRS),
        },
    )
    contrastive_gradient: str = field(
        default="global",
        metadata={
            "help": "multi-process gradient of the contrastive loss: 'global' (exactly the gradient of one process "
            "holding the whole global batch) or 'original' (the original code: each process keeps only its own "
            "share, so after DDP's averaging the contrastive gradient is 1/world_size of the global one while the "
            "sort loss is averaged as usual; the paper's hyper-parameters were tuned under it)",
            "choices": list(CONTRASTIVE_GRADIENTS),
        },
    )
    torch_compile_dynamic: bool | None = field(
        default=False,
        metadata={
            "help": "with --torch_compile: False (default) compiles one static-shape graph per input shape (batch "
            "size x tube-mask ratio; a smaller last or all-skipped batch adds one); True traces with symbolic sizes "
            "from the start (one graph for all shapes, slower kernels); None (Python or a recipe's null) leaves it "
            "to accelerate/dynamo (ACCELERATE_DYNAMO_USE_DYNAMIC, else sizes turn symbolic after the first "
            "recompile)"
        },
    )
    zero_grad_to_none: bool = field(
        default=True,
        metadata={
            "help": "clear gradients after each optimiser step by dropping them (True, default: a parameter without a "
            "gradient on a step, e.g. the sort head on caption steps, stands still) or by filling them with zeros "
            "(False: the original under torch 1.11; once a parameter had a gradient, AdamW keeps moving it on steps "
            "that do not touch it, by momentum and weight decay). The paper_* recipes set False"
        },
    )
    max_skip_fraction: float = field(
        default=0.5,
        metadata={
            "help": "stop training with an error when more than this fraction of the samples of the last 50 "
            "batches (all processes; from the start when fewer) were skipped (unreadable videos, no transcript "
            "words, empty captions); 1 = never stop"
        },
    )

    def __post_init__(self):
        # `--optim adamw_original` is this package's optimiser, unknown to transformers' OptimizerNames: validate
        # the rest with a neutral name, then keep ours (a plain str; the trainer builds it, see optimization.py).
        original_optimizer = str(getattr(self.optim, "value", self.optim)) == ORIGINAL_ADAMW
        if original_optimizer:
            self.optim = "adamw_torch"
        if self.contrastive_gradient not in CONTRASTIVE_GRADIENTS:
            raise ValueError(
                f"--contrastive_gradient must be one of {', '.join(CONTRASTIVE_GRADIENTS)}, got "
                f"{self.contrastive_gradient!r}"
            )
        if self.temporal_embedding_lr not in TEMPORAL_EMBEDDING_LRS:
            raise ValueError(
                f"--temporal_embedding_lr must be one of {', '.join(TEMPORAL_EMBEDDING_LRS)}, got "
                f"{self.temporal_embedding_lr!r}"
            )
        if not 0.0 <= self.max_skip_fraction <= 1.0:
            raise ValueError(f"--max_skip_fraction must be in [0, 1], got {self.max_skip_fraction}")
        if self.dataloader_num_workers < -1:
            raise ValueError(
                f"--dataloader_num_workers must be >= 0 (or -1: automatic), got {self.dataloader_num_workers}"
            )
        super().__post_init__()
        if original_optimizer:
            self.optim = ORIGINAL_ADAMW
