"""Linear probe (`run_eval.py --task linear-probe`): the L-BFGS logistic regression reaches its optimum, the λ sweep
follows the documented grid, and on real demo clips (colour labels) frozen features of a randomly initialised tiny
model are linearly separable far above chance. Features come from `tvtsv2 extract` or are computed on the fly."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import datasets
import pytest
import torch
import torch.nn.functional as F

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.data.demo_corpus import COLOURS, build_demo_corpus
from modeling_tvtsv2.tools.hub_export import _results_table, eval_results_to_hub
from modeling_tvtsv2.evaluation.linear_probe import COARSE_LAMBDAS, fit_logistic_regression, select_regularisation
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--probe-refine-steps", "2", "--probe-max-iter", "200"]


def test_lbfgs_fit_reaches_the_regularised_optimum():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(120, 6, generator=generator, dtype=torch.float64)
    labels = (features[:, :3] @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) > 0).long()
    labels[::7] = 2  # a third class
    weight_decay = 1e-2
    probe = fit_logistic_regression(features, labels, 3, weight_decay, tolerance=1e-9)
    weight = probe.weight.clone().requires_grad_(True)
    bias = probe.bias.clone().requires_grad_(True)
    loss = F.cross_entropy(features @ weight.T + bias, labels) + 0.5 * weight_decay * weight.pow(2).sum()
    loss.backward()
    # first-order optimality of the convex objective
    assert weight.grad.abs().max() < 1e-6 and bias.grad.abs().max() < 1e-6
    assert probe.weight.abs().max() > 0.1  # not the zero start
    strong = fit_logistic_regression(features, labels, 3, 1e3)
    assert strong.weight.abs().max() < 1e-2  # heavy regularisation shrinks W to ~0


def test_regularisation_sweep_grid_and_choice():
    generator = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 8, generator=generator, dtype=torch.float64) * 0.3
    labels = torch.arange(200) % 4
    features = centres[labels] + torch.randn(200, 8, generator=generator, dtype=torch.float64)
    best, history = select_regularisation(features[:150], labels[:150], features[150:], labels[150:], 4,
                                          refine_steps=2, max_iter=200)  # fmt: skip
    tried = [math.log10(entry["weight_decay"]) for entry in history]
    for value in COARSE_LAMBDAS:
        assert any(abs(math.log10(value) - t) < 1e-6 for t in tried)
    assert len(history) <= len(COARSE_LAMBDAS) + 4
    accuracy = {round(math.log10(e["weight_decay"]), 6): e["val_top1"] for e in history}
    assert accuracy[round(math.log10(best), 6)] == max(accuracy.values())
    # refinement: 2 rounds of halving steps (0.5, then 0.25 decades) around the best coarse value
    coarse_best = max((e for e in history if float(math.log10(e["weight_decay"])).is_integer()),
                      key=lambda e: (e["val_top1"], -e["val_loss"], e["weight_decay"]))  # fmt: skip
    refined = [t for t in tried if not float(t).is_integer()]
    assert refined and all(abs(t - math.log10(coarse_best["weight_decay"])) <= 0.75 + 1e-9 for t in refined)


@pytest.fixture(scope="module")
def colour_dataset(tmp_path_factory) -> Path:
    """Demo caption clips (real MPEG-4 files) labelled by the colour named in their caption: 8 classes."""
    root = tmp_path_factory.mktemp("probe")
    corpus = build_demo_corpus(root / "demo", num_videos=4, num_caption_videos=96, seed=5, validation_size=32)
    splits = datasets.load_from_disk(str(corpus.caption))
    names = list(COLOURS)
    features = datasets.ClassLabel(names=names)

    def label(row):
        return {"label": names.index(row["caption"].split()[1])}

    dataset = datasets.DatasetDict({"train": splits["train"].map(label), "test": splits["validation"].map(label)})
    dataset = dataset.cast_column("label", features)
    dataset.save_to_disk(str(root / "colours"))
    return root / "colours"


@pytest.fixture(scope="module")
def random_tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("random-tiny")
    torch.manual_seed(0)
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(folder)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(folder)
    return folder


def _run_eval(argv: list[str]) -> dict:
    sys.path.insert(0, str(ROOT / "training"))
    try:
        import run_eval
    finally:
        sys.path.pop(0)
    return run_eval.main(argv)


@pytest.mark.slow
def test_linear_probe_on_extracted_demo_features_beats_chance(colour_dataset, random_tiny_model, tmp_path):
    features = {}
    for split in ("train", "test"):
        features[split] = tmp_path / f"features-{split}"
        assert cli_main(["extract", "--model", str(random_tiny_model), "--input", str(colour_dataset),
                         "--split", split, "--keep-columns", "label", "--output", str(features[split]),
                         "--num-workers", "0", "--no-progress"]) == 0  # fmt: skip
    output = tmp_path / "probe.json"
    record = _run_eval(["--task", "linear-probe", "--train-features", str(features["train"]),
                        "--test-features", str(features["test"]), "--output", str(output),
                        "--dataset-display-name", "demo colours", *FAST])  # fmt: skip
    assert json.loads(output.read_text()) == record
    chance = 100.0 / 8
    metrics = record["metrics"]
    assert metrics["num_samples"] == 24 and record["num_classes"] == 8
    assert metrics["top1"] >= 4 * chance, metrics  # 50 %: a wide margin over 12.5 %
    assert metrics["top5"] >= metrics["top1"]
    assert record["model"] == str(random_tiny_model)  # recorded by `tvtsv2 extract`
    assert record["num_train"] + record["num_validation"] == 72
    assert record["protocol"]["weight_decay"] in [e["weight_decay"] for e in record["protocol"]["sweep_results"]]

    # the same protocol on features computed on the fly gives the same result
    again = _run_eval(["--task", "linear-probe", "--model", str(random_tiny_model), "--dataset", str(colour_dataset),
                       "--output", str(tmp_path / "again.json"), *FAST])  # fmt: skip
    assert again["metrics"]["top1"] == pytest.approx(metrics["top1"])

    # model-card ready
    results = eval_results_to_hub([record])
    assert {(r.task_type, r.metric_type) for r in results} == {
        ("video-classification", "accuracy"), ("video-classification", "top_5_accuracy")}  # fmt: skip
    assert all("Linear-probe" in r.task_name and r.dataset_name == "demo colours" for r in results)
    assert "| demo colours | linear probe |" in _results_table([record])


def test_linear_probe_user_errors(colour_dataset, tmp_path):
    with pytest.raises(SystemExit, match="--model and --dataset"):
        _run_eval(["--task", "linear-probe", "--output", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="not an output of `tvtsv2 extract`"):
        _run_eval(["--task", "linear-probe", "--train_features", str(colour_dataset),
                   "--test_features", str(colour_dataset), "--output", str(tmp_path / "x.json")])  # fmt: skip
