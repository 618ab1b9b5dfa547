"""Export a TVTSv2 model folder as a Hugging Face Hub repository folder.

`tvtsv2 export --model DIR --output HUBDIR [--eval-results results.json]` (or `export_for_hub`) writes a folder
that anyone can load *without* this package:

* `model.safetensors` + `config.json` with `auto_map` (`AutoConfig`, `AutoModel` -> `TVTSv2Model`,
  `AutoModelForPreTraining` -> `TVTSv2ForPreTraining`) and `custom_pipelines`
  (`zero-shot-video-classification`, `video-feature-extraction`);
* the processor: `processor_config.json` (with the nested video processor) + `tokenizer.json` /
  `tokenizer_config.json`, with `AutoProcessor` / `AutoVideoProcessor` entries in their `auto_map`;
* the flat remote-code files (`configuration_tvtsv2.py`, `modeling_tvtsv2.py`, `video_processing_tvtsv2.py`,
  `processing_tvtsv2.py`, `pipeline_tvtsv2.py` and the siblings they import, e.g. `tokenization_tvtsv2.py`,
  `video_decoding_tvtsv2.py`, `video_sources_tvtsv2.py`, `video_reading_tvtsv2.py`, `video_transforms_tvtsv2.py`);
* a model card `README.md` with YAML front matter (license, library_name, pipeline_tag, tags incl. `custom_code`,
  base_model, datasets, metrics and a `model-index` built from evaluation results) and usage examples;
* `eval_results.json` when evaluation results are given.

The output folder follows `modeling_tvtsv2.tools.output_folders`: it must be new or empty unless `--overwrite`
(`overwrite=True`), it is written beside and moved into place only when complete, and with `--overwrite` it is
replaced as a whole.

Pushing uses the standard tools, e.g. `huggingface_hub.upload_folder(repo_id=..., folder_path=HUBDIR)` (what
`tvtsv2 export --push-to-hub REPO` does), or `model.push_to_hub(repo)` / `processor.push_to_hub(repo)` on objects
loaded from the folder with `trust_remote_code=True` (they carry their code along).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline_tvtsv2 import custom_pipelines_config
from .output_folders import OutputFolderError, check_output_folder, staged_output_folder


PAPER_URL = "https://arxiv.org/abs/2305.14173"
ORIGINAL_CODE_URL = "https://github.com/TencentARC/TVTS"

# The CLIP checkpoints the released TVTSv2 variants were initialised from (original_tvtsv2_facts §0).
RELEASED_BASE_MODELS = {
    "b32": "openai/clip-vit-base-patch32",
    "b16": "openai/clip-vit-base-patch16",
    "h14": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
}
VARIANT_NAMES = {"b32": "TVTSv2 ViT-B/32", "b16": "TVTSv2 ViT-B/16", "h14": "TVTSv2 ViT-H/14"}

DEFAULT_TAGS = (
    "tvtsv2",
    "video",
    "video-text",
    "zero-shot-video-classification",
    "video-text-retrieval",
    "video-feature-extraction",
    "custom_code",
)

# Remote-code entry points. The model-side auto_map is written by hand because both model classes are exposed.
_MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_tvtsv2.TVTSv2Config",
    "AutoModel": "modeling_tvtsv2.TVTSv2Model",
    "AutoModelForPreTraining": "modeling_tvtsv2.TVTSv2ForPreTraining",
}

_T2V_METRICS = (("R1", "recall@1", "R@1"), ("R5", "recall@5", "R@5"), ("R10", "recall@10", "R@10"))


# --------------------------------------------------------------------------------------------------------------
# Evaluation results -> model-index
# --------------------------------------------------------------------------------------------------------------


def load_eval_results(eval_results: str | os.PathLike | dict | Sequence[dict] | None) -> list[dict[str, Any]]:
    """Reads evaluation records (the JSON written by `training/run_eval.py` / `evaluation.run_evaluation`).

    Accepts a path to a JSON file holding one record, a list of records or `{"results": [...]}`, or the objects
    themselves. Several files can be merged by passing a list of records.
    """
    if eval_results is None:
        return []
    if isinstance(eval_results, (str, os.PathLike)):
        with open(eval_results, encoding="utf-8") as handle:
            eval_results = json.load(handle)
    if isinstance(eval_results, dict):
        eval_results = eval_results.get("results", [eval_results])
    records = list(eval_results)
    for record in records:
        if not isinstance(record, dict) or "task" not in record or "metrics" not in record:
            raise ValueError(f"Not an evaluation record (needs 'task' and 'metrics'): {str(record)[:200]}")
    return records


def _dataset_fields(record: dict[str, Any]) -> dict[str, Any]:
    dataset = record.get("dataset") or {}
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    name = dataset.get("name") or "custom"
    # `type` should be a Hub dataset id when one exists; the display name is the fallback.
    return {"dataset_type": dataset.get("type") or name, "dataset_name": name, "dataset_split": dataset.get("split")}


def eval_results_to_hub(records: Sequence[dict[str, Any]]) -> list:
    """Turns evaluation records into `huggingface_hub.EvalResult`s (the model card's `model-index`).

    Retrieval gives text->video and video->text R@1/5/10 and MedR (the paper's Table 2 reports t2v);
    classification and multiple choice give top-k accuracies.
    """
    from huggingface_hub import EvalResult

    results = []
    for record in records:
        task, metrics, data = record["task"], record["metrics"], _dataset_fields(record)
        if task == "retrieval":
            for direction, task_type, task_name in (
                ("t2v", "text-to-video-retrieval", "Zero-shot text-to-video retrieval"),
                ("v2t", "video-to-text-retrieval", "Zero-shot video-to-text retrieval"),
            ):
                values = metrics.get(direction)
                if not values:
                    continue
                for key, metric_type, metric_name in (*_T2V_METRICS, ("MedR", "median_rank", "MdR")):
                    if key in values:
                        results.append(
                            EvalResult(
                                task_type=task_type,
                                task_name=task_name,
                                metric_type=metric_type,
                                metric_name=metric_name,
                                metric_value=round(float(values[key]), 2),
                                **data,
                            )
                        )
        elif task in ("classification", "multiple-choice", "linear-probe"):
            task_type, task_name = {
                "classification": ("video-classification", "Zero-shot video classification"),
                "multiple-choice": ("multiple-choice", "Zero-shot multiple-choice video-text matching"),
                "linear-probe": ("video-classification", "Linear-probe video classification (frozen features)"),
            }[task]
            for key in sorted((k for k in metrics if k.startswith("top")), key=lambda k: int(k[3:])):
                k = int(key[3:])
                results.append(
                    EvalResult(
                        task_type=task_type,
                        task_name=task_name,
                        metric_type="accuracy" if k == 1 else f"top_{k}_accuracy",
                        metric_name=f"Top-{k} accuracy",
                        metric_value=round(float(metrics[key]), 2),
                        **data,
                    )
                )
        else:
            raise ValueError(f"Unknown evaluation task {task!r} in the results.")
    return results


def _results_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of the evaluation results for the card body."""
    retrieval = [r for r in records if r["task"] == "retrieval"]
    other = [r for r in records if r["task"] != "retrieval"]
    lines = []
    if retrieval:
        lines += [
            "| Dataset | Direction | R@1 | R@5 | R@10 | MdR | MnR |",
            "|---|---|---|---|---|---|---|",
        ]
        for record in retrieval:
            name = _dataset_fields(record)["dataset_name"]
            for direction, label in (("t2v", "text→video"), ("v2t", "video→text")):
                m = record["metrics"].get(direction)
                if m:
                    lines.append(
                        f"| {name} | {label} | {m['R1']:.1f} | {m['R5']:.1f} | {m['R10']:.1f} | {m['MedR']:.1f} "
                        f"| {m['MeanR']:.1f} |"
                    )
        lines.append("")
    if other:
        lines += ["| Dataset | Task | Top-1 | Top-5 |", "|---|---|---|---|"]
        for record in other:
            m = record["metrics"]
            top5 = f"{m['top5']:.1f}" if "top5" in m else "–"
            task = {"classification": "zero-shot classification", "linear-probe": "linear probe"}.get(
                record["task"], "multiple choice"
            )
            lines.append(f"| {_dataset_fields(record)['dataset_name']} | {task} | {m['top1']:.1f} | {top5} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------------------------


def detect_variant(config) -> str | None:
    """`"b32"`, `"b16"` or `"h14"` when the config has a released variant's architecture, else `None`."""
    from ..configuration_tvtsv2 import TVTSv2Config

    def signature(c):
        v, t = c.vision_config, c.text_config
        return (
            v.hidden_size, v.num_hidden_layers, v.patch_size, v.image_size,
            t.hidden_size, t.num_hidden_layers, c.projection_dim,
        )  # fmt: skip

    for name in RELEASED_BASE_MODELS:
        try:
            if signature(TVTSv2Config.from_preset(name)) == signature(config):
                return name
        except (FileNotFoundError, ValueError):  # presets not installed
            return None
    return None


def build_model_card(
    config,
    eval_records: Sequence[dict[str, Any]] = (),
    *,
    repo_id: str | None = None,
    model_name: str | None = None,
    variant: str | None = None,
    license: str | None = None,
    base_model: str | Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    extra_tags: Sequence[str] = (),
    has_sort_head: bool = False,
    frames_per_video: int | None = None,
):
    """Builds the `huggingface_hub.ModelCard` (YAML front matter + usage) for an exported TVTSv2 folder.

    Args:
        config: the model's `TVTSv2Config`.
        eval_records: evaluation records (see `load_eval_results`) for `model-index` and the results table.
        repo_id: the Hub id used in the usage snippets (placeholder `your-username/<folder>` otherwise).
        model_name: the model-index name; defaults to the variant's name or "TVTSv2".
        variant: `"b32"`, `"b16"`, `"h14"` (released weights) or `None`; detected from the config when `None`.
        license: the card's license id. Default: `"other"` (pointing to the original repository) for released
            variants, whose weights come with the original project's terms, else `"apache-2.0"`.
        base_model: the model this one was initialised/fine-tuned from; defaults to the CLIP checkpoint of a
            released variant.
        datasets: Hub ids (or names) of the training datasets.
        has_sort_head: whether the weights include the pre-training sort head.
        frames_per_video: frames the exported processor samples per video (default: the config's `num_frames`).
    """
    from huggingface_hub import ModelCard, ModelCardData

    variant = variant or detect_variant(config)
    model_name = model_name or VARIANT_NAMES.get(variant, "TVTSv2")
    repo_id = repo_id or f"your-username/{model_name.lower().replace(' ', '-').replace('/', '')}"
    if base_model is None and variant in RELEASED_BASE_MODELS:
        base_model = RELEASED_BASE_MODELS[variant]
    license_fields: dict[str, Any] = {"license": license}
    if license is None:
        if variant is not None:
            license_fields = {"license": "other", "license_name": "tvts", "license_link": ORIGINAL_CODE_URL}
        else:
            license_fields = {"license": "apache-2.0"}
    metrics = sorted(
        {"recall" if r["task"] == "retrieval" else "accuracy" for r in eval_records} or {"recall", "accuracy"}
    )
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=list(dict.fromkeys([*DEFAULT_TAGS, *extra_tags])),
        base_model=list(base_model) if isinstance(base_model, (list, tuple)) else base_model,
        datasets=list(datasets) if datasets else None,
        metrics=metrics,
        model_name=model_name,
        eval_results=eval_results_to_hub(eval_records) or None,
        **license_fields,
    )
    vision, text = config.vision_config, config.text_config
    results_section = (
        "## Evaluation results\n\nZero-shot, single view, no dual-softmax post-processing "
        "(`modeling_tvtsv2.evaluation`; metrics follow the original code, including its tie handling).\n\n"
        + _results_table(eval_records)
        if eval_records
        else "## Evaluation results\n\nNo evaluation results were provided at export time. "
        "Run `python training/run_eval.py --help` and re-export with `--eval-results`.\n"
    )
    body = _CARD_TEMPLATE.format(
        model_name=model_name,
        repo_id=repo_id,
        paper_url=PAPER_URL,
        code_url=ORIGINAL_CODE_URL,
        vision_layers=vision.num_hidden_layers,
        vision_width=vision.hidden_size,
        patch=vision.patch_size,
        image_size=vision.image_size,
        frames=vision.num_frames,
        frames_per_video=frames_per_video or vision.num_frames,
        text_layers=text.num_hidden_layers,
        text_width=text.hidden_size,
        dim=config.projection_dim,
        sort_head_note=(
            "The weights include the transcript-sorting head used in pre-training."
            if has_sort_head
            else "The weights do not include the pre-training sort head; `AutoModelForPreTraining` adds a freshly "
            "initialised one."
        ),
        results_section=results_section,
    )
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


_CARD_TEMPLATE = """
# {model_name}

TVTSv2 ([Zeng et al., 2023]({paper_url}); original code: [{code_url}]({code_url})) is a CLIP-style video-text dual
encoder that learns spatiotemporal video representations at scale: a CLIP ViT video tower with divided space-time
attention, pre-trained on videos with transcripts by contrastive learning and a transcript-sorting task, with the
shallow text blocks frozen to avoid degrading the text tower. Its embeddings work out of the box for zero-shot
text-video retrieval, zero-shot action recognition and as frozen video features.

This checkpoint: video tower {vision_layers} layers × {vision_width} wide, patch {patch}, {image_size}×{image_size}
frames, {frames} temporal positions (the processor samples {frames_per_video} frames per video); text tower
{text_layers} layers × {text_width} wide (CLIP BPE, 77 tokens); joint embedding size {dim}. {sort_head_note}

The code is included (`trust_remote_code=True`), so the `tvtsv2` package is not needed to use it. With the package
installed (`pip install tvtsv2`; `import modeling_tvtsv2`), the same folder loads without remote code.

## Usage

### Embeddings and similarities with `AutoModel`

```python
import torch
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)

inputs = processor(
    text=["a person walking a dog", "a person playing guitar"],
    videos=["clip.mp4"],  # paths, bytes or [T, H, W, 3] uint8 arrays
    return_tensors="pt",
)
with torch.no_grad():
    outputs = model(**inputs)
print(outputs.logits_per_video.softmax(dim=-1))  # video -> texts
video_embedding = outputs.video_embeds  # L2-normalised; model.get_video_features(...) gives the raw embedding
```

### Pipelines

```python
from transformers import pipeline

classifier = pipeline("zero-shot-video-classification", model="{repo_id}", trust_remote_code=True)
classifier("clip.mp4", candidate_labels=["walking a dog", "playing guitar", "cooking"])
# -> [{{"score": ..., "label": ...}}, ...] sorted by score; the default prompt is the paper's "a person {{}}"
classifier(["a.mp4", "b.mp4"], candidate_labels=[...], hypothesis_template=["a person {{}}", "a video of {{}}"],
           batch_size=2, num_frames=12)

extractor = pipeline("video-feature-extraction", model="{repo_id}", trust_remote_code=True)
embedding = extractor("clip.mp4")  # a unit-norm list of floats
```

Both pipelines take `device=` / `dtype=` like any transformers pipeline, and pass video options (`num_frames`,
frame sampling, time window) to the video processor.

### Continued pre-training and fine-tuning

```python
from transformers import AutoModelForPreTraining

model = AutoModelForPreTraining.from_pretrained("{repo_id}", trust_remote_code=True)  # TVTSv2ForPreTraining
```

With the `tvtsv2` package, `accelerate launch training/run_pretrain.py` continues pre-training on your own videos
with transcripts (contrastive + transcript-sorting losses, the paper's freezing recipe); see
`python training/run_pretrain.py --help`. LoRA adapters (peft) are supported: the recommended targets are the
attention projections `q_proj`, `k_proj`, `v_proj`, `out_proj` of both towers (`self_attn` and the video tower's
`temporal_attn`), optionally `mlp.fc1` / `mlp.fc2`.

{results_section}
## Preprocessing

Frames are sampled uniformly (the middle frame of equal segments), resized so that the shorter side is
268/224 × the input size with nearest interpolation, centre-cropped and normalised with the ImageNet mean and std,
as in the original evaluation code.

## Citation

```bibtex
@article{{zeng2023tvtsv2,
  title={{TVTSv2: Learning Out-of-the-box Spatiotemporal Visual Representations at Scale}},
  author={{Zeng, Ziyun and Ge, Yixiao and Tong, Zhan and Liu, Xihui and Xia, Shu-Tao and Shan, Ying}},
  journal={{arXiv preprint arXiv:2305.14173}},
  year={{2023}}
}}
```
"""


# --------------------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _auto_classes(*pairs: tuple[type, str]) -> Iterator[None]:
    """Temporarily `register_for_auto_class` so that `save_pretrained` copies the code and writes `auto_map`.

    The registration is a class attribute; it is restored afterwards so that later, ordinary `save_pretrained`
    calls in the same process do not start copying code files.
    """
    previous = [(cls, cls.__dict__.get("_auto_class", None), "_auto_class" in cls.__dict__) for cls, _ in pairs]
    try:
        for cls, auto_class in pairs:
            cls.register_for_auto_class(auto_class)
        yield
    finally:
        for cls, value, had_own in previous:
            if had_own:
                cls._auto_class = value
            else:
                with contextlib.suppress(AttributeError):
                    del cls._auto_class


def _update_json(path: Path, update) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    update(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _copy_flat_module(module_file: str, output_dir: Path) -> None:
    """Copies a flat Hub file and the siblings it imports with `from .x import y` (transitively)."""
    from transformers.dynamic_module_utils import get_relative_import_files

    for path in [module_file, *get_relative_import_files(module_file)]:
        shutil.copy(path, output_dir / os.path.basename(path))


def save_hub_folder(
    model,
    processor,
    output_dir: str | os.PathLike,
    eval_results: str | os.PathLike | dict | Sequence[dict] | None = None,
    *,
    overwrite: bool = False,
    source_dir: str | os.PathLike | None = None,
    repo_id: str | None = None,
    model_name: str | None = None,
    variant: str | None = None,
    license: str | None = None,
    base_model: str | Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    tags: Sequence[str] = (),
    max_shard_size: str | int = "5GB",
) -> Path:
    """Writes a Hub-ready folder from an in-memory model and processor (used by `export_for_hub` and converters).

    The folder is written to a temporary folder beside `output_dir` and moved into place only when complete
    (`modeling_tvtsv2.tools.output_folders`): a failed export leaves an existing folder untouched.

    Args:
        model: a `TVTSv2Model` or `TVTSv2ForPreTraining` (the sort head is kept when present).
        processor: a `TVTSv2Processor`.
        output_dir: the folder to write. If it exists and is not empty, `overwrite=True` is needed, and the folder is
            then replaced as a whole (files of earlier contents, e.g. `model_backup.safetensors`, do not survive).
        eval_results: evaluation records or a JSON file (see `load_eval_results`) for the card's `model-index`.
        overwrite: replace a non-empty `output_dir` (only after the new folder is complete).
        source_dir: the folder `model` was loaded from, if any: `output_dir` may equal it (in-place export, with
            `overwrite=True`) but may not contain it.
        repo_id / model_name / variant / license / base_model / datasets / tags: model card settings, see
            `build_model_card`.
        max_shard_size: `save_pretrained` shard size (the Hub recommends shards of at most 5GB).

    Returns:
        The output folder.

    Raises:
        OutputFolderError: `output_dir` is not empty (without `overwrite`), contains `source_dir`, or is not
            writable.
    """
    records = load_eval_results(eval_results)
    card_kwargs = dict(
        repo_id=repo_id, model_name=model_name, variant=variant, license=license, base_model=base_model,
        datasets=datasets, extra_tags=tags,
    )  # fmt: skip
    # The staging folder lies beside the target (same file system): safe when output_dir is the source folder whose
    # safetensors may still be memory-mapped by `model`.
    with staged_output_folder(
        output_dir, overwrite=overwrite, inputs=[source_dir], allow_same_as=source_dir
    ) as staging:
        _write_hub_files(model, processor, staging, records, card_kwargs, max_shard_size)
    return Path(output_dir)


def _write_hub_files(
    model, processor, folder: Path, records: Sequence[dict[str, Any]], card_kwargs: dict[str, Any], max_shard_size
) -> None:
    """Everything a Hub folder holds, written into the (empty) `folder`."""
    from .. import pipeline_tvtsv2
    from ..modeling_tvtsv2 import TVTSv2ForPreTraining

    has_sort_head = isinstance(model, TVTSv2ForPreTraining)
    video_processor = getattr(processor, "video_processor", None)
    registrations = [
        (type(model.config), "AutoConfig"),
        (type(model), "AutoModelForPreTraining" if has_sort_head else "AutoModel"),
        (type(processor), "AutoProcessor"),
    ]
    if video_processor is not None:
        registrations.append((type(video_processor), "AutoVideoProcessor"))
    tokenizer = getattr(processor, "tokenizer", None)
    if getattr(tokenizer, "cleans_text", False):  # TVTSv2Tokenizer (text cleaning) travels as remote code too
        registrations.append((type(tokenizer), "AutoTokenizer"))
    with _auto_classes(*registrations):
        model.save_pretrained(folder, max_shard_size=max_shard_size)
        processor.save_pretrained(folder)
    _copy_flat_module(pipeline_tvtsv2.__file__, folder)

    def patch_config(config: dict[str, Any]) -> None:
        config["auto_map"] = {**config.get("auto_map", {}), **_MODEL_AUTO_MAP}
        config["custom_pipelines"] = custom_pipelines_config()

    _update_json(folder / "config.json", patch_config)
    card = build_model_card(
        model.config,
        records,
        has_sort_head=has_sort_head,
        frames_per_video=getattr(video_processor, "num_frames", None),
        **card_kwargs,
    )
    card.save(folder / "README.md")
    if records:
        (folder / "eval_results.json").write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")


def export_for_hub(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    eval_results: str | os.PathLike | dict | Sequence[dict] | None = None,
    *,
    overwrite: bool = False,
    **card_kwargs: Any,
) -> Path:
    """Exports a saved TVTSv2 model folder (e.g. from `tvtsv2 convert` or training) to a Hub-ready folder.

    Args:
        model_dir: a folder with `config.json` + weights (and processor files; without them the default TVTSv2
            processor for the model's frame size is written).
        output_dir: the Hub folder to write. It may equal `model_dir` (in-place export: needs `overwrite=True`,
            and the folder is then replaced as a whole by the export) but may not contain it.
        eval_results: evaluation records or a results JSON file from `training/run_eval.py`.
        overwrite: replace a non-empty `output_dir`, only once the new folder is complete.
        **card_kwargs: `repo_id`, `model_name`, `variant`, `license`, `base_model`, `datasets`, `tags`,
            `max_shard_size` (see `save_hub_folder`).

    Returns:
        The output folder.

    Raises:
        OutputFolderError: see `save_hub_folder` (checked before the model is loaded).
    """
    from transformers import AutoConfig

    from .model_loading import load_processor_or_default
    from ..modeling_tvtsv2 import TVTSv2ForPreTraining, TVTSv2Model

    check_output_folder(output_dir, overwrite=overwrite, inputs=[model_dir], allow_same_as=model_dir)
    if Path(model_dir).exists() and not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"--model {model_dir} is not a model folder (no config.json)")
    config = AutoConfig.from_pretrained(model_dir)
    architectures = getattr(config, "architectures", None) or []
    model_cls = TVTSv2ForPreTraining if "TVTSv2ForPreTraining" in architectures else TVTSv2Model
    # The saved dtype is kept (transformers 5 loads checkpoints in their saved dtype).
    model = model_cls.from_pretrained(model_dir)
    processor = load_processor_or_default(str(model_dir), config)
    return save_hub_folder(
        model, processor, output_dir, eval_results, overwrite=overwrite, source_dir=model_dir, **card_kwargs
    )


# --------------------------------------------------------------------------------------------------------------
# Command line: `tvtsv2 export`
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ExportArguments:
    """`tvtsv2 export` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`, argument files)."""

    model: str = field(metadata={"help": "model folder (config.json + weights [+ processor])"})
    output: str = field(
        metadata={"help": "Hub folder to write (new or empty; may equal --model with --overwrite)"}
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "replace a non-empty --output as a whole, only after the export is complete"},
    )
    eval_results: list[str] | None = field(
        default=None,
        metadata={"help": "results JSON from training/run_eval.py (repeatable)", "repeatable": True},
    )
    repo_id: str | None = field(default=None, metadata={"help": "Hub id used in the card's usage examples"})
    model_name: str | None = field(default=None, metadata={"help": "name in the card and model-index"})
    variant: str | None = field(
        default=None, metadata={"help": "released variant", "choices": sorted(RELEASED_BASE_MODELS)}
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "license id for the card (default: 'other' with a link to the original project for released "
            "variants, 'apache-2.0' otherwise)"
        },
    )
    base_model: list[str] | None = field(
        default=None, metadata={"help": "base model Hub id (repeatable)", "repeatable": True}
    )
    datasets: list[str] | None = field(
        default=None,
        metadata={"help": "training dataset id (repeatable)", "aliases": ["--dataset"], "repeatable": True},
    )
    tags: list[str] = field(
        default_factory=list,
        metadata={"help": "extra card tag (repeatable)", "aliases": ["--tag"], "repeatable": True},
    )
    push_to_hub: str | None = field(
        default=None, metadata={"help": "upload the folder afterwards", "metavar": "REPO_ID"}
    )
    private: bool = field(default=False, metadata={"help": "create the pushed repository as private"})


EXPORT_DESCRIPTION = (
    "Export a TVTSv2 model folder for the Hugging Face Hub: weights, config with auto_map and custom_pipelines, "
    "processor files, the remote-code files and a model card (README.md) whose model-index comes from "
    "--eval-results. Loadable with trust_remote_code=True without the tvtsv2 package."
)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`tvtsv2 export ...`: returns the exit status (2 with one `error: ...` line for a user mistake)."""
    from .arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(ExportArguments, argv, prog=prog, description=EXPORT_DESCRIPTION)
    return run_export(args)


def run_export(args: ExportArguments) -> int:
    """Runs `tvtsv2 export` from parsed arguments."""
    records: list[dict[str, Any]] = []
    try:
        for path in args.eval_results or []:
            records.extend(load_eval_results(path))
    except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError
        print(f"error: --eval-results: {error}", file=sys.stderr)
        return 2
    base_model = args.base_model[0] if args.base_model and len(args.base_model) == 1 else args.base_model
    try:
        output = _export_from_args(args, records, base_model)
    except (OutputFolderError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Hub folder written to {output}")
    if args.push_to_hub:
        from huggingface_hub import create_repo, upload_folder

        create_repo(args.push_to_hub, private=args.private, exist_ok=True)
        upload_folder(repo_id=args.push_to_hub, folder_path=str(output), commit_message="Upload TVTSv2 model")
        print(f"Pushed to https://huggingface.co/{args.push_to_hub}")
    return 0


def _export_from_args(args: ExportArguments, records: list[dict[str, Any]], base_model) -> Path:
    return export_for_hub(
        args.model,
        args.output,
        records or None,
        overwrite=args.overwrite,
        repo_id=args.repo_id or args.push_to_hub,
        model_name=args.model_name,
        variant=args.variant,
        license=args.license,
        base_model=base_model,
        datasets=args.datasets,
        tags=args.tags,
    )
