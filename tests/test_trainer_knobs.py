"""TVTSv2Trainer honours transformers' knobs (`--optim`, `optimizer_cls_and_kwargs`, warmup with `lr_milestones`,
evaluation speed metrics and `compute_metrics`, videos per second, `--log_level`), the recipe's defaults, the
skipped-sample guard (real PyAV decoding of real and unreadable files), empty evaluation batches, and logs the time
each step waits for data."""

import logging
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from datasets import Dataset

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer
from modeling_tvtsv2.pretraining.trainer import TooManySkippedSamplesError, TVTSv2Trainer, TVTSv2TrainingArguments
from modeling_tvtsv2.pretraining.training_args import default_dataloader_num_workers

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_synthetic import ListDataset, synthetic_batches  # noqa: E402

FRAMES = 4


def _config() -> TVTSv2Config:
    return TVTSv2Config.from_preset("tiny", vision_config={"num_frames": FRAMES})


def _args(tmp_path: Path, **overrides) -> TVTSv2TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, seed=0, remove_unused_columns=False,
        disable_tqdm=True, save_strategy="no", freeze_schedule="none", per_device_train_batch_size=1,
        per_device_eval_batch_size=1, train_sampling_strategy="sequential",
    )  # fmt: skip
    settings.update(overrides)
    return TVTSv2TrainingArguments(**settings)


def _synthetic_trainer(tmp_path: Path, steps: int = 2, batch: int = 3, collate=None, **overrides) -> TVTSv2Trainer:
    """Pre-collated synthetic batches of `batch` videos, one per dataset item (as MixedCorpusBatchDataset)."""
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(_config())
    items = synthetic_batches(model.config, steps, batch)
    args = _args(tmp_path, max_steps=steps, **overrides)
    return TVTSv2Trainer(
        model=model, args=args, train_dataset=ListDataset(items), eval_dataset=ListDataset(items),
        data_collator=collate or (lambda features: features[0]),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# Defaults and optimiser
# --------------------------------------------------------------------------------------------------------------


def test_recipe_defaults(tmp_path):
    args = TVTSv2TrainingArguments(output_dir=str(tmp_path))
    assert args.max_grad_norm == 0.0  # the original never clips
    recipe = (args.learning_rate, args.clip_learning_rate, args.weight_decay, args.adam_epsilon)
    assert recipe == (1e-4, 1e-7, 0.05, 1e-6)
    assert args.contrastive_gradient == "global" and args.max_skip_fraction == 0.5
    assert args.dataloader_num_workers == -1  # automatic, resolved by the trainer


def test_dataloader_workers_default_depends_on_video_decoding(tmp_path, monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for cores, processes, workers in [(2, None, 1), (1, None, 0), (64, None, 16), (64, "4", 15), (128, "8", 15),
                                      (16, "8", 1), (16, "2", 7)]:
        with monkeypatch.context() as patch:
            patch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
            if processes is not None:  # `accelerate launch` / torchrun: the cores are shared by the local processes
                patch.setenv("LOCAL_WORLD_SIZE", processes)
            assert default_dataloader_num_workers(True) == workers, (cores, processes)
            assert default_dataloader_num_workers(False) == 0
    collator = TVTSv2PretrainingCollator(build_clip_tokenizer(), num_frames=FRAMES, image_size=64, patch_size=16)
    decoding = TVTSv2Trainer(model=TVTSv2ForPreTraining(_config()), args=_args(tmp_path), data_collator=collator)
    assert decoding.args.dataloader_num_workers == default_dataloader_num_workers(True)
    assert _synthetic_trainer(tmp_path).args.dataloader_num_workers == 0
    explicit = _synthetic_trainer(tmp_path, dataloader_num_workers=3)
    assert explicit.args.dataloader_num_workers == 3


def test_optim_flag_and_optimizer_cls_and_kwargs_keep_the_recipe_groups(tmp_path):
    trainer = _synthetic_trainer(tmp_path, optim="sgd")
    optimizer = trainer.create_optimizer()
    assert type(optimizer) is torch.optim.SGD
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [1e-7, 1e-4]

    model = TVTSv2ForPreTraining(_config())
    trainer = TVTSv2Trainer(
        model=model, args=_args(tmp_path), optimizer_cls_and_kwargs=(torch.optim.RMSprop, {"alpha": 0.9})
    )
    optimizer = trainer.create_optimizer()
    assert type(optimizer) is torch.optim.RMSprop
    assert all(g["alpha"] == 0.9 for g in optimizer.param_groups)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [1e-7, 1e-4]
    assert sorted({g["weight_decay"] for g in optimizer.param_groups}) == [0.0, 0.05]


@pytest.mark.parametrize("warmup", [4, 0.4], ids=["steps", "ratio"])
def test_warmup_applies_before_lr_milestones(tmp_path, warmup):
    trainer = _synthetic_trainer(tmp_path, lr_milestones="0.6,0.8", warmup_steps=warmup)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    multipliers = []
    for _ in range(10):
        multipliers.append(trainer.optimizer.param_groups[0]["lr"] / 1e-4)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    expected = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    assert multipliers == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------------------------------------------
# Metrics and logging
# --------------------------------------------------------------------------------------------------------------


def test_evaluate_reports_speed_and_runs_compute_metrics(tmp_path):
    seen = {}

    def compute_metrics(prediction):
        video, text, sort_logits = prediction.predictions
        seen["shapes"] = (video.shape, text.shape, sort_logits.shape, prediction.label_ids.shape)
        return {"mean_sort_label": float(prediction.label_ids.mean())}

    # items are pre-built batches of 3 videos: the real eval batch size is 3 (issue 20 item 2)
    trainer = _synthetic_trainer(tmp_path, steps=2, batch=3, per_device_eval_batch_size=3)
    trainer.eval_dataset.groups_per_step = 1  # pre-built batches, as MixedCorpusBatchDataset's
    trainer.compute_metrics = compute_metrics
    metrics = trainer.evaluate()
    for key in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second"):
        assert metrics[key] > 0, key
    # 2 batches of 3 videos: samples are videos
    assert metrics["eval_samples_per_second"] == pytest.approx(6 / metrics["eval_runtime"], rel=0.01)
    assert metrics["eval_steps_per_second"] == pytest.approx(2 / metrics["eval_runtime"], rel=0.01)
    assert metrics["eval_mean_sort_label"] == pytest.approx(1.5)  # labels 0..3
    projection = trainer.model.config.projection_dim
    assert seen["shapes"] == ((6, projection), (6, projection), (6, 4, 4), (6, 4))
    assert metrics["eval_num_videos"] == 6 and metrics["eval_skipped_samples"] == 0


def test_train_samples_per_second_counts_videos(tmp_path):
    trainer = _synthetic_trainer(tmp_path, steps=2, batch=3)  # 2 dataset items = 2 batches of 3 videos
    metrics = trainer.train().metrics
    assert metrics["train_samples_per_second"] * metrics["train_runtime"] == pytest.approx(6, rel=0.01)


def test_step_and_data_wait_times_are_logged(tmp_path):
    """A slow collate makes the data wait most of the step; only orderings and the sleep's lower bound are checked.
    (The DataLoader wrapper fetches one batch ahead, so a step may wait for its own and the next batch.)"""
    delay, steps = 0.3, 3

    def slow_collate(features):
        time.sleep(delay)
        return features[0]

    trainer = _synthetic_trainer(tmp_path, steps=steps, batch=2, collate=slow_collate, logging_steps=1)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == steps
    for entry in logs:
        assert entry["step_time_s"] >= entry["data_wait_s"] >= 0.0
        assert entry["data_wait_fraction"] == pytest.approx(entry["data_wait_s"] / entry["step_time_s"], abs=2e-3)
    # every batch was collated while the loop waited for data
    assert sum(entry["data_wait_s"] for entry in logs) >= steps * delay


def test_log_level_is_honoured_without_configuring_the_root_logger(tmp_path):
    root_handlers = list(logging.getLogger().handlers)
    package = logging.getLogger("modeling_tvtsv2")
    try:
        _synthetic_trainer(tmp_path, log_level="error")
        assert package.getEffectiveLevel() == logging.ERROR
        _synthetic_trainer(tmp_path, log_level="info")
        assert logging.getLogger("modeling_tvtsv2.pretraining.trainer").getEffectiveLevel() == logging.INFO
        assert logging.getLogger().handlers == root_handlers  # no logging.basicConfig
    finally:
        package.setLevel(logging.NOTSET)


# --------------------------------------------------------------------------------------------------------------
# Skipped samples (real videos, real PyAV, real 🤗 Datasets)
# --------------------------------------------------------------------------------------------------------------

SEGMENTS = [
    {"start": 0.2, "end": 1.2, "text": "alpha one"},
    {"start": 2.6, "end": 3.8, "text": "bravo two"},
    {"start": 5.2, "end": 6.2, "text": "charlie three"},
    {"start": 7.6, "end": 8.8, "text": "delta four"},
]


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    """A real 10 s, 5 fps MPEG-4 file (a grey ramp)."""
    path = tmp_path_factory.mktemp("video") / "ramp.mp4"
    fps, frames, size = 5, 50, 64
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps, 1))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            array = np.full((size, size, 3), round(255 * i / (frames - 1)), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def _rows(video_bytes: bytes, readable: list[bool]) -> Dataset:
    return Dataset.from_list(
        [
            {"video": {"bytes": video_bytes if ok else b"not a video", "path": None}, "video_id": f"v{i}",
             "duration": 10.0, "segments": SEGMENTS}
            for i, ok in enumerate(readable)
        ]
    )  # fmt: skip


def _collator(training: bool) -> TVTSv2PretrainingCollator:
    return TVTSv2PretrainingCollator(
        build_clip_tokenizer(), num_frames=FRAMES, image_size=64, patch_size=16, mask_ratio=0.5, training=training,
        seed=0,
    )  # fmt: skip


def _video_trainer(tmp_path: Path, train_rows=None, eval_rows=None, **overrides) -> TVTSv2Trainer:
    torch.manual_seed(0)
    args = _args(tmp_path, per_device_train_batch_size=2, per_device_eval_batch_size=2, **overrides)
    return TVTSv2Trainer(
        model=TVTSv2ForPreTraining(_config()), args=args, train_dataset=train_rows, eval_dataset=eval_rows,
        data_collator=_collator(True), eval_data_collator=_collator(False),
    )  # fmt: skip


def test_unreadable_corpus_stops_with_the_count_and_the_reason(tmp_path, video_bytes):
    trainer = _video_trainer(tmp_path, train_rows=_rows(video_bytes, [False] * 8), max_steps=4)
    with pytest.raises(TooManySkippedSamplesError, match=r"2 of the 2 samples .*decode_error: 2"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_a_few_skipped_samples_do_not_stop_training(tmp_path, video_bytes):
    trainer = _video_trainer(
        tmp_path, train_rows=_rows(video_bytes, [True, True, False, True]), max_steps=2, logging_steps=1
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert [e["skipped_samples"] for e in trainer.state.log_history if "loss" in e] == [0, 1]


def test_evaluation_skips_and_counts_a_batch_whose_samples_were_all_skipped(tmp_path, video_bytes):
    trainer = _video_trainer(tmp_path, eval_rows=_rows(video_bytes, [False, False, True, True]))
    metrics = trainer.evaluate()
    assert metrics["eval_empty_batches"] == 1 and metrics["eval_skipped_samples"] == 2
    assert metrics["eval_num_videos"] == 2 and "eval_sort_accuracy" in metrics
