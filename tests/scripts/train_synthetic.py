"""Train a tiny TVTSv2ForPreTraining on synthetic, pre-collated batches with TVTSv2Trainer.

Used by tests/test_trainer.py in one process (`python`) and in two (`accelerate launch --multi_gpu`): with
`--world_size W` the global batch of every step is split into W per-rank shards, so the same global batches are
seen whatever the number of processes. Writes, from every rank, `rank{r}.pt` with the final weights, and from rank 0
`log_history.json`.
"""

import argparse
import json
import os

import torch
from transformers import set_seed

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments


def synthetic_batches(config, steps: int, global_batch: int, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    vision, text = config.vision_config, config.text_config
    size, frames, k = vision.image_size, 4, 4
    batches = []
    for _ in range(steps):
        ids = torch.randint(1, 400, (global_batch, k, 12), generator=generator)
        ids[..., 0] = text.bos_token_id
        ids[..., -1] = text.eos_token_id
        batches.append(
            {
                "pixel_values_videos": torch.randn(global_batch, frames, 3, size, size, generator=generator),
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "keep_indices": torch.stack(
                    [torch.randperm(vision.num_patches, generator=generator)[:8].sort().values for _ in range(global_batch)]
                ),
                "sort_labels": torch.arange(k).expand(global_batch, k).clone(),
                "num_skipped": torch.tensor([0]),
            }
        )
    return batches


def shard(batch: dict, rank: int, world_size: int) -> dict:
    out = {}
    for key, value in batch.items():
        if key == "num_skipped":
            out[key] = value
        else:
            per_rank = value.shape[0] // world_size
            out[key] = value[rank * per_rank : (rank + 1) * per_rank]
    return out


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--global_batch", type=int, default=4)
    parser.add_argument("--world_size", type=int, default=1)
    parser.add_argument("--freeze_schedule", default="text_layers<3; text_layers<4@0:2")
    parser.add_argument("--save_steps", type=int, default=0)
    parser.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (resume tests)")
    parser.add_argument("--resume", default=None)
    parser.add_argument("--adam_epsilon", type=float, default=1e-6)
    parser.add_argument("--torch_compile_backend", default=None, help="compile with this backend (default: eager)")
    args = parser.parse_args()

    set_seed(0)
    config = TVTSv2Config.from_preset("tiny", vision_config={"num_frames": 4})
    model = TVTSv2ForPreTraining(config)
    # Items are laid out so that the sampler hands rank r the r-th shard of every global batch.
    items = []
    for batch in synthetic_batches(config, args.steps, args.global_batch):
        items.extend(shard(batch, r, args.world_size) for r in range(args.world_size))

    training_args = TVTSv2TrainingArguments(
        output_dir=args.out,
        per_device_train_batch_size=1,
        max_steps=args.max_steps or args.steps,
        learning_rate=1e-3,
        clip_learning_rate=1e-3,
        weight_decay=0.05,
        adam_epsilon=args.adam_epsilon,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="steps" if args.save_steps else "no",
        save_steps=args.save_steps or 500,
        report_to="none",
        use_cpu=True,
        seed=0,
        data_seed=0,
        remove_unused_columns=False,
        train_sampling_strategy="sequential",
        dataloader_drop_last=True,
        disable_tqdm=True,
        freeze_schedule=args.freeze_schedule,
        torch_compile_backend=args.torch_compile_backend,
    )
    trainer = TVTSv2Trainer(
        model=model,
        args=training_args,
        train_dataset=ListDataset(items),
        data_collator=lambda features: features[0],
    )
    if args.max_steps and args.max_steps < args.steps:
        # Train as if the run were `steps` long (same schedule), but stop early: the resume test continues it.
        trainer.args.max_steps = args.steps

        class Stop(__import__("transformers").TrainerCallback):
            def on_step_end(self, a, state, control, **kw):
                if state.global_step >= args.max_steps:
                    control.should_training_stop = True
                    control.should_save = True

        trainer.add_callback(Stop())
    trainer.train(resume_from_checkpoint=args.resume)
    rank = int(os.environ.get("RANK", "0"))
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    torch.save(state, os.path.join(args.out, f"rank{rank}.pt"))
    if rank == 0:
        with open(os.path.join(args.out, "log_history.json"), "w") as handle:
            json.dump(trainer.state.log_history, handle)


if __name__ == "__main__":
    main()
