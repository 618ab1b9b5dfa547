"""Linear probe on frozen TVTSv2 video features (`run_eval.py --task linear-probe`).

The original TVTSv2 code has **no linear-probe code**: the paper's Table 4 (HMDB-51, UCF-101, K400) cannot be
reproduced from it. This module implements the protocol of CLIP's linear-probe evaluation (Radford et al. 2021,
appendix A.3), in torch:

1. **Features**: the L2-normalised video embeddings (projected, as `tvtsv2 extract` writes them), frozen. They come
   from `tvtsv2 extract` outputs (one folder per split, label column kept with `--keep-columns`) or are computed on
   the fly from a `DatasetDict` of videos.
2. **Classifier**: multinomial logistic regression `logits = x W^T + b`, loss = mean cross-entropy
   `+ (λ / 2) ||W||²` (the bias is not regularised), fitted with full-batch L-BFGS (strong-Wolfe line search) from
   zero, in float64, until the gradient is below `1e-6` or `max_iter` iterations.
3. **λ sweep on a validation split**: λ ∈ {10⁻⁶, 10⁻⁵, ..., 10²} (9 log-spaced values), then `refine_steps` rounds
   that try half the previous step in log₁₀ space on both sides of the best λ (0.5, 0.25, 0.125 decades, ...). The
   best λ has the highest validation top-1 accuracy; ties go to the lower validation loss, then the larger λ. When
   the dataset has no validation split, `validation_fraction` of the training rows (a seeded random draw) is held out.
4. **Final fit** on train + validation with the chosen λ, top-1 / top-5 accuracy on the test split.

CLIP swept sklearn's `C` (the inverse of λ on a summed loss) over [10⁻⁶, 10⁶] with 96 steps; the coarse-then-
refine search here (as in CLIP's released linear-probe notebook and the CLIP-benchmark code) needs far fewer fits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.utils import logging

from .embedding import embed_videos, whole_videos
from .extract import MANIFEST_NAME, ExtractionError, load_model_for_command, open_video_table
from .metrics import topk_accuracy


logger = logging.get_logger(__name__)

COARSE_LAMBDAS: tuple[float, ...] = tuple(10.0**e for e in range(-6, 3))
"""The coarse sweep of the regularisation strength λ (on the mean cross-entropy)."""

__all__ = [
    "COARSE_LAMBDAS",
    "LinearProbe",
    "LinearProbeArguments",
    "ProbeFeatures",
    "fit_logistic_regression",
    "run_linear_probe",
    "select_regularisation",
]


@dataclass
class LinearProbe:
    """A fitted multinomial logistic-regression head."""

    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]
    weight_decay: float
    iterations: int

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features.to(self.weight.dtype) @ self.weight.T + self.bias


def _objective(weight, bias, features, labels, weight_decay):
    logits = features @ weight.T + bias
    return F.cross_entropy(logits, labels) + 0.5 * weight_decay * weight.pow(2).sum()


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    max_iter: int = 1000,
    tolerance: float = 1e-6,
) -> LinearProbe:
    """Full-batch L-BFGS fit of `mean CE + (weight_decay / 2) ||W||²`, from zero, in float64 on one thread
    (deterministic, and the fastest on a busy machine)."""
    # One thread: a small full-batch problem gains nothing from more, and on a busy machine torch's default (one
    # thread per core) made each L-BFGS step ~10x slower (1.2 s vs 13.6 s per 100 steps, issue 21).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_lbfgs(features, labels, num_classes, weight_decay, max_iter, tolerance)
    finally:
        torch.set_num_threads(threads)


def _fit_lbfgs(features, labels, num_classes: int, weight_decay: float, max_iter: int, tolerance: float):
    features = features.double()
    labels = labels.long()
    weight = torch.zeros(num_classes, features.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure():
        optimizer.zero_grad()
        loss = _objective(weight, bias, features, labels, weight_decay)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    iterations = optimizer.state[optimizer._params[0]].get("n_iter", 0)
    return LinearProbe(weight.detach(), bias.detach(), float(weight_decay), int(iterations))


def _accuracy_and_loss(probe: LinearProbe, features, labels) -> tuple[float, float]:
    logits = probe.logits(features.double())
    accuracy = float((logits.argmax(dim=-1) == labels).double().mean() * 100.0)
    return accuracy, float(F.cross_entropy(logits, labels.long()))


def select_regularisation(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    num_classes: int,
    coarse: Sequence[float] = COARSE_LAMBDAS,
    refine_steps: int = 4,
    max_iter: int = 1000,
) -> tuple[float, list[dict[str, float]]]:
    """The λ sweep of the module docstring. Returns `(best λ, [{"weight_decay", "val_top1", "val_loss"}, ...])`."""
    tried: dict[float, tuple[float, float]] = {}

    def evaluate(log_lambda: float) -> None:
        key = round(log_lambda, 6)
        if key not in tried:
            probe = fit_logistic_regression(train_x, train_y, num_classes, 10.0**key, max_iter=max_iter)
            tried[key] = _accuracy_and_loss(probe, val_x, val_y)

    def best() -> float:
        # highest accuracy, then lowest loss, then the larger λ (simpler model)
        return max(tried, key=lambda k: (tried[k][0], -tried[k][1], k))

    for value in coarse:
        evaluate(math.log10(value))
    step = (math.log10(coarse[1]) - math.log10(coarse[0])) if len(coarse) > 1 else 1.0
    for _ in range(refine_steps):
        step /= 2
        centre = best()
        evaluate(centre - step)
        evaluate(centre + step)
    history = [
        {"weight_decay": 10.0**k, "val_top1": round(acc, 4), "val_loss": round(loss, 6)}
        for k, (acc, loss) in sorted(tried.items())
    ]
    return 10.0 ** best(), history


# --------------------------------------------------------------------------------------------------------------
# Features and labels
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ProbeFeatures:
    """Features and integer labels of the train / validation (optional) / test splits."""

    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor] | None
    class_names: list[str]
    source: dict[str, Any] = field(default_factory=dict)


def _label_ids(split_labels: dict[str, list[Any]], class_names: Sequence[str] | None, feature) -> tuple:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        names = list(class_names or feature.names)
        return names, {s: torch.tensor(v, dtype=torch.long) for s, v in split_labels.items()}
    values = [v for labels in split_labels.values() for v in labels]
    if values and isinstance(values[0], str):
        names = list(class_names) if class_names else sorted(set(values))
        lookup = {name: i for i, name in enumerate(names)}
        unknown = sorted(set(values) - set(lookup))
        if unknown:
            raise ExtractionError(f"labels not among the class names: {unknown[:10]}")
        return names, {s: torch.tensor([lookup[v] for v in labels]) for s, labels in split_labels.items()}
    ids = {s: torch.tensor(v, dtype=torch.long) for s, v in split_labels.items()}
    num_classes = max(int(t.max()) for t in ids.values() if len(t)) + 1
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    return names, ids


def _features_from_extraction(folder: str, label_column: str) -> tuple[torch.Tensor, list[Any], Any]:
    import datasets

    if not os.path.isfile(os.path.join(folder, MANIFEST_NAME)):
        raise ExtractionError(f"{folder}: not an output of `tvtsv2 extract` (no {MANIFEST_NAME})")
    dataset = datasets.load_from_disk(folder)
    if label_column not in dataset.column_names:
        raise ExtractionError(
            f"{folder}: no {label_column!r} column (extract with --keep-columns {label_column}); "
            f"columns: {dataset.column_names}"
        )
    if "start" in dataset.column_names:
        raise ExtractionError(f"{folder}: windowed features; a linear probe needs one row per video")
    embeddings = dataset.with_format("numpy", columns=["video_embedding"])[:]["video_embedding"]
    labels = dataset.select_columns([label_column]).to_dict()[label_column]
    return torch.from_numpy(np.asarray(embeddings, dtype=np.float32)), labels, dataset.features[label_column]


def features_from_extractions(
    folders: dict[str, str], label_column: str = "label", class_names: Sequence[str] | None = None
) -> ProbeFeatures:
    """Reads `{"train": DIR, "test": DIR, ["validation": DIR]}` written by `tvtsv2 extract --keep-columns LABEL`."""
    fingerprints = {split: _recorded_settings(folder).get("model_fingerprint") for split, folder in folders.items()}
    if len(set(fingerprints.values())) > 1:  # features of two models live in two spaces: the probe would be chance
        described = ", ".join(f"{split} {folders[split]}: {value}" for split, value in fingerprints.items())
        raise ExtractionError(f"the features were made by different models (model fingerprints {described})")
    loaded = {split: _features_from_extraction(folder, label_column) for split, folder in folders.items()}
    names, ids = _label_ids({s: v[1] for s, v in loaded.items()}, class_names, loaded["train"][2])
    pairs = {s: (loaded[s][0], ids[s]) for s in loaded}
    return ProbeFeatures(pairs["train"], pairs["test"], pairs.get("validation"), names, {"features": folders})


def features_on_the_fly(
    model,
    processor,
    dataset_path: str,
    label_column: str = "label",
    video_column: str = "video",
    class_names: Sequence[str] | None = None,
    video_root: str | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    video_kwargs: dict[str, Any] | None = None,
    max_samples: int | None = None,
) -> ProbeFeatures:
    """Embeds the `train`, `test` (and `validation`, if present) splits of a saved `DatasetDict` of videos."""
    import datasets

    splits = datasets.load_from_disk(dataset_path)
    if not isinstance(splits, datasets.DatasetDict) or not {"train", "test"} <= set(splits):
        found = sorted(splits) if isinstance(splits, datasets.DatasetDict) else "a single Dataset"
        raise ExtractionError(f"--dataset {dataset_path}: needs 'train' and 'test' splits (found {found})")
    loaded = {}
    for split in ("train", "validation", "test"):
        if split not in splits:
            continue
        table = open_video_table(
            dataset_path, split=split, video_column=video_column, keep_columns=[label_column], video_root=video_root
        )
        count = len(table) if max_samples is None else min(max_samples, len(table))
        clips = embed_videos(
            model, processor, table.reader, whole_videos(range(count)), batch_size=batch_size,
            num_workers=num_workers, video_kwargs=video_kwargs, on_error="skip",
        )  # fmt: skip
        if clips.skipped:
            logger.warning("%s/%s: skipped %d unreadable videos", dataset_path, split, len(clips.skipped))
        labels = [table.extra_columns[label_column][i] for i, _, _ in clips.items]
        loaded[split] = (clips.embeddings, labels, table.extra_features[label_column])
    names, ids = _label_ids({s: v[1] for s, v in loaded.items()}, class_names, loaded["train"][2])
    pairs = {s: (loaded[s][0], ids[s]) for s in loaded}
    return ProbeFeatures(pairs["train"], pairs["test"], pairs.get("validation"), names, {"dataset": dataset_path})


# --------------------------------------------------------------------------------------------------------------
# Protocol
# --------------------------------------------------------------------------------------------------------------


def run_linear_probe(
    features: ProbeFeatures,
    validation_fraction: float = 0.2,
    seed: int = 0,
    coarse: Sequence[float] = COARSE_LAMBDAS,
    refine_steps: int = 4,
    max_iter: int = 1000,
    ks: Sequence[int] = (1, 5),
) -> dict[str, Any]:
    """The protocol of the module docstring. Returns `{"metrics": {"top1", "top5", "num_samples"}, "protocol":
    {...}, "num_classes", "class_names", "num_train", "num_validation", "num_test", "predictions"}`."""
    train_x, train_y = features.train
    test_x, test_y = features.test
    num_classes = len(features.class_names)
    if len(train_x) < 2 or len(test_x) == 0:
        raise ExtractionError("the linear probe needs at least 2 training and 1 test videos")
    if features.validation is not None:
        (fit_x, fit_y), (val_x, val_y) = features.train, features.validation
        held_out = "validation split"
    else:
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
        n_val = min(max(1, round(validation_fraction * len(train_x))), len(train_x) - 1)
        val_idx, fit_idx = order[:n_val], order[n_val:]
        fit_x, fit_y, val_x, val_y = train_x[fit_idx], train_y[fit_idx], train_x[val_idx], train_y[val_idx]
        held_out = f"{n_val} training rows (fraction {validation_fraction}, seed {seed})"
    best, history = select_regularisation(
        fit_x, fit_y, val_x, val_y, num_classes, coarse=coarse, refine_steps=refine_steps, max_iter=max_iter
    )
    all_x, all_y = torch.cat([fit_x, val_x]), torch.cat([fit_y, val_y])
    probe = fit_logistic_regression(all_x, all_y, num_classes, best, max_iter=max_iter)
    logits = probe.logits(test_x.double())
    ks = [k for k in ks if k <= num_classes] or [1]
    return {
        "metrics": topk_accuracy(logits.numpy(), test_y.numpy(), ks=ks),
        "protocol": {
            "classifier": "multinomial logistic regression, full-batch L-BFGS (torch, float64)",
            "objective": "mean cross-entropy + weight_decay / 2 * ||W||^2 (bias not regularised)",
            "sweep": "coarse 1e-6..1e2 (decades), then halving log10 steps around the best "
            f"({refine_steps} rounds); selection on {held_out} by top-1, then loss",
            "weight_decay": best,
            "sweep_results": history,
            "final_fit": "train + validation",
            "final_iterations": probe.iterations,
        },
        "num_classes": num_classes,
        "class_names": features.class_names,
        "num_train": len(fit_x),
        "num_validation": len(val_x),
        "num_test": len(test_x),
        "predictions": logits.argmax(dim=-1).tolist(),
    }


# --------------------------------------------------------------------------------------------------------------
# `run_eval.py --task linear-probe`
# --------------------------------------------------------------------------------------------------------------


@dataclass
class LinearProbeArguments:
    """Options of `--task linear-probe` (parsed with `EvalArguments` by `run_eval.py` / `tvtsv2 eval`)."""

    _argument_group_name = "linear probe (--task linear-probe)"

    train_features: str | None = field(
        default=None, metadata={"help": "`tvtsv2 extract` output of the train split (instead of --dataset)"}
    )
    validation_features: str | None = field(
        default=None, metadata={"help": "... of the validation split (default: hold out part of train)"}
    )
    test_features: str | None = field(default=None, metadata={"help": "... of the test split"})
    probe_validation_fraction: float = field(default=0.2, metadata={"help": "held out when there is no validation"})
    probe_refine_steps: int = field(default=4, metadata={"help": "refinement rounds of the λ sweep"})
    probe_max_iter: int = field(default=1000, metadata={"help": "L-BFGS iterations per fit"})
    probe_seed: int = field(default=0, metadata={"help": "seed of the held-out validation draw"})


def run_linear_probe_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """`--task linear-probe`: features from `--train/--test[/--validation]-features` (extract outputs) or computed
    from `--dataset` (a DatasetDict with train/test[/validation]) with `--model`; writes the JSON record.

    A user mistake exits with a one-line `error: ...` message."""
    try:
        return _run_linear_probe_from_args(args)
    except ExtractionError as error:
        raise SystemExit(f"error: {error}") from None


def _run_linear_probe_from_args(args: argparse.Namespace) -> dict[str, Any]:
    class_names = read_class_names(args.class_names)
    if args.train_features or args.test_features:
        if not (args.train_features and args.test_features):
            raise ExtractionError("--task linear-probe: pass both --train-features and --test-features")
        folders = {"train": args.train_features, "test": args.test_features}
        if args.validation_features:
            folders["validation"] = args.validation_features
        features = features_from_extractions(folders, args.label_column, class_names)
        model_name = _recorded_model(args.train_features) or args.model
        dataset_path = args.dataset or os.path.dirname(os.path.normpath(args.train_features))
    else:
        if not (args.dataset and args.model):
            raise ExtractionError("--task linear-probe: pass --model and --dataset, or the --*-features folders")
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, processor = load_model_for_command(args.model, device, args.dtype, args.trust_remote_code)
        video_kwargs = json.loads(args.video_kwargs) if args.video_kwargs else {}
        if args.num_frames is not None:
            video_kwargs["num_frames"] = args.num_frames
        features = features_on_the_fly(
            model, processor, args.dataset, args.label_column, args.video_column, class_names, args.video_root,
            args.batch_size, args.num_workers, video_kwargs, args.max_samples,
        )  # fmt: skip
        model_name, dataset_path = args.model, args.dataset
    outcome = run_linear_probe(
        features, args.probe_validation_fraction, args.probe_seed, refine_steps=args.probe_refine_steps,
        max_iter=args.probe_max_iter,
    )  # fmt: skip
    record = {
        "task": "linear-probe",
        "model": model_name,
        "dataset": {
            "name": args.dataset_display_name or os.path.basename(os.path.normpath(dataset_path)),
            "type": args.dataset_id,
            "path": dataset_path,
            "split": "test",
        },
        "metrics": outcome.pop("metrics"),
        "settings": {"label_column": args.label_column, **features.source},
        **outcome,
    }
    folder = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(folder, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return record


def read_class_names(value: str | None) -> list[str] | None:
    """`--class-names` of every evaluation task: a JSON list, a JSON label2id dict (ordered by id; the original
    relied on the file order instead), or a text file with one name a line."""
    if value is None:
        return None
    with open(value, encoding="utf-8") as handle:
        text = handle.read()
    if value.endswith(".json"):
        names = json.loads(text)
        return sorted(names, key=names.get) if isinstance(names, dict) else list(names)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _recorded_settings(folder: str) -> dict[str, Any]:
    """The `settings` of an extraction's manifest ({} when it has none or cannot be read)."""
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding="utf-8") as handle:
            settings = json.load(handle).get("settings")
    except (OSError, AttributeError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _recorded_model(folder: str) -> str | None:
    return _recorded_settings(folder).get("model")
