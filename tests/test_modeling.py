"""TVTSv2 models: parity with the original implementation, and model behaviour.

Expected numbers come from `tests/fixtures/original_tiny_b16/` (produced by the original TencentARC/TVTS v2 code; see
its README) or from computations written out in this file, never from the code under test. The fixture model is
converted with the `tvtsv2 convert` CLI (`converted_original` in conftest.py).

Fixture conventions: `input_ids` are transcript-major `[K·B, 77]` (row j·B+b is transcript j of sample b), the
original `sort_loss` already carries the weight 2, and the original embeddings are unnormalised.
"""

import json
import math
import types

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining
from transformers.activations import ACT2FN

import modeling_tvtsv2  # noqa: F401  (registers the Auto classes)
from modeling_tvtsv2 import (
    TVTSv2Config,
    TVTSv2ForPreTraining,
    TVTSv2Model,
    TVTSv2TextConfig,
    TVTSv2VisionConfig,
    TVTSv2VisionModel,
)


B, K, L = 2, 4, 77  # fixture batch, transcripts per sample, context length
PATCHES, WIDTH, LAYERS, HEADS, ROWS = 16, 64, 2, 4, 4  # fixture vision tower (constructor.json)
TEMPERATURE = 0.05  # NormSoftmaxLoss(temperature=0.05) in the original
ORIGINAL_SORT_WEIGHT = 2.0  # the fixture's sort_loss is CE * 2
OUT_TOL = dict(atol=1e-5, rtol=1e-4)  # fixture README's recommended tolerances
DEBUG_TOL = dict(atol=1e-4, rtol=1e-4)
ATTN_IMPLEMENTATIONS = ["eager", "sdpa"]


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def transcripts(ref):
    """Fixture ids `[K·B, L]` (transcript-major) -> model input `[B, K, L]`."""
    return ref["input_ids"].view(K, B, L).transpose(0, 1)


def per_transcript_rows(per_text):
    """Model output `[B, K, D]` -> fixture layout `[K·B, D]` (row j·B+b)."""
    return per_text.transpose(0, 1).reshape(K * B, -1)


def excess_over_tolerance(actual, expected, atol, rtol):
    """max(|a - e| - (atol + rtol·|e|)): <= 0 iff `torch.testing.assert_close` would pass (finite values)."""
    actual, expected = actual.detach().float(), expected.float()
    if actual.shape != expected.shape:  # assert_close fails on a shape mismatch
        return math.inf
    return ((actual - expected).abs() - (atol + rtol * expected.abs())).max().item()


def tolerance_for(name):
    return DEBUG_TOL if name.startswith("debug_") else OUT_TOL


def expected_value(ref, name):
    """Reference value for an output name; `*_normalised` names are the L2-normalised reference embeddings."""
    if name.endswith("_normalised"):
        return F.normalize(ref[name[: -len("_normalised")]], dim=-1)
    return ref[name]


def pretraining_outputs(model, ref):
    """Every fixture quantity, computed with a `TVTSv2ForPreTraining` (names = reference.safetensors names)."""
    ids = transcripts(ref)
    captured = {}

    def keep_first_output(module, args, output):  # returns None: the module output is left unchanged
        captured.setdefault("timeattn", output[0])

    hook = model.vision_model.encoder.layers[0].temporal_attn.register_forward_hook(keep_first_output)
    with torch.no_grad():
        full = model(
            pixel_values_videos=ref["pixel_values"],
            input_ids=ids,
            keep_indices=ref["keep_ind_full"],
            sort_labels=ref["sort_labels"],
            output_hidden_states=True,
        )
        hook.remove()
        masked = model(
            pixel_values_videos=ref["pixel_values"],
            input_ids=ids,
            keep_indices=ref["keep_ind_masked"],
            sort_labels=ref["sort_labels"],
        )
        caption = model(
            pixel_values_videos=ref["pixel_values"], input_ids=ref["caption_ids"], keep_indices=ref["keep_ind_full"]
        )
        image = model.get_video_features(
            pixel_values_videos=ref["pixel_values_image"], keep_indices=ref["keep_ind_full"]
        )
        text_pooled = model.text_model(input_ids=ref["input_ids"]).pooler_output
    hidden = full.vision_model_output.hidden_states
    assert caption.sort_logits is None and caption.sort_loss is None, "single captions must skip the sort head"
    return {
        "video_embeds": full.video_embeds,
        "video_tokens": full.video_tokens,
        "text_embeds_per_transcript": per_transcript_rows(full.text_embeds_per_transcript),
        "text_embeds_mean": full.text_embeds,
        "sort_logits": full.sort_logits,
        "sim_matrix_video_text": full.logits_per_video * TEMPERATURE,
        "contrastive_loss": full.contrastive_loss,
        "sort_loss": ORIGINAL_SORT_WEIGHT * full.sort_loss,
        "total_loss": full.loss,
        "caption_embeds": caption.text_embeds,
        "caption_contrastive_loss": caption.loss,
        "image_embeds": image.pooler_output,
        "video_embeds_masked": masked.video_embeds,
        "video_tokens_masked": masked.video_tokens,
        "sort_logits_masked": masked.sort_logits,
        "contrastive_loss_masked": masked.contrastive_loss,
        "sort_loss_masked": ORIGINAL_SORT_WEIGHT * masked.sort_loss,
        "total_loss_masked": masked.loss,
        # hidden_states[0] is the input of the first block (after embeddings, masking and ln_pre); [i + 1] is the
        # output of block i.
        "debug_video_after_ln_pre": hidden[0],
        "debug_video_block0_timeattn_out": captured["timeattn"],
        "debug_video_block0_out": hidden[1],
        "debug_video_block1_out": hidden[2],
        "debug_text_pooled_before_projection": text_pooled,
    }


def dual_encoder_outputs(model, ref):
    """The fixture quantities a `TVTSv2Model` (no sort head) produces; `forward` returns normalised embeddings."""
    ids = transcripts(ref)
    full_keep, masked_keep = ref["keep_ind_full"], ref["keep_ind_masked"]
    with torch.no_grad():
        video = model.get_video_features(pixel_values_videos=ref["pixel_values"], keep_indices=full_keep)
        image = model.get_video_features(pixel_values_videos=ref["pixel_values_image"], keep_indices=full_keep)
        video_masked = model.get_video_features(pixel_values_videos=ref["pixel_values"], keep_indices=masked_keep)
        per_text = model.get_text_features(input_ids=ids)
        caption = model.get_text_features(input_ids=ref["caption_ids"])
        out = model(input_ids=ids, pixel_values_videos=ref["pixel_values"], keep_indices=full_keep, return_loss=True)
        out_masked = model(
            input_ids=ids, pixel_values_videos=ref["pixel_values"], keep_indices=masked_keep, return_loss=True
        )
        out_caption = model(
            input_ids=ref["caption_ids"],
            pixel_values_videos=ref["pixel_values"],
            keep_indices=full_keep,
            return_loss=True,
        )
    return {
        "video_embeds": video.pooler_output,
        "image_embeds": image.pooler_output,
        "video_embeds_masked": video_masked.pooler_output,
        "text_embeds_per_transcript": per_transcript_rows(per_text.pooler_output),
        "caption_embeds": caption.pooler_output,
        "video_embeds_normalised": out.video_embeds,
        "text_embeds_mean_normalised": out.text_embeds,
        "caption_embeds_normalised": out_caption.text_embeds,
        "sim_matrix_video_text": out.logits_per_video * TEMPERATURE,
        "contrastive_loss": out.loss,
        "contrastive_loss_masked": out_masked.loss,
        "caption_contrastive_loss": out_caption.loss,
    }


PRETRAINING_NAMES = [
    "video_embeds", "video_tokens", "text_embeds_per_transcript", "text_embeds_mean", "sort_logits",
    "sim_matrix_video_text", "contrastive_loss", "sort_loss", "total_loss", "caption_embeds",
    "caption_contrastive_loss", "image_embeds", "video_embeds_masked", "video_tokens_masked", "sort_logits_masked",
    "contrastive_loss_masked", "sort_loss_masked", "total_loss_masked", "debug_video_after_ln_pre",
    "debug_video_block0_timeattn_out", "debug_video_block0_out", "debug_video_block1_out",
    "debug_text_pooled_before_projection",
]  # fmt: skip
DUAL_ENCODER_NAMES = [
    "video_embeds", "image_embeds", "video_embeds_masked", "text_embeds_per_transcript", "caption_embeds",
    "video_embeds_normalised", "text_embeds_mean_normalised", "caption_embeds_normalised", "sim_matrix_video_text",
    "contrastive_loss", "contrastive_loss_masked", "caption_contrastive_loss",
]  # fmt: skip


class _CountSDPA:
    """Counts calls of torch's fused attention (to prove the `sdpa` run really used it, and `eager` did not)."""

    def __init__(self):
        self.calls = 0
        self._original = F.scaled_dot_product_attention

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._original(*args, **kwargs)


def run_counting_sdpa(fn, *args):
    counter = _CountSDPA()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.functional, "scaled_dot_product_attention", counter)
        result = fn(*args)
    return result, counter.calls


def load_pretraining(folder, attn_implementation="eager"):
    return TVTSv2ForPreTraining.from_pretrained(folder, attn_implementation=attn_implementation).eval()


# ---------------------------------------------------------------------------------------------------------------
# Parity with the original implementation


@pytest.fixture(scope="module", params=ATTN_IMPLEMENTATIONS)
def pretraining_run(request, converted_original, original_reference):
    model = load_pretraining(converted_original["trainer"], request.param)
    outputs, sdpa_calls = run_counting_sdpa(pretraining_outputs, model, original_reference)
    return {"impl": request.param, "model": model, "outputs": outputs, "sdpa_calls": sdpa_calls}


@pytest.fixture(scope="module", params=ATTN_IMPLEMENTATIONS)
def dual_encoder_run(request, converted_original, original_reference):
    model = AutoModel.from_pretrained(converted_original["downstream"], attn_implementation=request.param).eval()
    outputs, sdpa_calls = run_counting_sdpa(dual_encoder_outputs, model, original_reference)
    return {"impl": request.param, "model": model, "outputs": outputs, "sdpa_calls": sdpa_calls}


@pytest.mark.parametrize("name", PRETRAINING_NAMES)
def test_parity_pretraining_model_trainer_checkpoint(pretraining_run, original_reference, name):
    actual = pretraining_run["outputs"][name]
    torch.testing.assert_close(actual, expected_value(original_reference, name), **tolerance_for(name))


@pytest.mark.parametrize("name", DUAL_ENCODER_NAMES)
def test_parity_dual_encoder_downstream_checkpoint(dual_encoder_run, original_reference, name):
    actual = dual_encoder_run["outputs"][name]
    torch.testing.assert_close(actual, expected_value(original_reference, name), **tolerance_for(name))


def _check_backend(run):
    model, impl = run["model"], run["impl"]
    assert model.config._attn_implementation == impl
    assert model.vision_model.config._attn_implementation == impl
    assert model.text_model.config._attn_implementation == impl
    if impl == "sdpa":
        assert run["sdpa_calls"] > 0, "the sdpa run never called scaled_dot_product_attention"
    else:
        assert run["sdpa_calls"] == 0, "the eager run called scaled_dot_product_attention"


def test_pretraining_parity_run_used_the_requested_attention_backend(pretraining_run):
    _check_backend(pretraining_run)


def test_dual_encoder_parity_run_used_the_requested_attention_backend(dual_encoder_run):
    _check_backend(dual_encoder_run)


def test_downstream_checkpoint_loaded_as_pretraining_model_gives_the_embeddings(converted_original, original_reference):
    ref = original_reference
    model = load_pretraining(converted_original["downstream"])
    with torch.no_grad():
        keep = ref["keep_ind_full"]
        out = model(pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref), keep_indices=keep)
        caption = model(pixel_values_videos=ref["pixel_values"], input_ids=ref["caption_ids"], keep_indices=keep)
    torch.testing.assert_close(out.video_embeds, ref["video_embeds"], **OUT_TOL)
    torch.testing.assert_close(out.text_embeds, ref["text_embeds_mean"], **OUT_TOL)
    per_text = per_transcript_rows(out.text_embeds_per_transcript)
    torch.testing.assert_close(per_text, ref["text_embeds_per_transcript"], **OUT_TOL)
    torch.testing.assert_close(caption.text_embeds, ref["caption_embeds"], **OUT_TOL)
    torch.testing.assert_close(caption.loss, ref["caption_contrastive_loss"], **OUT_TOL)


def test_auto_classes_load_converted_folders(converted_original):
    assert type(AutoConfig.from_pretrained(converted_original["trainer"])) is TVTSv2Config
    assert type(AutoModel.from_pretrained(converted_original["trainer"])) is TVTSv2Model
    assert type(AutoModel.from_pretrained(converted_original["downstream"])) is TVTSv2Model
    assert type(AutoModelForPreTraining.from_pretrained(converted_original["trainer"])) is TVTSv2ForPreTraining


def test_loading_keeps_checkpoint_values_of_parameters_with_special_init(converted_original, original_fixture_dir):
    """`from_pretrained` must not re-run the TVTSv2 init (zeros/ones/normal) over loaded weights."""
    original = torch.load(original_fixture_dir / "checkpoint_trainer_format.pth", weights_only=True)["state_dict"]
    original = {k.removeprefix("module."): v for k, v in original.items()}
    model = AutoModelForPreTraining.from_pretrained(converted_original["trainer"])
    for i, layer in enumerate(model.vision_model.encoder.layers):
        prefix = f"video_model.transformer.resblocks.{i}."
        qkv_w, qkv_b = original[prefix + "timeattn.qkv.weight"], original[prefix + "timeattn.qkv.bias"]
        attn = layer.temporal_attn
        for j, proj in enumerate((attn.q_proj, attn.k_proj, attn.v_proj)):
            assert torch.equal(proj.weight, qkv_w[j * WIDTH : (j + 1) * WIDTH])
            assert torch.equal(proj.bias, qkv_b[j * WIDTH : (j + 1) * WIDTH])
        assert torch.equal(attn.out_proj.weight, original[prefix + "timeattn.proj.weight"])
        assert torch.equal(attn.out_proj.bias, original[prefix + "timeattn.proj.bias"])
        assert torch.equal(layer.temporal_layer_norm.weight, original[prefix + "ln_3.weight"])
        assert torch.equal(layer.temporal_layer_norm.bias, original[prefix + "ln_3.bias"])
    assert torch.equal(model.vision_model.embeddings.temporal_embedding, original["video_model.temporal_embedding"])
    assert torch.equal(model.sort_head.type_embeddings, original["pred_model.type_embed"][0])
    assert torch.equal(model.visual_projection.weight, original["video_model.proj"].t())
    assert torch.equal(model.text_projection.weight, original["text_projection"].t())


def test_pretraining_model_from_downstream_checkpoint_initialises_the_sort_head(converted_original):
    model = TVTSv2ForPreTraining.from_pretrained(converted_original["downstream"])
    head = model.sort_head
    assert torch.count_nonzero(head.type_embeddings) == 0  # original: type_embed starts at zeros
    for name, param in head.named_parameters():
        assert torch.isfinite(param).all(), name
        if name.endswith(("layer_norm1.weight", "layer_norm2.weight")) or name == "final_layer_norm.weight":
            assert torch.equal(param, torch.ones_like(param)), name
    # PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not all zero.
    bound = 1 / math.sqrt(head.classifier.in_features)
    assert head.classifier.weight.abs().max() <= bound and head.classifier.weight.abs().max() > bound / 2


# ---------------------------------------------------------------------------------------------------------------
# Sensitivity: the parity check catches the typical mapping mistakes (fixture README / constructor.json)


def _swap(a, b):
    with torch.no_grad():
        tmp = a.detach().clone()
        a.copy_(b)
        b.copy_(tmp)


def _timeattn_original_init(model):
    for layer in model.vision_model.encoder.layers:
        attn = layer.temporal_attn
        with torch.no_grad():
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
                proj.weight.zero_()
                proj.bias.zero_()
            attn.out_proj.weight.fill_(1.0)
            attn.out_proj.bias.zero_()


def _ln3_default(model):
    for layer in model.vision_model.encoder.layers:
        with torch.no_grad():
            layer.temporal_layer_norm.weight.fill_(1.0)
            layer.temporal_layer_norm.bias.zero_()


def _swap_ln1_ln3(model):
    for layer in model.vision_model.encoder.layers:
        _swap(layer.layer_norm1.weight, layer.temporal_layer_norm.weight)
        _swap(layer.layer_norm1.bias, layer.temporal_layer_norm.bias)


def _zero_temporal_embedding(model):
    with torch.no_grad():
        model.vision_model.embeddings.temporal_embedding.zero_()


def _swap_qk(attn):
    _swap(attn.q_proj.weight, attn.k_proj.weight)
    _swap(attn.q_proj.bias, attn.k_proj.bias)


def _swap_timeattn_qk(model):
    for layer in model.vision_model.encoder.layers:
        _swap_qk(layer.temporal_attn)


def _swap_text_qk(model):
    for layer in model.text_model.encoder.layers:
        _swap_qk(layer.self_attn)


def _swap_type_embed_rows(model):
    type_embeddings = model.sort_head.type_embeddings
    _swap(type_embeddings[0], type_embeddings[1])


def _spatial_residual_on_t(model):
    def wrong_forward(self, hidden_states, num_frames, **kwargs):
        temporal, _ = self.temporal_attn(self.temporal_layer_norm(hidden_states), num_frames, **kwargs)
        t = hidden_states + temporal
        spatial, _ = self.self_attn(self.layer_norm1(t), num_frames, **kwargs)
        s = t + spatial  # the original adds the spatial output to x, not to t
        return s + self.mlp(self.layer_norm2(s))

    for layer in model.vision_model.encoder.layers:
        layer.forward = types.MethodType(wrong_forward, layer)


def _swap_quickgelu_gelu(model):
    # The towers' QuickGELU becomes exact GELU (the sort head's GELU is right either way).
    for module in model.modules():
        if type(getattr(module, "activation_fn", None)).__name__ == "QuickGELUActivation":
            module.activation_fn = ACT2FN["gelu"]


def _drop_cls_from_sort_tokens(model):
    correct = model.sort_video_tokens
    model.sort_video_tokens = lambda vision_outputs: correct(vision_outputs)[:, 1:]


MISTAKES = {
    "timeattn weights not loaded (original init: qkv 0, proj.weight 1)": _timeattn_original_init,
    "ln_3 not loaded (1, 0)": _ln3_default,
    "ln_1 and ln_3 swapped": _swap_ln1_ln3,
    "temporal_embedding zero": _zero_temporal_embedding,
    "timeattn q/k thirds swapped": _swap_timeattn_qk,
    "text in_proj q/k thirds swapped": _swap_text_qk,
    "type_embed rows swapped": _swap_type_embed_rows,
    "spatial residual added to t instead of x": _spatial_residual_on_t,
    "QuickGELU <-> GELU swapped": _swap_quickgelu_gelu,
    "CLS dropped from sort-head video tokens": _drop_cls_from_sort_tokens,
}


@pytest.fixture(scope="module")
def original_sensitivity(original_fixture_dir):
    constructor = json.loads((original_fixture_dir / "constructor.json").read_text())
    return constructor["sensitivity_max_abs_diff_vs_reference"]


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_parity_check_fails_for_typical_mistake(mistake, converted_original, original_reference, original_sensitivity):
    model = load_pretraining(converted_original["trainer"])
    MISTAKES[mistake](model)
    outputs = pretraining_outputs(model, original_reference)
    excess = {
        name: excess_over_tolerance(outputs[name], expected_value(original_reference, name), **tolerance_for(name))
        for name in PRETRAINING_NAMES
    }
    worst = max(excess, key=excess.get)
    # Every mistake moves at least one output by >= 2.1e-2 in the original, i.e. > 1000x the tolerance.
    assert excess[worst] > 1e-3, f"'{mistake}' hides under the parity tolerance (worst: {worst} {excess[worst]:.2e})"
    # The same mistake applied to the original model moved its outputs by the amounts in constructor.json; the
    # mutated converted model must move them by the same amounts (so the mutation is the one the README means).
    for name, original_diff in original_sensitivity[mistake].items():
        ours = (outputs[name] - original_reference[name]).abs().max().item()
        assert ours == pytest.approx(original_diff, abs=2e-5, rel=1e-3), name


# ---------------------------------------------------------------------------------------------------------------
# Shared fixtures for behaviour tests


def tiny_config(**overrides):
    """A small B-layout config like the fixture (tiny vocabulary with SOT 998 / EOT 999)."""
    text = {"vocab_size": 1000, "hidden_size": 48, "intermediate_size": 192, "num_attention_heads": 4,
            "bos_token_id": 998, "eos_token_id": 999, "pad_token_id": 0}  # fmt: skip
    text.update(overrides.pop("text_config", {}))
    vision = {"num_frames": 4, **overrides.pop("vision_config", {})}
    return TVTSv2Config.from_preset("tiny", text_config=text, vision_config=vision, projection_dim=32, **overrides)


def random_ids(batch, texts=None, length=12, generator=None):
    shape = (batch, length) if texts is None else (batch, texts, length)
    ids = torch.randint(1, 998, shape, generator=generator)
    ids[..., 0] = 998
    ids[..., -1] = 999
    return ids


@pytest.fixture(scope="module")
def fixture_model(converted_original):
    """The converted fixture model (eager attention); tests must not modify it."""
    return load_pretraining(converted_original["trainer"], "eager")


# ---------------------------------------------------------------------------------------------------------------
# Save / load round trips


def _essentials(config):
    """Config dict without the bookkeeping fields that saving/loading legitimately fills in."""
    data = {k: v for k, v in config.to_dict().items() if k not in ("_name_or_path", "dtype", "transformers_version")}
    for key in ("vision_config", "text_config"):
        data[key] = {k: v for k, v in data[key].items() if k not in ("_name_or_path", "dtype", "transformers_version")}
    return data


def test_save_and_auto_model_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    for cls, auto in ((TVTSv2Model, AutoModel), (TVTSv2ForPreTraining, AutoModelForPreTraining)):
        model = cls(tiny_config()).eval()
        folder = tmp_path / cls.__name__
        model.save_pretrained(folder)
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        reloaded = auto.from_pretrained(folder).eval()
        assert type(reloaded) is cls
        assert _essentials(reloaded.config) == _essentials(model.config)
        expected_state = model.state_dict()
        for key, value in reloaded.state_dict().items():
            assert torch.equal(value, expected_state[key]), key
        pixels, ids = torch.randn(2, 3, 3, 64, 64), random_ids(2, 4)
        with torch.no_grad():
            a = model(pixel_values_videos=pixels, input_ids=ids)
            b = reloaded(pixel_values_videos=pixels, input_ids=ids)
        for key in ("video_embeds", "text_embeds", "logits_per_video"):
            assert torch.equal(a[key], b[key]), key
        if cls is TVTSv2ForPreTraining:
            assert torch.equal(a.sort_logits, b.sort_logits) and torch.equal(a.loss, b.loss)


def test_bf16_round_trip_keeps_dtype_and_stays_close_to_the_original(converted_original, original_reference, tmp_path):
    ref = original_reference
    load_pretraining(converted_original["trainer"]).to(torch.bfloat16).save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as handle:
        dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}
    assert dtypes == {"BF16"}
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert {p.dtype for p in reloaded.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        out = reloaded(
            pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref), keep_indices=ref["keep_ind_full"],
            sort_labels=ref["sort_labels"],
        )  # fmt: skip
    assert out.video_embeds.dtype == torch.bfloat16
    # Loose bf16 tolerance against the original fp32 numbers (bf16 has an 8-bit mantissa: ~0.4 % per rounding).
    for name, actual in (("video_embeds", out.video_embeds), ("text_embeds_mean", out.text_embeds),
                         ("video_tokens", out.video_tokens), ("sort_logits", out.sort_logits)):  # fmt: skip
        expected = ref[name]
        torch.testing.assert_close(actual.float(), expected, atol=0.05 * expected.abs().max().item(), rtol=0.05)
        cosine = F.cosine_similarity(actual.float().flatten(1), expected.flatten(1), dim=-1)
        assert cosine.min() > 0.999, name
    torch.testing.assert_close(out.loss.float(), ref["total_loss"], atol=0.05, rtol=0.05)


# ---------------------------------------------------------------------------------------------------------------
# Activation checkpointing


def _loss_and_grads(model, ref):
    model.zero_grad(set_to_none=True)
    out = model(
        pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref), keep_indices=ref["keep_ind_masked"],
        sort_labels=ref["sort_labels"],
    )  # fmt: skip
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_backward_matches_plain_backward(converted_original, original_reference):
    model = load_pretraining(converted_original["trainer"]).train()
    # Hooks on modules *inside* each checkpointed layer: they run again when the backward recomputes the layer.
    watched = ["vision_model.encoder.layers.0.temporal_layer_norm", "vision_model.encoder.layers.1.temporal_layer_norm",
               "text_model.encoder.layers.0.layer_norm1", "sort_head.layers.0.layer_norm1"]  # fmt: skip
    calls = dict.fromkeys(watched, 0)
    for name in watched:
        model.get_submodule(name).register_forward_hook(
            lambda *args, name=name: calls.__setitem__(name, calls[name] + 1)
        )

    loss_plain, grads_plain = _loss_and_grads(model, original_reference)
    assert all(count == 1 for count in calls.values()), calls
    torch.testing.assert_close(loss_plain, original_reference["total_loss_masked"], **OUT_TOL)

    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    calls.update(dict.fromkeys(watched, 0))
    loss_ckpt, grads_ckpt = _loss_and_grads(model, original_reference)
    assert all(count == 2 for count in calls.values()), f"layers were not recomputed in the backward: {calls}"

    assert torch.equal(loss_plain, loss_ckpt)
    assert set(grads_ckpt) == set(grads_plain)
    # Every trainable parameter receives a gradient (the sort head gets none through the text: it is detached).
    assert set(grads_plain) == {n for n, p in model.named_parameters() if p.requires_grad}
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    assert any(g.abs().sum() > 0 for n, g in grads_plain.items() if "temporal_attn" in n)


# ---------------------------------------------------------------------------------------------------------------
# hidden_states / attentions / return_dict


def test_output_hidden_states_shapes(fixture_model, original_reference):
    ref = original_reference
    with torch.no_grad():
        vision = fixture_model.vision_model(
            pixel_values_videos=ref["pixel_values"], keep_indices=ref["keep_ind_masked"], output_hidden_states=True
        )
        text = fixture_model.text_model(input_ids=ref["input_ids"], output_hidden_states=True)
    assert len(vision.hidden_states) == LAYERS + 1
    assert all(h.shape == (B, 1 + ROWS * 8, WIDTH) for h in vision.hidden_states)
    assert torch.equal(vision.hidden_states[-1], vision.last_hidden_state)
    assert len(text.hidden_states) == 4 + 1 and all(h.shape == (K * B, L, 48) for h in text.hidden_states)


def _manual_divided_attention_weights(attn, x, num_frames):
    """Attention probabilities of a TVTSv2 divided attention computed token by token from the fixture semantics:
    CLS attends to every token; a patch at (frame f, kept position n) attends to CLS + its group (time: position n in
    every frame; space: every kept position of frame f)."""
    batch, seq, _ = x.shape
    per_frame = (seq - 1) // num_frames
    heads, head_dim = attn.num_heads, attn.head_dim

    def split(t):  # [B, S, H·d] -> [B, H, S, d]
        return t.view(batch, seq, heads, head_dim).transpose(1, 2)

    q, k = split(attn.q_proj(x)) * head_dim**-0.5, split(attn.k_proj(x))
    cls = torch.softmax(q[:, :, :1] @ k.transpose(-1, -2), dim=-1)  # [B, H, 1, S]

    def token(f, n):
        return 1 + f * per_frame + n

    rows = []
    if attn.mode == "time":  # groups ordered (b, n); queries = frames; keys = CLS + frames
        for b in range(batch):
            for n in range(per_frame):
                idx = torch.tensor([0] + [token(f, n) for f in range(num_frames)])
                scores = q[b][:, idx[1:]] @ k[b][:, idx].transpose(-1, -2)
                rows.append(torch.softmax(scores, dim=-1))
    else:  # groups ordered (b, f); queries = kept positions; keys = CLS + positions of frame f
        for b in range(batch):
            for f in range(num_frames):
                idx = torch.tensor([0] + [token(f, n) for n in range(per_frame)])
                scores = q[b][:, idx[1:]] @ k[b][:, idx].transpose(-1, -2)
                rows.append(torch.softmax(scores, dim=-1))
    return cls, torch.stack(rows)


def test_output_attentions_and_temporal_attentions_eager(fixture_model, original_reference):
    ref = original_reference
    n_keep = ref["keep_ind_masked"].shape[1]
    with torch.no_grad():
        out = fixture_model.vision_model(
            pixel_values_videos=ref["pixel_values"], keep_indices=ref["keep_ind_masked"], output_hidden_states=True,
            output_attentions=True, output_temporal_attentions=True,
        )  # fmt: skip
    assert len(out.attentions) == LAYERS and len(out.temporal_attentions) == LAYERS
    for space, time in zip(out.attentions, out.temporal_attentions):
        assert len(space) == 2 and len(time) == 2
        assert space[0].shape == (B, HEADS, 1, 1 + ROWS * n_keep)
        assert space[1].shape == (B * ROWS, HEADS, n_keep, 1 + n_keep)
        assert time[0].shape == (B, HEADS, 1, 1 + ROWS * n_keep)
        assert time[1].shape == (B * n_keep, HEADS, ROWS, 1 + ROWS)
        for weights in (*space, *time):
            assert (weights >= 0).all()
            torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)

    # Layer 0's weights against a token-by-token computation from its input (hidden_states[0]).
    layer = fixture_model.vision_model.encoder.layers[0]
    with torch.no_grad():
        x = out.hidden_states[0]
        time_input = layer.temporal_layer_norm(x)
        temporal, _ = layer.temporal_attn(time_input, ROWS)
        space_input = layer.layer_norm1(x + temporal)
        for attn, attn_input, recorded in ((layer.temporal_attn, time_input, out.temporal_attentions[0]),
                                           (layer.self_attn, space_input, out.attentions[0])):  # fmt: skip
            cls, patches = _manual_divided_attention_weights(attn, attn_input, ROWS)
            torch.testing.assert_close(recorded[0], cls, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(recorded[1], patches, atol=1e-6, rtol=1e-5)


def test_text_attentions_are_causal_eager(fixture_model, original_reference):
    with torch.no_grad():
        out = fixture_model.text_model(input_ids=original_reference["caption_ids"], output_attentions=True)
    assert len(out.attentions) == 4
    for weights in out.attentions:
        assert weights.shape == (B, 4, L, L)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, 4, L), atol=1e-5, rtol=0)
        assert torch.count_nonzero(weights.triu(diagonal=1)) == 0


def test_attentions_through_dual_encoder_forward(fixture_model, original_reference):
    ref = original_reference
    with torch.no_grad():
        out = fixture_model(
            pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref), output_attentions=True,
            output_temporal_attentions=True, output_hidden_states=True,
        )  # fmt: skip
    vision = out.vision_model_output
    assert len(vision.attentions) == LAYERS and len(vision.temporal_attentions) == LAYERS
    assert len(vision.hidden_states) == LAYERS + 1 and len(out.text_model_output.hidden_states) == 4 + 1
    assert vision.temporal_attentions[0][1].shape == (B * PATCHES, HEADS, ROWS, 1 + ROWS)


def test_return_dict_false_gives_tuples(fixture_model, original_reference):
    ref = original_reference
    with torch.no_grad():
        as_dict = fixture_model(pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref))
        as_tuple = fixture_model(pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref), return_dict=False)
        video_tuple = fixture_model.get_video_features(pixel_values_videos=ref["pixel_values"], return_dict=False)
        text_tuple = fixture_model.get_text_features(input_ids=ref["caption_ids"], return_dict=False)
        vision_tuple = fixture_model.vision_model(pixel_values_videos=ref["pixel_values"], return_dict=False)
    assert type(as_tuple) is tuple
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    assert torch.equal(as_tuple[0], as_dict.loss)
    for a, b in zip(as_tuple, expected):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
        else:
            assert type(a) is tuple
    assert type(video_tuple) is tuple and type(text_tuple) is tuple and type(vision_tuple) is tuple
    torch.testing.assert_close(video_tuple[1], ref["video_embeds"], **OUT_TOL)
    torch.testing.assert_close(text_tuple[1], ref["caption_embeds"], **OUT_TOL)


# ---------------------------------------------------------------------------------------------------------------
# Input validation


@pytest.mark.parametrize(
    "shape, message",
    [
        ((B, 3, 64), "pixel_values_videos must be"),
        ((B, 1, ROWS, 3, 64, 64), "pixel_values_videos must be"),
        ((B, ROWS, 64, 64, 3), "channels"),  # channel-last video
        ((B, 64, 64, 3), "channels"),  # channel-last image
        ((B, ROWS, 1, 64, 64), "channels"),
        ((B, ROWS + 1, 3, 64, 64), "at most 4"),  # more frames than temporal-embedding rows
        ((B, ROWS, 3, 32, 32), "interpolate_pos_encoding"),  # other resolution
        ((B, ROWS, 3, 64, 96), "interpolate_pos_encoding"),
        ((B, ROWS, 3, 70, 70), "multiple of the patch size"),
    ],
)
def test_bad_pixel_values_raise_clear_errors(fixture_model, shape, message):
    with pytest.raises(ValueError, match=message):
        fixture_model.get_video_features(pixel_values_videos=torch.randn(shape))


def test_missing_inputs_raise(fixture_model, original_reference):
    with pytest.raises(ValueError, match="pixel_values_videos"):
        fixture_model.vision_model(pixel_values_videos=None)
    with pytest.raises(ValueError, match="input_ids"):
        fixture_model(pixel_values_videos=original_reference["pixel_values"], input_ids=None)


@pytest.mark.parametrize(
    "make_keep, message",
    [
        (lambda: torch.arange(8).expand(B + 1, 8), "batch=2"),  # wrong batch
        (lambda: torch.arange(8), "keep_indices must be \\[batch, n_keep\\]"),  # 1-D
        (lambda: torch.arange(8)[None, None].expand(B, 1, 8), "keep_indices must be \\[batch, n_keep\\]"),  # 3-D
        (lambda: torch.tensor([[0, 1, 16]] * B), "range"),  # index == patches per frame
        (lambda: torch.tensor([[0, -1, 2]] * B), "range"),
        (lambda: torch.tensor([[0, 3, 3]] * B), "repeat"),  # duplicates
        (lambda: torch.tensor([[3, 1, 2], [5, 5, 0]]), "repeat"),  # duplicates in one sample only
        (lambda: torch.arange(8.0).expand(B, 8), "integer"),  # float dtype
        (lambda: torch.arange(PATCHES + 1).expand(B, PATCHES + 1) % PATCHES, "keeps 17 patches"),  # too many
        (lambda: torch.zeros(B, 0, dtype=torch.long), "keeps 0 patches"),
    ],
)
def test_bad_keep_indices_raise_clear_errors(fixture_model, original_reference, make_keep, message):
    with pytest.raises(ValueError, match=message):
        fixture_model.get_video_features(
            pixel_values_videos=original_reference["pixel_values"], keep_indices=make_keep()
        )


def test_bad_text_inputs_raise_clear_errors(fixture_model, original_reference):
    ref = original_reference
    with pytest.raises(ValueError, match="context length 77"):
        fixture_model.get_text_features(input_ids=random_ids(B, length=78))
    with pytest.raises(ValueError, match="input_ids must be"):
        fixture_model.get_text_features(input_ids=random_ids(B)[0])
    with pytest.raises(ValueError, match="input_ids must be"):
        fixture_model.get_text_features(input_ids=random_ids(B, K)[None])
    with pytest.raises(ValueError, match="sort head predicts 4"):  # K = 5 transcripts > 4 sort classes
        fixture_model(pixel_values_videos=ref["pixel_values"], input_ids=random_ids(B, 5))
    with pytest.raises(ValueError, match="B=3"):
        fixture_model(pixel_values_videos=ref["pixel_values"], input_ids=random_ids(B + 1, K))
    with pytest.raises(ValueError, match="sort_labels must be"):
        fixture_model(pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref), sort_labels=torch.arange(K))


def test_interpolate_pos_encoding_allows_other_resolutions_and_more_frames(fixture_model, original_reference):
    ref = original_reference
    with torch.no_grad():
        # Not needed at the native size and frame count: the flag changes nothing there.
        native = fixture_model.get_video_features(
            pixel_values_videos=ref["pixel_values"], interpolate_pos_encoding=True
        )
        torch.testing.assert_close(native.pooler_output, ref["video_embeds"], **OUT_TOL)

        larger = fixture_model.get_video_features(
            pixel_values_videos=torch.randn(B, 3, 3, 80, 96), interpolate_pos_encoding=True
        )
        assert larger.last_hidden_state.shape == (B, 1 + 3 * 5 * 6, WIDTH)
        assert larger.pooler_output.shape == (B, 32) and torch.isfinite(larger.last_hidden_state).all()

        more_frames = fixture_model.get_video_features(
            pixel_values_videos=torch.randn(B, 2 * ROWS + 1, 3, 64, 64), interpolate_pos_encoding=True
        )
        assert more_frames.last_hidden_state.shape == (B, 1 + (2 * ROWS + 1) * PATCHES, WIDTH)
        assert torch.isfinite(more_frames.pooler_output).all()

        masked = fixture_model.get_video_features(
            pixel_values_videos=torch.randn(B, 3, 3, 32, 32), keep_indices=torch.tensor([[3, 0], [1, 2]]),
            interpolate_pos_encoding=True,
        )  # fmt: skip
        assert masked.last_hidden_state.shape == (B, 1 + 3 * 2, WIDTH)


def test_keep_indices_full_arange_equals_none_and_permutation_invariance(fixture_model, original_reference):
    ref = original_reference
    pixels = ref["pixel_values"]

    def embed(keep):
        return fixture_model.get_video_features(pixel_values_videos=pixels, keep_indices=keep).pooler_output

    with torch.no_grad():
        none, full = embed(None), embed(ref["keep_ind_full"])
        generator = torch.Generator().manual_seed(0)
        permuted_keep = torch.stack([torch.randperm(PATCHES, generator=generator) for _ in range(B)])
        permuted, int32 = embed(permuted_keep), embed(permuted_keep.int())
    torch.testing.assert_close(none, full, atol=1e-6, rtol=0)
    torch.testing.assert_close(permuted, ref["video_embeds"], atol=1e-5, rtol=0)
    torch.testing.assert_close(int32, permuted, atol=0, rtol=0)


def test_image_input_is_a_one_frame_video(fixture_model, original_reference):
    image = original_reference["pixel_values_image"]
    with torch.no_grad():
        as_image = fixture_model.get_video_features(pixel_values_videos=image).pooler_output
        as_video = fixture_model.get_video_features(pixel_values_videos=image[:, None]).pooler_output
    torch.testing.assert_close(as_image, as_video, atol=0, rtol=0)
    torch.testing.assert_close(as_image, original_reference["image_embeds"], **OUT_TOL)


def test_text_pooling_at_first_eot_ignores_padding(fixture_model):
    """The tower is causal and pools at the first EOT: tokens after it (padding of any id) change nothing."""
    ids = random_ids(B, length=20)
    padded_zero = torch.cat([ids, torch.zeros(B, 10, dtype=torch.long)], dim=1)
    padded_eot = torch.cat([ids, torch.full((B, 10), 999)], dim=1)
    with torch.no_grad():
        a = fixture_model.get_text_features(input_ids=ids).pooler_output
        b = fixture_model.get_text_features(input_ids=padded_zero).pooler_output
        c = fixture_model.get_text_features(input_ids=padded_eot).pooler_output
    torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c, a, atol=1e-6, rtol=1e-5)


def test_default_sort_labels_are_chronological(fixture_model, original_reference):
    ref = original_reference
    with torch.no_grad():
        out = fixture_model(
            pixel_values_videos=ref["pixel_values"], input_ids=transcripts(ref), keep_indices=ref["keep_ind_full"]
        )
    torch.testing.assert_close(out.loss, ref["total_loss"], **OUT_TOL)  # fixture labels are arange(4)


# ---------------------------------------------------------------------------------------------------------------
# H/14-style options (no fixture from the original: checked against the fact sheet's formulas)


def test_h14_style_sort_tokens_are_projected_patch_tokens_without_ln_post():
    """H/14 feeds the sort head `x[:, 1:] @ proj` (patch tokens, no ln_post; fact sheet §3.1 step 7)."""
    config = tiny_config(sort_head_video_tokens="patch_tokens_pre_ln")
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(config).eval()
    with torch.no_grad():
        model.vision_model.post_layernorm.weight.normal_()  # make ln_post matter
        pixels, ids = torch.randn(2, 3, 3, 64, 64), random_ids(2, 4)
        out = model(pixel_values_videos=pixels, input_ids=ids)
        last = model.vision_model(pixel_values_videos=pixels).last_hidden_state
    assert out.video_tokens.shape == (2, 3 * PATCHES, 32)
    torch.testing.assert_close(out.video_tokens, last[:, 1:] @ model.visual_projection.weight.t(), atol=1e-6, rtol=1e-5)


def test_activation_and_layer_norm_kinds_follow_the_config():
    h_like = TVTSv2Model(tiny_config(vision_config={"hidden_act": "gelu", "layer_norm_upcast": False},
                                     text_config={"hidden_act": "gelu", "layer_norm_upcast": False}))  # fmt: skip
    b_like = TVTSv2Model(tiny_config())
    x = torch.linspace(-3, 3, 101)
    for model, reference in ((h_like, F.gelu(x)), (b_like, x * torch.sigmoid(1.702 * x))):
        for mlp in (model.vision_model.encoder.layers[0].mlp, model.text_model.encoder.layers[0].mlp):
            torch.testing.assert_close(mlp.activation_fn(x), reference, atol=1e-6, rtol=1e-6)

    # OpenAI-CLIP LayerNorm computes in fp32 and casts back; OpenCLIP's computes in the input dtype. (fp16: on CPU
    # the two differ in fp16, while bf16 LayerNorm is computed in fp32 internally either way.)
    generator = torch.Generator().manual_seed(0)
    hidden = (torch.randn(4, 64, generator=generator) * 3 + 1).half()
    weight, bias = (torch.rand(64, generator=generator) + 0.5).half(), torch.randn(64, generator=generator).half()
    in_fp32 = F.layer_norm(hidden.float(), (64,), weight.float(), bias.float(), 1e-5).half()
    in_fp16 = F.layer_norm(hidden, (64,), weight, bias, 1e-5)
    assert not torch.equal(in_fp32, in_fp16)  # the check below can tell the two apart
    for model, expected in ((b_like, in_fp32), (h_like, in_fp16)):
        norm = model.vision_model.encoder.layers[0].layer_norm1
        with torch.no_grad():
            norm.to(torch.float16)
            norm.weight.copy_(weight)
            norm.bias.copy_(bias)
            out = norm(hidden)
        assert out.dtype == torch.float16
        assert torch.equal(out, expected)


# ---------------------------------------------------------------------------------------------------------------
# Weight init of a fresh model (the original's init for the new parameters, fact sheet §3.7)


def test_fresh_model_init_matches_the_original_for_new_parameters():
    width = 256
    config = tiny_config(
        vision_config={
            "hidden_size": width, "intermediate_size": 512, "num_attention_heads": 4, "num_frames": 12,
            "temporal_embedding_init_std": None,  # the original's width**-0.5 (the tiny preset overrides it)
        }
    )
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(config).eval()
    for layer in model.vision_model.encoder.layers:
        attn = layer.temporal_attn
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            assert torch.count_nonzero(proj.weight) == 0 and torch.count_nonzero(proj.bias) == 0
        assert torch.equal(attn.out_proj.weight, torch.ones(width, width))
        assert torch.count_nonzero(attn.out_proj.bias) == 0
        assert torch.equal(layer.temporal_layer_norm.weight, torch.ones(width))  # ln_3: default LayerNorm init
        assert torch.count_nonzero(layer.temporal_layer_norm.bias) == 0
        # The spatial attention is not zero-initialised.
        assert layer.self_attn.q_proj.weight.std() > 0

    temporal = model.vision_model.embeddings.temporal_embedding
    assert temporal.shape == (12, width)
    std = width**-0.5  # 0.0625; 3072 samples: the sample std is within ~1.3 % (1 sigma) of it
    assert 0.9 * std < temporal.std().item() < 1.1 * std
    assert abs(temporal.mean().item()) < 0.1 * std

    # an explicit temporal_embedding_init_std replaces the default scale
    config.vision_config.temporal_embedding_init_std = 0.5
    boosted = TVTSv2ForPreTraining(config).vision_model.embeddings.temporal_embedding
    assert 0.45 < boosted.std().item() < 0.55

    assert torch.count_nonzero(model.sort_head.type_embeddings) == 0

    # Hence the time attention outputs exactly zero at init.
    outputs = []
    layers = model.vision_model.encoder.layers
    hooks = [layer.temporal_attn.register_forward_hook(lambda m, a, o: outputs.append(o[0])) for layer in layers]
    with torch.no_grad():
        model.get_video_features(pixel_values_videos=torch.randn(2, 3, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert len(outputs) == LAYERS and all(torch.count_nonzero(o) == 0 for o in outputs)


def test_learnable_temperature_parameter_starts_at_the_fixed_temperature():
    model = TVTSv2Model(tiny_config(learnable_temperature=True))
    assert model.logit_scale.shape == ()
    torch.testing.assert_close(model.logit_scale.exp(), torch.tensor(1 / 0.05))
    assert TVTSv2Model(tiny_config()).logit_scale is None


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts of the presets (fact sheet §1), on the meta device


PRESET_COUNTS = {
    # preset: (dual encoder, video tower, new video params, text tower, sort head)
    "b32": (179_653_376, 116_225_280, 28_376_064, 63_428_096, 6_308_868),
    "b16": (177_996_800, 114_568_704, 28_376_064, 63_428_096, 6_308_868),
    "h14": (1_196_085_760, 842_053_120, 209_976_320, 354_032_640, 25_200_644),
}


def _count(parameters):
    return sum(p.numel() for p in parameters)


@pytest.mark.parametrize("preset", list(PRESET_COUNTS))
def test_preset_parameter_counts(preset):
    total, video, new_video, text, sort_head = PRESET_COUNTS[preset]
    config = TVTSv2Config.from_preset(preset)
    with torch.device("meta"):
        model = TVTSv2Model(config)
        pretraining = TVTSv2ForPreTraining(config)
        learnable = TVTSv2Model(TVTSv2Config.from_preset(preset, learnable_temperature=True))
    assert next(model.parameters()).device.type == "meta"
    assert _count(model.parameters()) == total
    assert _count(model.vision_model.parameters()) + _count(model.visual_projection.parameters()) == video
    assert _count(model.text_model.parameters()) + _count(model.text_projection.parameters()) == text
    new = [p for n, p in model.vision_model.named_parameters() if "temporal" in n]
    assert _count(new) == new_video  # time attention + ln_3 + temporal_embedding
    assert _count(pretraining.parameters()) - total == sort_head
    assert _count(pretraining.sort_head.parameters()) == sort_head
    assert _count(learnable.parameters()) == total + 1


# ---------------------------------------------------------------------------------------------------------------
# Misc API


def test_sub_configs_and_tower_classes(fixture_model):
    assert isinstance(fixture_model.config.vision_config, TVTSv2VisionConfig)
    assert isinstance(fixture_model.config.text_config, TVTSv2TextConfig)
    assert isinstance(fixture_model.vision_model, TVTSv2VisionModel)
    assert set(fixture_model._no_split_modules) >= {"TVTSv2VisionLayer", "TVTSv2TextLayer"}
