"""Wiring of `training/run_pretrain.py`: arguments, model and data set-up, train + evaluate + save.

With no arguments it builds (or reuses) the embedded demo corpus, trains the tiny preset on the CPU, evaluates
before and after, and writes a model folder loadable with `AutoModel.from_pretrained`.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, CLIPModel, HfArgumentParser, set_seed

from .configuration_tvtsv2 import TVTSv2Config, available_presets
from .modeling_tvtsv2 import TVTSv2ForPreTraining
from .trainer import TVTSv2Trainer, TVTSv2TrainingArguments

logger = logging.getLogger(__name__)

DEMO_OUTPUT_DIR = "outputs/tvtsv2-demo"
# The demo trains a *randomly initialised* tiny model, so every parameter must learn: no frozen layers and 5e-4 for
# the "CLIP" weights (3e-3 for the new ones). The paper's recipe (1e-4 new / 1e-7 CLIP-initialised, shallow text
# frozen) assumes CLIP weights.
DEMO_DEFAULTS = {
    "--learning_rate": "3e-3",
    "--clip_learning_rate": "5e-4",
    "--freeze_schedule": "none",
    "--num_train_epochs": "30",
    "--warmup_steps": "0.05",
    "--lr_scheduler_type": "cosine",
    "--eval_strategy": "no",
}


@dataclass
class ModelArguments:
    model: str = field(
        default="tiny",
        metadata={
            "help": f"a preset ({', '.join(available_presets())}), a converted TVTSv2 folder, or a 🤗 CLIPModel "
            "folder to initialise from (weights only from local paths)"
        },
    )
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
        metadata={"help": "transcript corpus saved with processing/prepare_transcript_corpus.py (default: the demo)"},
    )
    caption_dataset: str | None = field(
        default=None, metadata={"help": "caption corpus saved with processing/prepare_caption_corpus.py (optional)"}
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "held-out transcript corpus (default: the 'validation' split of --transcript_dataset)"},
    )
    corpus_ratio: str = field(default="1:1", metadata={"help": "optimizer steps transcript:caption per round"})
    num_frames: int = field(default=12, metadata={"help": "frames per sample (paper: 12)"})
    num_transcripts: int = field(default=4, metadata={"help": "transcripts per sample, K (paper: 4)"})
    mask_ratio: float | None = field(default=None, metadata={"help": "tube-mask ratio (default: the model config's)"})
    max_eval_samples: int | None = field(default=None)
    demo_dir: str = field(default=".cache/tvtsv2-demo", metadata={"help": "cache of the embedded demo corpus"})
    demo_num_videos: int = field(default=240, metadata={"help": "clips in the demo corpus"})
    demo_captions: bool = field(default=True, metadata={"help": "mix the demo's caption corpus in (WebVid-style)"})


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TVTSv2TrainingArguments]:
    """Parse the command line (or a single JSON recipe). Flags not given get the defaults below; without
    `--transcript_dataset` (the demo) the demo's learning rates, epochs and schedule are used too."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((ModelArguments, DataArguments, TVTSv2TrainingArguments))
    if len(args) == 1 and args[0].endswith(".json"):
        return parser.parse_json_file(args[0])

    def given(flag: str) -> bool:
        return any(a == flag or a.startswith(flag + "=") for a in args)

    defaults = {
        "--output_dir": DEMO_OUTPUT_DIR,
        "--learning_rate": "1e-4",
        "--adam_epsilon": "1e-6",
        "--weight_decay": "0.05",
        "--remove_unused_columns": "False",
        "--per_device_train_batch_size": "16",
        "--per_device_eval_batch_size": "16",
        "--logging_steps": "10",
        "--save_strategy": "no",
        "--report_to": "none",
    }
    if not given("--transcript_dataset"):
        defaults.update(DEMO_DEFAULTS)
    if given("--max_steps"):
        defaults.pop("--num_train_epochs", None)
    for flag, value in defaults.items():
        if not given(flag):
            args = [flag, value, *args]
    return parser.parse_args_into_dataclasses(args)


def build_model(model_args: ModelArguments) -> TVTSv2ForPreTraining:
    source = model_args.model
    path = Path(source)
    if path.is_dir():
        model_type = AutoConfig.from_pretrained(source).model_type
        if model_type == "clip":
            from .from_clip import tvtsv2_from_clip

            model = tvtsv2_from_clip(CLIPModel.from_pretrained(source, dtype=torch.float32))
        else:
            model = TVTSv2ForPreTraining.from_pretrained(source, dtype=torch.float32)
    else:
        model = TVTSv2ForPreTraining(TVTSv2Config.from_preset(source))
    model.set_attn_implementation(model_args.attn_implementation)
    return model


def _load_split(path: str, preferred: tuple[str, ...], allow_single: bool = True):
    """The first split of `preferred` in a saved DatasetDict (a saved single Dataset is returned as is when
    `allow_single`)."""
    from datasets import DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    if not isinstance(loaded, DatasetDict):
        if allow_single:
            return loaded
        raise ValueError(f"{path} is a single split")
    for name in preferred:
        if name in loaded:
            return loaded[name]
    raise ValueError(f"{path} has splits {sorted(loaded)}; expected one of {preferred}")


def run_pretraining(
    model_args: ModelArguments, data_args: DataArguments, training_args: TVTSv2TrainingArguments
) -> dict:
    """Train, evaluate before/after, save the model (+ processor) to `output_dir`. Returns the metrics."""
    from .data import MixedCorpusBatchDataset, TVTSv2PretrainingCollator
    from .processing_tvtsv2 import TVTSv2Processor, build_clip_tokenizer

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    set_seed(training_args.seed)

    if data_args.transcript_dataset is None:
        from .demo_corpus import build_demo_corpus

        # Every process builds the same deterministic corpus; the main process first, the others reuse its cache.
        with training_args.main_process_first(desc="demo corpus"):
            demo = build_demo_corpus(data_args.demo_dir, num_videos=data_args.demo_num_videos)
        data_args.transcript_dataset = str(demo.transcript)
        if data_args.caption_dataset is None and data_args.demo_captions:
            data_args.caption_dataset = str(demo.caption)

    model = build_model(model_args)
    config = model.config
    tokenizer = build_clip_tokenizer()
    mask_ratio = config.pretraining_mask_ratio if data_args.mask_ratio is None else data_args.mask_ratio

    train_corpora = {"transcript": _load_split(data_args.transcript_dataset, ("train",))}
    if data_args.caption_dataset:
        train_corpora["caption"] = _load_split(data_args.caption_dataset, ("train",))
    if data_args.eval_dataset:
        eval_dataset = _load_split(data_args.eval_dataset, ("validation", "test", "eval", "train"))
    else:
        try:
            eval_dataset = _load_split(
                data_args.transcript_dataset, ("validation", "test", "eval"), allow_single=False
            )
        except ValueError:
            eval_dataset = None
    if eval_dataset is not None and data_args.max_eval_samples:
        eval_dataset = eval_dataset.select(range(min(data_args.max_eval_samples, len(eval_dataset))))

    ratio = [int(x) for x in data_args.corpus_ratio.split(":")][: len(train_corpora)]
    samples_per_device = training_args.per_device_train_batch_size
    train_dataset = MixedCorpusBatchDataset(
        train_corpora,
        batch_size=samples_per_device,
        ratio=ratio,
        world_size=training_args.world_size,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        seed=training_args.seed,
    )
    # Each dataset item is a whole per-device batch from one corpus.
    training_args.per_device_train_batch_size = 1
    training_args.train_sampling_strategy = "sequential"

    vision = config.vision_config
    collator_kwargs = dict(
        num_frames=data_args.num_frames,
        image_size=vision.image_size,
        patch_size=vision.patch_size,
        mask_ratio=mask_ratio,
        num_transcripts=data_args.num_transcripts,
        seed=training_args.seed,
    )
    train_collator = TVTSv2PretrainingCollator(tokenizer, training=True, **collator_kwargs)
    eval_collator = TVTSv2PretrainingCollator(tokenizer, training=False, **{**collator_kwargs, "mask_ratio": 0.0})

    if model_args.lora_target_modules:
        model = _wrap_lora(model, model_args)
        training_args.freeze_schedule = "none"

    trainer = TVTSv2Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=train_collator,
        processing_class=tokenizer,
        eval_data_collator=eval_collator,
    )
    metrics = {}
    if eval_dataset is not None:
        metrics["before"] = trainer.evaluate(metric_key_prefix="eval_before")
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics["train"] = train_result.metrics
    metrics["train"]["skipped_samples"] = trainer._skipped_total
    if eval_dataset is not None:
        metrics["after"] = trainer.evaluate(metric_key_prefix="eval_after")

    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        processor = TVTSv2Processor.from_defaults(image_size=vision.image_size, num_frames=data_args.num_frames)
        processor.save_pretrained(training_args.output_dir)
        with open(os.path.join(training_args.output_dir, "pretraining_metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, default=float)
        _print_summary(metrics, training_args.output_dir)
    return metrics


def _wrap_lora(model, model_args: ModelArguments):
    from peft import LoraConfig, get_peft_model

    targets = model_args.lora_target_modules
    target_modules = targets.split(",") if "," in targets or targets.isidentifier() else targets
    modules_to_save = model_args.lora_modules_to_save.split(",") if model_args.lora_modules_to_save else None
    lora = LoraConfig(
        r=model_args.lora_rank,
        lora_alpha=model_args.lora_alpha,
        target_modules=target_modules,
        modules_to_save=modules_to_save,
    )
    peft_model = get_peft_model(model, lora)
    peft_model.print_trainable_parameters()
    return peft_model


def _print_summary(metrics: dict, output_dir: str) -> None:
    keys = ("sort_accuracy", "sort_exact_match", "t2v_R1", "t2v_R5", "v2t_R1", "t2v_MedR")
    lines = ["", "TVTSv2 pre-training summary", f"{'metric':<20}{'before':>10}{'after':>10}"]
    before, after = metrics.get("before", {}), metrics.get("after", {})
    for key in keys:
        b, a = before.get(f"eval_before_{key}"), after.get(f"eval_after_{key}")
        if b is None and a is None:
            continue
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        lines.append(f"{key:<20}{fmt(b):>10}{fmt(a):>10}")
    lines.append(f"model saved to {output_dir} (AutoModel.from_pretrained after `import modeling_tvtsv2`)")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args = parse_arguments(argv)
    return run_pretraining(model_args, data_args, training_args)
