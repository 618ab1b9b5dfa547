"""Pre-training TVTSv2: the trainer and its parts, and the run behind `training/run_pretrain.py` / `tvtsv2 train`
(also `python -m modeling_tvtsv2.pretraining`).

| module | what |
|---|---|
| `trainer` | `TVTSv2Trainer` (a `transformers.Trainer`): losses over the global batch, freezing, uint8 pixels, logging |
| `training_args` | `TVTSv2TrainingArguments`: `TrainingArguments` + the recipe's knobs |
| `freezing` | layer-freezing schedules (`text_layers<9`, `backbone@0:500`, ...) |
| `optimization` | the optimiser's parameter groups (new / CLIP-initialised, decay / no decay), the original's AdamW rule (`--optim adamw_original`), the milestone schedule |
| `distributed` | the differentiable all-gather of the contrastive loss |
| `torch_compile` | `--torch_compile`: one static-shape graph per batch shape |
| `streaming` | `--streaming`: the DataLoader of a streamed corpus, its position in checkpoints, streamable corpora |
| `monitoring` | skipped samples, loss parts, step time and data wait in the logs |
| `evaluation_loop` | sort accuracy and retrieval during and after training |
| `arguments` | the run's arguments: defaults, the demo, recipes, flags |
| `sources` | where the model and the corpora come from (presets, folders, CLIP, Hub ids) |
| `plan` | `--dry_run`: the resolved run as JSON |
| `run` | the run itself: `main` |

May import: everything below it (the Hub files, `from_clip`, `modeling_tvtsv2.tools`, `modeling_tvtsv2.data`,
`modeling_tvtsv2.evaluation`); only the command line (`modeling_tvtsv2.cli`) imports it.
"""
