"""Pipelines for TVTSv2: zero-shot video classification and video feature extraction.

transformers 5.24 has neither task, so both are custom pipelines registered with `PIPELINE_REGISTRY` (by
`register_pipelines()`, which `import modeling_tvtsv2` calls) and exported to Hub folders as remote code
(`config.json["custom_pipelines"]`), so that

    pipe = pipeline("zero-shot-video-classification", model="path/or/hub-id", trust_remote_code=True)
    pipe("clip.mp4", candidate_labels=["dancing", "cooking"])

works with or without the `tvtsv2` package installed.

This is a flat Hub file: project code comes only from its sibling ``modeling_tvtsv2`` (``autocast_context``), so it
runs unchanged from a Hub folder.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoProcessor, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import no_collate_fn
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .modeling_tvtsv2 import AUTOCAST_DTYPES, autocast_context


ZERO_SHOT_VIDEO_CLASSIFICATION = "zero-shot-video-classification"
VIDEO_FEATURE_EXTRACTION = "video-feature-extraction"

DEFAULT_HYPOTHESIS_TEMPLATE = "a person {}"
"""The prompt template of the original TVTSv2 zero-shot action recognition."""

DEFAULT_LOGIT_SCALE = 100.0
"""logits = 100 * cosine, as in the original zero-shot recognition scripts; softmax scores depend on it."""


def _video_source(video: Any, timeout: float | None = None) -> Any:
    """Accepts what 🤗 Datasets gives for a `Video(decode=False)` cell (`{"bytes", "path"}`) and path-likes.

    With `timeout` (seconds), an http(s) URL is fetched here with that limit (as the image pipelines' `timeout`
    does) and its bytes are decoded; without it the decoder opens the URL itself.
    """
    if isinstance(video, dict) and ("bytes" in video or "path" in video):
        video = video.get("bytes") or video.get("path")
    if isinstance(video, os.PathLike):
        video = os.fspath(video)
    if video is None:
        raise ValueError("No video given (a None input, or a dict with neither 'bytes' nor 'path').")
    if timeout is not None and isinstance(video, str) and video.startswith(("http://", "https://")):
        return _fetch_url(video, timeout)
    return video


def _fetch_url(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (OSError, ValueError) as error:  # URLError, socket timeouts and HTTP errors are OSErrors
        reason = getattr(error, "reason", None) or error
        raise ValueError(f"Could not fetch video {url} within timeout={timeout} s: {reason}") from error


def _check_timeout(timeout: Any) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


def _collate_videos(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batches preprocessed items: video tensors are concatenated, everything else is kept as a list."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.cat(values) if isinstance(values[0], torch.Tensor) else values
    return batch


def _autocast_param(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pops and checks `autocast=` ("fp16", "bf16" or None): the forward pass runs under `autocast_context`."""
    if "autocast" not in kwargs:
        return {}
    precision = kwargs.pop("autocast")
    if precision is not None and str(precision).lower() not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be 'fp16' or 'bf16' (or None), got {precision!r}")
    return {"autocast": precision}


def _check_top_k(top_k: Any) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer (or None for all labels), got {top_k!r}")


def _fill_template(template: str, label: str) -> str:
    """`template.format(label)`, with one clear error for templates that `str.format` cannot fill."""
    try:
        return template.format(label)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"hypothesis_template {template!r} cannot be filled: it must contain exactly the placeholder '{{}}' "
            f"(write other braces as '{{{{' and '}}}}'); str.format said {type(error).__name__}: {error}"
        ) from None


def _model_logit_scale(model: Any) -> float:
    """The model's own multiplier of the cosines (`logit_scale=None`): TVTSv2's 1 / temperature, or CLIP's
    `logit_scale.exp()` for CLIP-style models."""
    if callable(getattr(model, "logit_scale_value", None)):
        return float(model.logit_scale_value())
    scale = getattr(model, "logit_scale", None)
    if isinstance(scale, torch.Tensor):
        return float(scale.detach().float().exp())
    temperature = getattr(getattr(model, "config", None), "temperature", None)
    if temperature:
        return 1.0 / float(temperature)
    raise ValueError(f"{type(model).__name__} has no logit scale; pass logit_scale= as a number")


def _processor_of_base_model(model: Any) -> Any:
    """The processor saved with `model`'s weights (for a peft `PeftModel`: with its base model), or None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    source = getattr(base, "name_or_path", None) or getattr(getattr(base, "config", None), "_name_or_path", None)
    if not source:
        return None
    try:
        return AutoProcessor.from_pretrained(source)
    except (OSError, ValueError, TypeError):
        return None


class _TVTSv2VideoPipeline(Pipeline):
    """Shared plumbing: video decoding through the TVTSv2 video processor, dtype handling and batching."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    # None: `pipeline()` tries to load it but does not fail; a model object (e.g. a peft `PeftModel`) gets the
    # processor saved with its base model in `__init__`.
    _load_video_processor = None
    _needs_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        processor = self.processor
        if processor is None and (self.video_processor is None or (self._needs_tokenizer and self.tokenizer is None)):
            processor = _processor_of_base_model(self.model)
        # A TVTSv2Processor (passed as `processor=`, or the base model's): take its parts.
        if processor is not None:
            if self.video_processor is None:
                self.video_processor = getattr(processor, "video_processor", None)
            if self.tokenizer is None:
                self.tokenizer = getattr(processor, "tokenizer", None)
        if self._needs_tokenizer and self.tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs the model's tokenizer (`tokenizer=` or `processor=`).")
        if self.video_processor is None:
            raise ValueError(f"{type(self).__name__} needs a TVTSv2 video processor (`video_processor=`).")

    def _video_processor_kwarg_names(self) -> set[str]:
        valid = getattr(self.video_processor, "valid_kwargs", None)
        return set(getattr(valid, "__annotations__", {})) - {"return_tensors", "device"}

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any):
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            return []  # an empty batch gives an empty result (transformers' batching cannot take one)
        return super().__call__(inputs, *args, **kwargs)

    def _split_video_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Moves sampling/transform options (`num_frames`, `sampling`, `start`, `end`, ...) to the video processor."""
        video_kwargs = dict(kwargs.pop("video_kwargs", None) or {})
        for name in self._video_processor_kwarg_names() & set(kwargs):
            video_kwargs[name] = kwargs.pop(name)
        if "timeout" in kwargs:
            _check_timeout(kwargs["timeout"])
            video_kwargs["timeout"] = kwargs.pop("timeout")
        return video_kwargs

    def _preprocess_video(self, video: Any, video_kwargs: dict[str, Any]) -> torch.Tensor:
        video_kwargs = dict(video_kwargs)
        source = _video_source(video, video_kwargs.pop("timeout", None))
        outputs = self.video_processor(videos=[source], return_tensors="pt", **video_kwargs)
        pixel_values = outputs["pixel_values_videos"]
        return pixel_values.to(self.dtype) if self.dtype is not None else pixel_values

    def _video_embeddings(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        embeds = self.model.get_video_features(pixel_values_videos=pixel_values_videos).pooler_output
        return F.normalize(embeds.float(), dim=-1)

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        # The base implementation pads batches with the tokenizer/feature extractor collator, which does not know
        # video tensors and refuses to batch without a tokenizer; videos of one call all have the same shape (the
        # processor samples a fixed number of frames), so concatenation is all that is needed.
        if "TOKENIZERS_PARALLELISM" not in os.environ:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        collate_fn = no_collate_fn if batch_size == 1 else _collate_videos
        loader = torch.utils.data.DataLoader(
            dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate_fn
        )
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


class ZeroShotVideoClassificationPipeline(_TVTSv2VideoPipeline):
    """Zero-shot video classification with a TVTSv2 (or any CLIP-style video-text) model.

    The labels are put into `hypothesis_template` (the paper's `"a person {}"` by default; pass a list of templates
    to average them: normalised per template, averaged, re-normalised), embedded by the text tower and compared
    with the video embedding by cosine similarity; scores are `softmax(logit_scale * cosine)`, sorted.

    Example:

    ```python
    >>> import modeling_tvtsv2  # registers the task (not needed with trust_remote_code=True)
    >>> from transformers import pipeline
    >>> classifier = pipeline("zero-shot-video-classification", model="path/to/tvtsv2", device="cpu")
    >>> classifier("park.mp4", candidate_labels=["walking a dog", "playing guitar", "cooking"])
    [{'score': 0.91, 'label': 'walking a dog'}, {'score': 0.06, 'label': 'cooking'}, ...]
    >>> classifier(["a.mp4", "b.mp4"], candidate_labels=[...], batch_size=2)  # a list in -> a list of lists out
    ```

    Call arguments:
        videos: a path, `bytes`, a `[T, H, W, C]` uint8 array/tensor, a 🤗 Datasets `{"bytes", "path"}` dict, or a
            list of those (a list is always a batch of videos, never a list of frames).
        candidate_labels (`list[str]`): the classes.
        hypothesis_template (`str` or `list[str]`, defaults to `"a person {}"`): prompt template(s) with `{}` (filled
            with `str.format`: other literal braces are written `{{`/`}}`; anything else is a `ValueError`).
        logit_scale (`float` or `None`, defaults to 100): multiplier of the cosines before the softmax. 100 is the
            original zero-shot recognition value; `None` uses the model's own scale (`1 / config.temperature`, 20
            for the released models, or the learned scale).
        top_k (`int`, *optional*): return only the best k labels (a positive integer; more than the number of
            labels returns them all).
        timeout (`float`, *optional*): seconds allowed to fetch an http(s) video URL (as the image pipelines).
        autocast (`"fp16"` or `"bf16"`, *optional*): run the model under the original's mixed precision
            (`autocast_context`: low-precision matmuls, float32 weights, residual stream and LayerNorm). Also
            accepted by `pipeline(..., autocast="fp16")`.
        num_frames, sampling, start, end, ...: any video processor option, or `video_kwargs={...}`.
        batch_size (`int`): videos per forward pass for a list input. An empty list returns `[]`.
    """

    _load_tokenizer = None  # see `_load_video_processor`
    _needs_tokenizer = True

    def __call__(self, videos: Any, candidate_labels: Sequence[str] | None = None, **kwargs: Any):
        if "video" in kwargs:
            videos = kwargs.pop("video")
        if candidate_labels is None:
            raise ValueError("`candidate_labels` is required, e.g. candidate_labels=['dancing', 'cooking'].")
        if "top_k" in kwargs:
            _check_top_k(kwargs["top_k"])
        return super().__call__(videos, candidate_labels=candidate_labels, **kwargs)

    def _sanitize_parameters(self, **kwargs):
        video_kwargs = self._split_video_kwargs(kwargs)
        preprocess_params: dict[str, Any] = {}
        if video_kwargs:
            preprocess_params["video_kwargs"] = video_kwargs
        for name in ("candidate_labels", "hypothesis_template", "tokenizer_kwargs"):
            if name in kwargs:
                preprocess_params[name] = kwargs.pop(name)
        postprocess_params = {name: kwargs.pop(name) for name in ("logit_scale", "top_k") if name in kwargs}
        forward_params = _autocast_param(kwargs)
        if kwargs:
            raise TypeError(f"Unexpected arguments for {ZERO_SHOT_VIDEO_CLASSIFICATION}: {sorted(kwargs)}")
        return preprocess_params, forward_params, postprocess_params

    def preprocess(
        self,
        video: Any,
        candidate_labels: Sequence[str] | None = None,
        hypothesis_template: str | Sequence[str] = DEFAULT_HYPOTHESIS_TEMPLATE,
        video_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if not candidate_labels:
            raise ValueError("`candidate_labels` must be a non-empty list of strings.")
        candidate_labels = [candidate_labels] if isinstance(candidate_labels, str) else list(candidate_labels)
        templates = [hypothesis_template] if isinstance(hypothesis_template, str) else list(hypothesis_template)
        if not templates or any("{}" not in template for template in templates):
            raise ValueError(f"Every hypothesis template needs a '{{}}' placeholder, got {templates}.")
        # label-major order: [label0/template0, label0/template1, ..., label1/template0, ...]
        sequences = [_fill_template(template, label) for label in candidate_labels for template in templates]
        max_length = getattr(getattr(self.model.config, "text_config", None), "max_position_embeddings", 77)
        # Padding to the longest prompt is enough: the text tower is causal and pools at the first end token.
        text_kwargs = {"padding": True, "truncation": True, "max_length": max_length, **(tokenizer_kwargs or {})}
        text_inputs = dict(self.tokenizer(sequences, return_tensors="pt", **text_kwargs))
        text_inputs["num_templates"] = len(templates)
        return {
            "pixel_values_videos": self._preprocess_video(video, video_kwargs or {}),
            "candidate_labels": candidate_labels,
            # Wrapped in a list so that batching keeps one copy per video instead of concatenating token tensors
            # (all videos of one call share the labels; the first copy is used).
            "text_inputs": [text_inputs],
        }

    def _forward(self, model_inputs: dict[str, Any], autocast: str | None = None) -> dict[str, Any]:
        text_inputs = model_inputs["text_inputs"]
        text_inputs = dict(text_inputs[0][0] if isinstance(text_inputs[0], list) else text_inputs[0])
        num_templates = text_inputs.pop("num_templates")
        with autocast_context(self.model, autocast):
            text_embeds = self.model.get_text_features(**text_inputs).pooler_output
            video_embeds = self._video_embeddings(model_inputs["pixel_values_videos"])
        text_embeds = F.normalize(text_embeds.float(), dim=-1)
        # Average the templates of each label on the unit sphere, then re-normalise (the original recipe).
        class_embeds = F.normalize(text_embeds.reshape(-1, num_templates, text_embeds.shape[-1]).mean(dim=1), dim=-1)
        return {"cosine": video_embeds @ class_embeds.T, "candidate_labels": model_inputs["candidate_labels"]}

    def postprocess(
        self,
        model_outputs: dict[str, Any],
        logit_scale: float | None = DEFAULT_LOGIT_SCALE,
        top_k: int | None = None,
    ) -> list[dict[str, Any]]:
        labels = model_outputs["candidate_labels"]
        scale = _model_logit_scale(self.model) if logit_scale is None else float(logit_scale)
        scores = (scale * model_outputs["cosine"][0]).softmax(dim=-1).tolist()
        # Stable sort: equal scores keep the order of `candidate_labels`.
        order = sorted(range(len(labels)), key=lambda i: -scores[i])
        if top_k is not None:
            order = order[:top_k]
        return [{"score": scores[i], "label": labels[i]} for i in order]


class VideoFeatureExtractionPipeline(_TVTSv2VideoPipeline):
    """Video -> embedding with a TVTSv2 model: the projected CLS embedding, L2-normalised by default.

    Example:

    ```python
    >>> extractor = pipeline("video-feature-extraction", model="path/to/tvtsv2")
    >>> embedding = extractor("park.mp4")                      # list of `projection_dim` floats, unit norm
    >>> embeddings = extractor(["a.mp4", "b.mp4"], batch_size=2, return_tensors=True)  # list of 1-D tensors
    ```

    Call arguments:
        videos: a path, `bytes`, a `[T, H, W, C]` uint8 array/tensor, a `{"bytes", "path"}` dict, or a list of those.
        normalize (`bool`, defaults to `True`): L2-normalise (cosine similarity = dot product). `False` returns the
            model's raw `pooler_output` (the original's unnormalised video embedding).
        return_tensors (`bool`, defaults to `False`): a 1-D `torch.Tensor` instead of a list of floats.
        timeout (`float`, *optional*): seconds allowed to fetch an http(s) video URL (as the image pipelines).
        autocast (`"fp16"` or `"bf16"`, *optional*): the original's mixed precision (see `autocast_context`).
        num_frames, sampling, start, end, ...: any video processor option, or `video_kwargs={...}`.

    Unlike transformers' `feature-extraction`, the output is one flat vector per video (no leading batch axis).
    """

    _load_tokenizer = False

    def _sanitize_parameters(self, **kwargs):
        video_kwargs = self._split_video_kwargs(kwargs)
        preprocess_params = {"video_kwargs": video_kwargs} if video_kwargs else {}
        forward_params = {"normalize": kwargs.pop("normalize")} if "normalize" in kwargs else {}
        forward_params.update(_autocast_param(kwargs))
        postprocess_params = {"return_tensors": kwargs.pop("return_tensors")} if "return_tensors" in kwargs else {}
        if kwargs:
            raise TypeError(f"Unexpected arguments for {VIDEO_FEATURE_EXTRACTION}: {sorted(kwargs)}")
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, video: Any, video_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"pixel_values_videos": self._preprocess_video(video, video_kwargs or {})}

    def _forward(self, model_inputs: dict[str, Any], normalize: bool = True, autocast: str | None = None):
        with autocast_context(self.model, autocast):
            pixel_values = model_inputs["pixel_values_videos"]
            embeds = self.model.get_video_features(pixel_values_videos=pixel_values).pooler_output
        embeds = embeds.float()
        return {"video_embeds": F.normalize(embeds, dim=-1) if normalize else embeds}

    def postprocess(self, model_outputs: dict[str, Any], return_tensors: bool = False) -> torch.Tensor | list[float]:
        embedding = model_outputs["video_embeds"][0]
        return embedding if return_tensors else embedding.tolist()


def register_pipelines() -> None:
    """Registers both tasks with transformers' `PIPELINE_REGISTRY` (idempotent).

    Afterwards `pipeline("zero-shot-video-classification", model=...)` and
    `pipeline("video-feature-extraction", model=...)` work for TVTSv2 models, and `Pipeline.save_pretrained` /
    `push_to_hub` record the task in `config.json["custom_pipelines"]` and copy this file.
    """
    tasks = {
        ZERO_SHOT_VIDEO_CLASSIFICATION: (ZeroShotVideoClassificationPipeline, "multimodal"),
        VIDEO_FEATURE_EXTRACTION: (VideoFeatureExtractionPipeline, "video"),
    }
    supported = PIPELINE_REGISTRY.supported_tasks
    for task, (pipeline_class, kind) in tasks.items():
        if supported.get(task, {}).get("impl") is pipeline_class:
            continue  # already registered: avoid transformers' "Overwriting pipeline" warning
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=pipeline_class, pt_model=AutoModel, type=kind)


def custom_pipelines_config() -> dict[str, dict[str, Any]]:
    """The `config.json["custom_pipelines"]` entry for a Hub folder holding this file as `pipeline_tvtsv2.py`.

    Same format as `Pipeline.save_pretrained` writes: `{"task": {"impl": "pipeline_tvtsv2.Class", "pt": [...],
    "type": ...}}`.
    """
    module = __name__.rsplit(".", 1)[-1]
    return {
        ZERO_SHOT_VIDEO_CLASSIFICATION: {
            "impl": f"{module}.{ZeroShotVideoClassificationPipeline.__name__}",
            "pt": ["AutoModel"],
            "type": "multimodal",
        },
        VIDEO_FEATURE_EXTRACTION: {
            "impl": f"{module}.{VideoFeatureExtractionPipeline.__name__}",
            "pt": ["AutoModel"],
            "type": "video",
        },
    }


__all__ = [
    "DEFAULT_HYPOTHESIS_TEMPLATE",
    "VideoFeatureExtractionPipeline",
    "ZeroShotVideoClassificationPipeline",
    "custom_pipelines_config",
    "register_pipelines",
]
