"""`evaluate` module: zero-shot text <-> video retrieval recall (R@K, MedR, MeanR) with TVTSv2's original tie rules.

Self-contained (numpy, `datasets` and `evaluate` only), so that this folder can be pushed to the Hub as an
`evaluate` module as is. The same computation lives in `modeling_tvtsv2.evaluation.metrics.retrieval_metrics` (used by the
evaluation runners and the pre-training evaluation); `tests/test_metrics.py` checks that both agree.

Load it offline by path:

    >>> import evaluate
    >>> from modeling_tvtsv2.evaluation.metrics import retrieval_recall_metric_path
    >>> metric = evaluate.load(retrieval_recall_metric_path())
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1])["t2v_R1"]
    100.0
"""

import datasets
import evaluate
import numpy as np


RETRIEVAL_KS = (1, 5, 10, 50)


def _t2v_ranks(sims: np.ndarray, gt: np.ndarray) -> np.ndarray:
    # Optimistic ties: the ground truth goes before every video with the same score.
    gt_scores = sims[np.arange(sims.shape[0]), gt][:, None]
    return (sims > gt_scores).sum(axis=1).astype(np.float64)


def _v2t_ranks(sims: np.ndarray, gt: np.ndarray) -> np.ndarray:
    # Averaged ties; a video with several captions takes its best caption; videos without captions are not queries.
    rows = sims.T[gt]  # the row of the video that owns each caption, over all captions
    target = sims[np.arange(sims.shape[0]), gt][:, None]
    caption_ranks = (rows > target).sum(axis=1) + ((rows == target).sum(axis=1) - 1) / 2.0
    ranks = np.full(sims.shape[1], np.inf)
    np.minimum.at(ranks, gt, caption_ranks)
    return ranks[np.isfinite(ranks)]


def _ranks_to_metrics(ranks: np.ndarray, ks) -> dict:
    n = ranks.shape[0]
    metrics = {}
    for k in ks:
        hits = (ranks == 0) if k == 1 else (ranks < k)  # an averaged rank of 0.5 is not an R@1 hit
        metrics[f"R{k}"] = 100.0 * float(hits.sum()) / n
    metrics["MedR"] = float(np.median(ranks)) + 1.0
    metrics["MeanR"] = float(np.mean(ranks)) + 1.0
    stats = np.array([100.0 * float((ranks == 0).sum()) / n] + [100.0 * float((ranks < k).sum()) / n for k in (5, 10)])
    metrics["geometric_mean_R1-R5-R10"] = 0.0 if (stats <= 0).any() else float(np.exp(np.log(stats).mean()))
    metrics["num_queries"] = n
    return metrics


_DESCRIPTION = """\
Recall@K (R1, R5, R10, R50, in %), median rank (MedR) and mean rank (MeanR), both 1-based, and the geometric mean of
R1, R5 and R10, for text-to-video (t2v) and video-to-text (v2t) retrieval, computed from a text x video similarity
matrix. Tie handling follows the original TVTSv2 / Frozen-in-Time code: t2v ties are broken optimistically (the
ground truth ranks first among equal scores); v2t ties are averaged and a video with several captions takes the
best (minimum) rank over its captions. Videos with no caption are distractors only: they are not v2t queries.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[float]]`): one row per text query: its similarity to every video (all rows the same
        length, the number of videos). Stored as float64, so ties are not created by the Arrow round trip.
    references (`list[int]`): the index of each text's ground-truth video (several texts may share a video).
    direction (`str`, defaults to `"both"`): `"t2v"`, `"v2t"` or `"both"`.
    ks (`tuple[int]`, defaults to `(1, 5, 10, 50)`): recall cut-offs.
Returns:
    A flat dict with keys `"{direction}_{name}"`, e.g. `t2v_R1`, `t2v_R5`, `t2v_R10`, `t2v_R50`, `t2v_MedR`,
    `t2v_MeanR`, `t2v_geometric_mean_R1-R5-R10`, `t2v_num_queries` and the same for `v2t`.
Examples:
    >>> metric = evaluate.load("/abs/path/to/modeling_tvtsv2/evaluate_metrics/retrieval_recall")
    >>> out = metric.compute(predictions=[[0.7, 0.7], [0.3, 0.7]], references=[0, 1])
    >>> out["t2v_R1"], out["v2t_R1"], out["v2t_MeanR"]
    (100.0, 50.0, 1.25)
"""

_CITATION = """\
@article{zeng2023tvtsv2,
  title={TVTSv2: Learning Out-of-the-box Spatiotemporal Visual Representations at Scale},
  author={Zeng, Ziyun and Ge, Yixiao and Tong, Zhan and Liu, Xihui and Xia, Shu-Tao and Shan, Ying},
  journal={arXiv preprint arXiv:2305.14173},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RetrievalRecall(evaluate.Metric):
    """Text <-> video retrieval recall with the original TVTSv2 tie handling."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, direction="both", ks=RETRIEVAL_KS):
        if direction not in ("both", "t2v", "v2t"):
            raise ValueError(f"direction must be 'both', 't2v' or 'v2t', got {direction!r}")
        lengths = {len(row) for row in predictions}
        if len(lengths) != 1:
            raise ValueError(f"Every prediction row must score the same videos; got row lengths {sorted(lengths)}.")
        sims = np.asarray(predictions, dtype=np.float64)
        gt = np.asarray(references, dtype=np.int64).reshape(-1)
        if sims.ndim != 2 or sims.shape[0] == 0 or sims.shape[1] == 0:
            raise ValueError(f"predictions must be a non-empty [num_texts, num_videos] matrix, got {sims.shape}")
        if np.isnan(sims).any():
            raise ValueError("predictions contain NaN values; ranks would be undefined.")
        if gt.shape[0] != sims.shape[0]:
            raise ValueError(f"{gt.shape[0]} references for {sims.shape[0]} prediction rows (one per text needed)")
        if gt.min() < 0 or gt.max() >= sims.shape[1]:
            raise ValueError(f"references hold video indices outside [0, {sims.shape[1]})")
        rankers = {"t2v": _t2v_ranks, "v2t": _v2t_ranks}
        directions = ("t2v", "v2t") if direction == "both" else (direction,)
        return {
            f"{d}_{name}": value
            for d in directions
            for name, value in _ranks_to_metrics(rankers[d](sims, gt), tuple(ks)).items()
        }
