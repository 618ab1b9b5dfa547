"""TVTSv2 for 🤗 Transformers.

`import modeling_tvtsv2` registers the configuration, models, processors and pipelines with the transformers Auto
classes, so `AutoModel.from_pretrained(dir)` / `AutoProcessor.from_pretrained(dir)` / `pipeline(...)` work without
`trust_remote_code`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

from .configuration_tvtsv2 import TVTSv2Config, TVTSv2TextConfig, TVTSv2VisionConfig, available_presets
from .modeling_tvtsv2 import (
    TVTSv2ForPreTraining,
    TVTSv2ForPreTrainingOutput,
    TVTSv2Model,
    TVTSv2Output,
    TVTSv2PreTrainedModel,
    TVTSv2TextModel,
    TVTSv2VisionModel,
)

__version__ = "0.1.0"

AutoConfig.register(TVTSv2Config.model_type, TVTSv2Config, exist_ok=True)
AutoModel.register(TVTSv2Config, TVTSv2Model, exist_ok=True)
AutoModelForPreTraining.register(TVTSv2Config, TVTSv2ForPreTraining, exist_ok=True)

__all__ = [
    "TVTSv2Config",
    "TVTSv2ForPreTraining",
    "TVTSv2ForPreTrainingOutput",
    "TVTSv2Model",
    "TVTSv2Output",
    "TVTSv2PreTrainedModel",
    "TVTSv2TextConfig",
    "TVTSv2TextModel",
    "TVTSv2VisionConfig",
    "TVTSv2VisionModel",
    "available_presets",
]
