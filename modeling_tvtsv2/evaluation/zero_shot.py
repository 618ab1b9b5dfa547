"""Zero-shot evaluation of TVTSv2: text <-> video retrieval, zero-shot classification and multiple choice.

The protocols follow the original research code (TencentARC/TVTS `v2/downstream`):

* **retrieval** (`zero_ret_*`): every caption and every video is embedded, similarities are cosines and the
  metrics are `metrics.retrieval_metrics` (R@1/5/10/50, MedR, MeanR; original tie handling), in both directions;
  no dual-softmax / DSL post-processing;
* **zero-shot classification** (`zero_recognition_*`): each class name is put into prompt templates (the paper uses
  the single template `"a person {}"`); per template the text embedding is L2-normalised, the templates are
  averaged and the mean is re-normalised. logits = 100 * <video, class>, top-1 / top-5 accuracy;
* **multiple choice** (`zero_ssv2_mc_*`, SSv2-MC): each video is scored against its *own* options, top-1 accuracy.

Inputs are 🤗 Datasets (rows = videos) loaded from disk. The video column may hold paths, bytes, or
`datasets.Video(decode=False)` dicts `{"bytes", "path"}` (datasets' own video decoding needs torchcodec; it is
switched off here and decoding is done by the TVTSv2 video processor with PyAV). Embeddings are computed in
batches, with progress bars, optionally decoding videos in DataLoader worker processes.

Command line: `python training/run_eval.py --help` (the same arguments as `modeling_tvtsv2.evaluation.zero_shot.main`).
"""

from __future__ import annotations

import argparse
import json
import logging as std_logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.utils import logging
from transformers.utils.logging import tqdm

from ..data.schema import corpus_root, undecoded_videos
from ..modeling_tvtsv2 import autocast_context
from ..tools.model_loading import load_model_and_processor
from ..tools.package_logging import set_package_log_level
from .embedding import (
    ON_ERROR_CHOICES,
    REPORTED_REASON_CHARS,
    DatasetVideos,
    VideoList,
    VideoRowError,
    embed_texts,
    embed_videos,
    whole_videos,
)
from .linear_probe import LinearProbeArguments, read_class_names, run_linear_probe_from_args
from .metrics import (
    cosine_similarity_matrix,
    multiple_choice_accuracy,
    retrieval_metrics,
    zero_shot_classification_metrics,
)


logger = logging.get_logger(__name__)

DEFAULT_TEMPLATES: tuple[str, ...] = ("a person {}",)
"""The single prompt template of the original zero-shot recognition scripts."""

ZERO_SHOT_LOGIT_SCALE = 100.0
"""logits = 100 * cosine in the original zero-shot recognition and SSv2-MC scripts (does not change accuracies)."""

TASKS = ("retrieval", "classification", "multiple-choice")


# --------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------


class EvalDatasetError(ValueError):
    """The evaluation dataset lacks what was asked for (e.g. the split)."""


def load_eval_dataset(path: str, split: str | None = None, video_column: str | None = None):
    """Loads a dataset saved with `save_to_disk` (a `Dataset` or a `DatasetDict`, then `split`, default "test";
    a missing split raises `EvalDatasetError` naming the available ones).

    A `datasets.Video` column is cast to `Video(decode=False)` so that rows give `{"bytes", "path"}` instead of
    requiring torchcodec.
    """
    import datasets

    dataset = datasets.load_from_disk(path)
    if isinstance(dataset, datasets.DatasetDict):
        wanted = "test" if split is None else split
        if wanted not in dataset:
            # Never fall back to another split silently: scoring the train split would look like a result.
            raise EvalDatasetError(f"{path} has no {wanted!r} split; available: {sorted(dataset)} (pass --split NAME)")
        dataset = dataset[wanted]
    elif split is not None:
        logger.info("%s is a single Dataset; ignoring split=%r", path, split)
    return undecoded_videos(dataset, video_column)


# --------------------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------------------


def compute_video_embeddings(
    model,
    processor,
    videos: Sequence[Any] | Callable[[int], Any],
    num_videos: int | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    normalize: bool = True,
    show_progress: bool = True,
    video_kwargs: dict[str, Any] | None = None,
    failures: list[dict[str, Any]] | None = None,
) -> torch.Tensor:
    """Embeds videos in batches (the engine `embedding.embed_videos`, one row per video).

    Args:
        model: a `TVTSv2Model` (or any model with `get_video_features`, e.g. a `PeftModel` around one), on the
            device and in the dtype to run in.
        processor: a `TVTSv2Processor` (its `video_processor` is used) or a video processor.
        videos: a sequence of videos (paths, bytes, `[T, H, W, C]` arrays, `{"bytes", "path"}` dicts), or a
            function `index -> video` (then `num_videos` is required), which avoids loading a whole dataset column.
        batch_size: videos per forward pass.
        num_workers: DataLoader workers decoding videos in parallel (0 = in this process).
        normalize: L2-normalise the embeddings.
        video_kwargs: extra keyword arguments for the video processor, e.g. `{"num_frames": 12}`.
        failures: when a list is given, unreadable videos are skipped: each adds `{"index", "reason"}` (and
            `"video_id"` when known) to it and gets a row of NaN. Otherwise an unreadable video raises a
            `VideoRowError` naming the row.

    Returns:
        `[N, D]` float32 embeddings on the CPU.
    """
    if num_videos is None:
        if callable(videos):
            raise ValueError("`num_videos` is required when `videos` is a function.")
        num_videos = len(videos)
    read_video = videos if callable(videos) else VideoList(videos)
    batches = math.ceil(num_videos / batch_size)
    with tqdm(total=batches, desc="Video embeddings", unit="batch", disable=not show_progress) as bar:
        clips = embed_videos(
            model, processor, read_video, whole_videos(range(num_videos)), batch_size=batch_size,
            num_workers=num_workers, video_kwargs=video_kwargs, normalize=False,
            on_error="raise" if failures is None else "skip", progress=lambda _: bar.update(1),
        )  # fmt: skip
    for skipped in clips.skipped:
        index, reason = skipped["row"], skipped["reason"][:REPORTED_REASON_CHARS]
        failure = {"index": index, "reason": reason}
        if hasattr(read_video, "video_id"):
            failure["video_id"] = read_video.video_id(index)
        logger.warning("skipping unreadable video in row %d: %s", index, reason)
        failures.append(failure)
    if not clips.items:
        raise ValueError("No videos to embed." if not failures else f"No readable video ({len(failures)} failed).")
    # Normalised here, on the CPU after concatenation, as evaluation always did (the last bit can differ on a GPU).
    embeddings = F.normalize(clips.embeddings, dim=-1) if normalize else clips.embeddings
    if len(clips.items) == num_videos:
        return embeddings
    full = torch.full((num_videos, embeddings.shape[1]), float("nan"))
    full[torch.tensor([index for index, _, _ in clips.items])] = embeddings
    return full


def compute_text_embeddings(
    model,
    processor,
    texts: Sequence[str],
    batch_size: int = 256,
    normalize: bool = True,
    show_progress: bool = True,
) -> torch.Tensor:
    """Embeds texts in batches with the processor's tokenizer settings (CLIP BPE, 77 tokens, truncation);
    the engine `embedding.embed_texts`, with a progress bar. No texts is an error.

    Returns:
        `[N, D]` float32 embeddings on the CPU (L2-normalised when `normalize`).
    """
    texts = list(texts)
    if not texts:
        raise ValueError("No texts to embed.")
    batches = math.ceil(len(texts) / batch_size)
    with tqdm(total=batches, desc="Text embeddings", unit="batch", disable=not show_progress) as bar:
        embeddings = embed_texts(
            model, processor, texts, batch_size, normalize=False, progress=lambda _: bar.update(1)
        )
    # Normalised on the CPU after concatenation, as evaluation always did (see compute_video_embeddings).
    return F.normalize(embeddings, dim=-1) if normalize else embeddings


def format_prompts(class_names: Sequence[str], templates: Sequence[str] | str = DEFAULT_TEMPLATES) -> list[list[str]]:
    """`[[template.format(name) for template in templates] for name in class_names]`."""
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates:
        raise ValueError("At least one prompt template is needed.")
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"Template {template!r} has no '{{}}' placeholder for the class name.")
    return [[template.format(name) for template in templates] for name in class_names]


def build_class_embeddings(
    model,
    processor,
    class_names: Sequence[str],
    templates: Sequence[str] | str = DEFAULT_TEMPLATES,
    batch_size: int = 256,
    show_progress: bool = True,
) -> torch.Tensor:
    """Zero-shot classifier weights: one normalised embedding per class.

    For each class, every template is filled with the class name and embedded; the embeddings are L2-normalised
    per template, averaged over templates and re-normalised (the original's procedure, with one template).

    Returns:
        `[C, D]` float32 tensor on the CPU.
    """
    prompts = format_prompts(class_names, templates)
    num_templates = len(prompts[0])
    flat = [prompt for per_class in prompts for prompt in per_class]
    embeddings = compute_text_embeddings(
        model, processor, flat, batch_size, normalize=True, show_progress=show_progress
    )
    embeddings = embeddings.reshape(len(class_names), num_templates, -1).mean(dim=1)
    return F.normalize(embeddings, dim=-1)


# --------------------------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Common:
    """Settings shared by the three runners (keyword arguments of each `evaluate_*` function)."""

    video_batch_size: int = 16
    text_batch_size: int = 256
    num_workers: int = 0
    video_root: str | None = None
    show_progress: bool = True
    on_error: str = "raise"  # "skip": leave out rows whose video cannot be read, and report them

    def __post_init__(self):
        if self.on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {self.on_error!r}")


def _video_embeddings_for(
    dataset, model, processor, video_column, common: _Common, video_kwargs
) -> tuple[torch.Tensor, list[int], dict[str, Any]]:
    """`(embeddings of the readable rows, their indices, skip report)`; the report is empty unless
    `on_error="skip"`."""
    failures: list[dict[str, Any]] | None = [] if common.on_error == "skip" else None
    embeddings = compute_video_embeddings(
        model,
        processor,
        DatasetVideos(dataset, video_column, common.video_root),
        num_videos=len(dataset),
        batch_size=common.video_batch_size,
        num_workers=common.num_workers,
        show_progress=common.show_progress,
        video_kwargs=video_kwargs,
        failures=failures,
    )
    if failures is None:
        return embeddings, list(range(len(dataset))), {}
    failed = {failure["index"] for failure in failures}
    keep = [index for index in range(len(dataset)) if index not in failed]
    report = {"num_skipped_videos": len(failures), "skipped_videos": sorted(failures, key=lambda f: f["index"])}
    return embeddings[keep], keep, report


def evaluate_retrieval(
    model,
    processor,
    dataset,
    video_column: str = "video",
    text_column: str = "caption",
    video_kwargs: dict[str, Any] | None = None,
    **common: Any,
) -> dict[str, Any]:
    """Zero-shot text -> video and video -> text retrieval over a dataset whose rows are videos.

    Args:
        dataset: a `datasets.Dataset`; `text_column` holds one caption (str) or several (list of str) per video.
            With several captions, every caption is a text query and each video takes its best caption for v2t.
        video_kwargs: video processor options (`num_frames`, sampling, ...).
        **common: `video_batch_size`, `text_batch_size`, `num_workers`, `video_root`, `show_progress`.

    Returns:
        `{"metrics": {"t2v": {...}, "v2t": {...}}, "num_videos": N, "num_texts": M}`.
    """
    settings = _Common(**common)
    if text_column not in dataset.column_names:
        raise ValueError(f"Text column {text_column!r} not found; columns: {dataset.column_names}")
    texts, caption_to_video = [], []
    for video_index, captions in enumerate(dataset[text_column]):
        captions = [captions] if isinstance(captions, str) else list(captions)
        texts.extend(captions)
        caption_to_video.extend([video_index] * len(captions))
    video_embeds, keep, skips = _video_embeddings_for(dataset, model, processor, video_column, settings, video_kwargs)
    if skips:  # the captions of skipped videos leave the query set with them
        new_index = {old: new for new, old in enumerate(keep)}
        pairs = [(text, new_index[v]) for text, v in zip(texts, caption_to_video) if v in new_index]
        texts, caption_to_video = [t for t, _ in pairs], [v for _, v in pairs]
    text_embeds = compute_text_embeddings(
        model, processor, texts, settings.text_batch_size, show_progress=settings.show_progress
    )
    sims = cosine_similarity_matrix(text_embeds, video_embeds)
    return {
        "metrics": retrieval_metrics(sims, caption_to_video=caption_to_video),
        "num_videos": len(keep),
        "num_texts": len(texts),
        **skips,
    }


def _class_names_and_labels(dataset, label_column: str, class_names: Sequence[str] | None):
    import datasets

    if label_column not in dataset.column_names:
        raise ValueError(f"Label column {label_column!r} not found; columns: {dataset.column_names}")
    feature = dataset.features[label_column]
    raw = dataset[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return list(class_names or feature.names), np.asarray(raw, dtype=np.int64)
    if raw and isinstance(raw[0], str):
        names = list(class_names) if class_names is not None else sorted(set(raw))
        lookup = {name: index for index, name in enumerate(names)}
        unknown = sorted(set(raw) - set(lookup))
        if unknown:
            raise ValueError(f"Labels not among the class names: {unknown[:10]}")
        return names, np.asarray([lookup[label] for label in raw], dtype=np.int64)
    if class_names is None:
        raise ValueError(
            f"Column {label_column!r} holds integer labels without ClassLabel names: pass `class_names` "
            "(index i = the name of label i)."
        )
    return list(class_names), np.asarray(raw, dtype=np.int64)


def evaluate_zero_shot_classification(
    model,
    processor,
    dataset,
    video_column: str = "video",
    label_column: str = "label",
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] | str = DEFAULT_TEMPLATES,
    ks: Sequence[int] = (1, 5),
    video_kwargs: dict[str, Any] | None = None,
    **common: Any,
) -> dict[str, Any]:
    """Zero-shot action recognition: classify each video among all class prompts.

    Args:
        dataset: rows = videos; `label_column` is a `ClassLabel` (names taken from it), a string label, or an int
            with `class_names` given.
        class_names: names put into the templates, indexed by label (the original uses the raw names).
        templates: prompt templates with a `{}` placeholder; several are averaged (see `build_class_embeddings`).
        ks: top-k accuracies to report.

    Returns:
        `{"metrics": {"top1", "top5", "num_samples"}, "num_videos", "num_classes", "class_names", "templates",
        "predictions"}` (`predictions`: the top-1 class index per video).
    """
    settings = _Common(**common)
    names, labels = _class_names_and_labels(dataset, label_column, class_names)
    templates = [templates] if isinstance(templates, str) else list(templates)
    classes = build_class_embeddings(
        model, processor, names, templates, settings.text_batch_size, show_progress=settings.show_progress
    )
    video_embeds, keep, skips = _video_embeddings_for(dataset, model, processor, video_column, settings, video_kwargs)
    labels = labels[keep]
    logits = ZERO_SHOT_LOGIT_SCALE * video_embeds @ classes.T
    ks = [k for k in ks if k <= len(names)] or [1]
    return {
        **skips,
        "metrics": zero_shot_classification_metrics(logits, labels, ks=ks),
        "num_videos": len(keep),
        "num_classes": len(names),
        "class_names": names,
        "templates": templates,
        "predictions": logits.argmax(dim=-1).tolist(),
    }


def evaluate_multiple_choice(
    model,
    processor,
    dataset,
    video_column: str = "video",
    options_column: str = "options",
    answer_column: str = "answer",
    ks: Sequence[int] = (1,),
    video_kwargs: dict[str, Any] | None = None,
    **common: Any,
) -> dict[str, Any]:
    """Multiple choice per video (SSv2-MC): score each video against its own candidate sentences.

    Args:
        dataset: rows = videos; `options_column` is a list of strings (its length may vary between rows),
            `answer_column` the index of the correct option.
        ks: top-k accuracies (the original reports top-1, and top-5 for 174-way SSv2-MC).

    Returns:
        `{"metrics": {"top1", ..., "num_samples"}, "num_videos", "predictions"}`.
    """
    settings = _Common(**common)
    for column in (options_column, answer_column):
        if column not in dataset.column_names:
            raise ValueError(f"Column {column!r} not found; columns: {dataset.column_names}")
    options = [list(row) for row in dataset[options_column]]
    answers = np.asarray(dataset[answer_column], dtype=np.int64)
    if any(len(row) == 0 for row in options):
        raise ValueError("A row has no options.")
    flat = [option for row in options for option in row]
    text_embeds = compute_text_embeddings(
        model, processor, flat, settings.text_batch_size, show_progress=settings.show_progress
    )
    video_embeds, keep, skips = _video_embeddings_for(dataset, model, processor, video_column, settings, video_kwargs)
    starts = np.cumsum([0] + [len(row) for row in options])
    logits = [
        (ZERO_SHOT_LOGIT_SCALE * text_embeds[starts[index] : starts[index + 1]] @ video_embeds[position]).numpy()
        for position, index in enumerate(keep)
    ]
    answers = answers[keep]
    max_options = max(len(row) for row in options)
    ks = [k for k in ks if k <= max_options] or [1]
    return {
        **skips,
        "metrics": multiple_choice_accuracy(logits, answers, ks=ks),
        "num_videos": len(keep),
        "predictions": [int(np.argmax(row)) for row in logits],
    }


# --------------------------------------------------------------------------------------------------------------
# End to end: load, run, write JSON
# --------------------------------------------------------------------------------------------------------------


def run_evaluation(
    task: str,
    model,
    processor,
    dataset,
    output_file: str | None = None,
    dataset_name: str | None = None,
    split: str | None = None,
    model_name: str | None = None,
    dataset_id: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Runs one evaluation task and returns (and optionally writes) a JSON-serialisable result record.

    Args:
        task: `"retrieval"`, `"classification"` or `"multiple-choice"`.
        dataset: a `datasets.Dataset`, or a path to a dataset saved with `save_to_disk` (then `split` picks the
            split of a `DatasetDict`).
        output_file: where to write the record as JSON (parent folders are created).
        dataset_name: a display name (e.g. `"MSR-VTT 1k-A"`) used by the model card; defaults to the folder name.
        split: the split to load from a saved `DatasetDict` (default "test"), recorded in the output.
        model_name: recorded in the output; defaults to the model's `name_or_path`.
        dataset_id: the Hub id of the benchmark dataset, if any: the model card's `model-index` dataset `type`.
        **kwargs: passed to the task's `evaluate_*` function (columns, templates, batch sizes, `video_kwargs`...).

    Returns:
        `{"task", "model", "dataset": {"name", "path", "split"}, "metrics", "settings", ...}`: the format that
        `tvtsv2 export --eval-results` turns into the model card's `model-index`.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    dataset_path = None
    if isinstance(dataset, (str, os.PathLike)):
        dataset_path = os.fspath(dataset)
        dataset = load_eval_dataset(dataset_path, split=split, video_column=kwargs.get("video_column"))
        if kwargs.get("video_root") is None:  # relative video paths start from the dataset's folder
            kwargs["video_root"] = str(corpus_root(dataset_path))
    runner = {
        "retrieval": evaluate_retrieval,
        "classification": evaluate_zero_shot_classification,
        "multiple-choice": evaluate_multiple_choice,
    }[task]
    outcome = runner(model, processor, dataset, **kwargs)
    if dataset_name is None:
        dataset_name = os.path.basename(os.path.normpath(dataset_path)) if dataset_path else "dataset"
    if split is None and getattr(dataset, "split", None) is not None:
        split = str(dataset.split)
    record = {
        "task": task,
        "model": model_name or getattr(getattr(model, "config", None), "name_or_path", None),
        "dataset": {"name": dataset_name, "type": dataset_id, "path": dataset_path, "split": split},
        "metrics": outcome.pop("metrics"),
        "settings": {k: v for k, v in kwargs.items() if k not in ("show_progress", "class_names")},
        **outcome,
    }
    record = _jsonable(record)
    if output_file:
        write_results(record, output_file)
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_results(results: dict[str, Any] | list[dict[str, Any]], path: str) -> None:
    """Writes evaluation records as indented JSON (creating parent folders)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(_jsonable(results), handle, indent=2, ensure_ascii=False)
        handle.write("\n")


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


@dataclass
class EvalArguments:
    """`training/run_eval.py` / `tvtsv2 eval` (with `LinearProbeArguments` for `--task linear-probe`), parsed by
    `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`, argument files."""

    task: str = field(metadata={"help": "what to evaluate", "choices": [*TASKS, "linear-probe"]})
    output: str = field(metadata={"help": "results JSON file"})
    model: str | None = field(default=None, metadata={"help": "model folder or Hub id"})
    dataset: str | None = field(default=None, metadata={"help": "a 🤗 dataset saved with save_to_disk"})
    split: str | None = field(default=None, metadata={"help": "split of a DatasetDict (default: test)"})
    dataset_name: str | None = field(default=None, metadata={"help": "display name for the results / model card"})
    dataset_id: str | None = field(
        default=None, metadata={"help": "Hub id of the benchmark (model card model-index)"}
    )
    video_column: str = field(default="video", metadata={"help": "column of the videos"})
    text_column: str = field(default="caption", metadata={"help": "retrieval: a caption or a list of captions"})
    label_column: str = field(default="label", metadata={"help": "classification"})
    options_column: str = field(default="options", metadata={"help": "multiple-choice"})
    answer_column: str = field(default="answer", metadata={"help": "multiple-choice"})
    templates: list[str] | None = field(
        default=None,
        metadata={
            "help": "classification prompt template with '{}' (repeat to average several; default "
            f"{DEFAULT_TEMPLATES[0]!r})",
            "aliases": ["--template"],
            "repeatable": True,
        },
    )
    class_names: str | None = field(
        default=None, metadata={"help": "classification: JSON list or text file (one name per line) by label id"}
    )
    video_root: str | None = field(
        default=None, metadata={"help": "folder that relative video paths are resolved against"}
    )
    num_frames: int | None = field(default=None, metadata={"help": "frames per video (default: the processor's)"})
    video_kwargs: str | None = field(
        default=None,
        metadata={
            "help": 'JSON dict of extra video processor options, e.g. \'{"sampling": "linspace", "transform": '
            '"eval"}\''
        },
    )
    batch_size: int = field(default=16, metadata={"help": "videos per forward pass"})
    text_batch_size: int = field(default=256, metadata={"help": "texts per forward pass"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers decoding videos"})
    max_samples: int | None = field(
        default=None, metadata={"help": "evaluate only the first N rows (smoke tests)"}
    )
    device: str | None = field(
        default=None, metadata={"help": "e.g. cuda, cuda:1, cpu (default: cuda if available)"}
    )
    dtype: str | None = field(
        default=None, metadata={"help": "model dtype", "choices": ["float32", "float16", "bfloat16"]}
    )
    autocast: str | None = field(
        default=None,
        metadata={
            "help": "the original's mixed precision (H/14 evaluation: fp16): low-precision matmuls under "
            "torch.autocast, float32 weights, residual stream and LayerNorm (not with --dtype float16/bfloat16)",
            "choices": ["fp16", "bf16"],
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "allow the model folder's own code"})
    no_progress: bool = field(default=False, metadata={"help": "hide progress bars"})
    on_error: str = field(
        default="raise",
        metadata={
            "help": "a video that cannot be read: stop with an error naming its row (raise) or leave the row out "
            "and list it in the results JSON (skip)",
            "choices": list(ON_ERROR_CHOICES),
        },
    )

    def __post_init__(self):
        if self.autocast and self.dtype not in (None, "float32"):
            raise ValueError(
                f"--autocast {self.autocast} runs a float32 model in mixed precision; drop --dtype {self.dtype}"
            )


EVAL_DESCRIPTION = "Zero-shot evaluation of a TVTSv2 model on a 🤗 dataset saved to disk (original protocols)."


def parse_eval_arguments(argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    """The evaluation arguments (`EvalArguments` + `LinearProbeArguments`) as one namespace for `run_from_args`;
    a user mistake exits with status 2 and one `error: ...` line."""
    from ..tools.arguments import parse_tool_arguments

    evaluation, probe = parse_tool_arguments(
        (EvalArguments, LinearProbeArguments), argv, prog=prog, description=EVAL_DESCRIPTION
    )
    return argparse.Namespace(**vars(evaluation), **vars(probe))


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the evaluation described by parsed `parse_eval_arguments` arguments and writes the JSON file."""
    if args.task == "linear-probe":
        return run_linear_probe_from_args(args)
    if args.model is None or args.dataset is None:
        raise SystemExit(f"error: --task {args.task} needs --model and --dataset")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    autocast = getattr(args, "autocast", None)
    if autocast and args.dtype not in (None, "float32"):
        raise ValueError(f"--autocast {autocast} runs a float32 model in mixed precision; drop --dtype {args.dtype}")
    model, processor = load_model_and_processor(args.model, device, args.dtype, args.trust_remote_code)
    dataset = load_eval_dataset(args.dataset, split=args.split, video_column=args.video_column)
    if args.max_samples is not None:
        dataset = dataset.select(range(min(args.max_samples, len(dataset))))
    video_kwargs = json.loads(args.video_kwargs) if args.video_kwargs else {}
    if args.num_frames is not None:
        video_kwargs["num_frames"] = args.num_frames
    options: dict[str, Any] = {
        "video_column": args.video_column,
        "video_kwargs": video_kwargs,
        "video_batch_size": args.batch_size,
        "text_batch_size": args.text_batch_size,
        "num_workers": args.num_workers,
        # Relative video paths start from the dataset's folder (where the corpus tools write them) by default.
        "video_root": args.video_root if args.video_root is not None else str(corpus_root(args.dataset)),
        "show_progress": not args.no_progress,
        "on_error": args.on_error,
    }
    if args.task == "retrieval":
        options["text_column"] = args.text_column
    elif args.task == "classification":
        options.update(
            label_column=args.label_column,
            class_names=read_class_names(args.class_names),
            templates=args.templates or list(DEFAULT_TEMPLATES),
        )
    else:
        options.update(options_column=args.options_column, answer_column=args.answer_column)
    with autocast_context(model, autocast):
        record = run_evaluation(
            args.task,
            model,
            processor,
            dataset,
            dataset_name=args.dataset_name or os.path.basename(os.path.normpath(args.dataset)),
            split=args.split,
            model_name=args.model,
            dataset_id=args.dataset_id,
            **options,
        )
    record["dataset"]["path"] = args.dataset
    record["settings"]["autocast"] = autocast
    write_results(record, args.output)
    return record


def _row_error_line(error: VideoRowError) -> str:
    # A DataLoader worker re-raises with the worker's traceback in the message; its last line is the error.
    line = str(error).strip().splitlines()[-1]
    return line.split("VideoRowError: ", 1)[-1]


def eval_command(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`tvtsv2 eval ...` (the arguments of `training/run_eval.py`): returns the exit status (2 with one
    `error: ...` line for a user mistake or an unreadable video)."""
    args = parse_eval_arguments(argv, prog=prog)
    try:
        record = run_from_args(args)
    except VideoRowError as error:
        print(f"error: {_row_error_line(error)}", file=sys.stderr)
        return 2
    except EvalDatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(record["metrics"], indent=2))
    print(f"Results written to {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """`python training/run_eval.py ...`: zero-shot evaluation of a TVTSv2 model; prints and writes the metrics."""
    args = parse_eval_arguments(argv)
    set_package_log_level(std_logging.INFO)  # progress through transformers' handler
    try:
        record = run_from_args(args)
    except VideoRowError as error:
        print(f"error: {_row_error_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(record["metrics"], indent=2))
    print(f"Results written to {args.output}")
    return record
