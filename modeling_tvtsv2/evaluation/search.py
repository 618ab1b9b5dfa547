"""Text-to-video / text-to-moment search over an index made by `tvtsv2 extract` (`tvtsv2 search`).

An index is the output folder of `tvtsv2 extract` (with `--windows` for moments in long videos): its
`video_embedding` column is L2-normalised, so a query's score is the cosine between the query's text embedding and
a row. Search is exact: the scores of all rows are computed in chunks (`chunk_size` rows at a time, in float32)
and the best `top_k` are kept, so memory stays at one chunk plus the stored embeddings. On CPU this serves up to
about a million vectors (a query over 1M x 512 float16 vectors reads 1 GB); beyond that, or for many queries per
second, move the `video_embedding` column to an approximate nearest-neighbour index such as FAISS (`IndexHNSWFlat`
or `IndexIVFPQ` with inner product): `tvtsv2 index` (`ann_index.py`) builds one beside the dataset, and
`VideoIndex` then searches it when FAISS is installed, rescoring its candidates exactly (same `SearchHit`s), and
falls back to exact search otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path
import numpy as np
import torch
from transformers.utils import logging

from .ann_index import open_ann_index
from .embedding import embed_texts
from .extract import MANIFEST_NAME, ExtractionError, load_model_for_command, model_fingerprint


logger = logging.get_logger(__name__)

__all__ = ["SearchHit", "VideoIndex", "check_index_model", "exact_top_k", "search"]


@dataclasses.dataclass(frozen=True)
class SearchHit:
    """One result: the video (and window, for a windowed index), its cosine score and its row in the index."""

    video_id: str
    score: float
    start: float | None = None
    end: float | None = None
    row: int = -1

    def describe(self) -> str:
        where = f"{self.start:.2f}-{self.end:.2f} s" if self.start is not None else "whole video"
        return f"{self.score:6.3f}  {where:>17}  {self.video_id}"


def exact_top_k(
    queries: torch.Tensor, keys: torch.Tensor | np.ndarray, k: int, chunk_size: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` largest inner products of each query with the rows of `keys`, computed chunk by chunk.

    Args:
        queries: `[Q, D]`.
        keys: `[N, D]` (any float dtype; each chunk is converted to float32).
        k: results per query (at most N).
        chunk_size: rows scored at a time.

    Returns:
        `(scores [Q, k], indices [Q, k])`, best first; ties keep the lower row index first.
    """
    num_keys = keys.shape[0]
    k = min(k, num_keys)
    queries = queries.float()
    best_scores = torch.full((queries.shape[0], 0), -float("inf"))
    best_indices = torch.zeros((queries.shape[0], 0), dtype=torch.long)
    for start in range(0, num_keys, chunk_size):
        chunk = torch.as_tensor(keys[start : start + chunk_size]).float()
        scores = queries @ chunk.T
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        # previous best first: on equal scores the earlier (lower) row stays ahead
        scores = torch.cat([best_scores, top.values], dim=1)
        indices = torch.cat([best_indices, top.indices + start], dim=1)
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        best_scores, best_indices = scores.gather(1, order), indices.gather(1, order)
    return best_scores, best_indices


class VideoIndex:
    """An extracted dataset opened for search: its embeddings (`[N, D]`, as stored), row descriptions and, when
    `tvtsv2 index` built one and FAISS is installed, its ANN index (`ann`; `ann_overrides` such as
    `{"ef_search": 512}` or `{"nprobe": 64}` replace its recorded search parameters)."""

    def __init__(self, path: str | os.PathLike[str], ann_overrides: dict[str, int] | None = None):
        import datasets

        self.path = Path(os.fspath(path))
        self.checked_models: weakref.WeakSet = weakref.WeakSet()  # models whose fingerprint matched
        manifest_path = self.path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ExtractionError(f"--index {self.path}: not an output of `tvtsv2 extract` (no {MANIFEST_NAME})")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # ValueError: not JSON, not UTF-8
            raise ExtractionError(f"--index {self.path}: {manifest_path} is damaged ({error})") from None
        self.settings = self.manifest.get("settings") if isinstance(self.manifest, dict) else None
        if not isinstance(self.settings, dict):
            raise ExtractionError(f"--index {self.path}: {manifest_path} is damaged (no settings object)")
        try:  # a damaged or truncated dataset raises many error types (pyarrow, datasets, OSError, KeyError)
            dataset = datasets.load_from_disk(str(self.path))
            windowed = "start" in dataset.column_names
            columns = dataset.select_columns(["video_id", "row", *(["start", "end"] if windowed else [])]).to_dict()
            # one contiguous array (float16 stays float16 in memory: half the RAM; chunks are upcast when scored)
            self.embeddings = dataset.with_format("numpy", columns=["video_embedding"])[:]["video_embedding"]
            if self.embeddings.ndim != 2:
                raise ValueError(f"video_embedding has shape {self.embeddings.shape}, expected [rows, dim]")
        except Exception as error:  # noqa: BLE001 - reported as one line naming the folder
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ExtractionError(f"--index {self.path}: the extracted dataset is damaged ({detail})") from None
        self.video_ids: list[str] = columns["video_id"]
        self.rows: list[int] = columns["row"]
        self.starts = columns["start"] if windowed else None
        self.ends = columns["end"] if windowed else None
        if len(self.video_ids) == 0:
            raise ExtractionError(f"--index {self.path}: the index has no rows")
        # Rows of NaN/inf would be every query's best hit (score nan): skipped, with a warning.
        finite = np.isfinite(self.embeddings).all(axis=1)
        self.kept_rows = None if finite.all() else np.flatnonzero(finite)
        if self.kept_rows is not None:
            logger.warning(
                "%s: %d rows have non-finite embeddings (NaN or inf) and are skipped (first: video %s)",
                self.path, int((~finite).sum()), self.video_ids[int(np.flatnonzero(~finite)[0])],
            )  # fmt: skip
            if self.kept_rows.size == 0:
                raise ExtractionError(f"--index {self.path}: no row has a finite embedding")
            self.embeddings = self.embeddings[finite]
        # The ANN index numbers every stored row: with rows skipped, search exactly.
        self.ann = None if self.kept_rows is not None else open_ann_index(
            self.path, self.manifest, len(self.video_ids), ann_overrides
        )

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def model_name(self) -> str | None:
        return self.settings.get("model")

    def hit(self, index: int, score: float) -> SearchHit:
        index = int(self.kept_rows[index]) if self.kept_rows is not None else index
        start = None if self.starts is None else float(self.starts[index])
        end = None if self.ends is None else float(self.ends[index])
        return SearchHit(self.video_ids[index], float(score), start, end, int(index))

    def search_embeddings(
        self, query_embeddings: torch.Tensor, top_k: int = 5, chunk_size: int = 65536, exact: bool = False
    ) -> list[list[SearchHit]]:
        """Best rows for each L2-normalised query embedding `[Q, D]` (through the ANN index unless `exact`)."""
        dim = self.embeddings.shape[1]
        if query_embeddings.shape[-1] != dim:
            raise ExtractionError(
                f"query embeddings have {query_embeddings.shape[-1]} dimensions, the index {dim}: another model?"
            )
        if self.ann is not None and not exact:
            return [self.rescore(query, rows, top_k) for query, rows in
                    zip(query_embeddings, self.ann.candidates(query_embeddings.float().numpy(), top_k))]  # fmt: skip
        scores, indices = exact_top_k(query_embeddings, self.embeddings, top_k, chunk_size)
        return [[self.hit(int(i), float(s)) for s, i in zip(row_s, row_i)] for row_s, row_i in zip(scores, indices)]

    def rescore(self, query_embedding: torch.Tensor, rows: np.ndarray, top_k: int) -> list[SearchHit]:
        """The best `top_k` of the candidate `rows` (ANN output, `-1` = none) by exact cosine; rows in increasing
        order, so ties keep the lower row first as in exact search."""
        rows = np.unique(rows[rows >= 0])
        scores, order = exact_top_k(query_embedding[None], self.embeddings[rows], top_k)
        return [self.hit(int(rows[i]), float(s)) for s, i in zip(scores[0], order[0])]


def check_index_model(index: VideoIndex, model, where: str = "the given model") -> None:
    """Refuses a model that is not the one that made `index` (its `model_fingerprint` differs): its text
    embeddings would not live in the index's space, and every hit would be noise."""
    recorded = index.settings.get("model_fingerprint")
    if recorded is None or model in index.checked_models:  # hashing a B/16 takes ~2 s: once per index and model
        return
    found = model_fingerprint(model, index.settings.get("model_dtype"))
    if found != recorded:
        raise ExtractionError(
            f"{where} is not the model that made --index {index.path} (model fingerprint {found}, the index "
            f"records {recorded}); search with the model that made the index"
        )
    index.checked_models.add(model)


def search(
    index: VideoIndex | str | os.PathLike[str],
    queries: str | Sequence[str],
    model=None,
    processor=None,
    top_k: int = 5,
    chunk_size: int = 65536,
    check_model: bool = True,
    exact: bool = False,
) -> list[list[SearchHit]] | list[SearchHit]:
    """Text-to-video (or text-to-moment) search.

    Args:
        index: a :class:`VideoIndex` or the folder written by `tvtsv2 extract`.
        queries: one text (then one list of hits is returned) or several (a list per query).
        model, processor: the model that made the index; by default the one recorded in the index is loaded.
        top_k: hits per query, best first.
        check_model: refuse a model that did not make the index (:func:`check_index_model`).
        exact: score every row even when the index has an ANN index (`tvtsv2 index`).

    Returns:
        `SearchHit`s (`video_id`, `score`, `start`, `end`, `row`).
    """
    if not isinstance(index, VideoIndex):
        index = VideoIndex(index)
    where = "the given model"
    if model is None:
        if not index.model_name:
            raise ExtractionError(f"{index.path} does not record its model: pass --model")
        model, processor = load_model_for_command(index.model_name, dtype=index.settings.get("model_dtype"))
        where = f"the model at {index.model_name}"
    if check_model:
        check_index_model(index, model, where)
    single = isinstance(queries, str)
    texts = [queries] if single else list(queries)
    if not texts or any(not t.strip() for t in texts):
        raise ExtractionError("search: empty query")
    hits = index.search_embeddings(embed_texts(model, processor, texts), top_k=top_k, chunk_size=chunk_size,
                                   exact=exact)  # fmt: skip
    return hits[0] if single else hits


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SearchArguments:
    """`tvtsv2 search` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`, `--config FILE`; the
    queries are positional, so switches such as `--json` take no value)."""

    queries: list[str] = dataclasses.field(metadata={"help": "text queries", "positional": True})
    index: str = dataclasses.field(
        metadata={"help": "output folder of `tvtsv2 extract` (use --windows for moments)"}
    )
    top_k: int = dataclasses.field(default=5, metadata={"help": "hits per query"})
    model: str | None = dataclasses.field(
        default=None, metadata={"help": "model folder (default: the one recorded in the index)"}
    )
    json: bool = dataclasses.field(default=False, metadata={"help": "print the hits as JSON lines"})
    exact: bool = dataclasses.field(
        default=False, metadata={"help": "score every row even when `tvtsv2 index` built an ANN index"}
    )


SEARCH_DESCRIPTION = "Prints the best videos or windows (score, start-end seconds, video) for each query."


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`tvtsv2 search --index EXTRACTED "a man opens a door" [--top-k 5]`: returns the exit status (2 with one
    `error: ...` line for a user mistake)."""
    from ..tools.arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(SearchArguments, argv, prog=prog, description=SEARCH_DESCRIPTION)
    return run_search(args)


def run_search(args: SearchArguments) -> int:
    """Runs `tvtsv2 search`; returns the exit status (2 with a one-line error for a user mistake)."""
    try:
        if args.top_k < 1:
            raise ExtractionError(f"--top-k must be >= 1, got {args.top_k}")
        index = VideoIndex(args.index)
        model = processor = None
        if args.model:
            model, processor = load_model_for_command(args.model, dtype=index.settings.get("model_dtype"))
            check_index_model(index, model, f"--model {args.model}")
        results = search(index, list(args.queries), model, processor, top_k=args.top_k, check_model=not args.model,
                         exact=args.exact)
    except ExtractionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for query, hits in zip(args.queries, results):
        if args.json:
            for hit in hits:
                print(json.dumps({"query": query, **dataclasses.asdict(hit)}))
            continue
        print(f"query: {query!r}  ({len(index)} rows in {index.path})")
        print(f"{'rank':>4}  {'score':>6}  {'window':>17}  video")
        for rank, hit in enumerate(hits, start=1):
            print(f"{rank:>4}  {hit.describe()}")
    return 0
