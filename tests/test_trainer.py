"""TVTSv2Trainer: distributed correctness (real `accelerate launch`, 2 gloo processes), freezing, lr groups, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.pretraining.freezing import FreezeRule, FreezeSchedule, parameter_in_group
from modeling_tvtsv2.pretraining.trainer import (
    TVTSv2Trainer,
    TVTSv2TrainingArguments,
    check_schedule_supported,
    parameter_groups,
    parse_milestones,
)

from conftest import HANG_GUARD_SECONDS

SCRIPT = Path(__file__).parent / "scripts" / "train_synthetic.py"
# Adam divides every coordinate by its running RMS: coordinates whose true gradient is exactly 0 (e.g. the time
# attention's q/k at init) carry ~1e-12 float noise that eps=1e-6 would blow up to ±lr. A larger eps keeps this
# comparison about the gradients, which is what distributed correctness is about.
ADAM_EPS = "1e-3"
SCHEDULE = "text_layers<3; text_layers<4@0:2"  # layers 0-2 always frozen, layer 3 unfrozen at step 2


def _env() -> dict:
    env = dict(os.environ)
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, env=_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _single(out: Path, *extra: str) -> None:
    _run([sys.executable, str(SCRIPT), "--out", str(out), "--adam_epsilon", ADAM_EPS, "--freeze_schedule", SCHEDULE,
          *extra])


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    _single(out)
    return out


def _load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_two_processes_equal_one_process_over_the_same_global_batch(single_run, tmp_path):
    out = tmp_path / "ddp"
    _run(
        [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
            str(29500 + os.getpid() % 1000), str(SCRIPT), "--out", str(out), "--world_size", "2",
            "--adam_epsilon", ADAM_EPS, "--freeze_schedule", SCHEDULE,
        ]
    )
    single_logs = [e for e in json.loads((single_run / "log_history.json").read_text()) if "contrastive_loss" in e]
    ddp_logs = [e for e in json.loads((out / "log_history.json").read_text()) if "contrastive_loss" in e]
    assert len(single_logs) == len(ddp_logs) == 4
    for one, two in zip(single_logs, ddp_logs):
        # the contrastive loss is over the global batch in both runs; `loss` is averaged over ranks
        assert one["contrastive_loss"] == pytest.approx(two["contrastive_loss"], abs=1e-4)
        assert one["loss"] == pytest.approx(two["loss"], abs=1e-4)
        assert one["grad_norm"] == pytest.approx(two["grad_norm"], rel=1e-4)

    rank0, rank1 = _load(out / "rank0.pt"), _load(out / "rank1.pt")
    reference = _load(single_run / "rank0.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "ranks diverged"
    worst = max((rank0[k] - reference[k]).abs().max().item() for k in reference)
    assert worst < 1e-5, f"2-process weights differ from the 1-process run by {worst}"


def test_freezing_frozen_blocks_bitwise_unchanged_trainable_change(single_run):
    torch.manual_seed(0)
    from transformers import set_seed

    set_seed(0)
    initial = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny", vision_config={"num_frames": 4})).state_dict()
    final = _load(single_run / "rank0.pt")
    for name in initial:
        changed = not torch.equal(initial[name], final[name])
        if any(name.startswith(f"text_model.encoder.layers.{i}.") for i in range(3)):
            assert not changed, f"{name} is frozen for the whole run but changed"
        elif name.startswith("text_model.encoder.layers.3.") and name.endswith("weight"):
            assert changed, f"{name} was unfrozen at step 2 but did not change"
    for name in ("vision_model.encoder.layers.0.temporal_attn.v_proj.weight", "sort_head.classifier.weight",
                 "text_projection.weight", "vision_model.embeddings.temporal_embedding"):
        assert not torch.equal(initial[name], final[name]), f"trainable {name} did not change"


def test_resume_reaches_the_same_weights(single_run, tmp_path):
    out = tmp_path / "resume"
    _single(out, "--max_steps", "2", "--save_steps", "2")
    assert (out / "checkpoint-2").is_dir()
    _single(out, "--resume", str(out / "checkpoint-2"))
    resumed, uninterrupted = _load(out / "rank0.pt"), _load(single_run / "rank0.pt")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


# --------------------------------------------------------------------------------------------------------------
# Optimiser groups and schedules (in process)
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model() -> TVTSv2ForPreTraining:
    return TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny"))


def test_parameter_groups_follow_the_recipe(tiny_model):
    groups = {g["name"]: g for g in parameter_groups(tiny_model, 1e-4, 1e-7, 0.05)}
    assert set(groups) == {"new_decay", "new_no_decay", "clip_decay", "clip_no_decay"}
    assert groups["new_decay"]["lr"] == groups["new_no_decay"]["lr"] == 1e-4
    assert groups["clip_decay"]["lr"] == groups["clip_no_decay"]["lr"] == 1e-7
    assert groups["new_decay"]["weight_decay"] == groups["clip_decay"]["weight_decay"] == 0.05
    assert groups["new_no_decay"]["weight_decay"] == groups["clip_no_decay"]["weight_decay"] == 0.0
    names = {key: set(g["param_names"]) for key, g in groups.items()}
    assert "vision_model.encoder.layers.0.temporal_attn.q_proj.weight" in names["new_decay"]
    assert "vision_model.encoder.layers.0.temporal_attn.q_proj.bias" in names["new_no_decay"]
    assert "vision_model.encoder.layers.1.temporal_layer_norm.weight" in names["new_no_decay"]
    assert "sort_head.type_embeddings" in names["new_decay"]
    assert "sort_head.classifier.weight" in names["new_decay"]
    # the original's quirk: temporal_embedding trains with the CLIP-initialised parameters
    assert "vision_model.embeddings.temporal_embedding" in names["clip_decay"]
    assert "vision_model.encoder.layers.0.self_attn.q_proj.weight" in names["clip_decay"]
    assert "vision_model.pre_layrnorm.weight" in names["clip_no_decay"]
    assert "text_model.final_layer_norm.bias" in names["clip_no_decay"]
    assert "text_projection.weight" in names["clip_decay"]
    # every parameter exactly once, frozen ones included (so that schedules can unfreeze them)
    all_names = [n for g in groups.values() for n in g["param_names"]]
    assert sorted(all_names) == sorted(n for n, _ in tiny_model.named_parameters())
    moved = {g["name"]: set(g["param_names"]) for g in parameter_groups(tiny_model, 1e-4, 1e-7, 0.05, "new")}
    assert "vision_model.embeddings.temporal_embedding" in moved["new_decay"]


def test_trainer_optimizer_has_the_recipe_groups(tiny_model, tmp_path):
    args = TVTSv2TrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-4, clip_learning_rate=1e-7, weight_decay=0.05,
        adam_epsilon=1e-6, report_to="none", use_cpu=True,
    )
    trainer = TVTSv2Trainer(model=tiny_model, args=args)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    lrs = sorted({group["lr"] for group in optimizer.param_groups})
    assert lrs == [1e-7, 1e-4]
    assert all(group["eps"] == 1e-6 for group in optimizer.param_groups)
    # the paper's default schedule froze text blocks 0..num_frozen-1 before wrapping
    frozen = {n for n, p in tiny_model.named_parameters() if not p.requires_grad}
    assert frozen and all(parameter_in_group(n, "text_layers<3", 0) for n in frozen)
    assert len(frozen) == len([n for n, _ in tiny_model.named_parameters() if parameter_in_group(n, "paper", 3)])


def test_freeze_schedule_syntax_and_semantics():
    schedule = FreezeSchedule.parse("backbone@0:500; text_layers<9\n text_layers<6@1000:")
    assert schedule.rules == (
        FreezeRule("backbone", 0, 500), FreezeRule("text_layers<9"), FreezeRule("text_layers<6", 1000, None)
    )
    assert schedule.changes_over_training and schedule.boundaries() == [500, 1000]
    assert FreezeSchedule.parse(str(schedule)) == schedule
    json_schedule = FreezeSchedule.parse('[{"group": "text_layers<9"}, {"group": "new", "start": 5, "end": 7}]')
    assert json_schedule.rules[1] == FreezeRule("new", 5, 7)
    names = ["text_model.encoder.layers.8.mlp.fc1.weight", "text_model.encoder.layers.9.mlp.fc1.weight",
             "vision_model.encoder.layers.0.self_attn.q_proj.weight",
             "vision_model.encoder.layers.0.temporal_attn.q_proj.weight", "sort_head.classifier.bias"]
    assert schedule.frozen_names(names, 0, 9) == set(names[:3])
    assert schedule.frozen_names(names, 500, 9) == {names[0]}
    assert parameter_in_group("module.text_model.encoder.layers.2.mlp.fc1.weight", "paper", 3)
    for bad in ("text_layers<x", "everything", "text@5:2", "text@a:b"):
        with pytest.raises(ValueError):
            FreezeSchedule.parse(bad)


def test_lr_milestones():
    assert parse_milestones("0.6,0.8", 100) == [60, 80]
    assert parse_milestones("30, 10", 100) == [10, 30]
    assert parse_milestones(None, 100) == []


def test_fsdp_and_deepspeed_refuse_schedules_that_change():
    changing = FreezeSchedule.parse("text_layers<9; backbone@0:500")
    static = FreezeSchedule.parse("text_layers<9; re:sort_head")
    for fsdp, deepspeed, name in ((True, False, "FSDP"), (False, True, "DeepSpeed")):
        with pytest.raises(ValueError, match=name):
            check_schedule_supported(changing, fsdp=fsdp, deepspeed=deepspeed)
        check_schedule_supported(static, fsdp=fsdp, deepspeed=deepspeed)
    check_schedule_supported(changing, fsdp=False, deepspeed=False)  # DDP / single process: fine
