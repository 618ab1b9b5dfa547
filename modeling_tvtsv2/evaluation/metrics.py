"""Evaluation metrics for TVTSv2: retrieval, zero-shot classification, multiple choice and transcript sorting.

Plain numpy functions with no model dependency, shared by the zero-shot runners (`modeling_tvtsv2.evaluation`)
and the pre-training evaluation of the trainer. The `evaluate` module shipped in
`modeling_tvtsv2/evaluation/evaluate_metrics/retrieval_recall/` (see `retrieval_recall_metric_path()`) carries its
own copy of the retrieval computation so that it can be pushed to the Hub alone; `tests/test_metrics.py` checks
they agree.

Retrieval follows the original research code (`v2/model/metric.py` of TencentARC/TVTS) exactly, including its
tie handling, so that numbers are comparable with the paper:

* ranks are 0-based positions in the list of candidates sorted by decreasing similarity;
* **text -> video**: a tie between the ground-truth video and other videos is broken *optimistically*: the
  ground truth is placed before every candidate with the same score (rank = number of strictly better videos);
* **video -> text**: a tie is *averaged*: the rank of a ground-truth caption is the mean of the positions its
  score occupies (rank = #strictly better + (#equal - 1) / 2), and a video with several captions takes the
  **minimum** over its captions;
* `R@K = 100 * #(rank < K) / n` (so an averaged rank of 0.5 is *not* a hit at R@1),
  `MedR = median(rank) + 1`, `MeanR = mean(rank) + 1` and `geometric_mean_R1-R5-R10` is the geometric mean of
  R@1, R@5 and R@10 (0 when any of them is 0).

Classification-style metrics (zero-shot top-k, multiple choice, sorting) use the order of a *stable* sort by
decreasing score: among equal scores the lower index comes first, which is what `argmax` returns.

All percentages are in [0, 100].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


__all__ = [
    "RETRIEVAL_KS",
    "cosine_similarity_matrix",
    "multiple_choice_accuracy",
    "ranks_to_metrics",
    "retrieval_metrics",
    "retrieval_recall_metric_path",
    "sort_accuracy",
    "t2v_metrics",
    "t2v_ranks",
    "topk_accuracy",
    "v2t_metrics",
    "v2t_ranks",
    "zero_shot_classification_metrics",
]

RETRIEVAL_KS: tuple[int, ...] = (1, 5, 10, 50)
"""The recall cut-offs reported by the original code (R1, R5, R10, R50)."""

_CHUNK = 1024  # queries processed at once by the video -> text ranking


def _to_numpy(array: Any, dtype: Any = np.float64) -> np.ndarray:
    """Converts a numpy array, a torch tensor (any device/dtype) or nested lists to a numpy array."""
    if hasattr(array, "detach"):  # torch.Tensor, without importing torch
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=dtype)


def cosine_similarity_matrix(text_embeds: Any, video_embeds: Any, eps: float = 1e-8) -> np.ndarray:
    """Cosine similarities between every text and every video, as the original `sim_matrix`.

    Args:
        text_embeds: `[N_text, D]` embeddings (normalised or not).
        video_embeds: `[N_video, D]` embeddings (normalised or not).
        eps: lower bound of the norms, to avoid a division by zero.

    Returns:
        `[N_text, N_video]` float64 matrix: row `i` holds text `i`'s similarity to every video.
    """
    text = _to_numpy(text_embeds)
    video = _to_numpy(video_embeds)
    text = text / np.maximum(np.linalg.norm(text, axis=-1, keepdims=True), eps)
    video = video / np.maximum(np.linalg.norm(video, axis=-1, keepdims=True), eps)
    return text @ video.T


def _caption_to_video_index(
    num_texts: int,
    num_videos: int,
    queries_per_video: int | None,
    caption_to_video: Sequence[int] | np.ndarray | None,
) -> np.ndarray:
    """Resolves which video is the ground truth of each text query.

    Without `caption_to_video`, texts are grouped by video like the original code: texts
    `j * qpv ... (j + 1) * qpv - 1` belong to video `j`, where `qpv = queries_per_video` (default
    `num_texts // num_videos`, which must divide exactly).
    """
    if caption_to_video is not None:
        if queries_per_video is not None:
            raise ValueError("Pass either `queries_per_video` or `caption_to_video`, not both.")
        index = np.asarray(caption_to_video, dtype=np.int64).reshape(-1)
        if index.shape[0] != num_texts:
            raise ValueError(
                f"`caption_to_video` has {index.shape[0]} entries but the similarity matrix has {num_texts} rows "
                "(one entry per text query is needed)."
            )
        if index.size and (index.min() < 0 or index.max() >= num_videos):
            raise ValueError(f"`caption_to_video` holds video indices outside [0, {num_videos}).")
        return index
    if queries_per_video is None:
        if num_videos == 0 or num_texts % num_videos != 0:
            raise ValueError(
                f"{num_texts} texts cannot be split evenly over {num_videos} videos; pass `caption_to_video` "
                "(the video index of every text) for uneven numbers of captions."
            )
        queries_per_video = num_texts // num_videos
    if queries_per_video < 1 or queries_per_video * num_videos != num_texts:
        raise ValueError(
            f"queries_per_video={queries_per_video} does not match {num_texts} texts and {num_videos} videos "
            f"(expected {num_texts} == queries_per_video * {num_videos})."
        )
    return np.repeat(np.arange(num_videos), queries_per_video)


def _check_sims(sims: Any) -> np.ndarray:
    sims = _to_numpy(sims)
    if sims.ndim != 2:
        raise ValueError(f"Expected a [num_texts, num_videos] similarity matrix, got shape {sims.shape}.")
    if sims.shape[0] == 0 or sims.shape[1] == 0:
        raise ValueError(f"The similarity matrix is empty (shape {sims.shape}).")
    if np.isnan(sims).any():
        raise ValueError("The similarity matrix contains NaN values; ranks would be undefined.")
    return sims


def t2v_ranks(
    sims: Any,
    queries_per_video: int | None = None,
    caption_to_video: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """0-based rank of each text query's ground-truth video, ties broken optimistically.

    Args:
        sims: `[N_text, N_video]` similarities (higher = more similar).
        queries_per_video: number of consecutive texts per video (original layout). Default `N_text // N_video`.
        caption_to_video: explicit video index of each text (overrides the consecutive layout).

    Returns:
        `[N_text]` integer-valued float array of ranks.
    """
    sims = _check_sims(sims)
    gt = _caption_to_video_index(sims.shape[0], sims.shape[1], queries_per_video, caption_to_video)
    gt_scores = sims[np.arange(sims.shape[0]), gt][:, None]
    # The original sorts each row of distances and takes the first position equal to the GT distance, which is
    # exactly the number of candidates that are strictly more similar than the ground truth.
    return (sims > gt_scores).sum(axis=1).astype(np.float64)


def v2t_ranks(
    sims: Any,
    queries_per_video: int | None = None,
    caption_to_video: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """0-based rank of each video query's best ground-truth caption, ties averaged.

    Args:
        sims: `[N_text, N_video]` similarities (the same orientation as for `t2v_ranks`; it is transposed here).
        queries_per_video: number of consecutive texts per video (original layout). Default `N_text // N_video`.
        caption_to_video: explicit video index of each text. Videos without any caption are not queries (they
            still count as distractors for text -> video) and are left out of the returned ranks.

    Returns:
        `[N_query_videos]` ranks (may be x.5 because of tie averaging), in video order.
    """
    sims = _check_sims(sims)
    num_texts, num_videos = sims.shape
    gt = _caption_to_video_index(num_texts, num_videos, queries_per_video, caption_to_video)
    video_sims = sims.T  # [N_video, N_text]: each video is a query over all captions
    gt_scores = video_sims[gt, np.arange(num_texts)]  # score of caption i for its own video

    # For every caption: the averaged position of its score in its own video's row, sorted by decreasing
    # similarity. Done in chunks of captions: one [chunk, N_text] slab at a time keeps memory bounded for
    # multi-caption benchmarks (e.g. 20k captions).
    caption_ranks = np.empty(num_texts, dtype=np.float64)
    for start in range(0, num_texts, _CHUNK):
        stop = min(start + _CHUNK, num_texts)
        rows = video_sims[gt[start:stop]]  # [chunk, N_text]: the row of the video that owns each caption
        target = gt_scores[start:stop, None]
        better = (rows > target).sum(axis=1)
        equal = (rows == target).sum(axis=1)  # >= 1: the caption itself
        caption_ranks[start:stop] = better + (equal - 1) / 2.0

    ranks = np.full(num_videos, np.inf)
    np.minimum.at(ranks, gt, caption_ranks)
    return ranks[np.isfinite(ranks)]


def ranks_to_metrics(ranks: Any, ks: Sequence[int] = RETRIEVAL_KS) -> dict[str, float]:
    """Recall@K, median/mean rank and the R1-R5-R10 geometric mean from 0-based ranks (the original `cols2metrics`).

    Args:
        ranks: 0-based ranks, one per query.
        ks: recall cut-offs; the keys are `f"R{k}"`.

    Returns:
        `{"R1", "R5", "R10", "R50", "MedR", "MeanR", "geometric_mean_R1-R5-R10", "num_queries"}` (R values in %).
    """
    ranks = _to_numpy(ranks).reshape(-1)
    n = ranks.shape[0]
    if n == 0:
        raise ValueError("No queries to evaluate.")
    metrics: dict[str, float] = {}
    for k in ks:
        # The original uses `rank == 0` for R1, identical to `rank < 1` for integer ranks but not for an
        # averaged rank of 0.5 (which must not count as a hit).
        hits = (ranks == 0) if k == 1 else (ranks < k)
        metrics[f"R{k}"] = 100.0 * float(hits.sum()) / n
    metrics["MedR"] = float(np.median(ranks)) + 1.0
    metrics["MeanR"] = float(np.mean(ranks)) + 1.0
    r1 = 100.0 * float((ranks == 0).sum()) / n
    r5 = 100.0 * float((ranks < 5).sum()) / n
    r10 = 100.0 * float((ranks < 10).sum()) / n
    # scipy.stats.mstats.gmean (used by the original) returns 0 when a value is 0; avoid log(0) warnings here.
    stats = np.array([r1, r5, r10])
    metrics["geometric_mean_R1-R5-R10"] = 0.0 if (stats <= 0).any() else float(np.exp(np.log(stats).mean()))
    metrics["num_queries"] = n
    return metrics


def t2v_metrics(
    sims: Any,
    queries_per_video: int | None = None,
    caption_to_video: Sequence[int] | np.ndarray | None = None,
    ks: Sequence[int] = RETRIEVAL_KS,
) -> dict[str, float]:
    """Text -> video retrieval metrics (`ranks_to_metrics` of `t2v_ranks`). See `retrieval_metrics`."""
    return ranks_to_metrics(t2v_ranks(sims, queries_per_video, caption_to_video), ks=ks)


def v2t_metrics(
    sims: Any,
    queries_per_video: int | None = None,
    caption_to_video: Sequence[int] | np.ndarray | None = None,
    ks: Sequence[int] = RETRIEVAL_KS,
) -> dict[str, float]:
    """Video -> text retrieval metrics (`ranks_to_metrics` of `v2t_ranks`). See `retrieval_metrics`."""
    return ranks_to_metrics(v2t_ranks(sims, queries_per_video, caption_to_video), ks=ks)


def retrieval_metrics(
    sims: Any,
    queries_per_video: int | None = None,
    caption_to_video: Sequence[int] | np.ndarray | None = None,
    ks: Sequence[int] = RETRIEVAL_KS,
) -> dict[str, dict[str, float]]:
    """Zero-shot retrieval metrics in both directions, with the original TVTSv2 tie handling.

    Args:
        sims: `[N_text, N_video]` similarity matrix (numpy, torch or lists), e.g. from `cosine_similarity_matrix`.
        queries_per_video: texts per video when texts are laid out video by video (texts `j*q ... j*q+q-1`
            describe video `j`), as in the original. Defaults to `N_text // N_video` (1 for MSR-VTT 1k-A).
        caption_to_video: the ground-truth video index of every text, for any number of captions per video.
        ks: recall cut-offs.

    Returns:
        `{"t2v": {...}, "v2t": {...}}`, each with `R1`, `R5`, `R10`, `R50` (%), `MedR`, `MeanR`,
        `geometric_mean_R1-R5-R10` and `num_queries`.

    Example:
        >>> sims = [[0.7, 0.7], [0.3, 0.7]]  # text 0 scores both videos 0.7; video 1 scores both texts 0.7
        >>> retrieval_metrics(sims)["t2v"]["R1"]  # optimistic: text 0 still ranks its video first
        100.0
        >>> retrieval_metrics(sims)["v2t"]["R1"]  # averaged: video 1's caption is at rank (0 + 1) / 2 = 0.5
        50.0
    """
    return {
        "t2v": t2v_metrics(sims, queries_per_video, caption_to_video, ks=ks),
        "v2t": v2t_metrics(sims, queries_per_video, caption_to_video, ks=ks),
    }


def _pad_ragged(logits: Any) -> np.ndarray:
    """Stacks a list of 1-D score vectors of different lengths, padding with -inf (never ranked above a real one)."""
    if isinstance(logits, (list, tuple)) and logits and np.ndim(_to_numpy(logits[0])) == 1:
        rows = [_to_numpy(row).reshape(-1) for row in logits]
        width = max(row.shape[0] for row in rows)
        out = np.full((len(rows), width), -np.inf)
        for i, row in enumerate(rows):
            out[i, : row.shape[0]] = row
        return out
    return _to_numpy(logits)


def _label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each sample's label under a stable descending sort (ties: lower index first)."""
    target = scores[np.arange(scores.shape[0]), labels][:, None]
    index = np.arange(scores.shape[1])[None, :]
    better = scores > target
    tied_before = (scores == target) & (index < labels[:, None])
    return (better | tied_before).sum(axis=1)


def topk_accuracy(logits: Any, labels: Any, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy (%) of `[N, C]` scores against `[N]` integer labels.

    A sample is correct at k when fewer than k classes come before its label in a stable sort by decreasing
    score, i.e. ties go to the lower class index, as `argmax` does. `logits` may also be a list of 1-D score
    vectors of different lengths (e.g. multiple choice with a varying number of options).

    Returns:
        `{"top1": ..., "top5": ..., "num_samples": N}` (one `top{k}` key per k).
    """
    scores = _pad_ragged(logits)
    labels = _to_numpy(labels, dtype=np.int64).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"Expected [N, C] scores and [N] labels, got {scores.shape} and {labels.shape}.")
    if scores.shape[0] == 0:
        raise ValueError("No samples to evaluate.")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"Labels must lie in [0, {scores.shape[1]}).")
    if np.isneginf(scores[np.arange(scores.shape[0]), labels]).any():
        raise ValueError("A label points at a padded (missing) option.")
    ranks = _label_ranks(scores, labels)
    result = {f"top{k}": 100.0 * float((ranks < k).mean()) for k in ks}
    result["num_samples"] = int(labels.shape[0])
    return result


def zero_shot_classification_metrics(logits: Any, labels: Any, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Zero-shot action recognition metrics: top-1 / top-5 accuracy (%) of `[N_video, N_class]` scores.

    This is the protocol of the original `zero_recognition_*` scripts (logits = 100 * cosine); the scale does not
    change the accuracies. See `topk_accuracy` for the tie rule.
    """
    return topk_accuracy(logits, labels, ks=ks)


def multiple_choice_accuracy(logits: Any, answers: Any, ks: Sequence[int] = (1,)) -> dict[str, float]:
    """Multiple-choice accuracy (%), e.g. SSv2-MC: each video is scored against its *own* options.

    Args:
        logits: `[N, n_options]` scores, or a list of per-sample 1-D score vectors when the number of options varies.
        answers: `[N]` index of the correct option.
        ks: top-k cut-offs; the original SSv2-MC script reports top-1 (and top-5).

    Returns:
        `{"top1": ..., "num_samples": N}` (one `top{k}` key per k).
    """
    return topk_accuracy(logits, answers, ks=ks)


def sort_accuracy(sort_logits: Any, sort_labels: Any, ignore_index: int = -100) -> dict[str, float]:
    """Transcript-sorting accuracy of the pre-training sort head.

    Args:
        sort_logits: `[B, K, K]` scores: `sort_logits[b, k, c]` is the score of transcript `k` of sample `b` being at
            chronological position `c`.
        sort_labels: `[B, K]` true position of each transcript; `ignore_index` marks padded transcripts.
        ignore_index: label value excluded from both metrics.

    Returns:
        `{"sort_accuracy": ..., "sort_exact_match": ..., "num_transcripts": ..., "num_samples": ...}`:
        the percentage of transcripts whose predicted position (argmax) is right, and the percentage of samples whose
        whole order is right (every non-ignored transcript correct). Chance level for K=4 is 25% and 1/24 = 4.2%.
    """
    logits = _to_numpy(sort_logits)
    labels = _to_numpy(sort_labels, dtype=np.int64)
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"Expected [B, K, C] sort logits and [B, K] labels, got {logits.shape} and {labels.shape}.")
    valid = labels != ignore_index
    if not valid.any():
        raise ValueError("Every sort label is `ignore_index`; nothing to evaluate.")
    predictions = logits.argmax(axis=-1)  # ties -> lowest position, like torch.argmax on CPU
    correct = (predictions == labels) & valid
    samples = valid.any(axis=1)
    exact = (correct | ~valid).all(axis=1) & samples
    return {
        "sort_accuracy": 100.0 * float(correct.sum()) / float(valid.sum()),
        "sort_exact_match": 100.0 * float(exact.sum()) / float(samples.sum()),
        "num_transcripts": int(valid.sum()),
        "num_samples": int(samples.sum()),
    }


def retrieval_recall_metric_path() -> str:
    """Absolute path of the `evaluate` module wrapping `retrieval_metrics`, for `evaluate.load(path)` (offline)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluate_metrics", "retrieval_recall")
