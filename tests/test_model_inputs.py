"""Model inputs: `TVTSv2ForPreTraining`'s signature and defaults, and clear errors for unusable inputs."""

import inspect

import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining, TVTSv2Model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny")).eval()


def make_inputs(config, batch=2, texts=4, frames=3):
    vision, text = config.vision_config, config.text_config
    ids = torch.randint(0, text.vocab_size - 1, (batch, texts, 8))
    ids[..., -1] = text.eos_token_id
    pixels = torch.randn(batch, frames, 3, vision.image_size, vision.image_size)
    return ids, pixels


# ---------------------------------------------------------------------------------------------------------------
# TVTSv2ForPreTraining's forward (issue 9 item 4)


def test_pretraining_forward_has_the_dual_encoders_positional_order():
    pretraining = list(inspect.signature(TVTSv2ForPreTraining.forward).parameters)
    dual = list(inspect.signature(TVTSv2Model.forward).parameters)
    assert pretraining[:5] == ["self", "input_ids", "pixel_values_videos", "attention_mask", "keep_indices"]
    assert pretraining[:5] == dual[:5]
    assert pretraining[5:7] == ["sort_labels", "return_loss"]


def test_pretraining_main_input_name_is_the_first_forward_argument():
    first = list(inspect.signature(TVTSv2ForPreTraining.forward).parameters)[1]
    assert TVTSv2ForPreTraining.main_input_name == first


def test_pretraining_positional_call_equals_keyword_call(model):
    ids, pixels = make_inputs(model.config)
    with torch.no_grad():
        positional = model(ids, pixels)
        keyword = model(pixel_values_videos=pixels, input_ids=ids)
    torch.testing.assert_close(positional.loss, keyword.loss, atol=0, rtol=0)
    torch.testing.assert_close(positional.sort_logits, keyword.sort_logits, atol=0, rtol=0)


def test_pretraining_return_loss_none_follows_the_config():
    torch.manual_seed(0)
    config = TVTSv2Config.from_preset("tiny")
    assert config.return_loss is True
    model = TVTSv2ForPreTraining(config).eval()
    ids, pixels = make_inputs(config)
    with torch.no_grad():
        assert model(input_ids=ids, pixel_values_videos=pixels).loss is not None
        model.config.return_loss = False
        out = model(input_ids=ids, pixel_values_videos=pixels)
        assert out.loss is None and out.sort_loss is None and out.contrastive_loss is None
        assert out.sort_logits is not None  # the head still runs: only the losses are dropped
        assert model(input_ids=ids, pixel_values_videos=pixels, return_loss=True).loss is not None


def test_return_loss_config_survives_save_and_reload(tmp_path):
    config = TVTSv2Config.from_preset("tiny", return_loss=False)
    config.save_pretrained(tmp_path)
    assert TVTSv2Config.from_pretrained(tmp_path).return_loss is False


# ---------------------------------------------------------------------------------------------------------------
# Clear errors for unusable inputs (issue 10 item 9)


@pytest.mark.parametrize("bad_id", [-1, "vocab_size", 10**6])
def test_token_ids_outside_the_vocabulary_raise_value_error(model, bad_id):
    ids, pixels = make_inputs(model.config)
    vocab_size = model.config.text_config.vocab_size
    ids[1, 2, 3] = vocab_size if bad_id == "vocab_size" else bad_id
    with pytest.raises(ValueError, match=rf"input_ids must lie in \[0, {vocab_size}\)"):
        model(input_ids=ids, pixel_values_videos=pixels)
    with pytest.raises(ValueError, match="input_ids must lie in"):
        model.get_text_features(input_ids=ids[:, 2])


def test_float_token_ids_raise_value_error(model):
    ids, _ = make_inputs(model.config)
    with pytest.raises(ValueError, match="input_ids must be an integer tensor"):
        model.text_model(input_ids=ids[:, 0].float())


def test_last_vocabulary_id_is_accepted(model):
    ids, pixels = make_inputs(model.config)
    ids[0, 0, 0] = model.config.text_config.vocab_size - 1
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids, pixel_values_videos=pixels).loss)


def test_video_with_zero_frames_raises_value_error(model):
    ids, pixels = make_inputs(model.config)
    with pytest.raises(ValueError, match="0 frames"):
        model(input_ids=ids, pixel_values_videos=pixels[:, :0])
    with pytest.raises(ValueError, match="0 frames"):
        model.get_video_features(pixel_values_videos=pixels[:, :0])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_integer_pixels_raise_value_error_asking_for_normalised_floats(model, dtype):
    ids, pixels = make_inputs(model.config)
    raw = (pixels.clamp(-1, 1) * 127 + 128).to(dtype)
    with pytest.raises(ValueError, match="float normalised pixels"):
        model(input_ids=ids, pixel_values_videos=raw)
    with pytest.raises(ValueError, match="float normalised pixels"):
        model.vision_model(pixel_values_videos=raw)
