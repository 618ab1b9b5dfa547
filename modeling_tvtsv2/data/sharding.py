"""Splitting a corpus tool's work across machines: which part is this worker's, per-shard reports, the merge.

Every corpus tool (`tvtsv2 prepare-videos`, the corpus builders, `tvtsv2 extract`) runs as one *shard* of
`count`:

* ``--shard_index I --num_shards N`` (SLURM job arrays: ``--shard_index $SLURM_ARRAY_TASK_ID``; plain job lists);
* the launcher's rank and world size: ``torchrun`` and ``accelerate launch`` set ``RANK`` / ``WORLD_SIZE`` in
  every process (what accelerate's ``PartialState`` reads), so a launch over several processes or machines
  splits the work with no flag;
* both at once (each job of an array launches several processes): shard ``I * WORLD_SIZE + RANK`` of
  ``N * WORLD_SIZE``.

A shard takes a contiguous block of the tool's sorted work list (:meth:`ShardSpec.block`), so concatenating the
shards' results in shard order gives the one-shard result. Each shard writes its own report
(``<name>.shard-00001-of-00004.json``, written under a temporary name and renamed: complete or absent) and only
files of its own block. The worker that finishes last sees every report and merges them; the merge is claimed
with an atomic ``mkdir`` (:func:`claim`) so that two workers finishing together never both write the result.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

__all__ = ["ShardSpec", "claim", "read_shard_reports", "resolve_shard", "shard_report_path", "write_json_atomic"]

T = TypeVar("T")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    @property
    def is_single(self) -> bool:
        return self.count == 1

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}"

    def bounds(self, total: int) -> tuple[int, int]:
        """``[start, stop)`` of this shard's contiguous block of ``total`` items (sizes differ by at most 1)."""
        return self.index * total // self.count, (self.index + 1) * total // self.count

    def block(self, items: Sequence[T]) -> list[T]:
        """This shard's contiguous block of ``items``."""
        start, stop = self.bounds(len(items))
        return list(items[start:stop])

    def to_json(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else None
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def resolve_shard(shard_index: int | None = None, num_shards: int | None = None, *, use_launcher: bool = True
                  ) -> ShardSpec:
    """This worker's shard from ``--shard_index/--num_shards`` and, with ``use_launcher``, the launcher's
    ``RANK`` / ``WORLD_SIZE`` (see the module docstring).

    Raises:
        ValueError: naming the flag, for an index outside ``[0, num_shards)``, one flag without the other, or
            ``num_shards < 1``.
    """
    if (shard_index is None) != (num_shards is None):
        raise ValueError("--shard_index and --num_shards go together (e.g. --shard_index 0 --num_shards 4)")
    index, count = (0, 1) if num_shards is None else (int(shard_index), int(num_shards))
    if count < 1:
        raise ValueError(f"--num_shards must be >= 1, got {count}")
    if not 0 <= index < count:
        raise ValueError(f"--shard_index must be in [0, {count}) for --num_shards {count}, got {index}")
    if use_launcher:
        world = _env_int("WORLD_SIZE") or 1
        rank = _env_int("RANK") or 0
        if world > 1:
            if not 0 <= rank < world:
                raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
            index, count = index * world + rank, count * world
    return ShardSpec(index, count)


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> None:
    """Writes ``value`` as JSON to ``path`` through a temporary name unique to this host and process (renamed into
    place: a reader sees the old file, the new one, or none; two workers never share the temporary)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    temporary.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def shard_report_path(folder: str | os.PathLike[str], stem: str, spec: ShardSpec) -> Path:
    """Where shard ``spec`` writes its report: ``folder/<stem>.<shard name>.json``."""
    return Path(folder) / f"{stem}.{spec.name}.json"


def read_shard_reports(folder: str | os.PathLike[str], stem: str, count: int) -> list[dict[str, Any]] | None:
    """The ``count`` shard reports in shard order, or ``None`` while one is missing (its shard is not done)."""
    reports = []
    for index in range(count):
        path = shard_report_path(folder, stem, ShardSpec(index, count))
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            return None
    return reports


def claim(path: str | os.PathLike[str]) -> bool:
    """Claims a one-time task (the merge) for this worker: ``mkdir`` is atomic, so exactly one of the workers that
    try wins. The folder records who claimed it. A claim left by a dead process of this host is taken over."""
    path = Path(path)
    owner = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        try:
            previous = json.loads((path / "owner.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        if previous.get("host") != owner["host"] or _alive(int(previous.get("pid", -1))):
            return False
        # A stale claim of this host (its process died): take it over.
    write_json_atomic(path / "owner.json", owner)
    return True


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
