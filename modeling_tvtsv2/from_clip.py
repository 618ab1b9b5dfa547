"""Initialise TVTSv2 from a 🤗 `CLIPModel`, the way the paper initialises from CLIP.

The spatial (image) weights and the whole text tower are copied; the new parameters get the original code's init:
time attention with zero q/k/v and an all-ones output projection (so it outputs exactly 0 at the start),
`temporal_layer_norm` = (1, 0), `temporal_embedding ~ N(0, width^-0.5)`, the sort head with PyTorch defaults.
CLIP's learnable `logit_scale` is not carried over: TVTSv2 uses a fixed temperature (0.05).
"""

from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel
from transformers.utils import logging

from .configuration_tvtsv2 import TVTSv2Config
from .modeling_tvtsv2 import TVTSv2ForPreTraining, TVTSv2Model

logger = logging.get_logger(__name__)

# The released variants (their presets hold the original per-variant pre-training settings, e.g. the mask ratio).
RELEASED_VARIANTS = ("b32", "b16", "h14")

# Parameters that exist only in TVTSv2 (and are therefore initialised, not copied).
_NEW_PARAMETER_MARKERS = ("temporal_attn.", "temporal_layer_norm.", "temporal_embedding", "sort_head.")
_CLIP_ONLY_KEYS = ("logit_scale", "position_ids")


def _architecture(config: TVTSv2Config) -> tuple:
    vision, text = config.vision_config, config.text_config
    return (
        vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers, vision.patch_size, vision.image_size,
        vision.hidden_act, text.hidden_size, text.num_hidden_layers, text.hidden_act, config.projection_dim,
    )  # fmt: skip


def released_variant(config: TVTSv2Config) -> str | None:
    """`"b32"`, `"b16"` or `"h14"` when `config` has the towers of a released TVTSv2 variant, else `None`."""
    for name in RELEASED_VARIANTS:
        if _architecture(TVTSv2Config.from_preset(name)) == _architecture(config):
            return name
    return None


def config_from_clip(clip_config: CLIPConfig, num_frames: int = 12, **overrides) -> TVTSv2Config:
    """A `TVTSv2Config` with the towers of `clip_config`. OpenAI CLIP (QuickGELU) gets fp32-upcast LayerNorms and
    the B-style sort-head input; other CLIPs (GELU, e.g. OpenCLIP ViT-H) the H/14 style.

    When the towers are those of a released variant (CLIP ViT-B/32, ViT-B/16, OpenCLIP ViT-H/14), that variant's
    pre-training settings are used too: tube-mask ratio 0 / 0.5 / 0.7 (`pretraining_mask_ratio`), as the original.
    """
    vision, text = clip_config.vision_config, clip_config.text_config
    openai_style = vision.hidden_act == "quick_gelu"
    defaults = dict(
        vision_config=dict(
            hidden_size=vision.hidden_size,
            intermediate_size=vision.intermediate_size,
            num_hidden_layers=vision.num_hidden_layers,
            num_attention_heads=vision.num_attention_heads,
            num_channels=vision.num_channels,
            image_size=vision.image_size,
            patch_size=vision.patch_size,
            num_frames=num_frames,
            hidden_act=vision.hidden_act,
            layer_norm_eps=vision.layer_norm_eps,
            layer_norm_upcast=openai_style,
        ),
        text_config=dict(
            vocab_size=text.vocab_size,
            hidden_size=text.hidden_size,
            intermediate_size=text.intermediate_size,
            num_hidden_layers=text.num_hidden_layers,
            num_attention_heads=text.num_attention_heads,
            max_position_embeddings=text.max_position_embeddings,
            hidden_act=text.hidden_act,
            layer_norm_eps=text.layer_norm_eps,
            layer_norm_upcast=openai_style,
            bos_token_id=text.bos_token_id,
            eos_token_id=text.eos_token_id,
            pad_token_id=text.eos_token_id,
        ),
        projection_dim=clip_config.projection_dim,
        sort_head_num_attention_heads=max(1, clip_config.projection_dim // 64),
        sort_head_video_tokens="all_tokens_post_ln" if openai_style else "patch_tokens_pre_ln",
        num_frozen_text_layers=text.num_hidden_layers * 3 // 4,
    )
    for key in ("vision_config", "text_config"):
        if isinstance(overrides.get(key), dict):
            defaults[key].update(overrides.pop(key))
    mask_ratio_given = "pretraining_mask_ratio" in overrides
    defaults.update(overrides)
    config = TVTSv2Config(**defaults)
    variant = released_variant(config)
    if variant is not None and not mask_ratio_given:
        config.pretraining_mask_ratio = TVTSv2Config.from_preset(variant).pretraining_mask_ratio
        logger.info("CLIP towers of the released %s variant: mask ratio %s", variant, config.pretraining_mask_ratio)
    return config


def tvtsv2_from_clip(
    clip: CLIPModel | str | Path,
    model_class: type[TVTSv2Model] = TVTSv2ForPreTraining,
    num_frames: int = 12,
    **config_overrides,
) -> TVTSv2Model:
    """Build `model_class` (default `TVTSv2ForPreTraining`) from a `CLIPModel` or a local CLIP folder.

    Raises `ValueError` if any CLIP weight would be dropped or any non-new TVTSv2 weight left uninitialised.
    """
    if not isinstance(clip, CLIPModel):
        clip = CLIPModel.from_pretrained(str(clip), dtype=torch.float32)
    config = config_from_clip(clip.config, num_frames=num_frames, **config_overrides)
    model = model_class(config)
    clip_state = {k: v for k, v in clip.state_dict().items() if not k.endswith(_CLIP_ONLY_KEYS)}
    result = model.load_state_dict(clip_state, strict=False)
    not_new = [k for k in result.missing_keys if not any(marker in k for marker in _NEW_PARAMETER_MARKERS)]
    if not_new or result.unexpected_keys:
        raise ValueError(
            f"CLIP weights do not fit TVTSv2: uncopied TVTSv2 weights {not_new}, unused CLIP weights "
            f"{result.unexpected_keys}"
        )
    logger.info("initialised %d new TVTSv2 tensors, copied %d from CLIP", len(result.missing_keys), len(clip_state))
    return model
