"""TVTSv2 (Zeng et al., 2023, arXiv 2305.14173) in the modern transformers modeling style.

A CLIP-style dual encoder:
* video tower: a CLIP ViT whose blocks run *divided space-time attention* (time attention, then space attention;
  the CLS token attends to every token in both), with spatial + temporal position embeddings and tube masking;
* text tower: the CLIP text transformer (causal, pooled at the first end-of-text token);
* sort head (pre-training only): predicts the chronological position of each of K transcripts from the video tokens.

Module and parameter names follow 🤗 CLIP (`text_model.encoder.layers.N.self_attn.q_proj`, ...) so that CLIP
weights map one to one; the new parameters are `temporal_attn`, `temporal_layer_norm` and `temporal_embedding`.
This file is a flat Hub file: project imports are sibling-relative only.
"""


import contextlib
import math
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import PrefixChange
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, is_torch_flex_attn_available
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_tvtsv2 import TVTSv2Config, TVTSv2TextConfig, TVTSv2VisionConfig


if is_torch_flex_attn_available():
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask
else:  # torch < 2.5: the flex_attention implementation is unavailable, the others work
    BlockMask = Any


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------


def _to_tuple_with_tower_outputs(output: ModelOutput) -> tuple[Any, ...]:
    # The nested tower outputs become tuples too, as in CLIP.
    return tuple(
        output[k].to_tuple() if k in ("text_model_output", "vision_model_output") else output[k] for k in output.keys()
    )


@dataclass
class TVTSv2Output(ModelOutput):
    r"""Output of [`TVTSv2Model.forward`].

    Args:
        loss: symmetric contrastive loss (video→text + text→video, summed as in the original), if `return_loss`.
        logits_per_video: `[B_video, B_text]` cosine similarities divided by the temperature.
        logits_per_text: the transpose.
        video_embeds: `[B, D]` L2-normalised video embeddings.
        text_embeds: `[B, D]` L2-normalised text embeddings (mean of the K transcripts before normalising).
        text_model_output / vision_model_output: the towers' outputs.
    """

    loss: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return _to_tuple_with_tower_outputs(self)


@dataclass
class TVTSv2ForPreTrainingOutput(ModelOutput):
    r"""Output of [`TVTSv2ForPreTraining.forward`].

    Args:
        loss: `contrastive_loss + sort_loss_weight * sort_loss` (the sort term only when K > 1).
        contrastive_loss: the local-batch contrastive loss (the trainer recomputes it over the global batch).
        sort_loss: unweighted cross-entropy over transcript positions (None for K == 1).
        sort_logits: `[B, K, num_classes]`; row k scores the chronological position of transcript k.
        logits_per_video / logits_per_text: as in [`TVTSv2Output`].
        video_embeds / text_embeds: `[B, D]` **unnormalised** projected embeddings (what the original feeds its
            loss; the trainer gathers these across processes).
        text_embeds_per_transcript: `[B, K, D]` unnormalised per-transcript embeddings.
        video_tokens: the sort head's video input (see `TVTSv2Config.sort_head_video_tokens`).
    """

    loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None
    sort_loss: torch.FloatTensor | None = None
    sort_logits: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    text_embeds_per_transcript: torch.FloatTensor | None = None
    video_tokens: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return _to_tuple_with_tower_outputs(self)


@dataclass
class TVTSv2VisionModelOutput(BaseModelOutputWithPooling):
    r"""[`BaseModelOutputWithPooling`] plus the divided attention's temporal weights.

    Args:
        temporal_attentions: per layer `(cls_weights, patch_weights)` of the time attention (eager attention only).
            `cls_weights` is `[B, heads, 1, 1 + T·n]` (the CLS query over every token); `patch_weights` is
            `[B·n, heads, T, 1 + T]` (each kept patch position over CLS + its T frames).
        attentions: the same pair for the space attention: `[B, heads, 1, 1 + T·n]` and `[B·T, heads, n, 1 + n]`.
    """

    temporal_attentions: tuple[Any, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------


class TVTSv2LayerNorm(nn.LayerNorm):
    """LayerNorm that can compute in float32 whatever the input dtype (OpenAI CLIP's behaviour, B models)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, upcast: bool = True):
        super().__init__(hidden_size, eps=eps)
        self.upcast = upcast

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.upcast or hidden_states.dtype == torch.float32:
            return super().forward(hidden_states)
        output = F.layer_norm(
            hidden_states.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        )
        return output.to(hidden_states.dtype)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention. Inputs `[batch, heads, length, head_dim]`; output `[batch, length, heads, head_dim]`."""
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


def _set_init(module: nn.Module, scheme: str, std: float = 0.0) -> nn.Module:
    """Record how `_init_weights` initialises this leaf layer: `"normal"` (CLIP-style, bias 0), `"zeros"`, `"ones"`
    (weight; bias 0) or `"torch"` (PyTorch's default). transformers initialises custom-code models leaf by leaf, so
    the scheme is stored on the leaf itself."""
    module._tvtsv2_init = (scheme, std)
    return module


class TVTSv2Attention(nn.Module):
    """Multi-head attention over a flat sequence (text tower, sort head)."""

    def __init__(self, config, hidden_size: int, num_heads: int, is_causal: bool, num_layers: int | None = None):
        super().__init__()
        self.config = config
        self.embed_dim = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scale = self.head_dim**-0.5
        self.dropout = getattr(config, "attention_dropout", 0.0)
        self.is_causal = is_causal
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        if num_layers is None:  # sort head: the original keeps PyTorch's default init
            for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
                _set_init(proj, "torch")
        else:
            _set_clip_attention_init(self, config, num_layers)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        queries = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        keys = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        values = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            queries,
            keys,
            values,
            attention_mask,
            scaling=self.scale,
            dropout=0.0 if not self.training else self.dropout,
            **kwargs,
        )
        attn_output = self.out_proj(attn_output.reshape(*input_shape, -1).contiguous())
        return attn_output, attn_weights


def _set_clip_attention_init(attention: nn.Module, config, num_layers: int) -> None:
    factor = getattr(config, "initializer_factor", 1.0)
    in_std = (attention.embed_dim**-0.5) * ((2 * num_layers) ** -0.5) * factor
    for proj in (attention.q_proj, attention.k_proj, attention.v_proj):
        _set_init(proj, "normal", in_std)
    _set_init(attention.out_proj, "normal", (attention.embed_dim**-0.5) * factor)


class TVTSv2DividedAttention(nn.Module):
    """One half of divided space-time attention over `[CLS, frame 0 patches, frame 1 patches, ...]`.

    * The CLS query attends to every token (CLS and all kept patches of all frames).
    * A patch query attends to CLS plus its group: the patches of its own frame (`mode="space"`) or the tokens at
      its own spatial position in every frame (`mode="time"`).

    Two ways to run it, same numbers:
    * eager / SDPA / flash: two dense attention calls, the CLS query over everything and the patch queries over CLS +
      their group (groups become batch entries by reshaping);
    * `flex_attention`: one block-sparse call over the whole sequence with the mask of `divided_attention_block_mask`
      (built once per forward by the vision model). The time half first reorders the patches position-major so
      that each group is contiguous, which keeps the mask block-sparse.

    q/k/v come from one GEMM over the concatenated `q_proj`/`k_proj`/`v_proj` weights when all three are plain
    `nn.Linear` layers (checkpoint keys and LoRA targets unchanged; wrapped layers, e.g. LoRA, run one by one).
    """

    def __init__(self, config: TVTSv2VisionConfig, mode: str):
        super().__init__()
        if mode not in ("space", "time"):
            raise ValueError(f"mode must be 'space' or 'time', got {mode!r}")
        self.config = config
        self.mode = mode
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.is_causal = False
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)
        if mode == "time":
            # Original init of the new time attention: zero q/k/v and an all-ones output projection, so its output
            # is exactly 0 at the start and the model begins as CLIP applied frame by frame (plus a joint CLS).
            for proj in (self.q_proj, self.k_proj, self.v_proj):
                _set_init(proj, "zeros")
            _set_init(self.out_proj, "ones")
        else:
            _set_clip_attention_init(self, config, config.num_hidden_layers)

    def _group(self, patches: torch.Tensor, batch: int, frames: int, per_frame: int) -> torch.Tensor:
        # [B, T·n, H·d] -> [B·groups, heads, group_len, d]
        patches = patches.view(batch, frames, per_frame, self.num_heads, self.head_dim)
        if self.mode == "space":  # groups = frames, sequence = patches of that frame
            patches = patches.permute(0, 1, 3, 2, 4).reshape(batch * frames, self.num_heads, per_frame, self.head_dim)
        else:  # groups = spatial positions, sequence = frames
            patches = patches.permute(0, 2, 3, 1, 4).reshape(batch * per_frame, self.num_heads, frames, self.head_dim)
        return patches

    def _project_qkv(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        projections = (self.q_proj, self.k_proj, self.v_proj)
        if all(_is_plain_linear(p) for p in projections):
            weight = torch.cat([p.weight for p in projections])
            bias = torch.cat([p.bias for p in projections])
            return F.linear(hidden_states, weight, bias).chunk(3, dim=-1)
        return tuple(p(hidden_states) for p in projections)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, H·d] -> [B, heads, L, d]
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        num_frames: int,
        block_masks: "dict[str, BlockMask] | None" = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """`block_masks` (`{"time": ..., "space": ...}` from `divided_attention_block_mask`, built by the vision model
        for `attn_implementation="flex_attention"` only) selects the single-call block-sparse path."""
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        dropout = 0.0 if not self.training else self.dropout
        if block_masks is not None:
            return self._forward_block_sparse(
                hidden_states, num_frames, block_masks[self.mode], attention_interface, dropout, kwargs
            )
        return self._forward_grouped(hidden_states, num_frames, attention_interface, dropout, kwargs)

    def _forward_block_sparse(self, hidden_states, num_frames, block_mask, attention_interface, dropout, kwargs):
        batch, seq_len, _ = hidden_states.shape
        per_frame = (seq_len - 1) // num_frames
        if self.mode == "time":  # frame-major -> position-major: each position's T tokens become contiguous
            hidden_states = _swap_patch_order(hidden_states, num_frames, per_frame)
        queries, keys, values = self._project_qkv(hidden_states)
        attn_output, _ = attention_interface(
            self,
            self._heads(queries),
            self._heads(keys),
            self._heads(values),
            block_mask,
            scaling=self.scale,
            dropout=dropout,
            **kwargs,
        )
        attn_output = attn_output.reshape(batch, seq_len, self.embed_dim)
        if self.mode == "time":
            attn_output = _swap_patch_order(attn_output, per_frame, num_frames)
        return self.out_proj(attn_output), None

    def _forward_grouped(self, hidden_states, num_frames, attention_interface, dropout, kwargs):
        batch, seq_len, _ = hidden_states.shape
        per_frame = (seq_len - 1) // num_frames
        num_groups = num_frames if self.mode == "space" else per_frame
        queries, keys, values = self._project_qkv(hidden_states)
        heads = self._heads

        # CLS query over the whole sequence.
        cls_output, cls_weights = attention_interface(
            self, heads(queries[:, :1]), heads(keys), heads(values), None, scaling=self.scale, dropout=dropout, **kwargs
        )

        # Patch queries over CLS + their group. The CLS key/value is shared by every group.
        def grouped_with_cls(x: torch.Tensor) -> torch.Tensor:
            cls = heads(x[:, :1]).unsqueeze(1).expand(batch, num_groups, self.num_heads, 1, self.head_dim)
            cls = cls.reshape(batch * num_groups, self.num_heads, 1, self.head_dim)
            return torch.cat([cls, self._group(x[:, 1:], batch, num_frames, per_frame)], dim=2)

        patch_output, patch_weights = attention_interface(
            self,
            self._group(queries[:, 1:], batch, num_frames, per_frame),
            grouped_with_cls(keys),
            grouped_with_cls(values),
            None,
            scaling=self.scale,
            dropout=dropout,
            **kwargs,
        )
        # [B·groups, group_len, heads, d] -> [B, T·n, H·d] in frame-major order.
        if self.mode == "space":
            patch_output = patch_output.reshape(batch, num_frames * per_frame, self.embed_dim)
        else:
            patch_output = patch_output.reshape(batch, per_frame, num_frames, self.embed_dim).transpose(1, 2)
            patch_output = patch_output.reshape(batch, num_frames * per_frame, self.embed_dim)

        attn_output = torch.cat([cls_output.reshape(batch, 1, self.embed_dim), patch_output], dim=1)
        attn_output = self.out_proj(attn_output)
        weights = (cls_weights, patch_weights) if cls_weights is not None else None
        return attn_output, weights


def _is_plain_linear(layer: nn.Module) -> bool:
    """True when reading `layer.weight`/`bias` directly computes what `layer(x)` would: a plain `nn.Linear` without
    hooks. Not so for adapters (LoRA adds its own term), accelerate's offload hooks (`_hf_hook` moves the weights in),
    DeepSpeed ZeRO-3 (`ds_id`: the weight is gathered only when its own module runs) or user forward hooks."""
    return (
        type(layer) is nn.Linear
        and layer.bias is not None
        and not hasattr(layer.weight, "ds_id")
        and not hasattr(layer, "_hf_hook")
        and not layer._forward_hooks
        and not layer._forward_pre_hooks
    )


def _swap_patch_order(hidden_states: torch.Tensor, outer: int, inner: int) -> torch.Tensor:
    """`[B, 1 + outer·inner, D]` with patches ordered (outer, inner) → ordered (inner, outer); CLS stays first."""
    patches = hidden_states[:, 1:].unflatten(1, (outer, inner)).transpose(1, 2).flatten(1, 2)
    return torch.cat([hidden_states[:, :1], patches], dim=1)


def divided_attention_block_mask(group_size: int, seq_len: int, device: torch.device | str) -> "BlockMask":
    """FlexAttention mask of one divided-attention half over `[CLS, groups of group_size contiguous tokens]`:
    CLS attends to every token, every token attends to CLS and to its own group. Space attention: groups are frames
    (frame-major order, `group_size = n`); time attention: groups are spatial positions (position-major order,
    `group_size = T`)."""

    def mask_mod(batch_idx, head_idx, q_idx, kv_idx):
        same_group = torch.div(q_idx - 1, group_size, rounding_mode="floor") == torch.div(
            kv_idx - 1, group_size, rounding_mode="floor"
        )
        return (q_idx == 0) | (kv_idx == 0) | same_group

    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=seq_len, KV_LEN=seq_len, device=device)


class TVTSv2MLP(nn.Module):
    def __init__(
        self, hidden_size: int, intermediate_size: int, hidden_act: str, num_layers: int | None = None,
        factor: float = 1.0,
    ):
        super().__init__()
        self.activation_fn = ACT2FN[hidden_act]
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        if num_layers is None:  # sort head: PyTorch defaults
            _set_init(self.fc1, "torch")
            _set_init(self.fc2, "torch")
        else:
            _set_init(self.fc1, "normal", (2 * hidden_size) ** -0.5 * factor)
            _set_init(self.fc2, "normal", hidden_size**-0.5 * (2 * num_layers) ** -0.5 * factor)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class TVTSv2VisionLayer(GradientCheckpointingLayer):
    """Space-time block: `t = x + TimeAttn(LN3(x)); s = x + SpaceAttn(LN1(t)); out = s + MLP(LN2(s))`.

    The time-attention output does not enter the residual stream directly: the spatial residual adds to `x`, not to
    `t` (the original "frozen-in-time" attention style that defines the released weights).
    """

    def __init__(self, config: TVTSv2VisionConfig):
        super().__init__()
        eps, upcast = config.layer_norm_eps, config.layer_norm_upcast
        self.temporal_layer_norm = TVTSv2LayerNorm(config.hidden_size, eps=eps, upcast=upcast)
        self.temporal_attn = TVTSv2DividedAttention(config, mode="time")
        self.layer_norm1 = TVTSv2LayerNorm(config.hidden_size, eps=eps, upcast=upcast)
        self.self_attn = TVTSv2DividedAttention(config, mode="space")
        self.layer_norm2 = TVTSv2LayerNorm(config.hidden_size, eps=eps, upcast=upcast)
        self.mlp = TVTSv2MLP(
            config.hidden_size, config.intermediate_size, config.hidden_act, config.num_hidden_layers,
            config.initializer_factor,
        )

    def forward(
        self, hidden_states: torch.Tensor, num_frames: int, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.Tensor:
        # kwargs may carry `block_masks` (flex_attention): each attention picks its own.
        temporal, _ = self.temporal_attn(self.temporal_layer_norm(hidden_states), num_frames, **kwargs)
        spatial, _ = self.self_attn(self.layer_norm1(hidden_states + temporal), num_frames, **kwargs)
        hidden_states = hidden_states + spatial
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class TVTSv2TextLayer(GradientCheckpointingLayer):
    """Pre-norm CLIP text block with causal self-attention."""

    def __init__(self, config: TVTSv2TextConfig):
        super().__init__()
        eps, upcast = config.layer_norm_eps, config.layer_norm_upcast
        self.self_attn = TVTSv2Attention(
            config, config.hidden_size, config.num_attention_heads, is_causal=True,
            num_layers=config.num_hidden_layers,
        )
        self.layer_norm1 = TVTSv2LayerNorm(config.hidden_size, eps=eps, upcast=upcast)
        self.mlp = TVTSv2MLP(
            config.hidden_size, config.intermediate_size, config.hidden_act, config.num_hidden_layers,
            config.initializer_factor,
        )
        self.layer_norm2 = TVTSv2LayerNorm(config.hidden_size, eps=eps, upcast=upcast)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(self.layer_norm1(hidden_states), attention_mask, **kwargs)
        hidden_states = hidden_states + attn_output
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class TVTSv2SortLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block of the sort head (GELU, LayerNorm eps 1e-6, bidirectional attention)."""

    def __init__(self, config: TVTSv2Config):
        super().__init__()
        dim, eps = config.projection_dim, config.sort_head_layer_norm_eps
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.self_attn = TVTSv2Attention(config, dim, config.sort_head_num_attention_heads, is_causal=False)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = TVTSv2MLP(dim, int(dim * config.sort_head_mlp_ratio), "gelu")

    def forward(self, hidden_states: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> torch.Tensor:
        attn_output, _ = self.self_attn(self.layer_norm1(hidden_states), None, **kwargs)
        hidden_states = hidden_states + attn_output
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


# ----------------------------------------------------------------------------------------------------------------
# Embeddings
# ----------------------------------------------------------------------------------------------------------------


class TVTSv2VisionEmbeddings(nn.Module):
    """Patchify every frame, add spatial (+ CLS) and temporal position embeddings, then apply the tube mask."""

    def __init__(self, config: TVTSv2VisionConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.num_patches = config.num_patches
        self.num_positions = self.num_patches + 1
        self.class_embedding = nn.Parameter(torch.empty(self.embed_dim))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, self.embed_dim, kernel_size=self.patch_size, stride=self.patch_size, bias=False
        )
        self.position_embedding = nn.Embedding(self.num_positions, self.embed_dim)
        self.temporal_embedding = nn.Parameter(torch.empty(config.num_frames, self.embed_dim))
        std = config.initializer_range * config.initializer_factor
        _set_init(self.patch_embedding, "normal", std)
        _set_init(self.position_embedding, "normal", std)

    def _spatial_positions(self, height: int, width: int, interpolate: bool) -> torch.Tensor:
        """`[1 + h·w, D]` spatial table (CLS first), bicubically resized for another resolution when allowed."""
        table = self.position_embedding.weight
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        if height == self.image_size and width == self.image_size:
            return table
        if not interpolate:
            raise ValueError(
                f"Input frames are {height}x{width} but the model was trained at {self.image_size}x{self.image_size}. "
                "Resize the frames (the processor does) or pass `interpolate_pos_encoding=True` to resize the "
                "position embeddings bicubically."
            )
        side = int(math.sqrt(self.num_patches))
        grid = table[1:].reshape(1, side, side, self.embed_dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        grid = grid.to(table.dtype).permute(0, 2, 3, 1).reshape(grid_h * grid_w, self.embed_dim)
        return torch.cat([table[:1], grid], dim=0)

    def _temporal_positions(self, num_frames: int, interpolate: bool) -> torch.Tensor:
        """`[T, D]`: the first T rows (as the original), or a linear resampling when T exceeds the table."""
        table = self.temporal_embedding
        if num_frames <= table.shape[0]:
            return table[:num_frames]
        if not interpolate:
            raise ValueError(
                f"Got {num_frames} frames but the model has temporal embeddings for at most {table.shape[0]}. "
                f"Sample at most {table.shape[0]} frames, or pass `interpolate_pos_encoding=True` to resample the "
                "temporal embeddings linearly."
            )
        resampled = F.interpolate(table.T[None].float(), size=num_frames, mode="linear", align_corners=True)
        return resampled[0].T.to(table.dtype)

    def forward(
        self,
        pixel_values_videos: torch.Tensor,
        keep_indices: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> torch.Tensor:
        batch, num_frames, channels, height, width = pixel_values_videos.shape
        target_dtype = self.patch_embedding.weight.dtype
        frames = pixel_values_videos.reshape(batch * num_frames, channels, height, width).to(dtype=target_dtype)
        patches = self.patch_embedding(frames).flatten(2).transpose(1, 2)  # [B·T, N, D]
        num_patches = patches.shape[1]

        spatial = self._spatial_positions(height, width, interpolate_pos_encoding)
        temporal = self._temporal_positions(num_frames, interpolate_pos_encoding)
        patches = patches.reshape(batch, num_frames, num_patches, self.embed_dim)
        patches = patches + spatial[1:][None, None] + temporal[None, :, None]

        if keep_indices is not None:
            # Tube masking: the same spatial positions are kept in every frame; token order follows keep_indices.
            index = keep_indices[:, None, :, None].expand(batch, num_frames, keep_indices.shape[1], self.embed_dim)
            patches = patches.gather(2, index)
        patches = patches.reshape(batch, -1, self.embed_dim)

        cls = (self.class_embedding + spatial[0]).to(patches.dtype).expand(batch, 1, self.embed_dim)
        return torch.cat([cls, patches], dim=1)


class TVTSv2TextEmbeddings(nn.Module):
    def __init__(self, config: TVTSv2TextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        _set_init(self.token_embedding, "normal", 0.02 * config.initializer_factor)
        _set_init(self.position_embedding, "normal", 0.01 * config.initializer_factor)
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq_length = input_ids.shape[-1]
        max_positions = self.position_embedding.weight.shape[0]
        if seq_length > max_positions:
            raise ValueError(
                f"Text of {seq_length} tokens exceeds the context length {max_positions}; truncate it "
                "(the processor's tokenizer does, keeping the end-of-text token last)."
            )
        return self.token_embedding(input_ids) + self.position_embedding(self.position_ids[:, :seq_length])


# ----------------------------------------------------------------------------------------------------------------
# Pre-trained model base
# ----------------------------------------------------------------------------------------------------------------


class TVTSv2PreTrainedModel(PreTrainedModel):
    config: TVTSv2Config
    base_model_prefix = "tvtsv2"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["TVTSv2VisionLayer", "TVTSv2TextLayer", "TVTSv2SortLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        """CLIP-style init for CLIP-side weights; the original's init for the new TVTSv2 parameters.

        New parameters (original code): time attention q/k/v weights and biases 0, output projection weight 1 and
        bias 0 (so the time attention starts as exactly zero), `temporal_embedding ~ N(0, width^-0.5)`, LayerNorms
        (1, 0), sort head with PyTorch defaults and zero type embeddings. Leaf layers carry their scheme
        (`_set_init`); the `init` helpers skip tensors already loaded from a checkpoint.
        """
        scheme = getattr(module, "_tvtsv2_init", None)
        if scheme is not None:
            kind, std = scheme
            if kind == "normal":
                init.normal_(module.weight, std=std)
            elif kind == "zeros":
                init.zeros_(module.weight)
            elif kind == "ones":
                init.ones_(module.weight)
            else:  # PyTorch's own nn.Linear default (kaiming-uniform weight, fan-in-bounded bias)
                init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                if getattr(module, "bias", None) is not None:
                    bound = module.weight.shape[1] ** -0.5
                    init.uniform_(module.bias, -bound, bound)
                return
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, TVTSv2VisionEmbeddings):
            init.normal_(module.class_embedding, std=module.embed_dim**-0.5 * module.config.initializer_factor)
            std = module.config.temporal_embedding_init_std
            init.normal_(module.temporal_embedding, std=module.embed_dim**-0.5 if std is None else std)
        elif isinstance(module, TVTSv2TextEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
        elif isinstance(module, TVTSv2SortHead):
            init.zeros_(module.type_embeddings)
        elif isinstance(module, TVTSv2Model) and module.logit_scale is not None:
            init.constant_(module.logit_scale, math.log(1.0 / module.config.temperature))


# ----------------------------------------------------------------------------------------------------------------
# Towers
# ----------------------------------------------------------------------------------------------------------------


class TVTSv2VisionModel(TVTSv2PreTrainedModel):
    """The video tower. `pooler_output` is the CLS token after `post_layernorm` (not projected)."""

    config: TVTSv2VisionConfig
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    # Loading the tower from a full TVTSv2 checkpoint: the other parts are expected extras.
    _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^sort_head\.", r"_projection\.", r"^logit_scale"]
    _input_embed_layer = "patch_embedding"
    _can_record_outputs = {
        "hidden_states": TVTSv2VisionLayer,
        "attentions": OutputRecorder(TVTSv2DividedAttention, index=1, layer_name="self_attn"),
        "temporal_attentions": OutputRecorder(TVTSv2DividedAttention, index=1, layer_name="temporal_attn"),
    }

    def __init__(self, config: TVTSv2VisionConfig):
        super().__init__(config)
        eps, upcast = config.layer_norm_eps, config.layer_norm_upcast
        self.embeddings = TVTSv2VisionEmbeddings(config)
        self.pre_layrnorm = TVTSv2LayerNorm(config.hidden_size, eps=eps, upcast=upcast)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([TVTSv2VisionLayer(config) for _ in range(config.num_hidden_layers)])
        self.post_layernorm = TVTSv2LayerNorm(config.hidden_size, eps=eps, upcast=upcast)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def _check_inputs(self, pixel_values_videos: torch.Tensor, keep_indices: torch.Tensor | None) -> torch.Tensor:
        if pixel_values_videos is None:
            raise ValueError("You have to specify pixel_values_videos")
        if pixel_values_videos.dim() == 4:  # an image batch is a batch of one-frame videos
            pixel_values_videos = pixel_values_videos.unsqueeze(1)
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                "pixel_values_videos must be [batch, frames, channels, height, width] (or [batch, channels, height, "
                f"width] for images), got shape {tuple(pixel_values_videos.shape)}"
            )
        if not pixel_values_videos.is_floating_point():
            raise ValueError(
                f"pixel_values_videos must be float normalised pixels (what TVTSv2VideoProcessor returns), got "
                f"{pixel_values_videos.dtype}; run the processor on raw {pixel_values_videos.dtype} frames first (uint8 crops "
                "from read_video_pixels(pixel_dtype='uint8') or the collator: normalize_video_pixels)"
            )
        if pixel_values_videos.shape[1] == 0:
            raise ValueError("pixel_values_videos has 0 frames; a video needs at least one frame")
        if pixel_values_videos.shape[2] != self.config.num_channels:
            raise ValueError(
                f"pixel_values_videos has {pixel_values_videos.shape[2]} channels at dim 2, expected "
                f"{self.config.num_channels}; the layout is [batch, frames, channels, height, width]"
            )
        height, width = pixel_values_videos.shape[-2:]
        if height % self.config.patch_size or width % self.config.patch_size:
            raise ValueError(f"Frame size {height}x{width} is not a multiple of the patch size {self.config.patch_size}")
        if keep_indices is not None:
            num_patches = (height // self.config.patch_size) * (width // self.config.patch_size)
            if keep_indices.dim() != 2 or keep_indices.shape[0] != pixel_values_videos.shape[0]:
                raise ValueError(
                    f"keep_indices must be [batch, n_keep] with batch={pixel_values_videos.shape[0]}, got shape "
                    f"{tuple(keep_indices.shape)}"
                )
            if keep_indices.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"keep_indices must be an integer tensor, got {keep_indices.dtype}")
            if not 1 <= keep_indices.shape[1] <= num_patches:
                raise ValueError(f"keep_indices keeps {keep_indices.shape[1]} patches; a frame has {num_patches}")
            # Value checks synchronise with the device; skip them while compiling.
            if not torch.compiler.is_compiling():
                if bool(((keep_indices < 0) | (keep_indices >= num_patches)).any()):
                    raise ValueError(f"keep_indices must lie in [0, {num_patches}), got out-of-range values")
                if keep_indices.shape[1] > 1 and bool((keep_indices.sort(dim=1).values.diff(dim=1) == 0).any()):
                    raise ValueError("keep_indices must not repeat a patch index within a sample")
            keep_indices = keep_indices.long()
        return pixel_values_videos, keep_indices

    def _block_masks(self, num_frames: int, seq_len: int, device: torch.device) -> "dict[str, BlockMask] | None":
        """The divided attention's FlexAttention masks for `attn_implementation="flex_attention"`, else None. They
        depend only on static shapes (T, tokens per frame), so eager calls reuse them; under `torch.compile` they are
        built in the graph (no Python state to guard on)."""
        if self.config._attn_implementation != "flex_attention":
            return None
        per_frame = (seq_len - 1) // num_frames

        def build() -> dict[str, BlockMask]:
            return {
                "time": divided_attention_block_mask(num_frames, seq_len, device),
                "space": divided_attention_block_mask(per_frame, seq_len, device),
            }

        if torch.compiler.is_compiling():
            return build()
        key = (num_frames, seq_len, str(device))
        cache = self.__dict__.setdefault("_block_mask_cache", {})
        if key not in cache:
            cache.clear()  # one mask ratio at a time is the common case; keeps memory bounded
            cache[key] = build()
        return cache[key]

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values_videos: torch.Tensor | None = None,
        keep_indices: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TVTSv2VisionModelOutput:
        r"""
        Args:
            pixel_values_videos: `[B, T, 3, H, W]` normalised frames (a `[B, 3, H, W]` image is a one-frame video).
            keep_indices: `[B, n_keep]` spatial patch indices kept in every frame (tube masking); `None` keeps all.
            interpolate_pos_encoding: resample position embeddings for other resolutions / more frames.

        Returns: `last_hidden_state` `[B, 1 + T·n_keep, width]` (before `post_layernorm`) and `pooler_output`, the
        CLS token after `post_layernorm`.
        """
        pixel_values_videos, keep_indices = self._check_inputs(pixel_values_videos, keep_indices)
        num_frames = pixel_values_videos.shape[1]
        hidden_states = self.embeddings(pixel_values_videos, keep_indices, interpolate_pos_encoding)
        hidden_states = self.pre_layrnorm(hidden_states)
        block_masks = self._block_masks(num_frames, hidden_states.shape[1], hidden_states.device)
        for layer in self.encoder.layers:
            hidden_states = layer(hidden_states, num_frames, block_masks=block_masks, **kwargs)
        return TVTSv2VisionModelOutput(
            last_hidden_state=hidden_states, pooler_output=self.post_layernorm(hidden_states[:, 0])
        )


class TVTSv2TextModel(TVTSv2PreTrainedModel):
    """The CLIP text tower. `pooler_output` is `final_layer_norm` at the first end-of-text token (not projected)."""

    config: TVTSv2TextConfig
    input_modalities = ("text",)
    _keys_to_ignore_on_load_unexpected = [r"^vision_model\.", r"^sort_head\.", r"_projection\.", r"^logit_scale"]
    _input_embed_layer = "token_embedding"
    _can_record_outputs = {"hidden_states": TVTSv2TextLayer, "attentions": TVTSv2Attention}

    def __init__(self, config: TVTSv2TextConfig):
        super().__init__(config)
        self.embeddings = TVTSv2TextEmbeddings(config)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([TVTSv2TextLayer(config) for _ in range(config.num_hidden_layers)])
        self.final_layer_norm = TVTSv2LayerNorm(
            config.hidden_size, eps=config.layer_norm_eps, upcast=config.layer_norm_upcast
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.token_embedding

    def _check_token_ids(self, input_ids: torch.Tensor) -> None:
        """Refuse ids outside the vocabulary (the embedding lookup would raise an IndexError, or a device-side
        assert on CUDA). One min/max reduction; on an accelerator reading it synchronises once per text forward,
        negligible next to the forward itself. Skipped while compiling so the graph has no data-dependent branch."""
        if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
        if torch.compiler.is_compiling() or input_ids.numel() == 0:
            return
        vocab_size = self.embeddings.token_embedding.num_embeddings
        low, high = torch.aminmax(input_ids)
        if low.item() < 0 or high.item() >= vocab_size:
            raise ValueError(
                f"input_ids must lie in [0, {vocab_size}) (the text vocabulary), got values in "
                f"[{low.item()}, {high.item()}]; was the text tokenized with this model's tokenizer?"
            )

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings.token_embedding = value

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""
        Args:
            input_ids: `[N, L]` token ids with a start token and an end-of-text token (`config.eos_token_id`).
            attention_mask: accepted for API compatibility and ignored: the tower is causal and pools at the first
                end-of-text token, so padding after it never reaches the output (as in the original).
        """
        if input_ids is None:
            raise ValueError("You have to specify input_ids")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)}")
        self._check_token_ids(input_ids)
        hidden_states = self.embeddings(input_ids)
        causal_mask = create_causal_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=None, cache=None
        )
        kwargs.pop("is_causal", None)
        for layer in self.encoder.layers:
            hidden_states = layer(hidden_states, causal_mask, is_causal=True, **kwargs)
        last_hidden_state = self.final_layer_norm(hidden_states)

        # Pool at the first end-of-text token. The original takes argmax(ids), which is the same position when
        # padding is 0; the first-EOT rule also works with the HF tokenizer, which pads with the EOT id. A row with
        # no EOT (hand-made input) falls back to its last position.
        is_eos = input_ids == self.config.eos_token_id
        last_position = torch.full_like(input_ids[:, 0], input_ids.shape[1] - 1)
        pool_index = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), last_position)
        pooled_output = last_hidden_state[torch.arange(input_ids.shape[0], device=input_ids.device), pool_index]
        return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state, pooler_output=pooled_output)


class TVTSv2SortHead(nn.Module):
    """Transcript sorting head: a small transformer over `[video tokens; transcript embeddings]`.

    A type embedding marks the two kinds of tokens (row 0 video, row 1 text); there is no positional embedding,
    so the head is permutation-equivariant over transcripts and must read their order from the video.
    """

    def __init__(self, config: TVTSv2Config):
        super().__init__()
        dim = config.projection_dim
        self.type_embeddings = nn.Parameter(torch.empty(2, dim))
        self.layers = nn.ModuleList([TVTSv2SortLayer(config) for _ in range(config.sort_head_num_layers)])
        self.final_layer_norm = nn.LayerNorm(dim, eps=config.sort_head_layer_norm_eps)
        self.classifier = _set_init(nn.Linear(dim, config.sort_head_num_classes), "torch")

    def forward(self, video_tokens: torch.Tensor, text_embeds: torch.Tensor, **kwargs) -> torch.Tensor:
        """`video_tokens [B, Nv, D]`, `text_embeds [B, K, D]` → logits `[B, K, num_classes]`."""
        num_texts = text_embeds.shape[1]
        hidden_states = torch.cat(
            [video_tokens + self.type_embeddings[0], text_embeds + self.type_embeddings[1]], dim=1
        )
        for layer in self.layers:
            hidden_states = layer(hidden_states, **kwargs)
        text_states = self.final_layer_norm(hidden_states[:, -num_texts:])
        return self.classifier(text_states)


# ----------------------------------------------------------------------------------------------------------------
# Dual encoder and pre-training model
# ----------------------------------------------------------------------------------------------------------------


def contrastive_loss(logits_per_video: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE on a `[N, N]` logit matrix with matches on the diagonal; the two directions are summed
    (the original `NormSoftmaxLoss`)."""
    if logits_per_video.shape[0] != logits_per_video.shape[1]:
        raise ValueError(
            f"the contrastive loss needs one text per video, got {logits_per_video.shape[0]} videos and "
            f"{logits_per_video.shape[1]} texts"
        )
    targets = torch.arange(logits_per_video.shape[0], device=logits_per_video.device)
    return F.cross_entropy(logits_per_video, targets) + F.cross_entropy(logits_per_video.t(), targets)


def transcript_sort_loss(
    sort_logits: torch.Tensor, sort_labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sort head's cross-entropy over every transcript (unweighted): ``(loss, labels)``.

    ``sort_logits`` is ``[B, K, num_classes]``; ``sort_labels`` ``[B, K]`` defaults to the chronological order
    ``0..K-1`` of every video's transcripts (the labels used are returned).
    """
    if sort_labels is None:
        num_texts = sort_logits.shape[1]
        sort_labels = torch.arange(num_texts, device=sort_logits.device).expand(sort_logits.shape[0], -1)
    if sort_labels.shape != sort_logits.shape[:2]:
        raise ValueError(
            f"sort_labels must be [B, K] = {tuple(sort_logits.shape[:2])}, got {tuple(sort_labels.shape)}"
        )
    loss = F.cross_entropy(sort_logits.reshape(-1, sort_logits.shape[-1]), sort_labels.reshape(-1))
    return loss, sort_labels


class TVTSv2Model(TVTSv2PreTrainedModel):
    """TVTSv2 dual encoder (no sort head): video and text embeddings in one space, compared by cosine similarity."""

    _keys_to_ignore_on_load_unexpected = [r"^sort_head\."]

    def __init__(self, config: TVTSv2Config):
        super().__init__(config)
        self._build_dual_encoder(config)
        self.post_init()

    def _build_dual_encoder(self, config: TVTSv2Config) -> None:
        self.text_model = TVTSv2TextModel._from_config(config.text_config)
        self.vision_model = TVTSv2VisionModel._from_config(config.vision_config)
        factor = config.initializer_factor
        self.visual_projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim, bias=False)
        _set_init(self.visual_projection, "normal", config.vision_config.hidden_size**-0.5 * factor)
        _set_init(self.text_projection, "normal", config.text_config.hidden_size**-0.5 * factor)
        # The paper fixes the temperature (0.05); a learnable one is an opt-in scalar parameter.
        self.logit_scale = (
            nn.Parameter(torch.tensor(math.log(1.0 / config.temperature))) if config.learnable_temperature else None
        )

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.embeddings.token_embedding = value

    def logit_scale_value(self) -> torch.Tensor | float:
        """Multiplier applied to cosine similarities (1 / temperature)."""
        if self.logit_scale is None:
            return 1.0 / self.config.temperature
        return self.logit_scale.exp().clamp(max=100.0)

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""Text embeddings. `input_ids` `[B, L]` → `pooler_output` `[B, D]`; `[B, K, L]` → `[B, K, D]` (one per
        transcript). `pooler_output` is projected and **unnormalised**."""
        if input_ids is None or input_ids.dim() not in (2, 3):
            shape = None if input_ids is None else tuple(input_ids.shape)
            raise ValueError(f"input_ids must be [batch, length] or [batch, texts, length], got {shape}")
        leading_shape = input_ids.shape[:-1]
        flat_mask = None if attention_mask is None else attention_mask.reshape(-1, attention_mask.shape[-1])
        text_outputs = self.text_model(
            input_ids=input_ids.reshape(-1, input_ids.shape[-1]), attention_mask=flat_mask, **kwargs
        )
        text_outputs.pooler_output = self.text_projection(text_outputs.pooler_output).reshape(*leading_shape, -1)
        return text_outputs

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        keep_indices: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TVTSv2VisionModelOutput:
        r"""Video embeddings: CLS → `post_layernorm` → projection, **unnormalised** `[B, D]` in `pooler_output`."""
        vision_outputs = self.vision_model(
            pixel_values_videos=pixel_values_videos,
            keep_indices=keep_indices,
            interpolate_pos_encoding=interpolate_pos_encoding,
            **kwargs,
        )
        vision_outputs.pooler_output = self.visual_projection(vision_outputs.pooler_output)
        return vision_outputs

    def _similarity_logits(self, video_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        video_embeds = F.normalize(video_embeds, dim=-1, eps=1e-8)
        text_embeds = F.normalize(text_embeds, dim=-1, eps=1e-8)
        return video_embeds @ text_embeds.t() * self.logit_scale_value()

    def _encode_pair(self, input_ids, pixel_values_videos, attention_mask, keep_indices, interpolate_pos_encoding, kwargs):
        if input_ids is None or pixel_values_videos is None:
            raise ValueError("Both input_ids and pixel_values_videos are required")
        if input_ids.dim() == 3 and input_ids.shape[0] != pixel_values_videos.shape[0]:
            raise ValueError(
                f"input_ids [B, K, L] has B={input_ids.shape[0]} but there are {pixel_values_videos.shape[0]} videos"
            )
        vision_outputs = self.get_video_features(
            pixel_values_videos=pixel_values_videos,
            keep_indices=keep_indices,
            interpolate_pos_encoding=interpolate_pos_encoding,
            **kwargs,
        )
        text_outputs = self.get_text_features(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        per_text = text_outputs.pooler_output
        # K transcripts per video: the video-text embedding is the mean of the unnormalised text embeddings.
        text_embeds = per_text.mean(dim=1) if input_ids.dim() == 3 else per_text
        return vision_outputs, text_outputs, per_text, text_embeds

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        keep_indices: torch.Tensor | None = None,
        return_loss: bool | None = False,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TVTSv2Output:
        r"""
        Args:
            input_ids: `[B_text, L]`, or `[B, K, L]` with K transcripts per video (their embeddings are averaged).
            pixel_values_videos: `[B, T, 3, H, W]` (or `[B, 3, H, W]`).
            keep_indices: `[B, n_keep]` tube-mask indices, `None` keeps every patch.
            return_loss: compute the symmetric contrastive loss (needs `B_text == B`).
        """
        vision_outputs, text_outputs, _, text_embeds = self._encode_pair(
            input_ids, pixel_values_videos, attention_mask, keep_indices, interpolate_pos_encoding, kwargs
        )
        video_embeds = vision_outputs.pooler_output
        logits_per_video = self._similarity_logits(video_embeds, text_embeds)
        loss = contrastive_loss(logits_per_video) if return_loss else None
        return TVTSv2Output(
            loss=loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.t(),
            video_embeds=F.normalize(video_embeds, dim=-1, eps=1e-8),
            text_embeds=F.normalize(text_embeds, dim=-1, eps=1e-8),
            text_model_output=text_outputs,
            vision_model_output=vision_outputs,
        )


class TVTSv2ForPreTraining(TVTSv2Model):
    """TVTSv2 with the transcript-sorting head: contrastive loss + `sort_loss_weight` × sorting cross-entropy."""

    main_input_name = "input_ids"  # the first argument of `forward`, as in TVTSv2Model

    _keys_to_ignore_on_load_unexpected = None

    def __init__(self, config: TVTSv2Config):
        # Same parameter names as TVTSv2Model plus `sort_head.*`, so either class loads the other's checkpoints.
        TVTSv2PreTrainedModel.__init__(self, config)
        self._build_dual_encoder(config)
        self.sort_head = TVTSv2SortHead(config)
        self.post_init()

    def sort_video_tokens(self, vision_outputs: BaseModelOutputWithPooling) -> torch.Tensor:
        """The video tokens the sort head reads, per `config.sort_head_video_tokens`."""
        hidden_states = vision_outputs.last_hidden_state
        if self.config.sort_head_video_tokens == "all_tokens_post_ln":
            return self.visual_projection(self.vision_model.post_layernorm(hidden_states))
        return self.visual_projection(hidden_states[:, 1:])

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        keep_indices: torch.Tensor | None = None,
        sort_labels: torch.Tensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TVTSv2ForPreTrainingOutput:
        r"""
        Same positional order as [`TVTSv2Model.forward`], plus `sort_labels` before `return_loss`.

        Args:
            input_ids: `[B, K, L]` transcripts in chronological order (or `[B, L]` captions: no sort loss).
            pixel_values_videos: `[B, T, 3, H, W]` normalised frames.
            attention_mask / keep_indices: as in [`TVTSv2Model.forward`].
            sort_labels: `[B, K]` chronological index of each transcript; defaults to `0..K-1`.
            return_loss: compute the losses; `None` uses `config.return_loss` (default `True`).
        """
        if return_loss is None:
            return_loss = self.config.return_loss
        vision_outputs, text_outputs, per_text, text_embeds = self._encode_pair(
            input_ids, pixel_values_videos, attention_mask, keep_indices, interpolate_pos_encoding, kwargs
        )
        video_embeds = vision_outputs.pooler_output
        logits_per_video = self._similarity_logits(video_embeds, text_embeds)

        num_texts = input_ids.shape[1] if input_ids.dim() == 3 else 1
        video_tokens = sort_logits = None
        if num_texts > 1:
            if num_texts > self.config.sort_head_num_classes:
                raise ValueError(
                    f"{num_texts} transcripts per video but the sort head predicts "
                    f"{self.config.sort_head_num_classes} positions"
                )
            video_tokens = self.sort_video_tokens(vision_outputs)
            # Transcript embeddings enter the sort head detached: sorting trains the video tower, not the text.
            sort_logits = self.sort_head(video_tokens, per_text.detach())

        loss = contrastive = sort_loss = None
        if return_loss:
            contrastive = contrastive_loss(logits_per_video)
            loss = contrastive
            if sort_logits is not None:
                sort_loss, sort_labels = transcript_sort_loss(sort_logits, sort_labels)
                loss = contrastive + self.config.sort_loss_weight * sort_loss

        return TVTSv2ForPreTrainingOutput(
            loss=loss,
            contrastive_loss=contrastive,
            sort_loss=sort_loss,
            sort_logits=sort_logits,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.t(),
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            text_embeds_per_transcript=per_text if num_texts > 1 or input_ids.dim() == 3 else None,
            video_tokens=video_tokens,
            text_model_output=text_outputs,
            vision_model_output=vision_outputs,
        )


# A tower loads from a full TVTSv2 checkpoint (keys `vision_model.*` / `text_model.*`) by dropping that prefix, as
# transformers does for CLIP's towers; the reverse transform makes a saved tower use the same prefixed keys.
register_checkpoint_conversion_mapping(
    "TVTSv2VisionModel", [PrefixChange(prefix_to_remove="vision_model")], overwrite=True
)
register_checkpoint_conversion_mapping("TVTSv2TextModel", [PrefixChange(prefix_to_remove="text_model")], overwrite=True)


# ----------------------------------------------------------------------------------------------------------------
# Mixed-precision inference
# ----------------------------------------------------------------------------------------------------------------


AUTOCAST_DTYPES = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def _fp32_layer_norm(module: torch.nn.LayerNorm, hidden_states: torch.Tensor) -> torch.Tensor:
    # Outside autocast and in float32, as CUDA autocast runs layer_norm (CPU autocast would run it in low precision).
    with torch.autocast(device_type=hidden_states.device.type, enabled=False):
        weight = None if module.weight is None else module.weight.float()
        bias = None if module.bias is None else module.bias.float()
        output = F.layer_norm(hidden_states.float(), module.normalized_shape, weight, bias, module.eps)
    return output.to(hidden_states.dtype)


@contextlib.contextmanager
def autocast_context(model: torch.nn.Module, precision: str | torch.dtype | None = "fp16") -> Iterator[None]:
    """The original TVTSv2 mixed-precision inference (the released H/14 evaluation ran this way, with fp16).

    Inside the block, matrix multiplications and convolutions run in ``precision`` (``"fp16"`` or ``"bf16"``) under
    ``torch.autocast`` on the model's device, while the weights, the residual stream and every LayerNorm stay in
    float32 (LayerNorms are computed in float32 with autocast off, on any device). ``precision=None`` does nothing.
    The model must hold float32 weights, as the original did (a whole-model ``.half()`` is a different mode).

    Example::

        with torch.no_grad(), autocast_context(model, "fp16"):
            video_embeds = model.get_video_features(pixel_values_videos=pixels).pooler_output

    Embeddings differ from float32 by rounding only. Tested tolerance (``tests/test_autocast.py``, tiny model, CPU):
    unit embeddings within 5e-3 (bf16) / 1e-3 (fp16) of float32, cosine >= 0.9999 / 0.99999.
    """
    if precision is None or precision in ("no", "none", "fp32", "float32", torch.float32):
        yield
        return
    dtype = precision if isinstance(precision, torch.dtype) else AUTOCAST_DTYPES.get(str(precision).lower())
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"autocast precision must be 'fp16' or 'bf16' (or None), got {precision!r}")
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.dtype != torch.float32:
        raise ValueError(
            f"autocast needs a float32 model (the original kept float32 weights), got {parameter.dtype}; load it "
            "with dtype=torch.float32 or drop the autocast option"
        )
    device_type = parameter.device.type if parameter is not None else "cpu"
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm) and "forward" not in m.__dict__]
    for norm in norms:
        norm.forward = types.MethodType(_fp32_layer_norm, norm)
    try:
        with torch.autocast(device_type=device_type, dtype=dtype):
            yield
    finally:
        for norm in norms:
            del norm.forward


__all__ = [
    "AUTOCAST_DTYPES",
    "TVTSv2ForPreTraining",
    "TVTSv2ForPreTrainingOutput",
    "TVTSv2Model",
    "TVTSv2Output",
    "TVTSv2PreTrainedModel",
    "TVTSv2TextModel",
    "TVTSv2VisionModel",
    "TVTSv2VisionModelOutput",
    "autocast_context",
    "contrastive_loss",
    "divided_attention_block_mask",
    "transcript_sort_loss",
]
