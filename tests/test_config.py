"""TVTSv2Config: presets hold the original hyper-parameters (fact sheet §1, §3.5, §4), round trips, validation."""

import json

import pytest
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig

import modeling_tvtsv2  # noqa: F401  (registers AutoConfig)
from modeling_tvtsv2 import TVTSv2Config, TVTSv2TextConfig, TVTSv2VisionConfig, available_presets


# Values from the original code (shared/reference/original_tvtsv2_facts.md), written out independently here.
ORIGINAL = {
    "b32": dict(
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    patch_size=32, image_size=224, num_frames=12, hidden_act="quick_gelu", layer_norm_upcast=True,
                    layer_norm_eps=1e-5),
        text=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                  num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_upcast=True,
                  layer_norm_eps=1e-5),
        top=dict(projection_dim=512, sort_head_num_attention_heads=8, sort_head_video_tokens="all_tokens_post_ln",
                 pretraining_mask_ratio=0.0, num_frozen_text_layers=9),
        patches=49,
    ),
    "b16": dict(
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    patch_size=16, image_size=224, num_frames=12, hidden_act="quick_gelu", layer_norm_upcast=True,
                    layer_norm_eps=1e-5),
        text=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                  num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_upcast=True,
                  layer_norm_eps=1e-5),
        top=dict(projection_dim=512, sort_head_num_attention_heads=8, sort_head_video_tokens="all_tokens_post_ln",
                 pretraining_mask_ratio=0.5, num_frozen_text_layers=9),
        patches=196,
    ),
    "h14": dict(
        vision=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                    patch_size=14, image_size=224, num_frames=12, hidden_act="gelu", layer_norm_upcast=False,
                    layer_norm_eps=1e-5),
        text=dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                  num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", layer_norm_upcast=False,
                  layer_norm_eps=1e-5),
        top=dict(projection_dim=1024, sort_head_num_attention_heads=16, sort_head_video_tokens="patch_tokens_pre_ln",
                 pretraining_mask_ratio=0.7, num_frozen_text_layers=18),
        patches=256,
    ),
}  # fmt: skip
# Shared by all sizes: sort head depth 2, 4 classes, mlp ratio 4, LayerNorm eps 1e-6; NormSoftmaxLoss(T=0.05), fixed;
# sort loss weight 2; CLIP special tokens.
COMMON = dict(sort_head_num_layers=2, sort_head_num_classes=4, sort_head_mlp_ratio=4.0, sort_head_layer_norm_eps=1e-6,
              temperature=0.05, learnable_temperature=False, sort_loss_weight=2.0)  # fmt: skip


def test_available_presets():
    assert {"b32", "b16", "h14", "tiny"} <= set(available_presets())


@pytest.mark.parametrize("preset", list(ORIGINAL))
def test_presets_hold_the_original_hyper_parameters(preset):
    config = TVTSv2Config.from_preset(preset)
    expected = ORIGINAL[preset]
    assert isinstance(config.vision_config, TVTSv2VisionConfig)
    assert isinstance(config.text_config, TVTSv2TextConfig)
    for key, value in expected["vision"].items():
        assert getattr(config.vision_config, key) == value, f"vision_config.{key}"
    for key, value in expected["text"].items():
        assert getattr(config.text_config, key) == value, f"text_config.{key}"
    for key, value in {**expected["top"], **COMMON}.items():
        assert getattr(config, key) == value, key
    assert config.vision_config.num_patches == expected["patches"]
    assert (config.text_config.bos_token_id, config.text_config.eos_token_id) == (49406, 49407)
    # n_keep = int(P * (1 - r)) in pre-training: 49 / 98 / 76 (fact sheet §1)
    n_keep = int(expected["patches"] * (1 - config.pretraining_mask_ratio))
    assert n_keep == {"b32": 49, "b16": 98, "h14": 76}[preset]


def test_preset_names_are_normalised_and_unknown_names_rejected():
    assert TVTSv2Config.from_preset("B/16").vision_config.patch_size == 16
    assert TVTSv2Config.from_preset("H-14").vision_config.hidden_size == 1280
    with pytest.raises(ValueError, match="Unknown TVTSv2 preset 'b8'.*b16"):
        TVTSv2Config.from_preset("b8")


def test_from_preset_overrides_merge_into_sub_configs():
    config = TVTSv2Config.from_preset("b16", vision_config={"num_frames": 16}, learnable_temperature=True)
    assert config.vision_config.num_frames == 16
    assert config.vision_config.patch_size == 16 and config.vision_config.hidden_size == 768  # kept from the preset
    assert config.learnable_temperature is True and config.projection_dim == 512


def test_from_preset_accepts_a_json_path(tmp_path):
    data = {"vision_config": {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                              "num_hidden_layers": 1, "image_size": 32, "patch_size": 16, "num_frames": 2},
            "text_config": {"vocab_size": 100, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                            "intermediate_size": 64},
            "projection_dim": 16, "sort_head_num_attention_heads": 2}  # fmt: skip
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(data))
    config = TVTSv2Config.from_preset(str(path))
    assert config.vision_config.hidden_size == 32 and config.text_config.vocab_size == 100
    assert config.projection_dim == 16 and config.vision_config.num_patches == 4


def _essentials(config):
    skip = ("_name_or_path", "transformers_version", "dtype")
    data = {k: v for k, v in config.to_dict().items() if k not in skip}
    for key in ("vision_config", "text_config"):
        data[key] = {k: v for k, v in data[key].items() if k not in skip}
    return data


@pytest.mark.parametrize("preset", ["b32", "h14", "tiny"])
def test_to_dict_from_dict_round_trip(preset):
    config = TVTSv2Config.from_preset(preset, learnable_temperature=True, temperature=0.07)
    data = config.to_dict()
    json.dumps(data)  # serialisable
    assert data["model_type"] == "tvtsv2"
    assert isinstance(data["vision_config"], dict) and isinstance(data["text_config"], dict)
    restored = TVTSv2Config.from_dict(data)
    assert isinstance(restored.vision_config, TVTSv2VisionConfig)
    assert _essentials(restored) == _essentials(config)


def test_save_pretrained_and_auto_config_round_trip(tmp_path):
    config = TVTSv2Config.from_preset("h14", sort_loss_weight=1.5)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "tvtsv2" and saved["vision_config"]["hidden_act"] == "gelu"
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is TVTSv2Config
    assert isinstance(loaded.text_config, TVTSv2TextConfig)
    assert _essentials(loaded) == _essentials(config)
    assert loaded.sort_loss_weight == 1.5 and loaded.vision_config.layer_norm_upcast is False


def test_auto_config_for_model_type():
    assert type(AutoConfig.for_model("tvtsv2")) is TVTSv2Config


def test_sub_configs_accept_dicts_and_instances():
    vision = TVTSv2VisionConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=1,
                                image_size=32, patch_size=16, num_frames=3)  # fmt: skip
    config = TVTSv2Config(vision_config=vision, text_config={"hidden_size": 32, "num_attention_heads": 4})
    assert config.vision_config.num_frames == 3 and config.vision_config.num_patches == 4
    assert isinstance(config.text_config, TVTSv2TextConfig) and config.text_config.hidden_size == 32


def _raises_validation(match):
    # Validators raise ValueError; huggingface_hub's strict dataclasses wrap it in StrictDataclassError.
    return pytest.raises((ValueError, StrictDataclassError), match=match)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(vision_config={"num_attention_heads": 7}), r"vision hidden_size \(768\).*divisible.*\(7\)"),
        (dict(text_config={"num_attention_heads": 7}), r"text hidden_size \(512\).*divisible.*\(7\)"),
        (dict(sort_head_num_attention_heads=7), r"projection_dim \(512\).*divisible.*\(7\)"),
        (dict(projection_dim=500), r"projection_dim \(500\).*divisible"),
        (dict(sort_head_video_tokens="cls_only"), r"sort_head_video_tokens must be one of.*cls_only"),
        (dict(pretraining_mask_ratio=1.0), r"pretraining_mask_ratio must be in \[0, 1\)"),
        (dict(pretraining_mask_ratio=1.5), r"pretraining_mask_ratio"),
        (dict(pretraining_mask_ratio=-0.1), r"pretraining_mask_ratio"),
        (dict(temperature=0.0), r"temperature must be > 0"),
        (dict(vision_config={"image_size": 200}), r"image_size \(200\) must be a multiple of patch_size \(16\)"),
        (dict(vision_config={"num_frames": 0}), r"num_frames must be >= 1"),
    ],
)
def test_invalid_configs_are_refused(overrides, match):
    with _raises_validation(match):
        TVTSv2Config.from_preset("b16", **overrides)


def test_invalid_sub_config_values_are_refused_directly():
    with _raises_validation("divisible"):
        TVTSv2VisionConfig(hidden_size=100, num_attention_heads=3)
    with _raises_validation("divisible"):
        TVTSv2TextConfig(hidden_size=100, num_attention_heads=3)
