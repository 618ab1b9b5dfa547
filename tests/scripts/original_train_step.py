"""The project's side of `tests/fixtures/original_train_step_b16`: the fixture's checkpoint converted with the
converter, trained with `TVTSv2Trainer` under the `--recipe paper_b16` arguments for the fixture's two steps (a
transcript batch, then a caption batch), recording the loss parts, the gradients the optimiser steps on and the
weights after each step.

Used by tests/test_original_train_step.py in one process (`run_steps`) and in two (`accelerate launch --multi_gpu`,
each rank feeding its own batches, as the original's ranks did): `python original_train_step.py --out DIR
[--world_size 2] [flags for parse_arguments, e.g. --optim adamw_torch]` writes `rank{r}.pt`.
"""

import argparse
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from modeling_tvtsv2.convert_tvtsv2_original_to_hf import convert_checkpoint
from modeling_tvtsv2.pretraining.arguments import parse_arguments
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "original_train_step_b16"
# Not a released size: the converter needs the layout and the head counts (see the fixture README).
CONVERT_KWARGS = {"layout": "openai-clip", "vision_heads": 2, "text_heads": 4, "sort_heads": 2}
NUM_TRANSCRIPTS = 4


def fixture_tensors() -> dict[str, torch.Tensor]:
    return load_file(FIXTURE / "train_steps.safetensors")


def project_batches(tensors: dict[str, torch.Tensor], prefix: str) -> list[dict[str, torch.Tensor]]:
    """The fixture's original batches (`{prefix}.transcript.*`, `{prefix}.caption.*`) in this project's layout."""
    transcript, caption = ({key.rpartition(".")[2]: value for key, value in tensors.items()
                            if key.startswith(f"{prefix}.{kind}.")} for kind in ("transcript", "caption"))  # fmt: skip
    batch = transcript["video"].shape[0]
    # the original's text rows are transcript-major (row j*B + b = transcript j of video b): -> [B, K, L]
    ids = transcript["text"].reshape(NUM_TRANSCRIPTS, batch, -1).transpose(0, 1).contiguous()
    return [
        {"pixel_values_videos": transcript["video"], "input_ids": ids, "keep_indices": transcript["keep_ind"],
         "sort_labels": transcript["label"]},
        {"pixel_values_videos": caption["video"], "input_ids": caption["text"], "keep_indices": caption["keep_ind"]},
    ]  # fmt: skip


class _Batches(torch.utils.data.Dataset):
    """Pre-collated per-process batches in step order (as MixedCorpusBatchDataset yields them)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class _StepRecorder(TrainerCallback):
    """The gradients each optimiser step uses and the weights it leaves (named as in this project)."""

    def __init__(self, model: torch.nn.Module, record: dict):
        self.model, self.record, self.step = model, record, 0

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.step += 1
        for name, param in self.model.named_parameters():
            if param.grad is not None:
                self.record[f"step{self.step}.grad.{name}"] = param.grad.detach().clone()

    def on_optimizer_step(self, args, state, control, **kwargs):
        for name, param in self.model.named_parameters():
            self.record[f"step{self.step}.weight.{name}"] = param.detach().clone()


class _LossRecordingTrainer(TVTSv2Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        step = len([key for key in self.recorded if key.endswith(".contrastive_loss")]) + 1
        self.recorded[f"step{step}.contrastive_loss"] = outputs.contrastive_loss.detach().clone()
        if outputs.sort_loss is not None:
            # the original logs 2 x CE as its sort loss: compare the weighted term
            weight = self.accelerator.unwrap_model(model).config.sort_loss_weight
            self.recorded[f"step{step}.sort_loss"] = (weight * outputs.sort_loss).detach().clone()
        return (loss, outputs) if return_outputs else loss


def run_steps(output_dir: str | Path, flags: list[str] = (), rank: int = 0, world_size: int = 1) -> dict:
    """Train the fixture's two steps with the paper_b16 recipe's arguments (+ `flags`); the recorded tensors."""
    torch.use_deterministic_algorithms(True)
    model = convert_checkpoint(FIXTURE / "checkpoint_trainer_format.pth", **CONVERT_KWARGS).model
    arguments = parse_arguments([
        "--recipe", "paper_b16", "--output_dir", str(output_dir), "--use_cpu", "true", "--max_steps", "2",
        # the recipe's milestones are fractions of the run (x0.1 after 60 % of it); over these two steps the
        # original's first epoch runs at the base rates: milestones past the end keep that
        "--lr_milestones", "600,800", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
        "--dataloader_num_workers", "0", "--disable_tqdm", "true", "--logging_steps", "1",
        # one pre-collated batch per dataset item, in order
        "--per_device_train_batch_size", "1", "--train_sampling_strategy", "sequential", *flags,
    ])  # fmt: skip
    tensors = fixture_tensors()
    if world_size == 1:
        items = project_batches(tensors, "w1")
    else:  # step-major, rank-minor: the sampler hands rank r item step * W + r (as MixedCorpusBatchDataset)
        per_rank = [project_batches(tensors, f"w2.rank{r}") for r in range(world_size)]
        items = [per_rank[r][step] for step in range(2) for r in range(world_size)]
    trainer = _LossRecordingTrainer(
        model=model, args=arguments.training, train_dataset=_Batches(items),
        data_collator=lambda features: features[0],
    )
    trainer.recorded = {}
    trainer.add_callback(_StepRecorder(model, trainer.recorded))
    trainer.train()
    return trainer.recorded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--world_size", type=int, default=1)
    args, flags = parser.parse_known_args()
    rank = int(os.environ.get("RANK", "0"))
    out = Path(args.out)
    recorded = run_steps(out / f"run{rank}", flags, rank=rank, world_size=args.world_size)
    torch.save(recorded, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
