"""Arguments of `training/run_pretrain.py` / `tvtsv2 train` and how a run's settings are resolved.

Settings come in layers, later ones winning:

1. `BASE_DEFAULTS` (every run: the original optimiser settings, no unused-column removal, ...);
2. `DEMO_DEFAULTS` when the run is the embedded demo, i.e. when no `--transcript_dataset` is given (by a recipe or
   a flag): the demo trains a *randomly initialised* tiny model, so every parameter must learn;
3. the recipe (`--recipe NAME_OR_FILE`, or a `.json` file as first argument): a shipped recipe name such as
   `paper_b16` or any JSON (or `.yaml`/`.yml` YAML) file of argument values, read by the tools' shared
   `load_argument_file`;
4. the flags typed on the command line, in any spelling `HfArgumentParser` accepts (`--a_b`, `--a-b`, `--a_b=x`,
   unambiguous prefixes). Which flags were typed is read from the *parsed* arguments (the tools' shared
   `typed_flags_parser`, whose defaults are all suppressed), never from the raw text.

The spelling, switch and error rules are those of every tool: `modeling_tvtsv2.tools.arguments`.

A flag also implies what it only makes sense with: `--save_steps N` means `save_strategy=steps` and `--eval_steps N`
means `eval_strategy=steps` (unless the strategy is given too); `--bf16` switches a recipe's `fp16` off and vice
versa.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser
from transformers.utils import logging

from ..configuration_tvtsv2 import available_presets
from ..tools.arguments import (
    ArgumentFileError,
    argument_names,
    load_argument_file,
    typed_flags,
    typed_flags_parser,
    unknown_arguments_message,
)
from .training_args import TVTSv2TrainingArguments

logger = logging.get_logger(__name__)

DEMO_OUTPUT_DIR = "outputs/tvtsv2-demo"
# What the collator can emit as `pixel_values_videos` (`TVTSv2PretrainingCollator(pixel_dtype=...)`).
PIXEL_DTYPES = ("uint8", "float32")

# Every run (the original optimiser: AdamW, eps 1e-6, weight decay 0.05 except biases/norms, not fused).
BASE_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-4,
    "adam_epsilon": 1e-6,
    "weight_decay": 0.05,
    "optim": "adamw_torch",
    "remove_unused_columns": False,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 16,
    "logging_steps": 10,
    "report_to": "none",
}

# The demo trains a *randomly initialised* tiny model, so every parameter must learn: no frozen layers and 5e-4 for
# the "CLIP" weights (3e-3 for the new ones). The paper's recipe (1e-4 new / 1e-7 CLIP-initialised, shallow text
# frozen) assumes CLIP weights. Clipping at 1.0 keeps these high rates stable; torch threads are fixed (see
# `demo_torch_threads`) so that `python` and `accelerate launch` give the same numbers.
DEMO_DEFAULTS: dict[str, Any] = {
    "output_dir": DEMO_OUTPUT_DIR,
    "learning_rate": 3e-3,
    "clip_learning_rate": 5e-4,
    "freeze_schedule": "none",
    "num_train_epochs": 30,
    "warmup_steps": 0.05,
    "lr_scheduler_type": "cosine",
    # The demo was tuned with transformers' optimiser defaults and clipping, not the paper's (weight decay 0.05,
    # eps 1e-6, no clipping: the TVTSv2TrainingArguments defaults); with those its sorting learns more slowly.
    "max_grad_norm": 1.0,
    "weight_decay": 0.0,
    "adam_epsilon": 1e-8,
    "eval_strategy": "no",
    "save_strategy": "no",
}

# Intra-op threads of the demo, in total over its processes: the numbers it prints depend on them (reductions are
# split differently), and `accelerate launch` sets OMP_NUM_THREADS=1 where plain `python` uses every core.
DEMO_TORCH_THREADS = 2


class PretrainingArgumentError(ValueError):
    """A user mistake in the pre-training arguments (reported as one line, without a traceback)."""


@dataclass
class ModelArguments:
    model: str = field(
        default="tiny",
        metadata={
            "help": f"a preset ({', '.join(available_presets())}: random weights), a TVTSv2 model or a 🤗 "
            "CLIPModel to initialise from as the paper did: a local folder or a Hub id, e.g. "
            "openai/clip-vit-base-patch16"
        },
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of --model"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "eager, sdpa, flash_attention_2, ..."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "train LoRA adapters instead of the model: comma-separated module-name suffixes "
            "(e.g. 'q_proj,v_proj') or a regex; the adapters are saved to output_dir"
        },
    )
    lora_rank: int = field(default=8)
    lora_alpha: int = field(default=16)
    lora_modules_to_save: str | None = field(
        default="sort_head", metadata={"help": "comma-separated modules trained fully next to LoRA"}
    )


@dataclass
class DataArguments:
    transcript_dataset: str | None = field(
        default=None,
        metadata={
            "aliases": ["--dataset_name", "--dataset-name"],
            "help": "transcript corpus: a folder saved with processing/prepare_transcript_corpus.py, a local "
            "dataset folder or a Hub dataset id (load_dataset); default: the embedded demo",
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "load_dataset config of Hub corpora"})
    caption_dataset: str | None = field(
        default=None, metadata={"help": "caption corpus (same forms as --transcript_dataset; optional)"}
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "held-out transcript corpus (default: the 'validation' split of --transcript_dataset)"},
    )
    corpus_ratio: str = field(default="1:1", metadata={"help": "optimizer steps transcript:caption per round"})
    num_frames: int = field(default=12, metadata={"help": "frames per sample (paper: 12)"})
    num_transcripts: int = field(default=4, metadata={"help": "transcripts per sample, K (paper: 4)"})
    mask_ratio: float | None = field(default=None, metadata={"help": "tube-mask ratio (default: the model config's)"})
    pixel_dtype: str = field(
        default="uint8",
        metadata={
            "help": "pixels the data collator emits: 'uint8' (normalised by the trainer on the training device; 4x "
            "fewer bytes from the DataLoader workers, bit-identical training) or 'float32' (normalised in the workers)",
            "choices": list(PIXEL_DTYPES),
        },
    )
    max_eval_samples: int | None = field(default=None)
    streaming: bool = field(
        default=False,
        metadata={
            "help": "stream the corpora (🤗 IterableDatasets, load_dataset(streaming=True)): each process and "
            "DataLoader worker reads its own part (split_dataset_by_node), nothing is downloaded ahead; needs "
            "--max_steps; the held-out corpus is read into memory (up to --max_eval_samples rows)"
        },
    )
    streaming_shuffle_buffer: int = field(
        default=1000,
        metadata={
            "help": "with --streaming: rows of each corpus's shuffle buffer (shard order is shuffled too; 0: no "
            "shuffling, the setting under which resuming a run is exact)"
        },
    )
    demo_dir: str = field(default=".cache/tvtsv2-demo", metadata={"help": "cache of the embedded demo corpus"})
    demo_num_videos: int = field(default=240, metadata={"help": "clips in the demo corpus"})
    demo_captions: bool = field(default=True, metadata={"help": "mix the demo's caption corpus in (WebVid-style)"})

    def __post_init__(self):
        if self.pixel_dtype not in PIXEL_DTYPES:  # a recipe file is not checked by the parser's choices
            raise ValueError(f"--pixel_dtype must be one of {', '.join(PIXEL_DTYPES)}, got {self.pixel_dtype!r}")


@dataclass
class RunArguments:
    recipe: str | None = field(
        default=None,
        metadata={
            "help": "a shipped recipe (paper_b32, paper_b16, paper_h14) or a JSON (or YAML) file of argument "
            "values; flags typed on the command line override it"
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": "print the resolved run (recipe + flags + model source) as one JSON object and exit"},
    )
    allow_random_init: bool = field(
        default=False,
        metadata={"help": "let a recipe start from a preset's random weights instead of a CLIP/TVTSv2 checkpoint"},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "replace a non-empty output_dir (only once the new run has finished)"},
    )
    torch_threads: int | None = field(
        default=None,
        metadata={
            "help": "torch intra-op threads per process (default: the demo uses "
            f"{DEMO_TORCH_THREADS} split over its processes, other runs torch's default)"
        },
    )


ARGUMENT_CLASSES = (ModelArguments, DataArguments, RunArguments, TVTSv2TrainingArguments)


@dataclass
class PretrainingArguments:
    """The resolved arguments of one run."""

    model: ModelArguments
    data: DataArguments
    run: RunArguments
    training: TVTSv2TrainingArguments
    is_demo: bool
    recipe_path: str | None
    explicit: frozenset[str]  # the fields typed on the command line


def recipe_directory() -> Path:
    """The shipped recipes (`configuration/recipes`, installed as `modeling_tvtsv2.presets/recipes`)."""
    import modeling_tvtsv2.presets as presets

    return Path(presets.__file__).parent / "recipes"


def available_recipes() -> list[str]:
    return sorted(path.stem for path in recipe_directory().glob("*.json"))


def resolve_recipe_path(spec: str) -> Path:
    """A recipe file from a path or a shipped recipe's name."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = recipe_directory() / f"{spec}.json"
    if path.suffix != ".json" and shipped.is_file():
        return shipped
    raise PretrainingArgumentError(
        f"--recipe {spec}: no such file, and not a shipped recipe ({', '.join(available_recipes())})"
    )


def load_recipe(path: Path) -> dict[str, Any]:
    """A recipe file's values (a JSON object, or YAML for `.yaml`/`.yml`; keys starting with "_" are comments)."""
    try:
        return load_argument_file(path, kind="recipe")
    except ArgumentFileError as error:
        raise PretrainingArgumentError(str(error)) from None


def _explicit_parser(prog: str | None = None) -> HfArgumentParser:
    """The command-line parser with every default suppressed: parsing gives exactly the arguments typed."""
    parser = typed_flags_parser(ARGUMENT_CLASSES, prog=prog)
    parser.add_argument(
        "recipe_file", nargs="?", default=argparse.SUPPRESS, help="a recipe JSON (or YAML) file (same as --recipe FILE)"
    )
    return parser


def _field_names() -> set[str]:
    return argument_names(ARGUMENT_CLASSES)


def _implied(explicit: dict[str, Any]) -> dict[str, Any]:
    """Settings implied by typed flags that only make sense with them."""
    implied: dict[str, Any] = {}
    if "save_steps" in explicit and "save_strategy" not in explicit:
        implied["save_strategy"] = "steps"
    if "eval_steps" in explicit and "eval_strategy" not in explicit:
        implied["eval_strategy"] = "steps"
    if explicit.get("bf16") and "fp16" not in explicit:
        implied["fp16"] = False
    if explicit.get("fp16") and "bf16" not in explicit:
        implied["bf16"] = False
    return implied


def parse_arguments(argv: list[str] | None = None, prog: str | None = None) -> PretrainingArguments:
    """Resolve a run's arguments from the command line (see the module docstring for the layers); `prog` names
    the command in `--help` and errors (default: the script's name)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    explicit = typed_flags(_explicit_parser(prog), args)
    recipe_file, recipe_flag = explicit.pop("recipe_file", None), explicit.pop("recipe", None)
    if recipe_file is not None and recipe_flag is not None and recipe_file != recipe_flag:
        raise PretrainingArgumentError(f"two recipes given: {recipe_file} and --recipe {recipe_flag}")
    recipe_spec = recipe_file if recipe_file is not None else recipe_flag

    recipe_path, recipe = None, {}
    if recipe_spec is not None:
        recipe_path = resolve_recipe_path(recipe_spec)
        recipe = load_recipe(recipe_path)
        message = unknown_arguments_message(recipe, _field_names(), f"recipe {recipe_path}")
        if message:
            raise PretrainingArgumentError(message)

    given = {**recipe, **explicit}
    is_demo = given.get("transcript_dataset") is None
    values = dict(BASE_DEFAULTS)
    if is_demo:
        values.update(DEMO_DEFAULTS)
    values.update(recipe)
    values.update(explicit)
    values.update(_implied(explicit))
    if recipe_path is not None:
        values["recipe"] = str(recipe_path)
    if not values.get("output_dir"):
        raise PretrainingArgumentError("--output_dir is required when training on your own data")

    try:
        model_args, data_args, run_args, training_args = HfArgumentParser(ARGUMENT_CLASSES).parse_dict(values)
    except (ValueError, TypeError) as error:
        raise PretrainingArgumentError(str(error).strip().splitlines()[0]) from None
    return PretrainingArguments(
        model=model_args,
        data=data_args,
        run=run_args,
        training=training_args,
        is_demo=is_demo,
        recipe_path=None if recipe_path is None else str(recipe_path),
        explicit=frozenset(explicit),
    )
