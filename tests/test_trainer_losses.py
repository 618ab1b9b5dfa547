"""The trainer's loss is the model's loss, and every parameter trains in the optimiser group the original puts it in.

In one process the global-batch loss of `TVTSv2Trainer.compute_loss` must equal `model(..., return_loss=True).loss`
(the model's loss is the definition the released weights were trained with: both contrastive directions summed,
plus `sort_loss_weight` x the sorting cross-entropy); the logged terms must equal the model's terms.
"""

import re

import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments


def _batch(config: TVTSv2Config, num_texts: int | None, batch_size: int = 3, seed: int = 0) -> dict:
    """A collator-shaped batch: `[B, K, L]` transcripts with sort labels, or `[B, 1, L]` captions."""
    generator = torch.Generator().manual_seed(seed)
    vision, text = config.vision_config, config.text_config
    k = num_texts or 1
    ids = torch.randint(1, 400, (batch_size, k, 10), generator=generator)
    ids[..., 0] = text.bos_token_id
    ids[..., -1] = text.eos_token_id
    batch = {
        "pixel_values_videos": torch.randn(batch_size, 4, 3, vision.image_size, vision.image_size, generator=generator),
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "keep_indices": torch.stack(
            [torch.randperm(vision.num_patches, generator=generator)[:8].sort().values for _ in range(batch_size)]
        ),
        "num_skipped": torch.tensor([0]),
    }
    if num_texts:
        # a non-trivial order, so that a trainer that ignored the labels would compute another loss
        batch["sort_labels"] = torch.stack([torch.randperm(k, generator=generator) for _ in range(batch_size)])
    return batch


@pytest.fixture
def trainer(tmp_path_factory) -> TVTSv2Trainer:
    torch.manual_seed(0)
    config = TVTSv2Config.from_preset("tiny", vision_config={"num_frames": 4})
    assert config.sort_loss_weight != 1.0  # otherwise ignoring the weight could not be seen
    model = TVTSv2ForPreTraining(config)
    args = TVTSv2TrainingArguments(
        output_dir=str(tmp_path_factory.mktemp("loss")), report_to="none", use_cpu=True, freeze_schedule="none"
    )
    return TVTSv2Trainer(model=model, args=args)


@pytest.mark.parametrize("num_texts", [4, None], ids=["transcripts", "captions"])
def test_compute_loss_equals_the_model_loss_and_logs_its_terms(trainer, num_texts):
    model = trainer.model
    model.train()
    batch = _batch(model.config, num_texts)
    model_inputs = {k: v for k, v in batch.items() if k != "num_skipped"}
    with torch.no_grad():
        reference = model(**model_inputs, return_loss=True)
        loss = trainer.compute_loss(model, dict(batch))
    torch.testing.assert_close(loss, reference.loss, rtol=1e-5, atol=1e-6)

    trainer.log({"loss": float(loss)})
    logged = trainer.state.log_history[-1]
    assert logged["contrastive_loss"] == pytest.approx(float(reference.contrastive_loss), abs=1e-4)
    if num_texts:
        assert reference.sort_loss is not None
        assert logged["sort_loss"] == pytest.approx(float(reference.sort_loss), abs=1e-4)
    else:
        assert reference.sort_loss is None and "sort_loss" not in logged


# --------------------------------------------------------------------------------------------------------------
# Optimiser placement (fact sheet, section 4.3): new = time attention, its LayerNorm (ln_3) and the sort head at
# learning_rate; everything CLIP-initialised, temporal_embedding included, at clip_learning_rate. No decay for
# biases and norms. `layers.N.` stands for every layer index.
# --------------------------------------------------------------------------------------------------------------

NEW_DECAY = """
sort_head.classifier.weight sort_head.layers.N.mlp.fc1.weight sort_head.layers.N.mlp.fc2.weight
sort_head.layers.N.self_attn.k_proj.weight sort_head.layers.N.self_attn.out_proj.weight
sort_head.layers.N.self_attn.q_proj.weight sort_head.layers.N.self_attn.v_proj.weight sort_head.type_embeddings
vision_model.encoder.layers.N.temporal_attn.k_proj.weight vision_model.encoder.layers.N.temporal_attn.out_proj.weight
vision_model.encoder.layers.N.temporal_attn.q_proj.weight vision_model.encoder.layers.N.temporal_attn.v_proj.weight
"""
NEW_NO_DECAY = """
sort_head.classifier.bias sort_head.final_layer_norm.bias sort_head.final_layer_norm.weight
sort_head.layers.N.layer_norm1.bias sort_head.layers.N.layer_norm1.weight sort_head.layers.N.layer_norm2.bias
sort_head.layers.N.layer_norm2.weight sort_head.layers.N.mlp.fc1.bias sort_head.layers.N.mlp.fc2.bias
sort_head.layers.N.self_attn.k_proj.bias sort_head.layers.N.self_attn.out_proj.bias
sort_head.layers.N.self_attn.q_proj.bias sort_head.layers.N.self_attn.v_proj.bias
vision_model.encoder.layers.N.temporal_attn.k_proj.bias vision_model.encoder.layers.N.temporal_attn.out_proj.bias
vision_model.encoder.layers.N.temporal_attn.q_proj.bias vision_model.encoder.layers.N.temporal_attn.v_proj.bias
vision_model.encoder.layers.N.temporal_layer_norm.bias vision_model.encoder.layers.N.temporal_layer_norm.weight
"""
CLIP_DECAY = """
text_model.embeddings.position_embedding.weight text_model.embeddings.token_embedding.weight
text_model.encoder.layers.N.mlp.fc1.weight text_model.encoder.layers.N.mlp.fc2.weight
text_model.encoder.layers.N.self_attn.k_proj.weight text_model.encoder.layers.N.self_attn.out_proj.weight
text_model.encoder.layers.N.self_attn.q_proj.weight text_model.encoder.layers.N.self_attn.v_proj.weight
text_projection.weight vision_model.embeddings.class_embedding vision_model.embeddings.patch_embedding.weight
vision_model.embeddings.position_embedding.weight vision_model.embeddings.temporal_embedding
vision_model.encoder.layers.N.mlp.fc1.weight vision_model.encoder.layers.N.mlp.fc2.weight
vision_model.encoder.layers.N.self_attn.k_proj.weight vision_model.encoder.layers.N.self_attn.out_proj.weight
vision_model.encoder.layers.N.self_attn.q_proj.weight vision_model.encoder.layers.N.self_attn.v_proj.weight
visual_projection.weight
"""
CLIP_NO_DECAY = """
text_model.encoder.layers.N.layer_norm1.bias text_model.encoder.layers.N.layer_norm1.weight
text_model.encoder.layers.N.layer_norm2.bias text_model.encoder.layers.N.layer_norm2.weight
text_model.encoder.layers.N.mlp.fc1.bias text_model.encoder.layers.N.mlp.fc2.bias
text_model.encoder.layers.N.self_attn.k_proj.bias text_model.encoder.layers.N.self_attn.out_proj.bias
text_model.encoder.layers.N.self_attn.q_proj.bias text_model.encoder.layers.N.self_attn.v_proj.bias
text_model.final_layer_norm.bias text_model.final_layer_norm.weight
vision_model.encoder.layers.N.layer_norm1.bias vision_model.encoder.layers.N.layer_norm1.weight
vision_model.encoder.layers.N.layer_norm2.bias vision_model.encoder.layers.N.layer_norm2.weight
vision_model.encoder.layers.N.mlp.fc1.bias vision_model.encoder.layers.N.mlp.fc2.bias
vision_model.encoder.layers.N.self_attn.k_proj.bias vision_model.encoder.layers.N.self_attn.out_proj.bias
vision_model.encoder.layers.N.self_attn.q_proj.bias vision_model.encoder.layers.N.self_attn.v_proj.bias
vision_model.post_layernorm.bias vision_model.post_layernorm.weight
vision_model.pre_layrnorm.bias vision_model.pre_layrnorm.weight
"""


def test_default_optimizer_places_every_parameter_where_the_original_does(tmp_path):
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny"))
    # default arguments; weight decay as in the original (0.05) so that decay and no-decay groups are distinguishable
    args = TVTSv2TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, weight_decay=0.05)
    trainer = TVTSv2Trainer(model=model, args=args)
    optimizer = trainer.create_optimizer()
    names = {id(p): re.sub(r"layers\.\d+\.", "layers.N.", n) for n, p in model.named_parameters()}

    temporal = model.vision_model.embeddings.temporal_embedding
    (holding,) = [g for g in optimizer.param_groups if any(p is temporal for p in g["params"])]
    assert holding["lr"] == args.clip_learning_rate == 1e-7
    assert args.learning_rate != args.clip_learning_rate

    expected = {
        (args.learning_rate, args.weight_decay): NEW_DECAY,
        (args.learning_rate, 0.0): NEW_NO_DECAY,
        (args.clip_learning_rate, args.weight_decay): CLIP_DECAY,
        (args.clip_learning_rate, 0.0): CLIP_NO_DECAY,
    }
    placed: dict[tuple[float, float], set[str]] = {}
    for group in optimizer.param_groups:
        placed.setdefault((group["lr"], group["weight_decay"]), set()).update(names[id(p)] for p in group["params"])
    for key, listed in expected.items():
        assert placed.get(key, set()) == set(listed.split()), f"lr={key[0]} weight_decay={key[1]}"
    # every parameter is in exactly one group (frozen ones too: a schedule may unfreeze them)
    counted = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(counted) == sorted(names)
