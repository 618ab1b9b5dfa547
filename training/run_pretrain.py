#!/usr/bin/env python
"""TVTSv2 pre-training (transcript sorting + video-text contrastive learning).

    python training/run_pretrain.py                       # the embedded demo: tiny model, CPU, a few minutes
    accelerate launch training/run_pretrain.py [args]     # any number of processes / GPUs
    accelerate launch --config_file configuration/launch/ddp.yaml training/run_pretrain.py --model b16 \\
        --transcript_dataset data/yt --caption_dataset data/webvid --output_dir runs/b16

All `transformers.TrainingArguments` are accepted, plus the TVTSv2 ones (`--freeze_schedule`,
`--clip_learning_rate`, `--lr_milestones`, ...); see `python training/run_pretrain.py --help`.
"""

from modeling_tvtsv2.pretraining import main

if __name__ == "__main__":
    main()
