"""`tvtsv2 extract --streaming`: embed a Hub or remote dataset without downloading it whole on every process.

Job `j` of `J` (`--shard_index/--num_shards`; one job without them) streams only its part of the dataset
(`datasets.load_dataset(..., streaming=True)` + `datasets.distributed.split_dataset_by_node(rank=j, world_size=J)`:
whole data files per job when their number divides among the jobs, else every `J`-th row). The job's local main
process writes that part, as its rows arrive, to `OUTPUT.stream/part-<job>` (a dataset on the local disk; the
other processes of the job wait for it, so the part is read once per job), and the job's processes embed it with
:func:`~modeling_tvtsv2.evaluation.extract.extract_features` into `OUTPUT.stream/features-<job>` (shards, resume,
processes: as always). The job that completes the last part concatenates the parts into `OUTPUT` in job order
(`row` counts the rows in that order) with every part's skipped videos in `extraction.json`; the merge is claimed,
so two jobs finishing together never both write it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..data.corpus_output import dataset_from_rows
from ..data.schema import undecoded_videos
from ..data.sharding import ShardSpec, claim, resolve_shard, write_json_atomic
from ..tools.output_folders import publish_folder
from .extract import (
    EXTRACT_DESCRIPTION,
    MANIFEST_NAME,
    ExtractArguments,
    ExtractionError,
    ExtractionReport,
    extract_features,
    load_model_for_command,
    open_video_table,
    parse_windows,
    print_report,
    run_extract,
)

__all__ = ["extract_command", "extract_streamed"]


def extract_command(argv=None, prog: str | None = None) -> int:
    """`tvtsv2 extract ...`: the streamed path with `--streaming`, else :func:`extract.run_extract`; returns the exit
    status (2 with one `error: ...` line for a user mistake)."""
    import sys

    import datasets
    import torch
    from accelerate import PartialState

    from ..tools.arguments import parse_tool_arguments

    (args,) = parse_tool_arguments(ExtractArguments, argv, prog=prog, description=EXTRACT_DESCRIPTION)
    if not args.streaming:
        return run_extract(args)
    datasets.disable_progress_bars()
    try:
        windows = parse_windows(args.windows)
        resolve_shard(args.shard_index, args.num_shards, use_launcher=False)
        if Path(args.output).exists() and _read(Path(args.output) / MANIFEST_NAME) is None and not args.overwrite:
            raise ExtractionError(f"--output {args.output} exists and is not an extraction output; pass --overwrite")
        state = PartialState(cpu=args.use_cpu or not torch.cuda.is_available())
        model, processor = load_model_for_command(args.model, state.device, args.dtype, args.trust_remote_code)
        keep = [c.strip() for c in args.keep_columns.split(",") if c.strip()]
        report = extract_streamed(model, processor, args, state, windows, keep)
    except (ExtractionError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return print_report(report)


def _write_part(source: str, split: str, job: ShardSpec, part: Path) -> None:
    """Streams job `job`'s part of `source` into the dataset folder `part` (written aside, renamed when complete;
    a part without rows is an empty folder with a marker)."""
    import datasets
    from datasets.distributed import split_dataset_by_node

    try:
        stream = datasets.load_dataset(source, split=split, streaming=True)
    except Exception as error:  # noqa: BLE001 - the Hub/loader raises many types; report one line
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ExtractionError(f"{source}: cannot be streamed with load_dataset ({reason})") from None
    mine = iter(split_dataset_by_node(undecoded_videos(stream, None), rank=job.index, world_size=job.count))
    temporary = part.with_name(f".{part.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    first = next(mine, None)
    if first is None:
        temporary.mkdir(parents=True)
        (temporary / "EMPTY").write_text("this job's part of the dataset has no rows\n", encoding="utf-8")
    else:
        dataset = dataset_from_rows(itertools.chain([first], mine), stream.features, temporary / "cache")
        dataset.save_to_disk(str(temporary / "data"))
        del dataset
        os.replace(temporary / "data", temporary / "part")
        shutil.rmtree(temporary / "cache", ignore_errors=True)
        temporary = temporary / "part"
    os.replace(temporary, part)
    shutil.rmtree(part.with_name(f".{part.name}.tmp-{os.getpid()}"), ignore_errors=True)


def extract_streamed(model, processor, args, state, windows, keep_columns: list[str]) -> ExtractionReport:
    """`tvtsv2 extract --streaming` for the parsed `args` (see the module docstring); every process of every job
    calls it. Returns the merged report, or one with `merged=False` while other jobs still run."""
    import datasets

    job = resolve_shard(args.shard_index, args.num_shards, use_launcher=False)
    output = Path(os.fspath(args.output)).absolute()
    manifest = _read(output / MANIFEST_NAME)
    if manifest and manifest.get("complete") and not args.overwrite:
        return ExtractionReport(str(output), 0, manifest.get("num_rows", 0), 0, 0, manifest.get("skipped", []),
                                already_complete=True)
    stage = output.with_name(output.name + ".stream")
    part, features = stage / f"part-{job.name}", stage / f"features-{job.name}"
    failure = None
    with state.local_main_process_first():  # the local main streams the part; the others wait, then read it
        try:
            if state.is_local_main_process and not part.is_dir():
                _write_part(args.input, args.split or "train", job, part)
        except ExtractionError as error:
            failure = error
    if failure is not None:
        raise failure
    if not (part / "EMPTY").exists():
        table = open_video_table(part, video_column=args.video_column, text_column=args.text_column,
                                 keep_columns=keep_columns, video_root=args.video_root)
        extract_features(
            model, processor, table, features, model_name=args.model, windows=windows, num_frames=args.num_frames,
            sampling=args.sampling, transform=args.transform, embedding_dtype=args.embedding_dtype,
            shard_size=args.shard_size, batch_size=args.batch_size, num_workers=args.num_workers,
            show_progress=not args.no_progress, settings_extra={"streamed_from": args.input, "part": job.to_json()},
        )  # fmt: skip
    state.wait_for_everyone()
    if not state.is_main_process:
        return ExtractionReport(str(output), 0, 0, job.count, 0, [], merged=False)
    parts = [ShardSpec(i, job.count).name for i in range(job.count)]
    done = [(stage / f"part-{name}" / "EMPTY").exists() or bool((_read(stage / f"features-{name}" / MANIFEST_NAME)
                                                                  or {}).get("complete")) for name in parts]
    if not all(done) or not claim(stage / "merge.claim"):
        return ExtractionReport(str(output), 0, 0, job.count, 0, [], merged=False)
    return _merge(output, stage, parts, datasets)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _merge(output: Path, stage: Path, parts: list[str], datasets) -> ExtractionReport:
    pieces, skipped, settings, offset, num_videos = [], [], None, 0, 0
    for name in parts:
        if (stage / f"part-{name}" / "EMPTY").exists():
            continue
        folder = stage / f"features-{name}"
        manifest = _read(folder / MANIFEST_NAME) or {}
        settings = settings or {k: v for k, v in manifest.get("settings", {}).items() if k != "part"}
        piece = datasets.load_from_disk(str(folder))
        pieces.append(piece.map(lambda rows, start: {"row": [r + start for r in rows["row"]]}, batched=True,
                                fn_kwargs={"start": offset}, keep_in_memory=True))
        skipped += [{**entry, "row": entry["row"] + offset} for entry in manifest.get("skipped", [])]
        count = len(datasets.load_from_disk(str(stage / f"part-{name}")))
        offset, num_videos = offset + count, num_videos + count
    if not pieces:
        raise ExtractionError(f"{stage}: the streamed dataset has no rows")
    merged = datasets.concatenate_datasets(pieces)
    staging = stage / "merged"
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_to_disk(str(staging))
    settings = {**settings, "num_videos": num_videos, "video_ids_sha1": None, "parts": len(parts)}
    write_json_atomic(staging / MANIFEST_NAME, {"settings": settings, "complete": True, "num_rows": len(merged),
                                                "skipped": skipped})
    publish_folder(staging, output)  # an existing output only with --overwrite (checked before any work)
    shutil.rmtree(stage)
    return ExtractionReport(str(output), num_videos, len(merged), len(parts), 0, skipped)

