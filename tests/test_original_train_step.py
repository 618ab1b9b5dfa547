"""One optimisation step, then a second, held to the ORIGINAL trainer's (`tests/fixtures/original_train_step_b16`,
made by running TencentARC/TVTS v2's `_train_epoch`, `NormSoftmaxLoss` and transformers 4.10's `AdamW` as
`train_dist_TVTSv2_ViT_B_16.py` configures it; see its README).

The project runs `TVTSv2Trainer` with the `--recipe paper_b16` arguments (`tests/scripts/original_train_step.py`)
on the fixture's batches: a transcript step, then a caption step. Held: the loss parts (1e-5 relative), the set of
tensors that get gradients (the frozen set) and every gradient (2e-5 of the largest), and the weights after each step,
in ULPs plus a small share of the tensor's learning rate (see `_weight_errors`). With the recipe's `adamw_original`
and `zero_grad_to_none false` switched off, the same comparison fails (`test_the_recipe_options_are_what_matches`).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_tvtsv2.convert_tvtsv2_original_to_hf import map_original_state_dict

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from original_train_step import FIXTURE, fixture_tensors, run_steps  # noqa: E402

SCRIPT = Path(__file__).parent / "scripts" / "original_train_step.py"
LOSS_RTOL = 1e-5
GRAD_TOL = 2e-5  # of the step's largest gradient
# Weights: |ours - original| <= WEIGHT_ULPS ULPs of the original value + WEIGHT_LR_SHARE x the tensor's learning
# rate. Adam divides by |g| + eps': a gradient element below eps' (3.2e-5 at step 1) passes its float noise
# (~1e-6, another summation order) times lr / eps' into the step, ~3 % of lr at most here. The options switched
# off move weights by up to 0.9 x lr (1e-7-rate tensors: ~10 ULPs).
WEIGHT_ULPS, WEIGHT_LR_SHARE = 2, 0.05
# The attention key biases' gradient is exactly zero (softmax ignores a shift shared by all keys): what both codes
# hold is rounding noise, which Adam scales to a step of any size up to lr. Their weights are not compared.
NOISE_ONLY = ("k_proj.bias",)
LEARNING_RATES = {"decay_new_params": 1e-4, "no_decay_new_params": 1e-4, "decay_clip_params": 1e-7,
                  "no_decay_clip_params": 1e-7}  # fmt: skip  the original's four groups (train_dist_*.py)


def _ours_named(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The fixture's tensors under `prefix` (original names) -> this project's names (the converter's mapping)."""
    selected = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
    mapped, unmapped = map_original_state_dict(selected)
    assert not unmapped, unmapped
    return mapped


def _learning_rates() -> dict[str, float]:
    """Each tensor's learning rate in the original's groups (runs.json), under this project's names."""
    groups = json.loads((FIXTURE / "runs.json").read_text())["w1_pair"]["groups"]
    rates = {}
    for group, names in groups.items():
        for name in map_original_state_dict({n: torch.zeros(3, 1) for n in names})[0]:
            rates[name] = LEARNING_RATES[group]
    return rates


def _ordered(x: torch.Tensor) -> torch.Tensor:
    """float32 -> integers in float order (adjacent floats differ by 1)."""
    bits = x.contiguous().view(torch.int32).long()
    return torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _weight_errors(ours: dict, expected: dict, rates: dict) -> dict[str, float]:
    """Per tensor: the largest error in units of the allowed one (<= 1 passes)."""
    errors = {}
    for name, reference in expected.items():
        if name.endswith(NOISE_ONLY):
            continue
        ulps = (_ordered(ours[name]) - _ordered(reference)).abs().double()
        ulp = (reference.double().abs() * 2.0**-23).clamp_min(2.0**-149)
        allowed = WEIGHT_ULPS + WEIGHT_LR_SHARE * rates[name] / ulp
        errors[name] = float((ulps / allowed).max())
    return errors


def _compare(recorded: dict, tensors: dict, run: str, rates: dict, steps=(1, 2), ranks=("",)) -> list[str]:
    """Every mismatch, as a line (empty: the step equals the original's)."""
    problems = []
    for step in steps:
        for rank in ranks:
            for part in ("contrastive_loss", "sort_loss"):
                key = f"{run}.{rank}step{step}.{part}"
                if key in tensors:
                    ours, theirs = float(recorded[f"step{step}.{part}"]), float(tensors[key])
                    if abs(ours - theirs) > LOSS_RTOL * abs(theirs):
                        problems.append(f"step {step}: {part} {ours} vs the original's {theirs}")
                elif f"step{step}.{part}" in recorded:
                    problems.append(f"step {step}: {part} here, none in the original")
        grads = _ours_named(tensors, f"{run}.step{step}.grad.")
        if grads:
            ours = {k.split(".grad.", 1)[1]: v for k, v in recorded.items() if k.startswith(f"step{step}.grad.")}
            if set(ours) != set(grads):
                problems.append(f"step {step}: gradients of {sorted(set(ours) ^ set(grads))} differ in presence")
            scale = max(float(g.abs().max()) for g in grads.values())
            for name in set(ours) & set(grads):
                error = float((ours[name] - grads[name]).abs().max())
                if error > GRAD_TOL * scale:
                    problems.append(f"step {step}: gradient of {name} off by {error:.3g} (largest {scale:.3g})")
        weights = _ours_named(tensors, f"{run}.step{step}.weight.")
        if weights:
            ours = {k.split(".weight.", 1)[1]: v for k, v in recorded.items() if k.startswith(f"step{step}.weight.")}
            for name, error in _weight_errors(ours, weights, rates).items():
                if error > 1:
                    problems.append(f"step {step}: weights of {name} off by {error:.3g} x the allowed error")
    return problems


@pytest.fixture(scope="module")
def tensors() -> dict[str, torch.Tensor]:
    return fixture_tensors()


@pytest.fixture(scope="module")
def rates() -> dict[str, float]:
    return _learning_rates()


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory) -> dict:
    return run_steps(tmp_path_factory.mktemp("recipe"))


def test_transcript_step_then_caption_step_equal_the_original(recipe_run, tensors, rates):
    assert _compare(recipe_run, tensors, "w1_pair", rates) == []
    # the frozen set: text blocks 0-8 get no gradient and stay as loaded, as the original's by-name rule
    checkpoint = torch.load(FIXTURE / "checkpoint_trainer_format.pth", weights_only=True)["state_dict"]
    initial = map_original_state_dict({k.removeprefix("module."): v for k, v in checkpoint.items()})[0]
    frozen = {name for name in initial if name.startswith("text_model.encoder.layers.")
              and int(name.split(".")[3]) < 9}  # fmt: skip
    with_grad = {k.split(".grad.", 1)[1] for k in recipe_run if k.startswith("step1.grad.")}
    assert frozen and not frozen & with_grad and len(with_grad) + len(frozen) == len(initial)
    for name in frozen:
        assert torch.equal(recipe_run[f"step2.weight.{name}"], initial[name]), name


def test_the_caption_step_moves_the_sort_head(recipe_run, tensors):
    # zero-filled gradients: the sort head has no gradient on a caption step, yet AdamW moves it (momentum, decay)
    sort_head = [k for k in recipe_run if k.startswith("step2.grad.sort_head.")]
    assert sort_head and all(not recipe_run[k].any() for k in sort_head)
    for key in [k for k in recipe_run if k.startswith("step2.weight.sort_head.")]:
        assert not torch.equal(recipe_run[key], recipe_run[key.replace("step2.", "step1.")]), key


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--optim", "adamw_torch"], ["step 1: weights of", "step 2: weights of"]),
        (["--zero-grad-to-none", "true"], ["step 2: gradients of", "step 2: weights of sort_head."]),
    ],
    ids=["adamw_torch", "gradients_to_none"],
)
def test_the_recipe_options_are_what_matches(tmp_path, tensors, rates, flags, expected):
    problems = _compare(run_steps(tmp_path, flags), tensors, "w1_pair", rates)
    for start in expected:
        assert any(line.startswith(start) for line in problems), (start, problems)
    if flags[0] == "--zero-grad-to-none":  # the first step is the same: only the caption step differs
        assert not any(line.startswith("step 1") for line in problems), problems


@pytest.mark.slow
def test_two_processes_equal_the_original_at_world_size_2(tmp_path, tensors, rates):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.update(TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
        str(29500 + (os.getpid() + 11) % 1000), str(SCRIPT), "--out", str(tmp_path), "--world_size", "2",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for rank in range(2):
        recorded = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        # per rank: its losses; the fixture holds the first step's (averaged) gradients and the last weights
        assert _compare(recorded, tensors, "w2_pair", rates, ranks=(f"rank{rank}.",)) == []
