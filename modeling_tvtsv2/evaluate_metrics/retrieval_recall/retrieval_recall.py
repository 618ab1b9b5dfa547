"""`evaluate` module: zero-shot text <-> video retrieval recall (R@K, MedR, MeanR) with TVTSv2's original tie rules.

A thin wrapper: the computation lives in `modeling_tvtsv2.metrics.retrieval_metrics` (the same code the
TVTSv2 evaluation runners and the pre-training evaluation use), so this file only adapts the `evaluate` API.

Load it offline by path:

    >>> import evaluate
    >>> from modeling_tvtsv2.metrics import retrieval_recall_metric_path
    >>> metric = evaluate.load(retrieval_recall_metric_path())
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1])["t2v_R1"]
    100.0
"""

import datasets
import evaluate

from modeling_tvtsv2.metrics import RETRIEVAL_KS, retrieval_metrics


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
        results = retrieval_metrics(predictions, caption_to_video=references, ks=tuple(ks))
        directions = ("t2v", "v2t") if direction == "both" else (direction,)
        return {f"{d}_{name}": value for d in directions for name, value in results[d].items()}
