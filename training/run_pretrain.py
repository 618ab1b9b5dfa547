#!/usr/bin/env python
"""TVTSv2 pre-training (transcript sorting + video-text contrastive learning).

    python training/run_pretrain.py                       # the embedded demo: tiny model, CPU, a few minutes
    python training/run_pretrain.py --recipe paper_b16 --transcript_dataset data/yt --caption_dataset data/webvid
    python training/run_pretrain.py --recipe paper_b16 --dry_run   # print the resolved run as JSON, train nothing
    accelerate launch training/run_pretrain.py [args]     # any number of processes / GPUs
    accelerate launch --config_file configuration/launch/ddp.yaml training/run_pretrain.py --model b16 \\
        --transcript_dataset data/yt --caption_dataset data/webvid --output_dir runs/b16

All `transformers.TrainingArguments` are accepted, plus the TVTSv2 ones (`--freeze_schedule`,
`--clip_learning_rate`, `--lr_milestones`, ...); see `python training/run_pretrain.py --help`. The same command is
installed as `tvtsv2 train` and runs as `python -m modeling_tvtsv2.pretraining`.
"""

from modeling_tvtsv2.pretraining.run import main

if __name__ == "__main__":
    raise SystemExit(main())
