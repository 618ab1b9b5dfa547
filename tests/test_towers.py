"""Towers as standalone models: Auto registration, loading from a full TVTSv2 folder, save → AutoModel reload."""

import inspect

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel

import modeling_tvtsv2  # noqa: F401  (registers the Auto classes)
from modeling_tvtsv2 import (
    TVTSv2Config,
    TVTSv2ForPreTraining,
    TVTSv2TextConfig,
    TVTSv2TextModel,
    TVTSv2VisionConfig,
    TVTSv2VisionModel,
)


@pytest.fixture(scope="module")
def full_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny")).eval()
    folder = tmp_path_factory.mktemp("full")
    model.save_pretrained(folder)
    return folder, model


def assert_same_state(actual: torch.nn.Module, expected: torch.nn.Module) -> None:
    actual_state, expected_state = actual.state_dict(), expected.state_dict()
    assert actual_state.keys() == expected_state.keys()
    for name, tensor in expected_state.items():
        assert torch.equal(actual_state[name], tensor), name


@pytest.mark.parametrize(
    ("config_class", "model_class"),
    [(TVTSv2VisionConfig, TVTSv2VisionModel), (TVTSv2TextConfig, TVTSv2TextModel)],
)
def test_towers_are_registered_with_the_auto_classes(config_class, model_class):
    config = AutoConfig.for_model(config_class.model_type, hidden_size=32, num_attention_heads=4)
    assert type(config) is config_class
    assert type(AutoModel.from_config(config)) is model_class


TOWERS = [(TVTSv2VisionModel, "vision_model"), (TVTSv2TextModel, "text_model")]


@pytest.mark.parametrize(("tower_class", "attribute"), TOWERS)
def test_tower_from_a_full_folder_loads_the_tower_weights(full_folder, tower_class, attribute):
    folder, full_model = full_folder
    tower = tower_class.from_pretrained(folder)
    assert_same_state(tower, getattr(full_model, attribute))


def test_vision_tower_from_a_full_folder_gives_the_full_models_video_features(full_folder):
    folder, full_model = full_folder
    tower = TVTSv2VisionModel.from_pretrained(folder).eval()
    vision = full_model.config.vision_config
    pixels = torch.randn(2, 3, 3, vision.image_size, vision.image_size)
    with torch.no_grad():
        expected = full_model.vision_model(pixel_values_videos=pixels).pooler_output
        actual = tower(pixel_values_videos=pixels).pooler_output
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


@pytest.mark.parametrize(("tower_class", "attribute"), TOWERS)
def test_saved_tower_reloads_with_auto_model(full_folder, tmp_path, tower_class, attribute):
    folder, full_model = full_folder
    tower_class.from_pretrained(folder).save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert type(reloaded) is tower_class
    assert_same_state(reloaded, getattr(full_model, attribute))
    # The saved keys carry the tower prefix of the full model, like CLIP's towers.
    with safe_open(tmp_path / "model.safetensors", "pt") as handle:
        assert all(key.startswith(f"{attribute}.") for key in handle.keys())


def test_full_model_round_trip_is_unaffected_by_the_tower_key_mapping(full_folder, tmp_path):
    folder, full_model = full_folder
    with safe_open(folder / "model.safetensors", "pt") as handle:
        keys = set(handle.keys())
    assert set(full_model.state_dict()) == keys  # no doubled or stripped prefixes on save
    assert_same_state(TVTSv2ForPreTraining.from_pretrained(folder), full_model)


def test_tower_classes_keep_their_forward_entry_points():
    assert TVTSv2VisionModel.main_input_name == "pixel_values_videos"
    assert list(inspect.signature(TVTSv2TextModel.forward).parameters)[1] == TVTSv2TextModel.main_input_name


def test_vision_tower_from_the_converted_original_reproduces_its_embeddings(converted_original, original_reference):
    """Tower weights loaded from a full (converted original) folder, projected with that folder's projection."""
    tower = TVTSv2VisionModel.from_pretrained(converted_original["downstream"]).eval()
    with safe_open(converted_original["downstream"] / "model.safetensors", "pt") as handle:
        projection = handle.get_tensor("visual_projection.weight")
    for keep_name, reference_name in (("keep_ind_full", "video_embeds"), ("keep_ind_masked", "video_embeds_masked")):
        with torch.no_grad():
            pooled = tower(pixel_values_videos=original_reference["pixel_values"],
                           keep_indices=original_reference[keep_name]).pooler_output  # fmt: skip
        torch.testing.assert_close(pooled @ projection.T, original_reference[reference_name], atol=1e-5, rtol=1e-4)
