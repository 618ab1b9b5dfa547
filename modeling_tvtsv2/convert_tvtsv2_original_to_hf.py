"""Convert original TVTSv2 checkpoints (TencentARC/TVTS, `v2/`) to a 🤗 model folder.

Accepted inputs: the trainer format (`{"state_dict": {"module.…": …}, "optimizer": …, "config": <pickled
ConfigParser>, …}` with the sort head `pred_model.*`) and the downstream/release format (`{"state_dict": …}`
without `pred_model.*`), or a bare state dict.

Safety: files are read with `torch.load(weights_only=True)`, which never imports or runs code named in the file.
Trainer checkpoints may also hold pickled Python objects (the original stored its `ConfigParser`). For those we ask
torch which globals the file names (`get_unsafe_globals_in_checkpoint`), and allow, under exactly those names,
*inert stand-in classes* defined here: the weights-only unpickler builds empty placeholder objects from them and
discards their state, so the original classes are never imported and no code from the file executes. Only tensors
are used afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers.utils import logging

from .configuration_tvtsv2 import TVTSv2Config
from .modeling_tvtsv2 import TVTSv2ForPreTraining, TVTSv2Model
from .tools.output_folders import OutputFolderError, check_output_folder, staged_output_folder

logger = logging.get_logger(__name__)

LAYOUTS = ("openai-clip", "open-clip")
VARIANTS = ("b32", "b16", "h14")

# Attention heads cannot be read from tensor shapes; these are the released variants'.
VARIANT_HEADS = {"b32": (12, 8, 8), "b16": (12, 8, 8), "h14": (16, 16, 16)}  # vision, text, sort
VARIANT_LAYOUT = {"b32": "openai-clip", "b16": "openai-clip", "h14": "open-clip"}


class CheckpointConversionError(ValueError):
    """The checkpoint does not have the layout or shapes of an original TVTSv2 checkpoint."""


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


class _InertObject:
    """Placeholder for a pickled object we refuse to rebuild: it ignores its arguments and state."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _inert_class(qualified_name: str) -> type:
    module, _, name = qualified_name.rpartition(".")
    stand_in = type(name, (_InertObject,), {})
    stand_in.__module__ = module
    stand_in.__qualname__ = name
    return stand_in


# Modules torch's weights-only loader refuses to name even through `safe_globals`, so no inert placeholder can stand
# in for them. A pickle naming one (`os.system`, ...) is not a checkpoint of the original trainer (which pickled a
# `configparser.ConfigParser`): it is refused without being read further.
_UNREADABLE_MODULES = frozenset({"os", "posix", "nt", "sys"})


def _looks_like_safetensors(path: Path) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON header starting with "{".
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 0 < int.from_bytes(head[:8], "little") <= path.stat().st_size - 8


def _read_checkpoint_object(path: Path):
    """`torch.load(weights_only=True)`, with inert placeholders for harmless pickled objects (module docstring)."""
    if _looks_like_safetensors(path):
        raise CheckpointConversionError(
            f"{path}: this is a safetensors file, not an original TVTSv2 .pth checkpoint (already converted weights "
            "load with from_pretrained on their folder)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - retried with stand-ins below, or refused with a reason
        first_error = error
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as error:  # noqa: BLE001 - not a zip/pickle torch can parse
        raise CheckpointConversionError(
            f"{path}: not a readable torch checkpoint (not a file written by torch.save)"
        ) from error
    if not unsafe:
        raise CheckpointConversionError(
            f"{path}: not a readable torch checkpoint ({type(first_error).__name__} while reading its tensors)"
        ) from first_error
    system = sorted(name for name in unsafe if name.split(".")[0] in _UNREADABLE_MODULES)
    if system:
        raise CheckpointConversionError(
            f"{path}: refused, the pickle refers to {system} (operating-system functions); an original TVTSv2 "
            "checkpoint holds tensors and a pickled ConfigParser only"
        )
    logger.warning("%s holds pickled objects %s; replacing them with inert placeholders", path, unsafe)
    try:
        with torch.serialization.safe_globals([_inert_class(name) for name in unsafe]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001
        raise CheckpointConversionError(
            f"{path}: cannot be read safely (it holds pickled objects {unsafe} that are not plain data)"
        ) from error


def load_original_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the tensors of an original checkpoint without executing code from it; strip `module.` prefixes.

    Raises:
        FileNotFoundError: no such file.
        CheckpointConversionError: one line naming the file and what is wrong with it (not a torch checkpoint, a
            safetensors file, refers to code, keys that are not strings, 0-d tensors, `module.X` next to `X`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    obj = _read_checkpoint_object(path)
    state_dict = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state_dict, Mapping):
        raise CheckpointConversionError(f"{path}: expected a dict with a 'state_dict' entry, got {type(obj).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    original_key: dict[str, str] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointConversionError(
                f"{path}: state_dict key {key!r} is a {type(key).__name__}, not a parameter name"
            )
        if not isinstance(value, torch.Tensor):
            raise CheckpointConversionError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.ndim == 0:
            raise CheckpointConversionError(
                f"{path}: state_dict entry {key!r} is a 0-d tensor; TVTSv2 checkpoints hold no scalar parameters"
            )
        # DDP adds `module.` (the original checks only the first key; we strip it wherever it leads a key).
        name = re.sub(r"^(module\.)+", "", key)
        if name in tensors:
            raise CheckpointConversionError(
                f"{path}: state_dict has both {original_key[name]!r} and {key!r}, which name the same parameter"
            )
        tensors[name] = value
        original_key[name] = key
    return tensors


# --------------------------------------------------------------------------------------------------------------
# Key mapping
# --------------------------------------------------------------------------------------------------------------

_TEXT_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
               "attn.out_proj": "self_attn.out_proj"}
_VIDEO_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "ln_3": "temporal_layer_norm", "mlp.c_fc": "mlp.fc1",
                "mlp.c_proj": "mlp.fc2", "attn.proj": "self_attn.out_proj", "timeattn.proj": "temporal_attn.out_proj"}
_SORT_BLOCK = {"norm1": "layer_norm1", "norm2": "layer_norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
               "attn.proj": "self_attn.out_proj"}
_SINGLE = {
    "text_positional_embedding": "text_model.embeddings.position_embedding.weight",
    "text_token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "text_ln_final.weight": "text_model.final_layer_norm.weight",
    "text_ln_final.bias": "text_model.final_layer_norm.bias",
    "video_model.class_embedding": "vision_model.embeddings.class_embedding",
    "video_model.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "video_model.temporal_embedding": "vision_model.embeddings.temporal_embedding",
    "video_model.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "video_model.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "video_model.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "video_model.ln_post.weight": "vision_model.post_layernorm.weight",
    "video_model.ln_post.bias": "vision_model.post_layernorm.bias",
    "pred_model.norm.weight": "sort_head.final_layer_norm.weight",
    "pred_model.norm.bias": "sort_head.final_layer_norm.bias",
    "pred_model.head.weight": "sort_head.classifier.weight",
    "pred_model.head.bias": "sort_head.classifier.bias",
}
_BLOCK_PATTERNS = [
    # (original block key, our block prefix, renames inside the block, fused q/k/v prefixes -> our attention module)
    (re.compile(r"text_model\.resblocks\.(\d+)\.(.+)"), "text_model.encoder.layers.{}.", _TEXT_BLOCK,
     {"attn.in_proj_": "self_attn"}),
    (re.compile(r"video_model\.transformer\.resblocks\.(\d+)\.(.+)"), "vision_model.encoder.layers.{}.",
     _VIDEO_BLOCK, {"attn.qkv.": "self_attn", "timeattn.qkv.": "temporal_attn"}),
    (re.compile(r"pred_model\.blocks\.(\d+)\.(.+)"), "sort_head.layers.{}.", _SORT_BLOCK, {"attn.qkv.": "self_attn"}),
]


def _split_qkv(value: torch.Tensor, target_prefix: str, suffix: str) -> dict[str, torch.Tensor]:
    # q, k, v are stacked along dim 0 (torch MultiheadAttention's in_proj layout).
    if value.shape[0] % 3:
        raise CheckpointConversionError(f"fused q/k/v tensor for {target_prefix} has {value.shape[0]} rows, not 3·D")
    return {
        f"{target_prefix}.{name}_proj.{suffix}": part.clone() for name, part in zip("qkv", value.chunk(3, dim=0))
    }


def _map_block_tensor(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
    for pattern, target, renames, fused in _BLOCK_PATTERNS:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        prefix, rest = target.format(match.group(1)), match.group(2)
        for fused_prefix, attention in fused.items():
            if rest.startswith(fused_prefix) and rest[len(fused_prefix) :] in ("weight", "bias"):
                return _split_qkv(value, prefix + attention, rest[len(fused_prefix) :])
        module, _, param = rest.rpartition(".")
        if module in renames and param in ("weight", "bias"):
            return {f"{prefix}{renames[module]}.{param}": value}
        return None
    return None


def map_original_state_dict(original: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename/split/transpose original tensors to our names. Returns (mapped, unmapped original keys)."""
    mapped, unmapped, _ = _map_with_origin(original)
    return mapped, unmapped


def _map_with_origin(original: Mapping[str, torch.Tensor]):
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    origin: dict[str, str] = {}  # our key -> the checkpoint key it came from (for error messages)
    for key, value in original.items():
        before = set(mapped)
        if key in _SINGLE:
            mapped[_SINGLE[key]] = value
        elif key == "text_projection":  # used as x @ P; nn.Linear stores P^T
            mapped["text_projection.weight"] = value.t().contiguous()
        elif key == "video_model.proj":
            mapped["visual_projection.weight"] = value.t().contiguous()
        elif key == "pred_model.type_embed":  # [1, 2, D] -> [2, D]
            # (a tensor of another rank is kept as it is and reported by the shape check)
            mapped["sort_head.type_embeddings"] = value.reshape(value.shape[-2:]) if value.ndim >= 2 else value
        elif (block := _map_block_tensor(key, value)) is not None:
            mapped.update(block)
        else:
            unmapped.append(key)
        origin.update({new_key: key for new_key in set(mapped) - before})
    return mapped, unmapped, origin


# --------------------------------------------------------------------------------------------------------------
# Config inference
# --------------------------------------------------------------------------------------------------------------


def _count_blocks(keys, pattern: str) -> int:
    indices = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    if indices and indices != set(range(len(indices))):
        raise CheckpointConversionError(f"non-contiguous block indices for {pattern}: {sorted(indices)}")
    return len(indices)


def _require(original: Mapping[str, torch.Tensor], *keys: str) -> None:
    missing = [k for k in keys if k not in original]
    if missing:
        found = sorted(original)[:8]
        raise CheckpointConversionError(
            f"Not an original TVTSv2 checkpoint: missing {missing}. First keys found: {found}"
        )


_REQUIRED_NDIM = {
    "video_model.class_embedding": 1, "video_model.conv1.weight": 4, "video_model.positional_embedding": 2,
    "video_model.temporal_embedding": 2, "video_model.proj": 2, "text_token_embedding.weight": 2,
    "text_positional_embedding": 2, "text_projection": 2, "video_model.transformer.resblocks.0.mlp.c_fc.weight": 2,
    "text_model.resblocks.0.mlp.c_fc.weight": 2, "pred_model.head.weight": 2, "pred_model.blocks.0.mlp.fc1.weight": 2,
}  # fmt: skip


# The B/16 and B/32 training scripts tune the text blocks whose names contain `resblocks.9.`, `.10.` or `.11.`
# (train_dist_TVTSv2_ViT_B_*.py, `text_tune_layers`) and freeze every other text block.
ORIGINAL_TUNED_TEXT_BLOCKS = range(9, 12)


def original_frozen_text_layers(text_layers: int) -> int:
    """`num_frozen_text_layers` of a converted tower that is not a released size, by the original's name-based rule
    (the released sizes take their preset's: 9 of 12 for B, 18 of 24 for H/14, whose script tunes 18-23).

    Blocks 0-8 are frozen, and every block when the tower has at most 9 (a 4-block tower: all 4, not 3). Between 13
    and 24 blocks the B rule would also freeze blocks 12 and up, which a count of leading frozen blocks cannot say;
    such towers keep blocks 9 and up trainable (no released model has that depth)."""
    return min(text_layers, ORIGINAL_TUNED_TEXT_BLOCKS.start)


def infer_config(
    original: Mapping[str, torch.Tensor],
    variant: str | None = None,
    layout: str | None = None,
    vision_heads: int | None = None,
    text_heads: int | None = None,
    sort_heads: int | None = None,
) -> TVTSv2Config:
    """Build a `TVTSv2Config` from tensor shapes plus what shapes cannot tell (heads, activation/LN layout)."""
    _require(
        original,
        "video_model.class_embedding", "video_model.conv1.weight", "video_model.positional_embedding",
        "video_model.temporal_embedding", "video_model.proj", "text_token_embedding.weight",
        "text_positional_embedding", "text_projection",
    )
    for key, ndim in _REQUIRED_NDIM.items():
        if key in original and original[key].ndim != ndim:
            raise CheckpointConversionError(
                f"{key} has shape {tuple(original[key].shape)}, expected a {ndim}-d tensor (not a TVTSv2 checkpoint)"
            )
    keys = list(original)
    width = original["video_model.class_embedding"].shape[0]
    patch = original["video_model.conv1.weight"].shape[-1]
    positions = original["video_model.positional_embedding"].shape[0]
    grid = round((positions - 1) ** 0.5)
    if grid * grid != positions - 1:
        raise CheckpointConversionError(f"video_model.positional_embedding has {positions} rows, not 1 + a square")
    vision_layers = _count_blocks(keys, r"video_model\.transformer\.resblocks\.(\d+)\.")
    text_layers = _count_blocks(keys, r"text_model\.resblocks\.(\d+)\.")
    sort_layers = _count_blocks(keys, r"pred_model\.blocks\.(\d+)\.")
    if not vision_layers or not text_layers:
        raise CheckpointConversionError("checkpoint has no video_model.transformer.resblocks.* or text_model.resblocks.*")
    vocab, text_width = original["text_token_embedding.weight"].shape
    projection_dim = original["video_model.proj"].shape[1]

    if variant is None:
        variant = _detect_variant(width, patch, vision_layers, text_width, text_layers, grid * patch)
    if variant is not None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        default_heads = VARIANT_HEADS[variant]
        layout = layout or VARIANT_LAYOUT[variant]
        vision_heads = vision_heads or default_heads[0]
        text_heads = text_heads or default_heads[1]
        sort_heads = sort_heads or default_heads[2]
    missing = [n for n, v in (("--vision-heads", vision_heads), ("--text-heads", text_heads), ("--layout", layout))
               if v is None]
    if sort_layers and sort_heads is None:
        missing.append("--sort-heads")
    if missing:
        raise CheckpointConversionError(
            f"This checkpoint is not one of the released sizes ({', '.join(VARIANTS)}); pass {' '.join(missing)} "
            "(attention heads and the CLIP layout cannot be read from tensor shapes)."
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    openai = layout == "openai-clip"
    act = "quick_gelu" if openai else "gelu"

    sort_kwargs = {}
    if sort_layers:
        sort_kwargs = dict(
            sort_head_num_layers=sort_layers,
            sort_head_num_attention_heads=sort_heads,
            sort_head_num_classes=original["pred_model.head.weight"].shape[0],
            sort_head_mlp_ratio=original["pred_model.blocks.0.mlp.fc1.weight"].shape[0] / projection_dim,
        )
    elif sort_heads:
        sort_kwargs = dict(sort_head_num_attention_heads=sort_heads)
    # CLIP's two special tokens are the last two ids of the vocabulary (49406/49407 for the real one).
    special = dict(bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    preset_extras = {}
    if variant is not None:
        preset = TVTSv2Config.from_preset(variant)
        preset_extras = dict(
            pretraining_mask_ratio=preset.pretraining_mask_ratio, num_frozen_text_layers=preset.num_frozen_text_layers
        )
    else:
        preset_extras = dict(num_frozen_text_layers=original_frozen_text_layers(text_layers))
    try:
        return _build_config(
            original, width, patch, grid, vision_layers, vision_heads, text_layers, text_heads, vocab, text_width,
            projection_dim, openai, act, special, sort_kwargs, preset_extras,
        )
    except (ValueError, TypeError, StrictDataclassError) as error:
        raise CheckpointConversionError(
            f"The requested sizes do not fit this checkpoint (vision width {width}, text width {text_width}, "
            f"projection {projection_dim}): {error}"
        ) from error


def _build_config(
    original, width, patch, grid, vision_layers, vision_heads, text_layers, text_heads, vocab, text_width,
    projection_dim, openai, act, special, sort_kwargs, preset_extras,
) -> TVTSv2Config:
    return TVTSv2Config(
        vision_config=dict(
            hidden_size=width,
            intermediate_size=original["video_model.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            num_hidden_layers=vision_layers,
            num_attention_heads=vision_heads,
            image_size=grid * patch,
            patch_size=patch,
            num_frames=original["video_model.temporal_embedding"].shape[0],
            hidden_act=act,
            layer_norm_upcast=openai,
        ),
        text_config=dict(
            vocab_size=vocab,
            hidden_size=text_width,
            intermediate_size=original["text_model.resblocks.0.mlp.c_fc.weight"].shape[0],
            num_hidden_layers=text_layers,
            num_attention_heads=text_heads,
            max_position_embeddings=original["text_positional_embedding"].shape[0],
            hidden_act=act,
            layer_norm_upcast=openai,
            **special,
        ),
        projection_dim=projection_dim,
        sort_head_video_tokens="all_tokens_post_ln" if openai else "patch_tokens_pre_ln",
        **sort_kwargs,
        **preset_extras,
    )


def _detect_variant(width, patch, vision_layers, text_width, text_layers, image_size) -> str | None:
    for name in VARIANTS:
        preset = TVTSv2Config.from_preset(name)
        v, t = preset.vision_config, preset.text_config
        if (v.hidden_size, v.patch_size, v.num_hidden_layers, t.hidden_size, t.num_hidden_layers, v.image_size) == (
            width, patch, vision_layers, text_width, text_layers, image_size
        ):
            return name
    return None


# --------------------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ConversionResult:
    model: TVTSv2Model
    config: TVTSv2Config
    has_sort_head: bool
    notes: list[str] = field(default_factory=list)


def convert_state_dict(original: Mapping[str, torch.Tensor], config: TVTSv2Config) -> ConversionResult:
    """Map the tensors into a freshly built model, refusing unmapped, missing or mis-shaped tensors."""
    mapped, unmapped, origin = _map_with_origin(original)
    if unmapped:
        raise CheckpointConversionError(f"Unmapped checkpoint keys (not part of the TVTSv2 layout): {sorted(unmapped)}")
    has_sort_head = any(k.startswith("sort_head.") for k in mapped)
    model_cls = TVTSv2ForPreTraining if has_sort_head else TVTSv2Model
    with torch.device("meta"):
        reference = model_cls(config)
    expected = reference.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted({origin[k] for k in set(mapped) - set(expected)})
    mismatched = sorted(
        f"{origin[k]} {tuple(original[origin[k]].shape)} (-> {k}: model expects {tuple(expected[k].shape)})"
        for k in set(expected) & set(mapped)
        if mapped[k].shape != expected[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing tensors (our names) {missing}")
    if unexpected:
        problems.append(f"checkpoint tensors the model does not have {unexpected}")
    if mismatched:
        problems.append(f"shape mismatches {mismatched}")
    if problems:
        raise CheckpointConversionError("Checkpoint does not fit the inferred config: " + "; ".join(problems))
    model = model_cls(config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in mapped.items()}, strict=True)
    notes = []
    if not has_sort_head:
        notes.append(
            "The checkpoint has no sort head (pred_model.*): it was saved as TVTSv2Model. "
            "TVTSv2ForPreTraining.from_pretrained on it initialises a fresh sort head."
        )
    return ConversionResult(model=model.eval(), config=config, has_sort_head=has_sort_head, notes=notes)


def convert_checkpoint(
    checkpoint: str | Path,
    output_dir: str | Path | None = None,
    variant: str | None = None,
    layout: str | None = None,
    vision_heads: int | None = None,
    text_heads: int | None = None,
    sort_heads: int | None = None,
    save_processor: bool = True,
    overwrite: bool = False,
    hub: bool = False,
) -> ConversionResult:
    """Convert an original `.pth` file; with `output_dir`, save `config.json` + `model.safetensors` (+ processor).

    The output folder follows `modeling_tvtsv2.tools.output_folders`: checked before the checkpoint is read (not empty
    needs `overwrite`, never a folder holding the checkpoint, writable), written beside and moved into place when
    complete. `hub=True` writes a Hub-ready folder (remote code, model card) instead, as `tvtsv2 export`.
    """
    if output_dir is not None:
        check_output_folder(output_dir, overwrite=overwrite, inputs=[checkpoint])
    original = load_original_checkpoint(checkpoint)
    config = infer_config(original, variant, layout, vision_heads, text_heads, sort_heads)
    result = convert_state_dict(original, config)
    for note in result.notes:
        logger.warning(note)
    if output_dir is None:
        return result
    if hub:
        from .tools.hub_export import save_hub_folder
        from .processing_tvtsv2 import TVTSv2Processor

        vision = config.vision_config
        processor = TVTSv2Processor.from_defaults(image_size=vision.image_size, num_frames=vision.num_frames)
        save_hub_folder(result.model, processor, output_dir, overwrite=overwrite)
        return result
    with staged_output_folder(output_dir, overwrite=overwrite, inputs=[checkpoint]) as staging:
        result.model.save_pretrained(staging)
        if save_processor:
            _save_default_processor(config, staging, result)
    return result


# --------------------------------------------------------------------------------------------------------------
# Command line: `tvtsv2 convert`
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ConvertArguments:
    """`tvtsv2 convert` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`, argument files)."""

    checkpoint: str = field(metadata={"help": "original .pth file"})
    output: str = field(metadata={"help": "output folder"})
    variant: str | None = field(
        default=None, metadata={"help": "released variant (default: detect)", "choices": list(VARIANTS)}
    )
    layout: str | None = field(
        default=None, metadata={"help": "CLIP flavour of a non-standard size", "choices": list(LAYOUTS)}
    )
    vision_heads: int | None = field(default=None, metadata={"help": "attention heads of the video tower"})
    text_heads: int | None = field(default=None, metadata={"help": "attention heads of the text tower"})
    sort_heads: int | None = field(default=None, metadata={"help": "attention heads of the sort head"})
    no_processor: bool = field(default=False, metadata={"help": "do not write processor/tokenizer files"})
    hub: bool = field(default=False, metadata={"help": "also write a Hub-ready folder (remote code, model card)"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace a non-empty --output as a whole once the conversion is done"}
    )


CONVERT_DESCRIPTION = (
    "Convert an original TVTSv2 checkpoint (trainer or downstream format) to config.json + model.safetensors "
    "(+ processor files). Released sizes are detected from tensor shapes; other sizes need --layout and the head "
    "counts."
)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`tvtsv2 convert ...`: returns the exit status (2 with one `error: ...` line for a user mistake)."""
    from .tools.arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(ConvertArguments, argv, prog=prog, description=CONVERT_DESCRIPTION)
    return run_convert(args)


def run_convert(args: ConvertArguments) -> int:
    """`tvtsv2 convert` from parsed arguments: one `error: <file>: <reason>` line and exit code 2 on bad input."""
    import sys

    try:
        result = convert_checkpoint(
            args.checkpoint,
            args.output,
            variant=args.variant,
            layout=args.layout,
            vision_heads=args.vision_heads,
            text_heads=args.text_heads,
            sort_heads=args.sort_heads,
            save_processor=not args.no_processor,
            overwrite=args.overwrite,
            hub=args.hub,
        )
    except (CheckpointConversionError, OutputFolderError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kind = "TVTSv2ForPreTraining (with sort head)" if result.has_sort_head else "TVTSv2Model (no sort head)"
    n_params = sum(p.numel() for p in result.model.parameters())
    print(f"converted {args.checkpoint} -> {args.output}: {kind}, {n_params:,} parameters")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _save_default_processor(config: TVTSv2Config, output_dir: Path, result: ConversionResult) -> None:
    try:
        from .processing_tvtsv2 import TVTSv2Processor
    except ImportError as error:  # processor dependencies missing: the weights are still usable
        result.notes.append(f"processor files not written: {error}")
        return
    if config.text_config.vocab_size != 49408:
        result.notes.append("processor files not written: the text vocabulary is not CLIP's (49408 tokens)")
        return
    processor = TVTSv2Processor.from_defaults(
        image_size=config.vision_config.image_size, num_frames=config.vision_config.num_frames
    )
    processor.save_pretrained(output_dir)


if __name__ == "__main__":
    raise SystemExit(main())
