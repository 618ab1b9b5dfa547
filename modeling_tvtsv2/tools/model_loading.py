"""Loading a TVTSv2 model and its processor from a folder or Hub id (evaluation, extraction, probe, search, export).

A folder without (complete) processor files, e.g. a bare `save_pretrained` of the model, gets the default TVTSv2
processor for the model's frame size and number of frames.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path

import torch
from transformers.utils import logging

from ..processing_tvtsv2 import TVTSv2Processor

logger = logging.get_logger(__name__)

__all__ = [
    "NoSuchLocalPathError",
    "check_local_path",
    "load_model_and_processor",
    "load_processor_or_default",
    "looks_local",
    "model_fingerprint",
]

# What a Hub repo id can be: `name` or `namespace/name` of letters, digits, `-`, `_`, `.`.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class NoSuchLocalPathError(FileNotFoundError):
    """A path that is meant to be local (see `looks_local`) but does not exist."""


def looks_local(spec: str) -> bool:
    """Whether `spec` names a local path rather than a Hub id: it starts with `.`, `/` or `~`, contains the
    platform's separator where that is not `/`, cannot be a Hub id (two slashes, spaces, ...), or its parent
    folder exists here (`outputs/tvtsv2-dmeo` when `outputs/` exists)."""
    text = os.fspath(spec)
    if text.startswith((".", "/", "~")) or (os.sep != "/" and os.sep in text) or not _HUB_ID.match(text):
        return True
    parent = Path(text).parent
    return str(parent) != "." and parent.is_dir()


def check_local_path(spec: str, flag: str, what: str = "folder") -> None:
    """Raise `NoSuchLocalPathError` (`"{flag} {spec}: no such {what}"`, one line) when `spec` looks local but does
    not exist, so that a typo fails at once instead of being tried as a Hub id (network retries, tracebacks)."""
    if looks_local(spec) and not Path(os.path.expanduser(os.fspath(spec))).exists():
        parent = Path(os.path.expanduser(os.fspath(spec))).parent
        hint = ""
        if parent.is_dir():
            names = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
            close = difflib.get_close_matches(Path(spec).name, names, n=1)
            hint = f" (did you mean {parent / close[0]}?)" if close else ""
        raise NoSuchLocalPathError(f"{flag} {spec}: no such {what}{hint}")


def load_model_and_processor(
    model_name_or_path: str,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    cache_dir: str | None = None,
):
    """Loads a TVTSv2 model (`AutoModel`) and its processor (`AutoProcessor`) for evaluation (Hub downloads are
    stored in `cache_dir`, default the Hugging Face cache).

    A folder without processor files (e.g. a bare `save_pretrained` of the model) gets the default TVTSv2
    processor for the model's image size and number of frames.
    """
    # This module lives in the `modeling_tvtsv2` package, whose import registered the Auto classes.
    from transformers import AutoModel

    check_local_path(model_name_or_path, "--model")
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    model = AutoModel.from_pretrained(
        model_name_or_path, dtype=dtype or torch.float32, trust_remote_code=trust_remote_code, cache_dir=cache_dir
    )
    model.eval().to(device or "cpu")
    return model, load_processor_or_default(model_name_or_path, model.config, trust_remote_code, cache_dir)


def load_processor_or_default(
    model_name_or_path: str, config, trust_remote_code: bool = False, cache_dir: str | None = None
):
    """`AutoProcessor.from_pretrained`, or the default TVTSv2 processor for the config's frame size when the folder
    has no (complete) processor files."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code, cache_dir=cache_dir
        )
        if getattr(processor, "video_processor", None) is not None and getattr(processor, "tokenizer", None):
            return processor
        reason = f"found only a {type(processor).__name__}"
    except (OSError, ValueError, TypeError, KeyError) as error:
        reason = str(error).splitlines()[0]

    logger.warning("No TVTSv2 processor in %s (%s); using the default one.", model_name_or_path, reason)
    vision = config.vision_config
    return TVTSv2Processor.from_defaults(image_size=vision.image_size, num_frames=vision.num_frames)


def model_fingerprint(model, dtype: str | torch.dtype | None = None) -> str:
    """SHA-1 of the config and of every weight's bytes (detects a different model behind the same path).

    Depends on the weights and the config only: not on the process or thread count (a float sum would: its order
    follows the threads), nor on the path or the dtype the config records. `dtype`: round the weights to it first,
    so that a float32 copy of a model matches the fingerprint of its bfloat16 copy (`model_dtype` in the manifest).
    """
    config = model.config.to_dict()
    for key in ("_name_or_path", "torch_dtype", "dtype", "transformers_version"):
        config.pop(key, None)
    digest = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode())
    rounding = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            values = tensor.detach().to("cpu")
            if rounding is not None and values.is_floating_point():
                values = values.to(rounding)
            digest.update(f"{name}{tuple(values.shape)}".encode())
            digest.update(values.to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
