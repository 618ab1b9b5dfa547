"""Where a pre-training run's model and corpora come from: presets, local folders or Hub ids.

`--model` is a preset (random weights), a TVTSv2 model or a 🤗 `CLIPModel` (initialised the way the paper
initialised from CLIP), each as a local folder or a Hub id (resolved through the Hugging Face cache, so it works
offline with `HF_HUB_OFFLINE=1` once cached). Corpora are folders saved with `save_to_disk` (what
`processing/prepare_*_corpus.py` write), or anything `datasets.load_dataset` accepts (a Hub id, a folder of files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, CLIPConfig, PretrainedConfig
from transformers.utils import logging

from ..configuration_tvtsv2 import TVTSv2Config, available_presets
from ..data.schema import as_corpus, is_saved_dataset
from ..from_clip import config_from_clip, released_variant
from ..modeling_tvtsv2 import TVTSv2ForPreTraining
from .arguments import PretrainingArgumentError

logger = logging.get_logger(__name__)


@dataclass
class ModelSource:
    """A resolved `--model`: `kind` is "preset" (random weights), "tvtsv2" or "clip"; `origin` "preset", "local"
    or "hub"; `config` the source's own config (a `CLIPConfig` for CLIP sources)."""

    spec: str
    kind: str
    origin: str
    config: PretrainedConfig
    revision: str | None = None

    @property
    def random_init(self) -> bool:
        return self.kind == "preset"

    @property
    def init(self) -> str:
        return {
            "preset": "random (preset architecture, no pretrained weights)",
            "tvtsv2": "TVTSv2 weights of the source",
            "clip": "CLIPModel weights; new parameters (time attention, temporal embedding, sort head) get the "
            "original init",
        }[self.kind]

    def tvtsv2_config(self) -> TVTSv2Config:
        """The config of the model this source builds (for CLIP: towers from CLIP + the variant's settings)."""
        return config_from_clip(self.config) if self.kind == "clip" else self.config

    def build_empty(self) -> TVTSv2ForPreTraining:
        """The model on the meta device (no memory, no weights): for inspecting parameters."""
        with torch.device("meta"):
            return TVTSv2ForPreTraining(self.tvtsv2_config())

    def load(self) -> TVTSv2ForPreTraining:
        """The model with its initial weights, in float32 (the trainer handles mixed precision)."""
        if self.kind == "preset":
            return TVTSv2ForPreTraining(self.config)
        kwargs: dict[str, Any] = {"dtype": torch.float32}
        if self.revision:
            kwargs["revision"] = self.revision
        if self.kind == "clip":
            from transformers import CLIPModel

            from ..from_clip import tvtsv2_from_clip

            return tvtsv2_from_clip(CLIPModel.from_pretrained(self.spec, **kwargs))
        return TVTSv2ForPreTraining.from_pretrained(self.spec, **kwargs)

    def describe(self) -> dict[str, Any]:
        config = self.tvtsv2_config()
        return {
            "source": self.spec,
            "origin": self.origin,
            "kind": self.kind,
            "revision": self.revision,
            "init": self.init,
            "variant": released_variant(config),
        }


def resolve_model_source(spec: str, revision: str | None = None) -> ModelSource:
    """Resolve `--model` (only configs are read here; weights are loaded by `ModelSource.load`)."""
    if spec in available_presets():
        return ModelSource(spec, "preset", "preset", TVTSv2Config.from_preset(spec))
    path = Path(spec)
    if path.exists():
        if not (path / "config.json").is_file():
            raise PretrainingArgumentError(f"--model {spec}: the folder has no config.json")
        origin = "local"
    else:
        origin = "hub"
    try:
        config = AutoConfig.from_pretrained(spec, revision=revision) if revision else AutoConfig.from_pretrained(spec)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PretrainingArgumentError(
            f"--model {spec}: not a preset ({', '.join(available_presets())}), a local model folder, or a Hub model "
            f"id that could be loaded ({reason})"
        ) from None
    if isinstance(config, CLIPConfig):
        kind = "clip"
    elif isinstance(config, TVTSv2Config):
        kind = "tvtsv2"
    else:
        raise PretrainingArgumentError(
            f"--model {spec}: a {config.model_type!r} model; expected a TVTSv2 model or a CLIPModel"
        )
    return ModelSource(spec, kind, origin, config, revision)


def load_corpus_split(
    spec: str,
    preferred_splits: tuple[str, ...],
    *,
    argument: str,
    config_name: str | None = None,
    allow_single: bool = True,
    streaming: bool = False,
):
    """The first split of `preferred_splits` of the corpus `spec` (see the module docstring for its forms).

    A saved single `Dataset` is returned as is when `allow_single`. With `streaming`, `load_dataset` streams (an
    `IterableDataset`: nothing is downloaded ahead); a folder saved with `save_to_disk` is memory-mapped as always
    (`modeling_tvtsv2.pretraining.streaming.streamed_corpus` turns it into a stream). Raises
    `PretrainingArgumentError` naming `argument` when the corpus cannot be read or has none of the splits.
    """
    import datasets

    path = Path(spec)
    try:
        if is_saved_dataset(path):
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(spec, config_name, streaming=streaming)
    except (FileNotFoundError, ValueError, OSError, datasets.exceptions.DatasetNotFoundError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PretrainingArgumentError(f"--{argument} {spec}: cannot be loaded ({reason})") from None
    # Corpus rows: WebDataset members mapped to columns, relative video paths resolved against the folder.
    folder = path if path.is_dir() else None
    if not isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if allow_single:
            return as_corpus(loaded, folder)
        raise PretrainingArgumentError(
            f"--{argument} {spec}: a single split, expected one of {list(preferred_splits)}"
        )
    for name in preferred_splits:
        if name in loaded:
            return as_corpus(loaded[name], folder)
    raise PretrainingArgumentError(
        f"--{argument} {spec}: has splits {sorted(loaded)}, expected one of {list(preferred_splits)}"
    )

