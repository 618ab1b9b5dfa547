"""`--optim adamw_original` (`OriginalAdamW`: transformers 4.10's AdamW rule) and `--zero_grad_to_none`: the update
formula (written out here in float64), foreach = per-tensor, state dicts and Trainer checkpoints, the arguments in
every spelling, and the FSDP/DeepSpeed refusals. The rule against the original code itself:
tests/test_original_train_step.py."""

import math
import sys
from pathlib import Path

import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.pretraining.arguments import parse_arguments
from modeling_tvtsv2.pretraining.optimization import OriginalAdamW, check_optimizer_supported
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_synthetic import ListDataset, synthetic_batches  # noqa: E402

LR, WD, EPS, B1, B2 = 1e-3, 0.05, 1e-6, 0.9, 0.999


def _expected(p0: float, grads: list[float]) -> float:
    """The original's rule in float64: eps on sqrt(v) before the bias correction, decay after the Adam step."""
    p, m, v = p0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m, v = B1 * m + (1 - B1) * g, B2 * v + (1 - B2) * g * g
        p -= LR * math.sqrt(1 - B2**t) / (1 - B1**t) * m / (math.sqrt(v) + EPS)
        p -= LR * WD * p
    return p


@pytest.mark.parametrize("foreach", [True, False])
def test_update_rule_is_the_original_formula(foreach):
    grads = [[3e-1, -2e-6, 1e-5], [1e-1, 5e-6, 0.0], [0.0, 0.0, -1e-5]]  # incl. zero gradients (zero-filled steps)
    p0 = [0.5, -0.25, 0.125]
    param = torch.nn.Parameter(torch.tensor(p0))
    optimizer = OriginalAdamW([param], lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD, foreach=foreach)
    for g in grads:
        param.grad = torch.tensor(g)
        optimizer.step()
    expected = [_expected(p0[i], [g[i] for g in grads]) for i in range(3)]
    torch.testing.assert_close(param.detach(), torch.tensor(expected), rtol=2e-7, atol=0)


def test_it_differs_from_torch_adamw_where_the_original_does():
    # step 1, |g| = 1e-5 at eps 1e-6: the original divides by |g| + eps / sqrt(1 - b2) (~4.2e-5), torch by |g| + eps
    ours, theirs = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    for param in (ours, theirs):
        param.grad = torch.full((1,), 1e-5)
    OriginalAdamW([ours], lr=LR, eps=EPS).step()
    torch.optim.AdamW([theirs], lr=LR, eps=EPS, weight_decay=0.0).step()
    assert float(ours.detach()) == pytest.approx(-LR * 1e-5 / (1e-5 + EPS / math.sqrt(1 - B2)), rel=1e-5)  # -0.24 lr
    assert float(theirs.detach()) == pytest.approx(-LR * 1e-5 / (1e-5 + EPS), rel=1e-5)  # -0.91 lr


SHAPES = [(4, 3), (5,), (2, 2, 2), (3,)]


def _gradient_stream(steps: int) -> list[list[torch.Tensor | None]]:
    """Per step, per tensor: tensor 3 gets no gradient on even steps (skipped, as the original's None), tensor 1
    joins at step 2 (so the tensors' step counts differ)."""
    generator = torch.Generator().manual_seed(1)
    return [
        [None if (i == 3 and step % 2 == 0) or (i == 1 and step < 2) else torch.randn(shape, generator=generator)
         for i, shape in enumerate(SHAPES)]
        for step in range(steps)
    ]  # fmt: skip


def _optimizer(params, foreach: bool = True) -> OriginalAdamW:
    groups = [{"params": params[:2], "lr": 1e-3, "weight_decay": 0.05},
              {"params": params[2:], "lr": 1e-5, "weight_decay": 0.0}]  # fmt: skip
    return OriginalAdamW(groups, foreach=foreach)


def _steps(optimizer, params, stream) -> None:
    for grads in stream:
        for param, grad in zip(params, grads):
            param.grad = grad
        optimizer.step()


def test_foreach_equals_per_tensor_and_state_dicts_resume_exactly(tmp_path):
    stream, initial = _gradient_stream(5), [torch.randn(shape) for shape in SHAPES]
    runs = {}
    for foreach in (True, False):
        params = [torch.nn.Parameter(value.clone()) for value in initial]
        optimizer = _optimizer(params, foreach)
        _steps(optimizer, params, stream)
        runs[foreach] = [p.detach().clone() for p in params]
        assert [optimizer.state[p]["step"] for p in params] == [5, 3, 5, 2]
    for a, b in zip(runs[True], runs[False]):
        assert torch.equal(a, b)  # the same operations in the same order: bit-identical

    # interrupted after 2 steps: the saved state dict (weights_only load) continues exactly
    params = [torch.nn.Parameter(value.clone()) for value in initial]
    first = _optimizer(params)
    _steps(first, params, stream[:2])
    torch.save(first.state_dict(), tmp_path / "optimizer.pt")
    resumed = _optimizer(params)
    resumed.load_state_dict(torch.load(tmp_path / "optimizer.pt", weights_only=True))
    _steps(resumed, params, stream[2:])
    for a, b in zip(params, runs[True]):
        assert torch.equal(a.detach(), b)

@pytest.mark.parametrize(
    "flags", [["--optim", "adamw_original", "--zero_grad_to_none", "false"],
              ["--optim=adamw_original", "--zero-grad-to-none=false"]], ids=["underscores", "dashes"],
)  # fmt: skip
def test_arguments_in_every_spelling_and_the_trainer_builds_it(tmp_path, flags):
    training = parse_arguments([*flags, "--output_dir", str(tmp_path / "out"), "--use_cpu", "true"]).training
    assert training.optim == "adamw_original" and training.zero_grad_to_none is False
    assert '"optim": "adamw_original"' in training.to_json_string()
    defaults = parse_arguments(["--output_dir", str(tmp_path / "out")]).training
    assert defaults.optim == "adamw_torch" and defaults.zero_grad_to_none is True  # non-recipe runs: as before
    recipe = parse_arguments(["--recipe", "paper_b32", "--use_cpu", "true"]).training
    assert recipe.optim == "adamw_original" and recipe.zero_grad_to_none is False

    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny"))
    args = TVTSv2TrainingArguments(output_dir=str(tmp_path), optim="adamw_original", adam_epsilon=1e-7,
                                   adam_beta2=0.98, report_to="none", use_cpu=True)  # fmt: skip
    optimizer = TVTSv2Trainer(model=model, args=args).create_optimizer()
    assert type(optimizer) is OriginalAdamW
    assert {(g["lr"], g["weight_decay"]) for g in optimizer.param_groups} == {
        (1e-4, 0.05), (1e-4, 0.0), (1e-7, 0.05), (1e-7, 0.0)
    }
    assert all(g["eps"] == 1e-7 and g["betas"] == (0.9, 0.98) for g in optimizer.param_groups)


def test_fsdp_and_deepspeed_refuse_the_original_options():
    check_optimizer_supported("adamw_original", False, fsdp=False, deepspeed=False)
    for backend in ("fsdp", "deepspeed"):
        with pytest.raises(ValueError, match="--optim adamw_original is not supported with .*use --optim adamw_torch"):
            check_optimizer_supported("adamw_original", True, **{"fsdp": False, "deepspeed": False, backend: True})
        with pytest.raises(ValueError, match="--zero_grad_to_none false is not supported with"):
            check_optimizer_supported("adamw_torch", False, **{"fsdp": False, "deepspeed": False, backend: True})
        check_optimizer_supported("adamw_torch", True, **{"fsdp": False, "deepspeed": False, backend: True})


@pytest.mark.slow
def test_trainer_checkpoint_resume_continues_exactly(tmp_path):
    """Save after step 2 of 4, resume: the same weights as one uninterrupted run (optimiser state in the checkpoint;
    zero-filled gradients are not saved, as in the original, and every tensor gets a gradient here at step 3)."""

    def train(output_dir: Path, max_steps: int, resume: str | None = None) -> dict:
        torch.manual_seed(0)
        model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny", vision_config={"num_frames": 4}))
        args = TVTSv2TrainingArguments(
            output_dir=str(output_dir), report_to="none", use_cpu=True, seed=0, remove_unused_columns=False,
            disable_tqdm=True, save_strategy="steps", save_steps=2, freeze_schedule="none", max_steps=max_steps,
            per_device_train_batch_size=1, train_sampling_strategy="sequential", optim="adamw_original",
            zero_grad_to_none=False, learning_rate=1e-3,
            lr_scheduler_type="constant",  # the same rates whether the run is 2 or 4 steps long
        )  # fmt: skip
        items = synthetic_batches(model.config, 4, 3)
        trainer = TVTSv2Trainer(model=model, args=args, train_dataset=ListDataset(items),
                                data_collator=lambda features: features[0])  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)
        assert type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer) \
            is OriginalAdamW
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    full = train(tmp_path / "full", 4)
    train(tmp_path / "part", 2)
    resumed = train(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoint-2"))
    for name, value in full.items():
        assert torch.equal(value, resumed[name]), name
