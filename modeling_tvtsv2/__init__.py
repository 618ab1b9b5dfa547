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

# --- processors ---
# AutoVideoProcessor must come from its submodule: without torchvision the top-level name is a dummy that raises.
from transformers import AutoProcessor, AutoTokenizer, CLIPTokenizer  # noqa: E402
from transformers.models.auto.video_processing_auto import AutoVideoProcessor  # noqa: E402

from .processing_tvtsv2 import TVTSv2Processor, build_clip_tokenizer  # noqa: E402
from .video_processing_tvtsv2 import (  # noqa: E402
    TVTSv2VideoMetadata,
    TVTSv2VideoProcessor,
    VideoDecodeError,
    preprocess_frames,
    read_video,
)

AutoVideoProcessor.register(TVTSv2Config, TVTSv2VideoProcessor, exist_ok=True)
AutoTokenizer.register(TVTSv2Config, fast_tokenizer_class=CLIPTokenizer, exist_ok=True)
AutoProcessor.register(TVTSv2Config, TVTSv2Processor, exist_ok=True)

__all__ += [
    "TVTSv2Processor",
    "TVTSv2VideoMetadata",
    "TVTSv2VideoProcessor",
    "VideoDecodeError",
    "build_clip_tokenizer",
    "preprocess_frames",
    "read_video",
]
# --- end processors ---

# --- pipelines ---
# `pipeline("zero-shot-video-classification" | "video-feature-extraction", model=...)` (not in transformers 5.24).
from .pipeline_tvtsv2 import (  # noqa: E402
    VideoFeatureExtractionPipeline,
    ZeroShotVideoClassificationPipeline,
    register_pipelines,
)

register_pipelines()

__all__ += ["VideoFeatureExtractionPipeline", "ZeroShotVideoClassificationPipeline", "register_pipelines"]
# --- end pipelines ---
