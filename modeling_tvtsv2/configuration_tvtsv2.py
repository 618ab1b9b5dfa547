"""TVTSv2 configuration: a CLIP-style dual encoder whose video tower uses divided space-time attention.

This file is a flat Hub file: it imports only transformers/huggingface_hub and siblings (`from .x import y`).
"""


import json
import os

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


@strict
class TVTSv2VisionConfig(PreTrainedConfig):
    r"""Video tower: a CLIP ViT whose blocks run time attention, then space attention (see `TVTSv2VisionLayer`).

    Args:
        hidden_size: width of the tower.
        intermediate_size: MLP hidden size.
        num_hidden_layers / num_attention_heads: depth and heads (used by both the time and the space attention).
        image_size / patch_size: input resolution and patch size; `(image_size // patch_size) ** 2` patches per frame.
        num_frames: rows of the learned `temporal_embedding` (12 for every released model). Longer inputs need
            `interpolate_pos_encoding=True` in the forward, otherwise they are refused.
        hidden_act: `"quick_gelu"` (B/32, B/16) or `"gelu"` (H/14, exact erf).
        layer_norm_eps: LayerNorm epsilon.
        layer_norm_upcast: compute LayerNorm in float32 and cast back (OpenAI CLIP's `LayerNorm`, B models). H/14's
            OpenCLIP LayerNorm computes in the input dtype (`False`). Identical in fp32.
        initializer_range / initializer_factor: init scales for freshly built CLIP-side weights.
        temporal_embedding_init_std: std of the fresh `temporal_embedding`; `None` = `hidden_size ** -0.5`, the
            original's init. The tiny preset raises it: a randomly initialised narrow tower otherwise carries too
            weak a frame-order signal for transcript sorting to take off in a short run.
    """

    model_type = "tvtsv2_vision_model"
    base_config_key = "vision_config"

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 12
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float | int = 1e-5
    layer_norm_upcast: bool = True
    attention_dropout: float | int = 0.0
    initializer_range: float | int = 0.02
    initializer_factor: float | int = 1.0
    temporal_embedding_init_std: float | int | None = None

    def validate_architecture(self):
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"vision hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.image_size % self.patch_size != 0:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@strict
class TVTSv2TextConfig(PreTrainedConfig):
    r"""Text tower: the CLIP text transformer (causal, pooled at the first end-of-text token).

    `pad_token_id` defaults to the end-of-text id: the Hugging Face CLIP tokenizer pads with it, and pooling at
    the *first* end-of-text token makes the padding id irrelevant (the tower is causal).
    """

    model_type = "tvtsv2_text_model"
    base_config_key = "text_config"

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float | int = 1e-5
    layer_norm_upcast: bool = True
    attention_dropout: float | int = 0.0
    initializer_range: float | int = 0.02
    initializer_factor: float | int = 1.0
    pad_token_id: int | None = 49407
    bos_token_id: int | None = 49406
    eos_token_id: int | None = 49407

    def validate_architecture(self):
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"text hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )


SORT_HEAD_VIDEO_TOKENS = ("all_tokens_post_ln", "patch_tokens_pre_ln")


@strict
class TVTSv2Config(PreTrainedConfig):
    r"""Configuration of [`TVTSv2Model`] and [`TVTSv2ForPreTraining`].

    Args:
        text_config / vision_config: the two towers.
        projection_dim: joint embedding size (512 for B, 1024 for H).
        sort_head_num_layers / sort_head_num_attention_heads / sort_head_mlp_ratio / sort_head_layer_norm_eps:
            the transcript-sorting transformer (2 pre-norm blocks, GELU, LayerNorm eps 1e-6). Its width is
            `projection_dim` because it reads projected video tokens and text embeddings.
        sort_head_num_classes: number of chronological positions it predicts (= transcripts per video, 4).
        sort_head_video_tokens: which video tokens feed the sort head. `"all_tokens_post_ln"` (B models): every
            token incl. CLS after `post_layernorm` and the projection. `"patch_tokens_pre_ln"` (H/14): the patch
            tokens projected without `post_layernorm`.
        temperature: contrastive softmax temperature (0.05 in the paper, fixed).
        learnable_temperature: learn `log(1/temperature)` as a parameter `logit_scale` instead.
        sort_loss_weight: weight of the sorting cross-entropy (2.0 in the paper).
        pretraining_mask_ratio: tube-mask ratio used by the pre-training data pipeline (B/32: 0, B/16: 0.5,
            H/14: 0.7). The model itself only sees `keep_indices`.
        num_frozen_text_layers: shallow text blocks frozen by the default ("degradation-free") recipe: 9 of 12 (B),
            18 of 24 (H).
        return_loss: default of `TVTSv2ForPreTraining.forward(return_loss=None)`. `True` (training); set `False`
            for a pre-training graph without the losses (export, feature extraction).
    """

    model_type = "tvtsv2"
    sub_configs_defaults = {"text_config": TVTSv2TextConfig, "vision_config": TVTSv2VisionConfig}

    text_config: dict | TVTSv2TextConfig | None = None
    vision_config: dict | TVTSv2VisionConfig | None = None
    projection_dim: int = 512
    sort_head_num_layers: int = 2
    sort_head_num_attention_heads: int = 8
    sort_head_mlp_ratio: float | int = 4.0
    sort_head_num_classes: int = 4
    sort_head_layer_norm_eps: float | int = 1e-6
    sort_head_video_tokens: str = "all_tokens_post_ln"
    temperature: float | int = 0.05
    learnable_temperature: bool = False
    sort_loss_weight: float | int = 2.0
    pretraining_mask_ratio: float | int = 0.0
    num_frozen_text_layers: int = 9
    initializer_factor: float | int = 1.0
    return_loss: bool = True

    def validate_architecture(self):
        if self.sort_head_video_tokens not in SORT_HEAD_VIDEO_TOKENS:
            raise ValueError(
                f"sort_head_video_tokens must be one of {SORT_HEAD_VIDEO_TOKENS}, got {self.sort_head_video_tokens!r}"
            )
        if self.projection_dim % self.sort_head_num_attention_heads != 0:
            raise ValueError(
                f"projection_dim ({self.projection_dim}) must be divisible by sort_head_num_attention_heads "
                f"({self.sort_head_num_attention_heads})"
            )
        if not 0.0 <= self.pretraining_mask_ratio < 1.0:
            raise ValueError(f"pretraining_mask_ratio must be in [0, 1), got {self.pretraining_mask_ratio}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TVTSv2Config":
        """Build a config from a preset shipped in the repository's `configuration/models/` folder.

        `name` is one of `available_presets()` (`"b32"`, `"b16"`, `"h14"`, `"tiny"`) or a path to a JSON file in
        the same format. Keyword overrides are applied on top (`vision_config`/`text_config` may be dicts that are
        merged into the preset's).
        """
        if os.path.isfile(name):
            with open(name, encoding="utf-8") as handle:
                data = json.load(handle)
        else:
            data = json.loads(_preset_file(name).read_text(encoding="utf-8"))
        data.pop("_comment", None)
        for key in ("text_config", "vision_config"):
            if isinstance(overrides.get(key), dict):
                data[key] = {**data.get(key, {}), **overrides.pop(key)}
        data.update(overrides)
        return cls(**data)


def available_presets() -> list[str]:
    """Names accepted by `TVTSv2Config.from_preset`."""
    return sorted(p.name[: -len(".json")] for p in _presets_dir().iterdir() if p.name.endswith(".json"))


def _presets_dir():
    # The presets live in the repository's `configuration/models/`; setup.py installs that folder as the
    # package data `modeling_tvtsv2.presets`. A Hub (remote-code) copy of this file has no presets.
    try:
        from importlib.resources import files

        return files("modeling_tvtsv2.presets") / "models"
    except (ModuleNotFoundError, ImportError) as error:
        raise FileNotFoundError(
            "TVTSv2 presets are only available with the `tvtsv2` package installed (pip install tvtsv2)."
        ) from error


def _preset_file(name: str):
    path = _presets_dir() / f"{name.lower().replace('/', '').replace('-', '')}.json"
    if not path.is_file():
        raise ValueError(f"Unknown TVTSv2 preset {name!r}; available: {available_presets()} or a path to a JSON file")
    return path


__all__ = ["TVTSv2Config", "TVTSv2TextConfig", "TVTSv2VisionConfig", "available_presets"]
