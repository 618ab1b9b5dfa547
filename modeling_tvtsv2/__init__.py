"""TVTSv2 for 🤗 Transformers.

`import modeling_tvtsv2` registers the configuration, models, processors and pipelines with the transformers Auto
classes, so `AutoModel.from_pretrained(dir)`, `AutoProcessor.from_pretrained(dir)` and
`pipeline("zero-shot-video-classification" | "video-feature-extraction", model=dir)` work without
`trust_remote_code`.
"""

import logging as std_logging

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoProcessor, AutoTokenizer

# Without torchvision the top-level `transformers.AutoVideoProcessor` is a dummy that raises: use the submodule.
from transformers.models.auto.video_processing_auto import AutoVideoProcessor
from transformers.utils import logging as transformers_logging

from .configuration_tvtsv2 import TVTSv2Config, TVTSv2TextConfig, TVTSv2VisionConfig, available_presets
from .modeling_tvtsv2 import (
    TVTSv2ForPreTraining,
    TVTSv2ForPreTrainingOutput,
    TVTSv2Model,
    TVTSv2Output,
    TVTSv2PreTrainedModel,
    TVTSv2TextModel,
    TVTSv2VisionModel,
    autocast_context,
)
from .pipeline_tvtsv2 import VideoFeatureExtractionPipeline, ZeroShotVideoClassificationPipeline, register_pipelines
from .processing_tvtsv2 import TVTSv2Processor
from .tokenization_tvtsv2 import TVTSv2Tokenizer, build_clip_tokenizer
from .video_decoding_tvtsv2 import VideoDecodeError
from .video_processing_tvtsv2 import TVTSv2VideoProcessor
from .video_reading_tvtsv2 import TVTSv2VideoMetadata, read_video, read_video_pixels
from .video_transforms_tvtsv2 import normalize_video_pixels, preprocess_frames

__version__ = "0.1.0"

# The package's loggers (`transformers.utils.logging.get_logger(__name__)`) hang below transformers' library logger,
# so `transformers.logging.set_verbosity_*`, `TRANSFORMERS_VERBOSITY` and `--log_level` apply to them and they print
# through its handler.
std_logging.getLogger(__name__).parent = transformers_logging.get_logger()

AutoConfig.register(TVTSv2Config.model_type, TVTSv2Config, exist_ok=True)
AutoModel.register(TVTSv2Config, TVTSv2Model, exist_ok=True)
AutoConfig.register(TVTSv2VisionConfig.model_type, TVTSv2VisionConfig, exist_ok=True)
AutoModel.register(TVTSv2VisionConfig, TVTSv2VisionModel, exist_ok=True)
AutoConfig.register(TVTSv2TextConfig.model_type, TVTSv2TextConfig, exist_ok=True)
AutoModel.register(TVTSv2TextConfig, TVTSv2TextModel, exist_ok=True)
AutoModelForPreTraining.register(TVTSv2Config, TVTSv2ForPreTraining, exist_ok=True)
AutoVideoProcessor.register(TVTSv2Config, TVTSv2VideoProcessor, exist_ok=True)
AutoTokenizer.register(TVTSv2Config, fast_tokenizer_class=TVTSv2Tokenizer, exist_ok=True)
AutoProcessor.register(TVTSv2Config, TVTSv2Processor, exist_ok=True)
register_pipelines()

__all__ = [
    "TVTSv2Config",
    "TVTSv2ForPreTraining",
    "TVTSv2ForPreTrainingOutput",
    "TVTSv2Model",
    "TVTSv2Output",
    "TVTSv2PreTrainedModel",
    "TVTSv2Processor",
    "TVTSv2TextConfig",
    "TVTSv2TextModel",
    "TVTSv2Tokenizer",
    "TVTSv2VideoMetadata",
    "TVTSv2VideoProcessor",
    "TVTSv2VisionConfig",
    "TVTSv2VisionModel",
    "VideoDecodeError",
    "VideoFeatureExtractionPipeline",
    "ZeroShotVideoClassificationPipeline",
    "autocast_context",
    "available_presets",
    "build_clip_tokenizer",
    "normalize_video_pixels",
    "preprocess_frames",
    "read_video",
    "read_video_pixels",
    "register_pipelines",
]
