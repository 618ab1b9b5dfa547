"""Metric functions on hand-computed cases (ties in both directions, multi-caption), plus the `evaluate` module.

Expected values are worked out by hand in the comments; a literal transcription of the original algorithm
(sort rows, find equal positions with `np.where`, break ties) cross-checks random matrices full of ties.
"""

import math
import re

import numpy as np
import pytest
import torch

from modeling_tvtsv2.evaluation.metrics import (
    cosine_similarity_matrix,
    multiple_choice_accuracy,
    ranks_to_metrics,
    retrieval_metrics,
    retrieval_recall_metric_path,
    sort_accuracy,
    t2v_ranks,
    topk_accuracy,
    v2t_ranks,
    zero_shot_classification_metrics,
)

from conftest import HANG_GUARD_SECONDS


# ---------------------------------------------------------------------------------------------------------------
# Retrieval


def test_distinct_scores_both_directions():
    sims = np.array(
        [
            [0.9, 0.1, 0.2],  # text 0 -> video 0 is best: rank 0
            [0.8, 0.3, 0.5],  # text 1 -> video 1 (0.3) is beaten by 0.8 and 0.5: rank 2
            [0.1, 0.9, 0.4],  # text 2 -> video 2 (0.4) is beaten by 0.9: rank 1
        ]
    )
    np.testing.assert_array_equal(t2v_ranks(sims), [0, 2, 1])
    # video queries (columns): v0 [0.9, 0.8, 0.1] own 0.9 -> 0; v1 [0.1, 0.3, 0.9] own 0.3 -> 1;
    # v2 [0.2, 0.5, 0.4] own 0.4 -> 1
    np.testing.assert_array_equal(v2t_ranks(sims), [0, 1, 1])

    m = retrieval_metrics(sims)
    assert m["t2v"]["R1"] == pytest.approx(100 / 3)
    assert m["t2v"]["R5"] == 100.0 and m["t2v"]["R10"] == 100.0 and m["t2v"]["R50"] == 100.0
    assert m["t2v"]["MedR"] == 2.0  # median(0, 2, 1) + 1
    assert m["t2v"]["MeanR"] == 2.0  # mean(0, 2, 1) + 1
    assert m["t2v"]["num_queries"] == 3
    assert m["v2t"]["MedR"] == 2.0  # median(0, 1, 1) + 1
    assert m["v2t"]["MeanR"] == pytest.approx(1 + 2 / 3)
    # geometric mean of (33.33, 100, 100)
    assert m["t2v"]["geometric_mean_R1-R5-R10"] == pytest.approx((100 / 3 * 100 * 100) ** (1 / 3))


def test_t2v_ties_are_optimistic():
    sims = np.array(
        [
            [0.5, 0.5, 0.5],  # GT tied with both others -> still rank 0
            [0.9, 0.5, 0.5],  # GT (0.5) beaten by 0.9, tied with 0.5 -> rank 1
            [0.2, 0.2, 0.2],  # all equal -> rank 0
        ]
    )
    np.testing.assert_array_equal(t2v_ranks(sims), [0, 1, 0])
    assert retrieval_metrics(sims)["t2v"]["R1"] == pytest.approx(200 / 3)


def test_v2t_ties_are_averaged():
    sims = np.array([[0.7, 0.7], [0.3, 0.7]])
    # t2v: text 0 ties (optimistic -> 0), text 1 wins -> 0
    np.testing.assert_array_equal(t2v_ranks(sims), [0, 0])
    # v2t: video 0 scores captions [0.7, 0.3] -> its caption 0 is first: 0.
    #      video 1 scores captions [0.7, 0.7] -> its caption 1 ties with caption 0: (0 + 1) / 2 = 0.5
    np.testing.assert_array_equal(v2t_ranks(sims), [0.0, 0.5])
    m = retrieval_metrics(sims)["v2t"]
    assert m["R1"] == 50.0  # 0.5 is not a hit at R@1 (the original tests rank == 0)
    assert m["R5"] == 100.0
    assert m["MedR"] == 1.25 and m["MeanR"] == 1.25


def test_all_equal_similarities_degenerate_case():
    sims = np.zeros((4, 4))
    t2v = retrieval_metrics(sims)["t2v"]
    v2t = retrieval_metrics(sims)["v2t"]
    assert t2v["R1"] == 100.0 and t2v["MedR"] == 1.0
    # four-way tie: averaged position (0 + 1 + 2 + 3) / 4 = 1.5 for every video
    assert v2t["R1"] == 0.0 and v2t["R5"] == 100.0
    assert v2t["MedR"] == 2.5 and v2t["MeanR"] == 2.5
    assert v2t["geometric_mean_R1-R5-R10"] == 0.0


def test_multi_caption_queries_per_video():
    # 2 videos x 2 captions, laid out video by video: captions 0, 1 -> video 0; captions 2, 3 -> video 1
    sims = np.array(
        [
            [0.2, 0.9],  # caption 0 of video 0: rank 1
            [0.8, 0.1],  # caption 1 of video 0: rank 0
            [0.6, 0.4],  # caption 2 of video 1: rank 1
            [0.5, 0.3],  # caption 3 of video 1: rank 1
        ]
    )
    np.testing.assert_array_equal(t2v_ranks(sims), [1, 0, 1, 1])  # qpv inferred = 2
    # video 0 scores captions [0.2, 0.8, 0.6, 0.5]: caption 0 -> 3, caption 1 -> 0; min = 0
    # video 1 scores captions [0.9, 0.1, 0.4, 0.3]: caption 2 -> 1, caption 3 -> 2; min = 1
    np.testing.assert_array_equal(v2t_ranks(sims), [0, 1])
    m = retrieval_metrics(sims, queries_per_video=2)
    assert m["t2v"]["R1"] == 25.0 and m["t2v"]["num_queries"] == 4
    assert m["v2t"]["R1"] == 50.0 and m["v2t"]["num_queries"] == 2
    assert m["t2v"]["MedR"] == 2.0  # median(1, 0, 1, 1) + 1


def test_explicit_caption_index_matches_reordered_layout():
    sims = np.array([[0.2, 0.9], [0.8, 0.1], [0.6, 0.4], [0.5, 0.3]])
    order = [2, 0, 3, 1]  # shuffle the captions and say where each one belongs
    caption_to_video = [1, 0, 1, 0]
    shuffled = retrieval_metrics(sims[order], caption_to_video=caption_to_video)
    assert shuffled == retrieval_metrics(sims, queries_per_video=2)


def test_uneven_captions_and_distractor_videos():
    # 3 videos; video 0 has 3 captions, video 1 has 1, video 2 has none (a distractor)
    sims = np.array(
        [
            [0.9, 0.1, 0.3],  # -> v0, rank 0
            [0.1, 0.2, 0.3],  # -> v0, rank 2
            [0.5, 0.6, 0.0],  # -> v0, rank 1
            [0.4, 0.4, 0.9],  # -> v1, beaten by the distractor, tied with v0: rank 1 (optimistic)
        ]
    )
    index = [0, 0, 0, 1]
    np.testing.assert_array_equal(t2v_ranks(sims, caption_to_video=index), [0, 2, 1, 1])
    # v0 scores captions [0.9, 0.1, 0.5, 0.4] -> own captions at 0, 3, 1 -> min 0
    # v1 scores captions [0.1, 0.2, 0.6, 0.4] -> own caption 3 (0.4) beaten by 0.6 -> 1; v2 is not a query
    np.testing.assert_array_equal(v2t_ranks(sims, caption_to_video=index), [0, 1])
    with pytest.raises(ValueError, match="split evenly"):
        retrieval_metrics(sims[:3, :2].T)  # 2 texts over 3 videos without an index


def test_medr_half_and_recall_cutoffs():
    ranks = np.array([0, 1, 2, 3, 4, 5, 9, 10, 49, 50])
    m = ranks_to_metrics(ranks)
    assert m["R1"] == 10.0
    assert m["R5"] == 50.0  # 0..4
    assert m["R10"] == 70.0  # + 5, 9
    assert m["R50"] == 90.0  # + 10, 49
    assert m["MedR"] == 5.5  # median(4, 5) + 1
    assert m["MeanR"] == pytest.approx(13.3 + 1)
    assert ranks_to_metrics([0, 1, 2, 3])["MedR"] == 2.5


def _original_t2v_ranks(sims):
    """Literal transcription of the original algorithm (np.sort + np.where, first match kept)."""
    dists = -sims
    num_q, num_v = dists.shape
    qpv = num_q // num_v
    sorted_dists = np.sort(dists, axis=1)
    gt = dists[np.arange(num_q), np.arange(num_q) // qpv][:, None]
    rows, cols = np.where((sorted_dists - gt) == 0)
    _, first = np.unique(rows, return_index=True)
    return cols[first].astype(float)


def _original_v2t_ranks(sims):
    """Literal transcription of the original algorithm (per video, mean of equal positions, min over captions)."""
    dists = -sims.T
    num_v, num_c = dists.shape
    cpv = num_c // num_v
    out = []
    for i in range(num_v):
        row = dists[i]
        sorted_row = np.sort(row)
        out.append(min(np.where((sorted_row - row[j]) == 0)[0].mean() for j in range(i * cpv, (i + 1) * cpv)))
    return np.array(out)


@pytest.mark.parametrize("qpv", [1, 3])
def test_matches_original_algorithm_on_tie_heavy_random_matrices(qpv):
    rng = np.random.default_rng(0)
    for _ in range(20):
        num_v = int(rng.integers(2, 12))
        sims = rng.integers(0, 4, size=(num_v * qpv, num_v)) / 4.0  # 4 distinct values: many ties
        np.testing.assert_array_equal(t2v_ranks(sims), _original_t2v_ranks(sims))
        np.testing.assert_array_equal(v2t_ranks(sims), _original_v2t_ranks(sims))


def test_accepts_torch_and_rejects_bad_input():
    sims = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.bfloat16)
    assert retrieval_metrics(sims)["t2v"]["R1"] == 100.0
    with pytest.raises(ValueError):
        retrieval_metrics(np.zeros(3))
    with pytest.raises(ValueError):
        retrieval_metrics(np.full((2, 2), np.nan))
    with pytest.raises(ValueError):
        retrieval_metrics(np.zeros((2, 2)), caption_to_video=[0, 5])


def test_cosine_similarity_matrix():
    text = np.array([[3.0, 0.0], [1.0, 1.0]])
    video = np.array([[0.0, 2.0], [5.0, 0.0]])
    expected = np.array([[0.0, 1.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]])
    np.testing.assert_allclose(cosine_similarity_matrix(text, video), expected, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Classification, multiple choice, sorting


def test_topk_accuracy_with_ties_goes_to_lower_index():
    logits = np.array(
        [
            [0.1, 0.9, 0.0],  # label 1: rank 0
            [0.5, 0.5, 0.1],  # label 1 tied with class 0, which comes first: rank 1
            [0.2, 0.3, 0.4],  # label 0: rank 2
            [0.5, 0.5, 0.1],  # label 0 tied with class 1, class 0 comes first: rank 0
        ]
    )
    labels = [1, 1, 0, 0]
    m = topk_accuracy(logits, labels, ks=(1, 2, 3))
    assert m == {"top1": 50.0, "top2": 75.0, "top3": 100.0, "num_samples": 4}
    assert zero_shot_classification_metrics(logits, labels, ks=(1,))["top1"] == 50.0


def test_multiple_choice_with_varying_number_of_options():
    logits = [np.array([0.1, 0.7]), np.array([0.3, 0.2, 0.9, 0.4]), torch.tensor([0.6, 0.5, 0.4])]
    answers = [1, 3, 0]  # correct, rank 1 (0.9 first), correct
    m = multiple_choice_accuracy(logits, answers, ks=(1, 2))
    assert m["top1"] == pytest.approx(200 / 3)
    assert m["top2"] == 100.0
    with pytest.raises(ValueError, match="padded"):
        multiple_choice_accuracy(logits, [2, 0, 0])  # sample 0 has only 2 options


def test_sort_accuracy_per_transcript_and_exact_match():
    eye = np.eye(3)
    logits = np.stack(
        [
            eye,  # predicts 0, 1, 2
            eye[[1, 0, 2]],  # predicts 1, 0, 2
        ]
    )
    labels = np.array([[0, 1, 2], [0, 1, 2]])
    m = sort_accuracy(logits, labels)
    assert m["sort_accuracy"] == pytest.approx(100 * 4 / 6)
    assert m["sort_exact_match"] == 50.0
    assert m["num_transcripts"] == 6 and m["num_samples"] == 2

    # the second sample's swapped transcripts are padding: the rest of the order is right
    padded = np.array([[0, 1, 2], [-100, -100, 2]])
    m = sort_accuracy(torch.from_numpy(logits), torch.from_numpy(padded))
    assert m["sort_accuracy"] == 100.0 and m["sort_exact_match"] == 100.0
    assert m["num_transcripts"] == 4


# ---------------------------------------------------------------------------------------------------------------
# `evaluate` module


def test_evaluate_module_loads_offline_by_path(monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    # offline: evaluate reads its flag at import time, so patch the parsed value too (no download counters either)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    metric = evaluate.load(retrieval_recall_metric_path())
    sims = np.array([[0.2, 0.9], [0.8, 0.1], [0.6, 0.4], [0.5, 0.3]])
    # accumulate text queries in two batches; references are the ground-truth video of each text
    metric.add_batch(predictions=sims[:2].tolist(), references=[0, 0])
    metric.add_batch(predictions=sims[2:].tolist(), references=[1, 1])
    out = metric.compute()
    assert out["t2v_R1"] == 25.0 and out["v2t_R1"] == 50.0  # as in test_multi_caption_queries_per_video
    assert out["t2v_MedR"] == 2.0
    out = metric.compute(predictions=[[0.7, 0.7], [0.3, 0.7]], references=[0, 1], direction="v2t")
    assert set(out) == {
        "v2t_R1", "v2t_R5", "v2t_R10", "v2t_R50", "v2t_MedR", "v2t_MeanR", "v2t_geometric_mean_R1-R5-R10",
        "v2t_num_queries",
    }  # fmt: skip
    assert out["v2t_R1"] == 50.0 and out["v2t_MeanR"] == 1.25


_BLOCK_PACKAGE = """
import sys, json, importlib.abc

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "modeling_tvtsv2" or name.startswith("modeling_tvtsv2."):
            raise ImportError(f"blocked: {name}")

sys.meta_path.insert(0, Block())
import evaluate
evaluate.config.HF_EVALUATE_OFFLINE = True
metric = evaluate.load(sys.argv[1])
out = metric.compute(predictions=json.loads(sys.argv[2]), references=json.loads(sys.argv[3]))
print(json.dumps(out))
"""


def test_evaluate_module_is_self_contained(tmp_path):
    # A copy of the module folder loads and computes with the package not importable (as from the Hub), and it
    # agrees with `retrieval_metrics` on a tie-heavy matrix with several captions per video and a caption-less video.
    import json
    import os
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "retrieval_recall"
    shutil.copytree(retrieval_recall_metric_path(), folder)
    source = (folder / "retrieval_recall.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+modeling_tvtsv2", source, re.M)
    rng = np.random.default_rng(0)
    sims = rng.integers(0, 4, size=(9, 5)).astype(float) / 4  # many ties
    references = [0, 0, 1, 2, 2, 2, 3, 1, 0]  # video 4 has no caption
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    completed = subprocess.run(
        [sys.executable, "-c", _BLOCK_PACKAGE, str(folder), json.dumps(sims.tolist()), json.dumps(references)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = retrieval_metrics(sims, caption_to_video=references)
    assert out == {f"{d}_{k}": v for d in ("t2v", "v2t") for k, v in expected[d].items()}
