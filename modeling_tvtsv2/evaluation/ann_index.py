"""Approximate nearest-neighbour (FAISS) indexes beside an extracted index (`tvtsv2 index`).

Exact search (`search.exact_top_k`) reads every stored vector for every query: about a second per query per
million 512-d vectors on one CPU core. A library indexed in sliding windows reaches 10^7-10^8 rows, so
`tvtsv2 index --index INDEX --kind faiss-hnsw|faiss-ivfpq` builds a FAISS index of the `video_embedding` column
(inner product = cosine, the rows are L2-normalised) with 🤗 Datasets' `add_faiss_index` and saves it with
`save_faiss_index` beside the dataset, as `INDEX/video_embedding.<kind>.faiss`. It is recorded in
`INDEX/extraction.json` under `"ann_index"` (kind, file, rows, build and search parameters); `tvtsv2 search`, the
Python API (`search.VideoIndex`) and `tvtsv2 app` use it when it is there and FAISS is installed, and exact search
otherwise (with a one-line hint naming `pip install ".[search]"`).

The ANN index only proposes candidates: `candidates(k)` returns `refine * k` rows per query, and the caller rescores
them exactly against the stored embeddings (`search.VideoIndex.search_embeddings`). So the hits are the same
`SearchHit`s with the same (exact cosine) scores as exact search; only a true neighbour that the ANN index misses
can change the ranking.

Kinds:

* `faiss-hnsw`: `IndexHNSWFlat` (graph over float32 copies of the vectors: 4 bytes x dim per row + the graph;
  no training). Search breadth `ef_search`.
* `faiss-ivfpq`: `IndexIVFPQ` (`nlist` k-means cells, each vector stored as `pq_m` bytes: 64 bytes per 512-d row;
  trained on a random sample). Cells visited per query `nprobe`; `refine` makes up for the coarse PQ scores.

A new ANN index is written to a temporary file and moved into place, then the manifest is updated; an existing one
is replaced only with `overwrite=True`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers.utils import logging

from .extract import MANIFEST_NAME, ExtractionError


logger = logging.get_logger(__name__)

ANN_KINDS = ("faiss-hnsw", "faiss-ivfpq")
ANN_MANIFEST_KEY = "ann_index"
EMBEDDING_COLUMN = "video_embedding"
INSTALL_HINT = 'pip install ".[search]"  (faiss-cpu)'

__all__ = [
    "ANN_KINDS",
    "AnnIndex",
    "AnnParameters",
    "build_ann_index",
    "faiss_factory_string",
    "import_faiss",
    "open_ann_index",
]


def import_faiss():
    """The `faiss` module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


@dataclasses.dataclass
class AnnParameters:
    """Build and search parameters (`None`: chosen from the number of rows, see `resolved`)."""

    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int | None = None
    pq_bits: int | None = None
    nprobe: int | None = None
    refine: int = 8  # IVF-PQ's coarse scores: recall@10 0.94 at 4, 0.997 at 8 (benchmarks/README.md)
    train_size: int = 100_000

    def resolved(self, kind: str, num_rows: int, dim: int) -> AnnParameters:
        """The parameters with every `None` replaced by a value suited to `num_rows` x `dim` (and checked)."""
        params = dataclasses.replace(self)
        if kind == "faiss-ivfpq":
            # ~4 sqrt(N) cells, but at least 39 training points per cell (FAISS's k-means rule of thumb)
            params.nlist = params.nlist or max(1, min(int(4 * math.sqrt(num_rows)), num_rows // 39))
            params.pq_m = params.pq_m or next(m for m in (64, 32, 16, 8, 4, 2, 1) if dim % m == 0)
            # 2^bits centroids per sub-quantizer, each with ~39 training points (else FAISS warns and k-means is poor)
            trainable = min(num_rows, params.train_size) // 39
            params.pq_bits = params.pq_bits or max(1, min(8, int(math.log2(max(2, trainable)))))
            params.nprobe = params.nprobe or max(1, min(params.nlist, 16))
            if dim % params.pq_m:
                raise ExtractionError(f"--pq-m {params.pq_m} must divide the embedding dimension {dim}")
            if params.nlist > num_rows:
                raise ExtractionError(f"--nlist {params.nlist} is larger than the number of rows ({num_rows})")
        for name in ("hnsw_m", "ef_construction", "ef_search", "refine", "train_size"):
            if getattr(params, name) < 1:
                raise ExtractionError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(params, name)}")
        return params


def faiss_factory_string(kind: str, params: AnnParameters) -> str:
    """The `faiss.index_factory` description of an index of `kind` (parameters resolved)."""
    if kind == "faiss-hnsw":
        return f"HNSW{params.hnsw_m},Flat"
    if kind == "faiss-ivfpq":
        return f"IVF{params.nlist},PQ{params.pq_m}x{params.pq_bits}"
    raise ExtractionError(f"--kind must be one of {ANN_KINDS}, got {kind!r}")


def new_faiss_index(kind: str, params: AnnParameters, dim: int):
    """An empty FAISS index (inner product) of `kind` with its build-time parameters set."""
    faiss = import_faiss()
    index = faiss.index_factory(dim, faiss_factory_string(kind, params), faiss.METRIC_INNER_PRODUCT)
    if kind == "faiss-hnsw":
        index.hnsw.efConstruction = params.ef_construction
    else:  # the factory turns on polysemous code training: minutes of simulated annealing, unused by our search
        faiss.downcast_index(faiss.extract_index_ivf(index)).do_polysemous_training = False
    return index


def set_search_parameters(index, kind: str, params: AnnParameters) -> None:
    """Applies the query-time parameters (`ef_search` / `nprobe`) to a FAISS index."""
    faiss = import_faiss()
    if kind == "faiss-hnsw":
        faiss.downcast_index(index).hnsw.efSearch = params.ef_search
    else:
        faiss.extract_index_ivf(index).nprobe = params.nprobe


def training_sample(num_rows: int, params: AnnParameters, seed: int = 0) -> np.ndarray:
    """The sorted rows an index that needs training (IVF-PQ) is trained on: a random sample, since consecutive rows
    are windows of the same few videos."""
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=min(num_rows, params.train_size), replace=False))


def ann_file_name(kind: str) -> str:
    return f"{EMBEDDING_COLUMN}.{kind}.faiss"


def read_manifest(index_path: Path) -> dict[str, Any]:
    manifest_path = index_path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ExtractionError(f"--index {index_path}: not an output of `tvtsv2 extract` (no {MANIFEST_NAME})")
    return json.loads(manifest_path.read_text(encoding="utf-8"))


def write_manifest(index_path: Path, manifest: dict[str, Any]) -> None:
    """Rewrites `extraction.json` atomically (temporary file + rename)."""
    temporary = index_path / f".{MANIFEST_NAME}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(temporary, index_path / MANIFEST_NAME)


def build_ann_index(
    index_path: str | os.PathLike[str],
    kind: str,
    params: AnnParameters | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Builds the `kind` ANN index of an extracted index and records it in its `extraction.json`.

    Returns:
        The manifest record (`kind`, `file`, `num_rows`, `dim`, `factory`, `parameters`).

    Raises:
        ExtractionError: no faiss, not an extracted index, an existing ANN index without `overwrite`, bad
            parameters.
    """
    import datasets

    faiss = import_faiss()
    if faiss is None:
        raise ExtractionError(f"tvtsv2 index needs FAISS: {INSTALL_HINT}")
    if kind not in ANN_KINDS:
        raise ExtractionError(f"--kind must be one of {ANN_KINDS}, got {kind!r}")
    index_path = Path(os.fspath(index_path))
    manifest = read_manifest(index_path)
    existing = manifest.get(ANN_MANIFEST_KEY)
    if existing and not overwrite:
        raise ExtractionError(
            f"--index {index_path} already has a {existing['kind']} index ({existing['file']}); pass --overwrite "
            "to replace it"
        )
    dataset = datasets.load_from_disk(str(index_path))
    num_rows = len(dataset)
    if num_rows == 0:
        raise ExtractionError(f"--index {index_path}: the index has no rows")
    dim = len(dataset[0][EMBEDDING_COLUMN])
    params = (params or AnnParameters()).resolved(kind, num_rows, dim)
    custom = new_faiss_index(kind, params, dim)
    if not custom.is_trained:
        sample = dataset.select(training_sample(num_rows, params)).with_format("numpy", columns=[EMBEDDING_COLUMN])
        custom.train(np.ascontiguousarray(sample[:][EMBEDDING_COLUMN], dtype=np.float32))
    # datasets adds the column in float32 batches; saved beside the dataset under a temporary name first
    dataset.add_faiss_index(EMBEDDING_COLUMN, custom_index=custom, batch_size=10_000)
    file_name = ann_file_name(kind)
    temporary = index_path / f".{file_name}.tmp-{os.getpid()}"
    dataset.save_faiss_index(EMBEDDING_COLUMN, str(temporary))
    os.replace(temporary, index_path / file_name)
    record = {
        "kind": kind,
        "file": file_name,
        "num_rows": num_rows,
        "dim": dim,
        "factory": faiss_factory_string(kind, params),
        "parameters": dataclasses.asdict(params),
    }
    manifest[ANN_MANIFEST_KEY] = record
    write_manifest(index_path, manifest)
    if existing and existing["file"] != file_name:  # the replaced kind's file, now that the new one is recorded
        (index_path / existing["file"]).unlink(missing_ok=True)
    return record


class AnnIndex:
    """A saved FAISS index opened for search: `candidates(queries, k)` -> candidate rows `[Q, refine * k]`."""

    def __init__(self, faiss_index, kind: str, params: AnnParameters, num_rows: int):
        self.faiss_index, self.kind, self.params, self.num_rows = faiss_index, kind, params, num_rows

    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Candidate rows for each query (`-1` pads where FAISS found fewer)."""
        wanted = min(self.num_rows, self.params.refine * k)
        _, rows = self.faiss_index.search(np.ascontiguousarray(queries, dtype=np.float32), wanted)
        return rows


def open_ann_index(
    index_path: Path, manifest: dict[str, Any], num_rows: int, overrides: dict[str, int] | None = None
) -> AnnIndex | None:
    """The ANN index recorded in `manifest`, or None (no record; no faiss, a stale or missing file: with a
    one-line warning) so that the caller searches exactly. `overrides` replaces search parameters
    (`ef_search`, `nprobe`, `refine`)."""
    record = manifest.get(ANN_MANIFEST_KEY)
    if not record:
        return None
    faiss = import_faiss()
    if faiss is None:
        logger.warning(f"{index_path} has a {record['kind']} index but FAISS is not installed: exact search "
                       f"({INSTALL_HINT})")  # fmt: skip
        return None
    path = index_path / record["file"]
    if record.get("num_rows") != num_rows or not path.is_file():
        logger.warning(f"{path}: missing or made for another number of rows; exact search (rerun tvtsv2 index "
                       "--overwrite)")  # fmt: skip
        return None
    known = {field.name for field in dataclasses.fields(AnnParameters)}
    params = AnnParameters(**{k: v for k, v in record.get("parameters", {}).items() if k in known})
    params = dataclasses.replace(params, **(overrides or {}))
    faiss_index = faiss.read_index(str(path))
    set_search_parameters(faiss_index, record["kind"], params)
    return AnnIndex(faiss_index, record["kind"], params, num_rows)


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class IndexArguments:
    """`tvtsv2 index` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`, `--config FILE`)."""

    index: str = dataclasses.field(metadata={"help": "output folder of `tvtsv2 extract`"})
    kind: str = dataclasses.field(metadata={"help": "ANN index kind", "choices": list(ANN_KINDS)})
    hnsw_m: int = dataclasses.field(default=32, metadata={"help": "faiss-hnsw: graph neighbours per node"})
    ef_construction: int = dataclasses.field(default=80, metadata={"help": "faiss-hnsw: build search breadth"})
    ef_search: int = dataclasses.field(default=128, metadata={"help": "faiss-hnsw: query search breadth"})
    nlist: int | None = dataclasses.field(default=None, metadata={"help": "faiss-ivfpq: cells (default ~4 sqrt N)"})
    pq_m: int | None = dataclasses.field(default=None, metadata={"help": "faiss-ivfpq: bytes per vector (default 64)"})
    pq_bits: int | None = dataclasses.field(default=None, metadata={"help": "faiss-ivfpq: bits per code (<= 8)"})
    nprobe: int | None = dataclasses.field(default=None, metadata={"help": "faiss-ivfpq: cells visited per query"})
    refine: int = dataclasses.field(
        default=8, metadata={"help": "candidates per wanted hit, rescored exactly against the stored embeddings"}
    )
    train_size: int = dataclasses.field(default=100_000, metadata={"help": "faiss-ivfpq: rows sampled to train"})
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "replace an existing ANN index"})


INDEX_DESCRIPTION = (
    "Build a FAISS index (HNSW or IVF-PQ) of an extracted index's embeddings; `tvtsv2 search` and `tvtsv2 app` "
    f"then use it. Needs {INSTALL_HINT}."
)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`tvtsv2 index --index EXTRACTED --kind faiss-hnsw`: returns the exit status (2 with one `error: ...` line
    for a user mistake)."""
    from ..tools.arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(IndexArguments, argv, prog=prog, description=INDEX_DESCRIPTION)
    fields = {f.name for f in dataclasses.fields(AnnParameters)}
    params = AnnParameters(**{k: v for k, v in dataclasses.asdict(args).items() if k in fields})
    try:
        record = build_ann_index(args.index, args.kind, params, overwrite=args.overwrite)
    except ExtractionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{record['kind']} index of {record['num_rows']} rows ({record['factory']}): "
          f"{Path(args.index) / record['file']}")  # fmt: skip
    return 0
