"""LoRA adapters (peft) on TVTSv2: save, load back onto a base model, identical outputs, usable in the pipelines.

Recommended targets (documented in the model card / README): the attention projections of both towers,
`target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]` (a suffix match: text `self_attn`, video `self_attn`
and video `temporal_attn`), optionally `"fc1", "fc2"`; a regex string scopes to one tower, e.g.
`r".*vision_model\\.encoder\\.layers\\.\\d+\\.(self_attn|temporal_attn)\\.(q_proj|k_proj|v_proj|out_proj)"`.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import pipeline

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.pipeline_tvtsv2 import ZeroShotVideoClassificationPipeline, register_pipelines
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


PARK = Path(__file__).parent / "data" / "park.mp4"
TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
VIDEO_TOWER_ONLY = r".*vision_model\.encoder\.layers\.\d+\.(self_attn|temporal_attn)\.(q_proj|k_proj|v_proj|out_proj)"
LABELS = ["walking a dog", "giving a speech", "cooking"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("base")
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(folder)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def processor(base_dir):
    return TVTSv2Processor.from_pretrained(base_dir)


@pytest.fixture(scope="module")
def inputs(processor):
    return processor(text=LABELS, videos=[str(PARK)], return_tensors="pt")


def _embeddings(model, inputs):
    with torch.no_grad():
        video = model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"]).pooler_output
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    return video, text.pooler_output


def test_lora_targets_hit_both_towers(base_dir):
    model = get_peft_model(TVTSv2Model.from_pretrained(base_dir), LoraConfig(r=4, target_modules=TARGETS))
    names = {name for name, module in model.named_modules() if hasattr(module, "lora_A")}
    tiny = TVTSv2Config.from_preset("tiny")
    text_layers, vision_layers = tiny.text_config.num_hidden_layers, tiny.vision_config.num_hidden_layers
    assert len(names) == 4 * text_layers + 8 * vision_layers  # 4 projections; video layers have 2 attentions
    assert any(".temporal_attn.q_proj" in name for name in names)
    scoped = get_peft_model(TVTSv2Model.from_pretrained(base_dir), LoraConfig(r=4, target_modules=VIDEO_TOWER_ONLY))
    scoped_names = {name for name, module in scoped.named_modules() if hasattr(module, "lora_A")}
    assert len(scoped_names) == 8 * vision_layers and all("vision_model" in name for name in scoped_names)


def test_lora_adapter_round_trip_and_pipelines(base_dir, processor, inputs, tmp_path):
    torch.manual_seed(1)
    # init_lora_weights=False gives non-zero B matrices, so the adapter really changes the outputs
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, init_lora_weights=False)
    peft_model = get_peft_model(TVTSv2Model.from_pretrained(base_dir), config).eval()
    adapted_video, adapted_text = _embeddings(peft_model, inputs)
    base_video, _ = _embeddings(TVTSv2Model.from_pretrained(base_dir).eval(), inputs)
    assert not torch.allclose(adapted_video, base_video, atol=1e-3)

    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    assert (adapter_dir / "adapter_config.json").is_file() and (adapter_dir / "adapter_model.safetensors").is_file()

    loaded = PeftModel.from_pretrained(TVTSv2Model.from_pretrained(base_dir), adapter_dir).eval()
    video, text = _embeddings(loaded, inputs)
    torch.testing.assert_close(video, adapted_video, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(text, adapted_text, atol=1e-6, rtol=1e-6)

    # zero-shot pipeline on the PeftModel object: scores from the adapted embeddings
    classifier = ZeroShotVideoClassificationPipeline(model=loaded, processor=processor, device="cpu")
    outputs = classifier(str(PARK), candidate_labels=LABELS, hypothesis_template="{}")  # prompts = the raw labels
    got = {item["label"]: item["score"] for item in outputs}
    expected = (100 * F.normalize(text, dim=-1) @ F.normalize(video, dim=-1)[0]).softmax(dim=-1)
    np.testing.assert_allclose([got[label] for label in LABELS], expected.numpy(), atol=1e-5)

    # pipeline() on the PeftModel object alone: the processor saved with its base model is found
    for task in ("zero-shot-video-classification", "video-feature-extraction"):
        assert pipeline(task, model=loaded, device="cpu").video_processor is not None
    found = pipeline("zero-shot-video-classification", model=loaded, device="cpu")
    outputs = found(str(PARK), candidate_labels=LABELS, hypothesis_template="{}")
    assert {item["label"]: item["score"] for item in outputs} == pytest.approx(got, abs=1e-6)

    # feature-extraction pipeline straight from the adapter folder (base model found via adapter_config.json)
    register_pipelines()
    extractor = pipeline("video-feature-extraction", model=str(adapter_dir), device="cpu")
    np.testing.assert_allclose(extractor(str(PARK)), F.normalize(video, dim=-1)[0].numpy(), atol=1e-5)

    # merged weights give the same embeddings as the adapter
    merged = loaded.merge_and_unload()
    merged_video, _ = _embeddings(merged, inputs)
    torch.testing.assert_close(merged_video, adapted_video, atol=1e-5, rtol=1e-5)
