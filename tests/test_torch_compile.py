"""`--torch_compile` in TVTSv2Trainer / run_pretrain: static-shape graphs (one per batch shape) unless
`--torch_compile_dynamic` asks otherwise; a compiled run trains, gives the eager losses, and saves checkpoints with the
uncompiled key names that resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import HfArgumentParser

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.pretraining.arguments import parse_arguments
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_synthetic import ListDataset, synthetic_batches  # noqa: E402

from conftest import HANG_GUARD_SECONDS  # noqa: E402

FRAMES = 4


def _model() -> TVTSv2ForPreTraining:
    torch.manual_seed(0)
    return TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny", vision_config={"num_frames": FRAMES}))


def _args(tmp_path: Path, **overrides) -> TVTSv2TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, seed=0, data_seed=0, remove_unused_columns=False,
        disable_tqdm=True, save_strategy="no", freeze_schedule="paper", per_device_train_batch_size=1,
        train_sampling_strategy="sequential", logging_steps=1, lr_scheduler_type="constant",
    )  # fmt: skip
    settings.update(overrides)
    return TVTSv2TrainingArguments(**settings)


def _dynamo_plugin(tmp_path: Path, **overrides):
    trainer = TVTSv2Trainer(model=_model(), args=_args(tmp_path, **overrides))
    return trainer.accelerator.state.dynamo_plugin


# --------------------------------------------------------------------------------------------------------------
# Fast: the plugin the accelerator gets, and the flag in every spelling
# --------------------------------------------------------------------------------------------------------------


def test_torch_compile_gives_static_shapes_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_DYNAMO_USE_DYNAMIC", raising=False)
    plugin = _dynamo_plugin(tmp_path, torch_compile=True)
    assert plugin.backend.value.lower() == "inductor"
    assert plugin.dynamic is False
    # accelerate's `--dynamo_use_dynamic` default (`accelerate launch` always exports it) does not undo it either way
    monkeypatch.setenv("ACCELERATE_DYNAMO_USE_DYNAMIC", "True")
    assert _dynamo_plugin(tmp_path, torch_compile=True).dynamic is False


def test_torch_compile_dynamic_opts_out(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_DYNAMO_USE_DYNAMIC", raising=False)
    assert _dynamo_plugin(tmp_path, torch_compile=True, torch_compile_dynamic=True).dynamic is True
    # None: dynamo's automatic dynamic shapes (transformers' behaviour), or what accelerate's environment says
    assert _dynamo_plugin(tmp_path, torch_compile=True, torch_compile_dynamic=None).dynamic is None
    monkeypatch.setenv("ACCELERATE_DYNAMO_USE_DYNAMIC", "True")
    assert _dynamo_plugin(tmp_path, torch_compile=True, torch_compile_dynamic=None).dynamic is True


def test_without_torch_compile_nothing_is_compiled(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_DYNAMO_BACKEND", raising=False)
    plugin = _dynamo_plugin(tmp_path)
    assert plugin.backend.value.lower() == "no"


@pytest.mark.parametrize("flag", ["--torch_compile_dynamic", "--torch-compile-dynamic"])
def test_torch_compile_dynamic_flag_spellings(flag, tmp_path):
    parser = HfArgumentParser(TVTSv2TrainingArguments)
    base = ["--output_dir", str(tmp_path), "--torch_compile"]
    (args,) = parser.parse_args_into_dataclasses(base)
    assert args.torch_compile and args.torch_compile_dynamic is False
    (args,) = parser.parse_args_into_dataclasses([*base, flag])
    assert args.torch_compile_dynamic is True
    (args,) = parser.parse_args_into_dataclasses([*base, flag, "false"])
    assert args.torch_compile_dynamic is False
    # the run_pretrain / `tvtsv2 train` command line
    assert parse_arguments(["--torch-compile", flag]).training.torch_compile_dynamic is True
    assert parse_arguments(["--torch_compile"]).training.torch_compile_dynamic is False


def test_recipe_null_means_automatic_dynamic_shapes(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"torch_compile": True, "torch_compile_dynamic": None}))
    assert parse_arguments(["--recipe", str(recipe)]).training.torch_compile_dynamic is None


# --------------------------------------------------------------------------------------------------------------
# Slow: a real compiled training run on CPU
# --------------------------------------------------------------------------------------------------------------

# aot_eager traces the model exactly as inductor does (dynamo + AOTAutograd, same guards, same recompiles) but runs
# the captured aten graphs without generating C++ kernels: seconds instead of minutes per graph on this box.
BACKEND = "aot_eager"
# Batch sizes of the consecutive steps; 0: every sample was skipped, the model runs the one-sample placeholder batch.
# Static shapes compile one graph per model input size (3, 2, 4, 1); dynamo's automatic dynamic shapes compile a
# second, symbolic graph at size 2 and reuse it for 4 (size 1 is always specialised): 3 graphs.
BATCH_SIZES = (3, 2, 4, 0)
MODEL_BATCH_SIZES = {max(size, 1) for size in BATCH_SIZES}
# Compiled and eager losses differ only by the rounding of re-ordered / fused float32 ops: aot_eager gave bit-identical
# losses here, inductor 1.7e-7 relative on the first step (measured once, 213 s of compilation); 1e-4 covers both.
LOSS_RTOL = 1e-4


def _run(tmp_path: Path, name: str, resume: str | None = None, steps: int = len(BATCH_SIZES), **overrides):
    batches = [synthetic_batches(_model().config, 1, max(size, 1), seed=i)[0] for i, size in enumerate(BATCH_SIZES)]
    for batch, size in zip(batches, BATCH_SIZES):
        if size == 0:  # what the collator gives when every sample failed to decode
            batch.update({key: value[:0] for key, value in batch.items() if key != "num_skipped"})
            batch["num_skipped"] = torch.tensor([1])
    args = _args(
        tmp_path / name, max_steps=steps, save_strategy="steps", save_steps=2, learning_rate=1e-3,
        clip_learning_rate=1e-3, **overrides,
    )  # fmt: skip
    trainer = TVTSv2Trainer(
        model=_model(), args=args, train_dataset=ListDataset(batches), data_collator=lambda features: features[0]
    )
    trainer.train(resume_from_checkpoint=resume)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return trainer, losses


@pytest.mark.slow
def test_compiled_training_is_static_matches_eager_and_checkpoints_like_eager(tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled, compiled_losses = _run(tmp_path, "compiled", torch_compile=True, torch_compile_backend=BACKEND)
    assert type(compiled.model_wrapped).__name__ == "OptimizedModule"  # the run really was compiled
    # one graph per batch shape, no graph breaks: a symbolic (dynamic) graph would have served two of the shapes
    assert counters["stats"]["unique_graphs"] == len(MODEL_BATCH_SIZES)
    assert counters["frames"]["ok"] == len(MODEL_BATCH_SIZES)
    assert not counters["graph_break"]
    torch._dynamo.reset()

    eager, eager_losses = _run(tmp_path, "eager")
    assert len(compiled_losses) == len(eager_losses) == len(BATCH_SIZES)
    assert all(torch.isfinite(torch.tensor(compiled_losses)))
    assert compiled_losses == pytest.approx(eager_losses, rel=LOSS_RTOL)

    compiled_keys = set(load_file(str(tmp_path / "compiled" / "checkpoint-2" / "model.safetensors")))
    eager_keys = set(load_file(str(tmp_path / "eager" / "checkpoint-2" / "model.safetensors")))
    assert compiled_keys == eager_keys and not any("_orig_mod" in key for key in compiled_keys)

    # the compiled run's checkpoint resumes (eagerly: the checkpoint format does not depend on compilation)
    resumed, resumed_losses = _run(tmp_path, "resumed", resume=str(tmp_path / "compiled" / "checkpoint-2"))
    assert resumed.state.global_step == len(BATCH_SIZES)
    assert resumed_losses[2:] == pytest.approx(eager_losses[2:], rel=LOSS_RTOL)  # [:2]: the checkpoint's history


def test_loss_leaves_the_compiled_data_parallel_model_intact(tmp_path):
    # Under DDP the training model is torch.compile(DDP(model)). accelerate's unwrap_model(keep_torch_compile=True)
    # re-points the compile wrapper's `_orig_mod` at the bare model, dropping DDP (its no_sync, ...) from the training
    # model. nn.DataParallel (a pass-through on CPU) is unwrapped the same way and needs no process group.
    trainer = TVTSv2Trainer(model=_model(), args=_args(tmp_path))
    data_parallel = torch.nn.DataParallel(trainer.model)
    compiled = torch.compile(data_parallel, backend="eager", dynamic=False)
    batch = synthetic_batches(trainer.model.config, 1, 2)[0]
    loss = trainer.compute_loss(compiled, batch)
    assert torch.isfinite(loss)
    assert type(compiled._orig_mod).__name__ == "DataParallel"  # not re-pointed at the bare model


@pytest.mark.slow
def test_compiled_two_process_ddp_equals_one_eager_process(tmp_path):
    """Real `accelerate launch` (2 gloo processes, DDP + torch.compile, a freeze schedule that unfreezes a block at
    step 2, i.e. a recompile for the new requires_grad) against one eager process over the same global batches."""
    script = Path(__file__).parent / "scripts" / "train_synthetic.py"
    common = ["--adam_epsilon", "1e-3", "--freeze_schedule", "text_layers<3; text_layers<4@0:2"]
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    env.update(TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(29500 + os.getpid() % 1000),
    ]  # fmt: skip
    runs = {
        "eager": [sys.executable, str(script), "--out", str(tmp_path / "eager"), *common],
        "ddp": [*launch, str(script), "--out", str(tmp_path / "ddp"), "--world_size", "2", *common,
                "--torch_compile_backend", BACKEND],
    }  # fmt: skip
    for command in runs.values():
        result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    def logs(name):
        return [e for e in json.loads((tmp_path / name / "log_history.json").read_text()) if "contrastive_loss" in e]

    assert len(logs("eager")) == len(logs("ddp")) == 4
    for one, two in zip(logs("eager"), logs("ddp")):
        assert two["loss"] == pytest.approx(one["loss"], rel=LOSS_RTOL)
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=LOSS_RTOL)
    rank0, rank1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    reference = torch.load(tmp_path / "eager" / "rank0.pt", weights_only=True)
    assert set(rank0) == set(reference)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "ranks diverged"
    worst = max((rank0[k] - reference[k]).abs().max().item() for k in reference)
    assert worst < 1e-5, f"compiled 2-process weights differ from the eager 1-process run by {worst}"
