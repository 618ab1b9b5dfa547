"""`TVTSv2Trainer` keeps `Trainer`'s contract (issue 20, items 2 and 3): the real batch size is what is recorded,
and evaluation goes through Trainer's `evaluate()` / `predict()`."""

import json
import sys
from pathlib import Path

import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config
from modeling_tvtsv2.modeling_tvtsv2 import TVTSv2ForPreTraining
from modeling_tvtsv2.pretraining.trainer import TVTSv2Trainer, TVTSv2TrainingArguments

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from train_synthetic import ListDataset, synthetic_batches  # noqa: E402


VIDEOS_PER_BATCH = 3


class PreBatchedDataset(ListDataset):
    """Items are whole per-device batches, as `MixedCorpusBatchDataset`'s (which `groups_per_step` marks)."""

    groups_per_step = 1


def _trainer(tmp_path: Path, steps: int = 2, **overrides) -> tuple[TVTSv2Trainer, list[dict]]:
    torch.manual_seed(0)
    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny", vision_config={"num_frames": 4}))
    items = synthetic_batches(model.config, steps, VIDEOS_PER_BATCH)
    settings = dict(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, seed=0, remove_unused_columns=False,
        disable_tqdm=True, save_strategy="no", freeze_schedule="none", max_steps=steps, dataloader_num_workers=0,
        per_device_train_batch_size=VIDEOS_PER_BATCH, per_device_eval_batch_size=1,
    )  # fmt: skip
    settings.update(overrides)
    trainer = TVTSv2Trainer(
        model=model, args=TVTSv2TrainingArguments(**settings), train_dataset=PreBatchedDataset(items),
        eval_dataset=PreBatchedDataset(items), data_collator=lambda features: features[0],
    )  # fmt: skip
    return trainer, items


def test_the_real_batch_size_is_recorded(tmp_path):
    trainer, items = _trainer(tmp_path)
    loader = trainer.get_train_dataloader()
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["pixel_values_videos"].shape[0] == VIDEOS_PER_BATCH  # one item a batch
    assert trainer.num_examples(loader) == 2 * VIDEOS_PER_BATCH  # videos, not items
    trainer.train()
    trainer.save_state()
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["train_batch_size"] == VIDEOS_PER_BATCH and state["global_step"] == 2
    trainer.save_model()
    saved = torch.load(tmp_path / "training_args.bin", weights_only=False)
    assert saved.per_device_train_batch_size == VIDEOS_PER_BATCH
    assert trainer.get_total_train_batch_size(trainer.args) == VIDEOS_PER_BATCH  # one process, no accumulation


def test_evaluate_and_predict_keep_the_trainer_contract(tmp_path):
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self):
            self.evaluated = []

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self.evaluated.append(dict(metrics))

    seen = []

    def compute_metrics(prediction):
        seen.append(prediction)
        return {"videos_seen": float(len(prediction.predictions[0]))}

    trainer, items = _trainer(tmp_path, per_device_eval_batch_size=VIDEOS_PER_BATCH)
    recorder = Recorder()
    trainer.add_callback(recorder)
    trainer.compute_metrics = compute_metrics
    metrics = trainer.evaluate(metric_key_prefix="held_out")
    assert recorder.evaluated == [metrics]  # callbacks see the metrics evaluate() returns
    assert all(key.startswith("held_out_") for key in metrics if key != "epoch"), sorted(metrics)  # log() adds epoch
    for key in ("loss", "t2v_R1", "v2t_R1", "sort_accuracy", "num_videos", "videos_seen", "runtime"):
        assert f"held_out_{key}" in metrics, key
    assert metrics["held_out_num_videos"] == metrics["held_out_videos_seen"] == 2 * VIDEOS_PER_BATCH
    # compute_metrics gets Trainer's EvalPrediction: predictions = the model outputs, label_ids = the sort labels
    video, text, sort_logits = seen[0].predictions
    expected_labels = torch.cat([item["sort_labels"] for item in items]).numpy()
    assert video.shape[0] == text.shape[0] == sort_logits.shape[0] == 2 * VIDEOS_PER_BATCH
    assert (seen[0].label_ids == expected_labels).all()

    # predict(): the same predictions and metrics under its own prefix
    prediction = trainer.predict(trainer.eval_dataset, metric_key_prefix="test")
    assert (prediction.label_ids == expected_labels).all()
    assert prediction.metrics["test_t2v_R1"] == metrics["held_out_t2v_R1"]
    assert prediction.metrics["test_sort_accuracy"] == metrics["held_out_sort_accuracy"]

    # eval_accumulation_steps moves the gathered outputs to the CPU as it goes: the same numbers
    trainer.args.eval_accumulation_steps = 1
    accumulated = trainer.evaluate(metric_key_prefix="held_out")
    for key in ("held_out_loss", "held_out_t2v_R1", "held_out_sort_accuracy", "held_out_sort_exact_match"):
        assert accumulated[key] == pytest.approx(metrics[key]), key
