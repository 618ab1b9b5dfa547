"""Fast checks of behaviour users rely on, each written against a one-line bug that once passed the fast suite
(issue 22; the closing note lists the mutation each test catches):

* the linear probe chooses λ on validation (never test) labels and fits its final probe on train + validation;
* YT-Temporal's denoised text gives each clean word to one ASR word only;
* `--dry_run` reports the mask ratio and global batch (gradient accumulation included) that training builds;
* `--lr_milestones` fractions are rounded to optimiser steps (0.58 of 100 steps is step 58);
* `--contrastive_gradient` reaches the loss: two real gloo processes (forked, so no import cost) see the gradient
  of the 2-process slow test (tests/test_contrastive_gradient.py);
* `tvtsv2 extract` merges shards in shard order, whatever order they finished in.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining, TVTSv2Model
from modeling_tvtsv2.data.subtitles import parse_yttemporal_json
from modeling_tvtsv2.evaluation.linear_probe import ProbeFeatures, run_linear_probe
from modeling_tvtsv2.pretraining.arguments import parse_arguments
from modeling_tvtsv2.pretraining.run import run_pretraining
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tensors here are tiny: with one thread, no OpenMP hand-offs (10x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------------------
# Linear probe: λ chosen on validation labels only; the final fit learns the validation rows too
# --------------------------------------------------------------------------------------------------------------


def _clusters(labels: list[int], centres: torch.Tensor, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels)
    x = centres[y] + noise * torch.randn(len(labels), centres.shape[1], generator=generator, dtype=torch.float64)
    return x.float(), y


def _probe(features: ProbeFeatures) -> dict:
    # a shorter sweep than the default (3 coarse values, 1 refinement round): the protocol is the same
    return run_linear_probe(features, coarse=(1e-4, 1e-2, 1.0), refine_steps=1, max_iter=100)


@pytest.mark.parametrize("with_validation_split", [True, False], ids=["validation-split", "held-out-train-rows"])
def test_probe_selection_does_not_depend_on_test_labels(with_validation_split):
    centres = torch.randn(3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    train = _clusters([i % 3 for i in range(30)], centres, 1.0, seed=1)
    validation = _clusters([i % 3 for i in range(30)], centres, 1.0, seed=2) if with_validation_split else None
    test_x, test_y = _clusters([i % 3 for i in range(30)], centres, 1.0, seed=3)
    # the same test videos with other labels: what the probe reports about them changes, its λ sweep must not
    relabelled = (test_y + 1 + torch.randint(0, 2, (30,), generator=torch.Generator().manual_seed(4))) % 3
    outcomes = [
        _probe(ProbeFeatures(train, (test_x, labels), validation, ["a", "b", "c"]))
        for labels in (test_y, relabelled)
    ]
    true_labels, other_labels = (outcome["protocol"] for outcome in outcomes)
    assert true_labels["weight_decay"] == other_labels["weight_decay"]
    assert true_labels["sweep_results"] == other_labels["sweep_results"]
    assert outcomes[0]["predictions"] == outcomes[1]["predictions"]  # the same probe ...
    assert outcomes[0]["metrics"]["top1"] != outcomes[1]["metrics"]["top1"]  # ... scored on other labels


def test_final_probe_learns_the_validation_rows():
    # class "c" exists only in the validation rows (and the test split): a final fit on train + validation, as the
    # protocol says, recognises it; one on the training rows alone never predicts it
    centres = 4.0 * torch.eye(3, 6, dtype=torch.float64)
    train = _clusters([i % 2 for i in range(20)], centres, 0.3, seed=1)
    validation = _clusters([i % 3 for i in range(15)], centres, 0.3, seed=2)
    test = _clusters([i % 3 for i in range(15)], centres, 0.3, seed=3)
    outcome = _probe(ProbeFeatures(train, test, validation, ["a", "b", "c"]))
    assert outcome["protocol"]["final_fit"] == "train + validation"
    assert outcome["predictions"] == test[1].tolist()
    assert outcome["metrics"]["top1"] == pytest.approx(100.0)


# --------------------------------------------------------------------------------------------------------------
# YT-Temporal denoised text: a repeated ASR word does not repeat the clean word
# --------------------------------------------------------------------------------------------------------------


def test_denoised_text_is_not_duplicated_over_repeated_asr_words():
    asr = "the cat cat sat down".split()
    annotation = {
        "subtitles": [{"word": word, "time": 0.5 * i} for i, word in enumerate(asr)],
        "denoised": [{"cleanasr": "The cat sat down."}],
    }
    words = parse_yttemporal_json(json.dumps(annotation)).words
    # each clean word once, at the time of the first ASR word it matches; the second "cat" gets nothing
    assert [(w.word, w.time) for w in words] == [("The", 0.0), ("cat", 0.5), ("sat", 1.5), ("down.", 2.0)]
    assert " ".join(w.word for w in words) == "The cat sat down."


# --------------------------------------------------------------------------------------------------------------
# --dry_run is the run: the mask ratio and the global batch training builds
# --------------------------------------------------------------------------------------------------------------


class _Built(Exception):
    """Raised in place of the training loop once the run has built its trainer."""


@pytest.fixture(scope="module")
def small_transcript_corpus(tmp_path_factory) -> Path:
    from modeling_tvtsv2.data.demo_corpus import build_demo_corpus

    root = tmp_path_factory.mktemp("corpus")
    return build_demo_corpus(root, num_videos=8, num_caption_videos=0, validation_size=0, seed=5).transcript


def test_dry_run_reports_the_mask_ratio_and_global_batch_that_training_builds(
    small_transcript_corpus, tmp_path, capsys, monkeypatch
):
    argv = [
        "--transcript_dataset", str(small_transcript_corpus), "--output_dir", str(tmp_path / "run"),
        "--mask_ratio", "0.25", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "3",
        "--num_frames", "4", "--num_transcripts", "2", "--dataloader_num_workers", "0",
        "--dataloader_pin_memory", "false", "--disable_tqdm", "true",
    ]  # fmt: skip
    assert TVTSv2Config.from_preset("tiny").pretraining_mask_ratio != 0.25  # the flag must win over the config
    run_pretraining(parse_arguments([*argv, "--dry_run"]))
    plan = json.loads(capsys.readouterr().out)

    built = {}

    def stop_before_training(trainer, *args, **kwargs):
        built["trainer"] = trainer
        raise _Built

    monkeypatch.setattr(TVTSv2Trainer, "train", stop_before_training)
    with pytest.raises(_Built):
        run_pretraining(parse_arguments(argv))
    trainer = built["trainer"]
    # the real data path: the training DataLoader's first batch, and the dataset's grouping into optimiser steps
    batch = next(iter(trainer.get_train_dataloader()))
    num_patches = trainer.model.config.vision_config.num_patches
    assert plan["mask_ratio"] == pytest.approx(1 - batch["keep_indices"].shape[1] / num_patches)
    dataset = trainer.train_dataset
    videos_per_step = sum(len(dataset[i]["rows"]) for i in range(len(dataset)) if dataset[i]["step"] == 0)
    assert trainer.args.gradient_accumulation_steps * trainer.args.world_size * batch["input_ids"].shape[0] == 6
    assert plan["batch_size"]["global_train"] == videos_per_step == 6
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


# --------------------------------------------------------------------------------------------------------------
# --lr_milestones: fractions rounded to steps, in the dry run and in the trainer's schedule
# --------------------------------------------------------------------------------------------------------------


def test_milestone_fractions_are_rounded_to_steps(tmp_path, capsys):
    argv = ["--transcript_dataset", "unused", "--output_dir", str(tmp_path), "--max_steps", "100",
            "--lr_milestones", "0.58,0.29", "--lr_gamma", "0.1", "--warmup_steps", "0"]  # fmt: skip
    run_pretraining(parse_arguments([*argv, "--dry_run"]))
    assert json.loads(capsys.readouterr().out)["lr_schedule"]["after_steps"] == [29, 58]

    torch.manual_seed(0)
    trainer = TVTSv2Trainer(model=TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny")),
                            args=parse_arguments([*argv, "--use_cpu", "true"]).training)  # fmt: skip
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    base = trainer.optimizer.param_groups[0]["lr"]
    multipliers = []
    for _ in range(60):
        multipliers.append(trainer.optimizer.param_groups[0]["lr"] / base)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    # 0.29 * 100 and 0.58 * 100 are 28.999... and 57.999... in floating point: the decays start at steps 29 and 58
    assert multipliers[28:30] == pytest.approx([1.0, 0.1]) and multipliers[57:59] == pytest.approx([0.1, 0.01])


# --------------------------------------------------------------------------------------------------------------
# --contrastive_gradient reaches the loss (two forked gloo processes; see tests/test_contrastive_gradient.py)
# --------------------------------------------------------------------------------------------------------------


def _synthetic_batch(config: TVTSv2Config, size: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    vision, k = config.vision_config, 4
    ids = torch.randint(1, 400, (size, k, 12), generator=generator)
    ids[..., 0], ids[..., -1] = config.text_config.bos_token_id, config.text_config.eos_token_id
    keep = [torch.randperm(vision.num_patches, generator=generator)[:8].sort().values for _ in range(size)]
    return {
        "pixel_values_videos": torch.randn(size, vision.num_frames, 3, vision.image_size, vision.image_size,
                                           generator=generator),
        "input_ids": ids, "attention_mask": torch.ones_like(ids), "keep_indices": torch.stack(keep),
        "sort_labels": torch.arange(k).expand(size, k).clone(),
    }  # fmt: skip


def _gradients(trainer: TVTSv2Trainer, batch: dict) -> dict[str, torch.Tensor]:
    model = trainer.model
    model.zero_grad(set_to_none=True)
    trainer.compute_loss(model, batch).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _rank(rank: int, world_size: int, store: str, trainers: dict, batch: dict, out: str) -> None:
    """One process of a DDP step: this rank's shard through the trainer's loss, gradients averaged as DDP does."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    per_rank = next(iter(batch.values())).shape[0] // world_size
    shard = {key: value[rank * per_rank : (rank + 1) * per_rank] for key, value in batch.items()}
    results = {}
    for mode, trainer in trainers.items():
        gradients = _gradients(trainer, shard)
        flat = torch.cat([gradient.flatten() for gradient in gradients.values()])  # one all-reduce, as DDP buckets
        dist.all_reduce(flat)
        averaged = (flat / world_size).split([gradient.numel() for gradient in gradients.values()])
        results[mode] = {name: a.view_as(g) for (name, g), a in zip(gradients.items(), averaged)}
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def test_contrastive_gradient_option_reaches_the_loss(tmp_path):
    config = TVTSv2Config.from_preset("tiny", vision_config={"num_frames": 2}, sort_loss_weight=0.0)
    trainers = {}
    for mode in ("global", "original"):
        torch.manual_seed(0)
        argv = ["--transcript_dataset", "unused", "--output_dir", str(tmp_path), "--freeze_schedule", "none",
                "--contrastive-gradient", mode, "--use_cpu", "true"]  # fmt: skip
        trainers[mode] = TVTSv2Trainer(model=TVTSv2ForPreTraining(config), args=parse_arguments(argv).training)
        trainers[mode].model.train()
    batch = _synthetic_batch(config, size=4)

    world_size, out = 2, str(tmp_path / "ddp.pt")
    context = multiprocessing.get_context("fork")  # the children inherit the imports: no start-up cost
    processes = [
        context.Process(target=_rank, args=(rank, world_size, str(tmp_path / "store"), trainers, batch, out))
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    ddp = torch.load(out, weights_only=True)

    whole_batch = _gradients(trainers["global"], batch)  # one process holding the global batch
    scale = max(float(g.abs().max()) for g in whole_batch.values())
    assert whole_batch.keys() == ddp["global"].keys() == ddp["original"].keys()
    for name, expected in whole_batch.items():
        # "global": the one-process gradient; "original": the contrastive gradient / world size (sort weight 0)
        assert float((ddp["global"][name] - expected).abs().max()) <= 1e-5 * scale, name
        assert float((ddp["original"][name] - expected / world_size).abs().max()) <= 1e-5 * scale, name


# --------------------------------------------------------------------------------------------------------------
# tvtsv2 extract: shards merged in shard order, whatever order they finished in
# --------------------------------------------------------------------------------------------------------------


def test_extract_merges_shards_in_shard_order_not_completion_order(tmp_path):
    from modeling_tvtsv2.evaluation.extract import extract_features, open_video_table
    from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(4):  # distinct names (the merged order shows in video_id), short real files
        shutil.copy(DATA / "park.mp4", videos / f"clip_{i}.mp4")
    torch.manual_seed(0)
    model = TVTSv2Model(TVTSv2Config.from_preset("tiny")).eval()
    processor = TVTSv2Processor.from_defaults(image_size=64, num_frames=2)
    settings = dict(shard_size=1, batch_size=1, show_progress=False)
    extract_features(model, processor, open_video_table(videos), tmp_path / "one-pass", **settings)

    # an earlier run (say, two processes) left shards 0-2, finished in the order 2, 1, 0; the rerun adds shard 3
    class StopAtLastVideo:
        def __init__(self, reader):
            self.reader = reader

        def __call__(self, index: int):
            if index == 3:
                raise KeyboardInterrupt
            return self.reader(index)

    interrupted = open_video_table(videos)
    interrupted.reader = StopAtLastVideo(interrupted.reader)
    with pytest.raises(KeyboardInterrupt):
        extract_features(model, processor, interrupted, tmp_path / "out", **settings)
    shards = tmp_path / "out.partial" / "shards"
    held = tmp_path / "held"
    shutil.move(str(shards), str(held))
    shards.mkdir()
    now = time.time()
    for order, name in enumerate(["shard-00002", "shard-00001", "shard-00000"]):
        shutil.copytree(held / name, shards / name, copy_function=shutil.copy)
        stamp = now - 100 + 10 * order
        for path in [*(shards / name).rglob("*"), shards / name]:
            os.utime(path, (stamp, stamp))
    extract_features(model, processor, open_video_table(videos), tmp_path / "out", **settings)

    import datasets

    one_pass = datasets.load_from_disk(str(tmp_path / "one-pass")).with_format("numpy")[:]
    resumed = datasets.load_from_disk(str(tmp_path / "out")).with_format("numpy")[:]
    assert list(resumed["video_id"]) == list(one_pass["video_id"]) == [f"clip_{i}.mp4" for i in range(4)]
    np.testing.assert_array_equal(resumed["video_embedding"], one_pass["video_embedding"])
