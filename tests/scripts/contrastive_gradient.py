"""One TVTSv2Trainer step on a fixed global batch; saves the (DDP-synchronised) gradients of every configuration.

Used by tests/test_contrastive_gradient.py in one process (`python`) and in two (`accelerate launch --multi_gpu`).
For each `--runs` entry `MODE:SORT_WEIGHT` (e.g. `global:2`, `original:0`) a fresh tiny model (same seed) takes one
optimiser step through `Trainer.train()`; the gradients seen just before the optimiser step are written by rank 0
to `{out}/{MODE}_{SORT_WEIGHT}.pt`.
"""

import argparse
import os
import sys

import torch
from transformers import TrainerCallback, set_seed

sys.path.insert(0, os.path.dirname(__file__))
from train_synthetic import ListDataset, shard, synthetic_batches  # noqa: E402

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining  # noqa: E402
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments  # noqa: E402


class CaptureGradients(TrainerCallback):
    def __init__(self):
        self.gradients: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.gradients = {
            name: param.grad.detach().clone() for name, param in model.named_parameters() if param.grad is not None
        }


def one_step(out: str, world_size: int, mode: str, sort_weight: float) -> dict[str, torch.Tensor]:
    set_seed(0)
    config = TVTSv2Config.from_preset("tiny", vision_config={"num_frames": 4}, sort_loss_weight=sort_weight)
    model = TVTSv2ForPreTraining(config)
    (batch,) = synthetic_batches(config, steps=1, global_batch=4)
    items = [shard(batch, rank, world_size) for rank in range(world_size)]
    args = TVTSv2TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=1,
        max_steps=1,
        learning_rate=1e-3,
        clip_learning_rate=1e-3,
        lr_scheduler_type="constant",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,
        train_sampling_strategy="sequential",
        disable_tqdm=True,
        freeze_schedule="none",
        contrastive_gradient=mode,
    )
    capture = CaptureGradients()
    trainer = TVTSv2Trainer(
        model=model, args=args, train_dataset=ListDataset(items), data_collator=lambda features: features[0]
    )
    trainer.add_callback(capture)
    trainer.train()
    return capture.gradients


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--out", required=True)
    parser.add_argument("--world_size", type=int, default=1)
    parser.add_argument("--runs", nargs="+", default=["global:2"])
    args = parser.parse_args()
    for run in args.runs:
        mode, weight = run.split(":")
        gradients = one_step(args.out, args.world_size, mode, float(weight))
        if int(os.environ.get("RANK", "0")) == 0:
            torch.save(gradients, os.path.join(args.out, f"{mode}_{weight}.pt"))


if __name__ == "__main__":
    main()
