"""TVTSv2 pre-training run: `training/run_pretrain.py`, `tvtsv2 train` and `python -m modeling_tvtsv2.pretraining`.

With no arguments it builds (or reuses) the embedded demo corpus, trains the tiny preset on the CPU, evaluates
before and after, and writes a model folder (weights + the full processor) loadable with
`AutoModel.from_pretrained` / `AutoProcessor.from_pretrained`. With a recipe (`--recipe paper_b16`) or
`--transcript_dataset` it trains on your data. How the settings are resolved: `modeling_tvtsv2.pretraining.arguments`;
`--dry_run` prints them (`modeling_tvtsv2.pretraining.plan`).
"""

from __future__ import annotations

import gc
import json
import logging as std_logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import set_seed
from transformers.utils import logging

from ..tools.output_folders import OutputFolderError, check_not_an_input
from ..tools.package_logging import package_logger, set_package_log_level
from .arguments import (
    DEMO_OUTPUT_DIR,
    DEMO_TORCH_THREADS,
    DataArguments,
    ModelArguments,
    PretrainingArgumentError,
    PretrainingArguments,
    parse_arguments,
)
from .freezing import FreezeSchedule
from .sources import ModelSource, load_corpus_split, resolve_model_source
from .trainer import TVTSv2Trainer
from .training_args import default_dataloader_num_workers

logger = logging.get_logger(__name__)

__all__ = [
    "DEMO_OUTPUT_DIR",
    "FINISHED_RUN_FILE",
    "DataArguments",
    "ModelArguments",
    "load_corpora",
    "main",
    "newest_checkpoint",
    "parse_arguments",
    "run_pretraining",
]



class _StderrHandler(std_logging.StreamHandler):
    """Writes to the *current* `sys.stderr` (which callers such as test runners may swap)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _configure_logging(training_args) -> None:
    """`--log_level` (main process) / `--log_level_replica` for transformers; this package logs INFO on the main
    process unless told otherwise."""
    level = training_args.get_process_log_level()
    chosen = training_args.log_level if training_args.should_log else training_args.log_level_replica
    package_level = level if chosen != "passive" else (std_logging.INFO if training_args.should_log else level)
    transformers.utils.logging.set_verbosity(level if chosen != "passive" else std_logging.WARNING)
    set_package_log_level(package_level)
    logger_of_the_package = package_logger()
    if not logger_of_the_package.handlers:
        handler = _StderrHandler()
        handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger_of_the_package.addHandler(handler)
        logger_of_the_package.propagate = False


def _set_torch_threads(arguments: PretrainingArguments) -> None:
    threads = arguments.run.torch_threads
    if threads is None and arguments.is_demo:
        threads = max(1, DEMO_TORCH_THREADS // max(1, arguments.training.world_size))
    if threads:
        torch.set_num_threads(threads)
        logger.info("torch intra-op threads: %d", threads)


def _check_initialisation(arguments: PretrainingArguments, source: ModelSource) -> None:
    if not source.random_init or arguments.run.allow_random_init or arguments.is_demo:
        return
    if arguments.recipe_path is not None:
        raise PretrainingArgumentError(
            f"recipe {arguments.recipe_path} starts from pretrained weights, but --model {source.spec} is a preset "
            "(random weights); give a CLIPModel/TVTSv2 folder or Hub id, or --allow_random_init true"
        )
    logger.warning(
        "--model %s is a preset: training starts from random weights (with clip_learning_rate %s for the "
        "CLIP-initialised parameters). The paper initialises from CLIP: pass e.g. "
        "--model openai/clip-vit-base-patch16",
        source.spec,
        getattr(arguments.training, "clip_learning_rate", None),
    )


# Written last by a run that finished (after the model, the metrics and the trainer state).
FINISHED_RUN_FILE = "pretraining_metrics.json"


def newest_checkpoint(folder: Path) -> str | None:
    """The newest *complete* `checkpoint-N` folder of `folder` (one holding `trainer_state.json`, which the Trainer
    writes last; a checkpoint cut short by a kill is passed over), or None."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-")]
    except OSError:  # no folder (or another process is replacing it)
        return None
    steps = {int(p.name.rsplit("-", 1)[1]): p for p in candidates if p.name.rsplit("-", 1)[1].isdigit()}
    complete = [step for step, path in steps.items() if (path / "trainer_state.json").is_file()]
    return str(steps[max(complete)]) if complete else None


def _resume_from(training_args, checkpoint: str, why: str) -> None:
    training_args.resume_from_checkpoint = checkpoint
    if training_args.should_log:
        logger.warning("resuming %s from its newest checkpoint %s", why, checkpoint)


def _staging_output_dir(arguments: PretrainingArguments) -> Path | None:
    """Decide where the run writes, before any work (every process decides the same from the same files):

    * `--resume_from_checkpoint PATH`: resume from it, writing into `output_dir`;
    * `output_dir` holds checkpoints of a run that did not finish (no `pretraining_metrics.json`): resume from the
      newest one (a rerun after preemption), with or without `--overwrite_output_dir`, whose checkpoints are never
      deleted; delete the folder or choose another one to start afresh;
    * `output_dir.partial` (where an `--overwrite_output_dir` run trains) holds checkpoints: rerun with
      `--overwrite_output_dir true` resumes there;
    * any other non-empty `output_dir` is refused unless `--overwrite_output_dir`; the run then trains into
      `output_dir.partial`, which replaces `output_dir` only once the run has finished.

    Returns the staging folder when there is one.
    """
    training_args = arguments.training
    output = Path(training_args.output_dir)
    data = arguments.data
    inputs = [arguments.model.model, data.transcript_dataset, data.caption_dataset, data.eval_dataset]
    try:  # whatever --overwrite_output_dir says: replacing output_dir must not delete the model or a corpus
        check_not_an_input(output, inputs, flag="--output_dir")
    except OutputFolderError as error:
        raise PretrainingArgumentError(str(error)) from None
    if training_args.resume_from_checkpoint:
        return None
    staging = output.with_name(output.name + ".partial")
    if not (output / FINISHED_RUN_FILE).is_file():
        checkpoint = newest_checkpoint(output)
        if checkpoint is not None:
            _resume_from(training_args, checkpoint, f"the unfinished run in {output}")
            return None
    checkpoint = newest_checkpoint(staging)
    if checkpoint is not None:
        if not arguments.run.overwrite_output_dir:
            raise PretrainingArgumentError(
                f"--output_dir {output}: an interrupted --overwrite_output_dir run left checkpoints in {staging}; "
                "rerun with --overwrite_output_dir true to resume it, or delete that folder"
            )
        training_args.output_dir = str(staging)
        _resume_from(training_args, checkpoint, f"the unfinished --overwrite_output_dir run in {staging}")
        return staging
    if not output.is_dir():
        return None
    entries = sorted(p.name for p in output.iterdir())
    if not entries:
        return None
    if not arguments.run.overwrite_output_dir:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise PretrainingArgumentError(
            f"--output_dir {output} is not empty ({shown}); pass --overwrite_output_dir true to replace it once the "
            "new run has finished, or choose another folder"
        )
    if training_args.process_index == 0 and staging.exists():
        shutil.rmtree(staging)  # no checkpoint in it (see above): nothing of a run is lost
    training_args.output_dir = str(staging)
    return staging


def _replace_output_dir(staging: Path, output: Path) -> None:
    retired = output.with_name(output.name + ".replaced")
    if retired.exists():
        shutil.rmtree(retired)
    os.replace(output, retired)
    os.replace(staging, output)
    shutil.rmtree(retired)


def load_corpora(data_args: DataArguments, training_args, cache_dir: str | None = None):
    """The training corpora by name (`transcript`, `caption`) and the held-out corpus (or `None`), each cut to
    `--max_train_samples` / `--max_eval_samples` rows; Hub downloads go to `cache_dir`."""
    if data_args.transcript_dataset is None:
        from ..data.demo_corpus import build_demo_corpus

        # Every process builds the same deterministic corpus; the main process first, the others reuse its cache.
        with training_args.main_process_first(desc="demo corpus"):
            demo = build_demo_corpus(data_args.demo_dir, num_videos=data_args.demo_num_videos)
        data_args.transcript_dataset = str(demo.transcript)
        if data_args.caption_dataset is None and data_args.demo_captions:
            data_args.caption_dataset = str(demo.caption)

    config_name, streaming = data_args.dataset_config_name, data_args.streaming
    train = {
        "transcript": load_corpus_split(
            data_args.transcript_dataset, ("train",), argument="transcript_dataset", config_name=config_name,
            cache_dir=cache_dir, streaming=streaming,
        )
    }  # fmt: skip
    if data_args.caption_dataset:
        train["caption"] = load_corpus_split(
            data_args.caption_dataset, ("train",), argument="caption_dataset", cache_dir=cache_dir, streaming=streaming
        )
    if data_args.max_train_samples:  # as in transformers' examples: the first N rows
        limit = data_args.max_train_samples
        train = {
            name: corpus.take(limit) if not hasattr(corpus, "__len__") else corpus.select(range(min(limit, len(corpus))))
            for name, corpus in train.items()
        }
    held_out = ("validation", "test", "eval")
    if data_args.eval_dataset:
        eval_dataset = load_corpus_split(
            data_args.eval_dataset, (*held_out, "train"), argument="eval_dataset", cache_dir=cache_dir,
            streaming=streaming,
        )
    else:
        try:
            eval_dataset = load_corpus_split(
                data_args.transcript_dataset, held_out, argument="transcript_dataset", config_name=config_name,
                allow_single=False, cache_dir=cache_dir, streaming=streaming,
            )  # fmt: skip
        except PretrainingArgumentError:
            eval_dataset = None
    if eval_dataset is not None and not hasattr(eval_dataset, "__len__"):
        # A streamed held-out corpus is read into memory: retrieval metrics need every embedding anyway.
        from datasets import Dataset

        rows = eval_dataset.take(data_args.max_eval_samples) if data_args.max_eval_samples else eval_dataset
        eval_dataset = Dataset.from_list(list(rows), features=eval_dataset.features)
    if eval_dataset is not None and data_args.max_eval_samples:
        eval_dataset = eval_dataset.select(range(min(data_args.max_eval_samples, len(eval_dataset))))
    return train, eval_dataset


def _training_stream(train_corpora: dict, data_args: DataArguments, training_args, ratio: list[int]):
    """`--streaming`: the corpora as streams split over processes and DataLoader workers, resumed from the
    checkpoint's stream position when the run resumes."""
    from ..data.corpus_mixing import MixedCorpusBatchStream
    from .streaming import load_stream_state, shuffled, streamed_corpus

    num_parts = training_args.world_size * max(1, training_args.dataloader_num_workers)
    streams = {
        name: shuffled(streamed_corpus(corpus, num_parts), training_args.seed, data_args.streaming_shuffle_buffer)
        for name, corpus in train_corpora.items()
    }
    stream = MixedCorpusBatchStream(
        streams,
        batch_size=training_args.per_device_train_batch_size,
        ratio=ratio,
        rank=training_args.process_index,
        world_size=training_args.world_size,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        # No reserve rows: every row of a pass is a sample, read once; a sample that fails shrinks its batch.
        num_reserve=0,
        seed=training_args.seed,
    )
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint:
        state = load_stream_state(checkpoint, training_args.process_index)
        if state is None:
            logger.warning("%s holds no stream position: the streams start again from their beginning", checkpoint)
        else:
            stream.load_state_dict(state)
            logger.info("streams continue after %d batches of this process (%s)", state["consumed"], checkpoint)
    # The stream resumes itself; the Trainer must not skip batches by reading them again.
    training_args.ignore_data_skip = True
    return stream


def build_collators(data_args: DataArguments, tokenizer, vision_config, mask_ratio: float, seed: int):
    """The training collator (random draws, tube mask) and the evaluation one (deterministic, no mask)."""
    from ..data.collator import TVTSv2PretrainingCollator

    collator_kwargs = dict(
        num_frames=data_args.num_frames,
        image_size=vision_config.image_size,
        patch_size=vision_config.patch_size,
        mask_ratio=mask_ratio,
        num_transcripts=data_args.num_transcripts,
        seed=seed,
        pixel_dtype=data_args.pixel_dtype,
    )
    train_collator = TVTSv2PretrainingCollator(tokenizer, training=True, **collator_kwargs)
    eval_collator = TVTSv2PretrainingCollator(tokenizer, training=False, **{**collator_kwargs, "mask_ratio": 0.0})
    return train_collator, eval_collator


def run_pretraining(arguments: PretrainingArguments) -> dict:
    """Train, evaluate before/after, save the model (+ processor, metrics, trainer state) to `output_dir`.
    With `--dry_run`, print the resolved run as JSON instead. Returns the metrics (the plan for a dry run)."""
    from ..data.corpus_mixing import MixedCorpusBatchDataset
    from ..processing_tvtsv2 import TVTSv2Processor

    model_args, data_args, training_args = arguments.model, arguments.data, arguments.training
    _configure_logging(training_args)
    try:  # checked now, not after the corpora are built: a typo is one line naming the flag and the valid names
        FreezeSchedule.parse(training_args.freeze_schedule)
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise PretrainingArgumentError(f"--freeze_schedule {training_args.freeze_schedule!r}: {error}") from None
    try:
        source = resolve_model_source(
            model_args.model, model_args.model_revision, model_args.cache_dir, model_args.trust_remote_code
        )
    except PretrainingArgumentError:
        from .plan import released_variant_source

        # A dry run describes a paper recipe offline: its CLIP is a released variant's, whose preset has its towers.
        source = released_variant_source(model_args.model) if arguments.run.dry_run else None
        if source is None:
            raise
    _check_initialisation(arguments, source)
    if arguments.run.dry_run:
        from .plan import describe_run

        plan = describe_run(arguments, source)
        print(json.dumps(plan, indent=2))
        return plan

    if data_args.streaming and training_args.max_steps <= 0:
        raise PretrainingArgumentError("--streaming needs --max_steps: a stream has no length to count epochs in")
    if data_args.streaming and training_args.dataloader_num_workers == -1:  # the parts depend on the worker count
        training_args.dataloader_num_workers = default_dataloader_num_workers(True)
    if "dataloader_pin_memory" not in arguments.explicit and (
        training_args.use_cpu or not torch.accelerator.is_available()
    ):
        training_args.dataloader_pin_memory = False  # nothing to pin for; torch would warn in every DataLoader

    final_output_dir = Path(training_args.output_dir)
    staging = _staging_output_dir(arguments)
    _set_torch_threads(arguments)
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once, at the end
    set_seed(training_args.seed)

    train_corpora, eval_dataset = load_corpora(data_args, training_args, model_args.cache_dir)
    model = source.load()
    model.set_attn_implementation(model_args.attn_implementation)
    config = model.config
    mask_ratio = config.pretraining_mask_ratio if data_args.mask_ratio is None else data_args.mask_ratio
    vision = config.vision_config
    processor = TVTSv2Processor.from_defaults(image_size=vision.image_size, num_frames=data_args.num_frames)

    ratio = [int(x) for x in data_args.corpus_ratio.split(":")][: len(train_corpora)]
    if data_args.streaming:
        train_dataset = _training_stream(train_corpora, data_args, training_args, ratio)
    else:
        train_dataset = MixedCorpusBatchDataset(
            train_corpora,
            batch_size=training_args.per_device_train_batch_size,
            ratio=ratio,
            world_size=training_args.world_size,
            gradient_accumulation_steps=training_args.gradient_accumulation_steps,
            seed=training_args.seed,
        )
    # Each dataset item is a whole per-device batch from one corpus: TVTSv2Trainer loads one item per DataLoader
    # batch, in order, and per_device_train_batch_size stays the real number of videos per device.

    seed = training_args.seed
    train_collator, eval_collator = build_collators(data_args, processor.tokenizer, vision, mask_ratio, seed)

    if model_args.lora_target_modules:
        model = _wrap_lora(model, model_args)
        training_args.freeze_schedule = "none"

    trainer = TVTSv2Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=train_collator,
        processing_class=processor,
        eval_data_collator=eval_collator,
    )
    metrics = {}
    if eval_dataset is not None:
        metrics["before"] = trainer.evaluate(metric_key_prefix="eval_before")
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics["train"] = dict(train_result.metrics)
    metrics["train"]["skipped_samples"] = trainer._skipped_total
    # videos per device and per optimiser step (all processes, accumulation included)
    metrics["train"]["per_device_train_batch_size"] = training_args.per_device_train_batch_size
    metrics["train"]["total_train_batch_size"] = trainer.get_total_train_batch_size(training_args)
    if eval_dataset is not None:
        metrics["after"] = trainer.evaluate(metric_key_prefix="eval_after")
    # What makes two runs of the same command differ in the last bits (which a long run amplifies): the kernels torch
    # picks for this CPU (AVX2 vs AVX-512 reduce in another order), the threads, the versions (issue 20 item 12).
    metrics["environment"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "dataloader_num_workers": training_args.dataloader_num_workers,
        "world_size": training_args.world_size,
        "device": str(training_args.device),
    }

    trainer.save_model(training_args.output_dir)
    trainer.log_metrics("train", metrics["train"])
    trainer.save_metrics("train", metrics["train"])
    if "after" in metrics:
        trainer.save_metrics("eval", {**metrics.get("before", {}), **metrics["after"]})
    trainer.save_state()
    if trainer.is_world_process_zero():
        with open(os.path.join(training_args.output_dir, FINISHED_RUN_FILE), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, default=float)
        if staging is not None:
            _replace_output_dir(staging, final_output_dir)
        training_args.output_dir = str(final_output_dir)
        _print_summary(metrics, str(final_output_dir))
    trainer.accelerator.wait_for_everyone()
    training_args.output_dir = str(final_output_dir)
    if push_to_hub and trainer.is_world_process_zero():
        _push_to_hub(model, processor, arguments, final_output_dir)
    return metrics


def _push_to_hub(model, processor, arguments: PretrainingArguments, output_dir: Path) -> None:
    """Write the same Hub folder as `tvtsv2 export` (remote code, model card) into output_dir, then upload it."""
    from huggingface_hub import create_repo, upload_folder

    from ..tools.hub_export import save_hub_folder

    training_args = arguments.training
    repo_id = training_args.hub_model_id or output_dir.name
    base_model = arguments.model.model if arguments.model.model not in ("tiny", "b32", "b16", "h14") else None
    datasets = [d for d in (arguments.data.transcript_dataset, arguments.data.caption_dataset) if d]
    if arguments.is_demo:
        datasets = None
    unwrapped = getattr(model, "get_base_model", lambda: model)()
    # The run's folder also holds checkpoints and logs: build the Hub folder beside it, then move its files in over
    # the run's own model/processor files (a whole-folder replacement would drop the checkpoints).
    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.hub-") as staging:
        hub_folder = save_hub_folder(
            unwrapped, processor, Path(staging) / "hub", repo_id=repo_id, base_model=base_model, datasets=datasets
        )
        for stale in output_dir.glob("model*.safetensors*"):  # shards of the plain save would shadow the new index
            stale.unlink()
        for path in hub_folder.iterdir():
            os.replace(path, output_dir / path.name)
    try:
        create_repo(repo_id, private=training_args.hub_private_repo, token=training_args.hub_token, exist_ok=True)
        upload_folder(
            repo_id=repo_id, folder_path=str(output_dir), token=training_args.hub_token,
            commit_message="Upload TVTSv2 pre-trained model",
        )  # fmt: skip
    except Exception as error:  # network, authentication, offline mode: the model is saved either way
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PretrainingRunError(
            f"the model is saved in {output_dir} (Hub-ready), but pushing it to {repo_id} failed: {reason}"
        ) from None
    print(f"Pushed to https://huggingface.co/{repo_id}")


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


class PretrainingRunError(RuntimeError):
    """A run that cannot finish as asked for a reason outside the code (reported as one line)."""


def _is_unusable_data_error(error: BaseException) -> bool:
    # The trainer stops a run whose recent batches were mostly skipped (TooManySkippedSamplesError, a RuntimeError);
    # its message says how many samples were skipped and why, and names the setting.
    return type(error).__name__ == "TooManySkippedSamplesError" or "max_skip_fraction" in str(error)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 unusable data / upload failure, 2 bad
    arguments). User mistakes are reported as one line, without a traceback. `prog` names the command in
    `--help` and errors (`tvtsv2 train`; default: the script's name)."""
    stopped = None
    try:
        run_pretraining(parse_arguments(argv, prog=prog))
    except PretrainingArgumentError as error:
        if os.environ.get("LOCAL_RANK", "0") in ("", "0"):  # every process of a launch has the same arguments
            print(f"error: {error}", file=sys.stderr)
        return 2
    except PretrainingRunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError) as error:
        if not _is_unusable_data_error(error):
            raise
        stopped = str(error).strip().splitlines()[0]
    if stopped is not None:
        # The error's traceback held the training DataLoader (its worker processes, which may still log skipped
        # samples) and the progress bar; now that it is gone, collect them so that workers stop and the bar closes
        # before the reason is printed: the error is the last line a user sees.
        gc.collect()
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"error: {stopped}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
