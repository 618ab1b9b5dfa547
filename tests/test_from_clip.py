"""Initialisation from a 🤗 CLIPModel (as the paper did) and processor files next to converted checkpoints."""

import torch
from transformers import AutoProcessor, CLIPConfig, CLIPModel

import modeling_tvtsv2  # noqa: F401
from modeling_tvtsv2 import TVTSv2ForPreTraining, TVTSv2Model
from modeling_tvtsv2.convert_tvtsv2_original_to_hf import convert_checkpoint
from modeling_tvtsv2.from_clip import tvtsv2_from_clip


def tiny_clip() -> CLIPModel:
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
        vision_config=dict(
            hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8, hidden_act="quick_gelu",
        ),
        projection_dim=16,
    )
    return CLIPModel(config).eval()


def test_one_frame_with_zero_temporal_embedding_is_exactly_clip(tmp_path):
    clip = tiny_clip()
    clip.save_pretrained(tmp_path / "clip")
    for source in (clip, tmp_path / "clip"):  # a CLIPModel object or a local folder
        model = tvtsv2_from_clip(source).eval()
        assert isinstance(model, TVTSv2ForPreTraining)
        with torch.no_grad():
            model.vision_model.embeddings.temporal_embedding.zero_()
            images = torch.randn(3, 3, 32, 32)
            expected = clip.get_image_features(pixel_values=images).pooler_output
            actual = model.get_video_features(pixel_values_videos=images[:, None]).pooler_output
            torch.testing.assert_close(actual, expected, atol=2e-6, rtol=1e-5)
            ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407, 49407]])
            torch.testing.assert_close(
                model.get_text_features(input_ids=ids).pooler_output,
                clip.get_text_features(input_ids=ids).pooler_output,
                atol=1e-6, rtol=1e-5,
            )  # fmt: skip


def test_new_parameters_get_the_original_init_and_clip_weights_are_copied():
    clip = tiny_clip()
    model = tvtsv2_from_clip(clip, model_class=TVTSv2Model)
    assert type(model) is TVTSv2Model and model.logit_scale is None  # fixed temperature, CLIP's scale dropped
    for layer in model.vision_model.encoder.layers:
        attn = layer.temporal_attn
        assert all(torch.count_nonzero(p.weight) == 0 for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        assert torch.equal(attn.out_proj.weight, torch.ones_like(attn.out_proj.weight))
    width = clip.config.vision_config.hidden_size
    temporal = model.vision_model.embeddings.temporal_embedding
    assert temporal.shape == (12, width) and 0.5 * width**-0.5 < temporal.std() < 1.5 * width**-0.5
    clip_state = clip.state_dict()
    for name, value in model.state_dict().items():
        if name in clip_state:
            assert torch.equal(value, clip_state[name]), name
    # the time attention outputs exactly zero at init, whatever the number of frames
    attn_out = []
    hook = model.vision_model.encoder.layers[0].temporal_attn.register_forward_hook(
        lambda module, args, output: attn_out.append(output[0])
    )
    with torch.no_grad():
        model.get_video_features(pixel_values_videos=torch.randn(2, 4, 3, 32, 32))
    hook.remove()
    assert torch.count_nonzero(attn_out[0]) == 0


def test_converter_writes_processor_files_for_a_clip_vocabulary(tmp_path, original_fixture_dir):
    # The fixture has a 1,000-token vocabulary; give it CLIP's so that the converter writes processor files.
    checkpoint = torch.load(original_fixture_dir / "checkpoint_downstream_format.pth", weights_only=True)
    state = dict(checkpoint["state_dict"])
    state["text_token_embedding.weight"] = torch.randn(49408, state["text_token_embedding.weight"].shape[1])
    path = tmp_path / "clip_vocab.pth"
    torch.save({"state_dict": state}, path)
    convert_checkpoint(path, tmp_path / "out", layout="openai-clip", vision_heads=4, text_heads=4)
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    assert processor.tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert processor.video_processor.crop_size["height"] == 64  # follows the converted model's image size
