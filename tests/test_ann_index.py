"""`tvtsv2 index`: FAISS HNSW / IVF-PQ indexes beside an extracted index give the exact search's hits with exhaustive
parameters, are recorded in extraction.json, and search falls back to exact search without FAISS (a subprocess in
which `import faiss` fails, as on an install without the `.[search]` extra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.evaluation.search import VideoIndex

faiss = pytest.importorskip("faiss", reason='FAISS is not installed (pip install ".[search]")')
faiss.omp_set_num_threads(1)  # tiny indexes: OpenMP threads only spin against the other tests on a busy box

NUM_ROWS, DIM = 2000, 32


def write_extracted_index(folder: Path, embeddings: np.ndarray) -> Path:
    """A folder in the format `tvtsv2 extract --windows` writes: the 🤗 Dataset + extraction.json."""
    rows = len(embeddings)
    dataset = datasets.Dataset.from_dict(
        {
            "video_id": [f"video-{i // 50:03d}.mp4" for i in range(rows)],
            "row": [i // 50 for i in range(rows)],
            "start": [float(i % 50) for i in range(rows)],
            "end": [float(i % 50) + 2.0 for i in range(rows)],
            "video_embedding": embeddings.tolist(),
        },
        features=datasets.Features(
            {
                "video_id": datasets.Value("string"),
                "row": datasets.Value("int64"),
                "start": datasets.Value("float32"),
                "end": datasets.Value("float32"),
                "video_embedding": datasets.Sequence(datasets.Value("float16")),
            }
        ),
    )
    dataset.save_to_disk(str(folder))
    manifest = {"settings": {"model": None, "windows": [2.0, 1.0]}, "complete": True, "num_rows": rows, "skipped": []}
    (folder / "extraction.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def unit_vectors() -> np.ndarray:
    # clustered, like embeddings of windows of the same scenes, plus noise
    generator = np.random.default_rng(0)
    centres = generator.standard_normal((40, DIM))
    vectors = centres[generator.integers(0, 40, NUM_ROWS)] + 0.5 * generator.standard_normal((NUM_ROWS, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)


@pytest.fixture()
def queries(unit_vectors) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    near = torch.from_numpy(unit_vectors[:20]).float() + 0.3 * torch.randn(20, DIM, generator=generator)
    return torch.nn.functional.normalize(torch.cat([near, torch.randn(10, DIM, generator=generator)]), dim=-1)


@pytest.mark.parametrize(
    "kind, flags",
    [
        ("faiss-hnsw", ["--ef-search", str(NUM_ROWS)]),
        # every cell visited, 200 candidates rescored
        ("faiss-ivfpq", ["--nlist", "16", "--nprobe", "16", "--pq-m", "8", "--pq-bits", "8", "--refine", "20"]),
    ],
)
def test_ann_search_returns_the_exact_hits(tmp_path, unit_vectors, queries, kind, flags, capsys):
    index_path = write_extracted_index(tmp_path / "index", unit_vectors)
    assert cli_main(["index", "--index", str(index_path), "--kind", kind, *flags]) == 0
    assert kind in capsys.readouterr().out
    record = json.loads((index_path / "extraction.json").read_text())["ann_index"]
    assert record["kind"] == kind and record["num_rows"] == NUM_ROWS and (index_path / record["file"]).is_file()

    index = VideoIndex(index_path)
    assert index.ann is not None and index.ann.kind == kind
    ann_hits = index.search_embeddings(queries, top_k=10)
    exact_hits = index.search_embeddings(queries, top_k=10, exact=True)
    for ann, exact in zip(ann_hits, exact_hits):
        assert [hit.row for hit in ann] == [hit.row for hit in exact]  # recall@10 = 1.0, same order
        assert [(h.video_id, h.start, h.end) for h in ann] == [(h.video_id, h.start, h.end) for h in exact]
        assert [h.score for h in ann] == pytest.approx([h.score for h in exact], abs=1e-6)

    # a second kind is refused without --overwrite, and replaces the first with it
    other = "faiss-ivfpq" if kind == "faiss-hnsw" else "faiss-hnsw"
    assert cli_main(["index", "--index", str(index_path), "--kind", other]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --index") and "--overwrite" in error and "\n" not in error
    assert cli_main(["index", "--index", str(index_path), "--kind", other, "--overwrite"]) == 0
    assert not (index_path / record["file"]).exists()
    assert VideoIndex(index_path).ann.kind == other


def test_ann_with_small_parameters_is_approximate_but_scores_stay_exact(tmp_path, unit_vectors, queries):
    """One cell of 16 visited and few candidates: some true neighbours are missed (this is what the benchmark's
    recall measures), but every returned score is the exact cosine of its row."""
    index_path = write_extracted_index(tmp_path / "index", unit_vectors)
    assert cli_main(["index", "--index", str(index_path), "--kind", "faiss-ivfpq", "--nlist", "16",
                     "--nprobe", "1", "--pq-m", "8", "--refine", "1"]) == 0  # fmt: skip
    index = VideoIndex(index_path)
    ann_hits = index.search_embeddings(queries, top_k=10)
    exact_rows = [[h.row for h in hits] for hits in index.search_embeddings(queries, top_k=10, exact=True)]
    recall = np.mean([len({h.row for h in ann} & set(exact)) / 10 for ann, exact in zip(ann_hits, exact_rows)])
    assert recall < 1.0
    for query, hits in zip(queries, ann_hits):
        stored = torch.from_numpy(index.embeddings[[h.row for h in hits]]).float()
        assert [h.score for h in hits] == pytest.approx((stored @ query).tolist(), abs=1e-5)


NO_FAISS = "import sys; sys.modules['faiss'] = None  # `import faiss` raises ImportError, as when not installed\n"


def test_without_faiss_search_falls_back_to_exact_and_index_says_how_to_install(tmp_path, unit_vectors, queries):
    index_path = write_extracted_index(tmp_path / "index", unit_vectors)
    assert cli_main(["index", "--index", str(index_path), "--kind", "faiss-hnsw"]) == 0
    torch.save(queries, tmp_path / "queries.pt")
    # one interpreter (startup is most of the cost): search, then `tvtsv2 index`, whose status ends the output
    script = NO_FAISS + (
        "import json, torch\n"
        "from modeling_tvtsv2.cli import main\n"
        "from modeling_tvtsv2.evaluation.search import VideoIndex\n"
        f"index = VideoIndex({str(index_path)!r})\n"
        "assert index.ann is None\n"
        f"hits = index.search_embeddings(torch.load({str(tmp_path / 'queries.pt')!r}), top_k=10)\n"
        "print(json.dumps([[hit.row for hit in q] for q in hits]))\n"
        "print('sys.stderr', file=sys.stderr)\n"
        f"print(main(['index', '--index', {str(index_path)!r}, '--kind', 'faiss-ivfpq', '--overwrite']))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    rows, status = result.stdout.splitlines()
    expected = [[h.row for h in q] for q in VideoIndex(index_path).search_embeddings(queries, top_k=10, exact=True)]
    assert json.loads(rows) == expected
    search_log, index_log = result.stderr.split("sys.stderr\n")
    hint = [line for line in search_log.splitlines() if "FAISS is not installed" in line]
    assert len(hint) == 1 and 'pip install ".[search]"' in hint[0] and "exact search" in hint[0]
    assert status == "2"
    assert index_log.strip() == 'error: tvtsv2 index needs FAISS: pip install ".[search]"  (faiss-cpu)'
