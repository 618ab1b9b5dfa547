"""`tvtsv2` command line (also `python -m modeling_tvtsv2`): a thin dispatcher.

`tvtsv2 [-v] COMMAND ARGS...` hands `ARGS` to the command's own parser: each tool parses its arguments dataclass
beside its logic with `modeling_tvtsv2.tools.arguments` (`--a_b` and `--a-b`, argument files, one-line errors with
exit code 2); `tvtsv2 COMMAND --help` lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from transformers.utils import logging

from .tools.arguments import ToolArgumentParser

# command -> (module, function taking (argv, prog=...) and returning the exit status, one-line summary)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "convert": (
        "modeling_tvtsv2.convert_tvtsv2_original_to_hf",
        "main",
        "convert an original TVTSv2 .pth checkpoint to a transformers model folder",
    ),
    "train": (
        "modeling_tvtsv2.pretraining.run",
        "main",
        "pre-train TVTSv2 (the demo, a recipe such as paper_b16, or your corpora); same arguments as "
        "training/run_pretrain.py (tvtsv2 train --help)",
    ),
    "export": (
        "modeling_tvtsv2.tools.hub_export",
        "main",
        "write a Hub-ready folder (remote code, processor, pipelines, model card) from a model folder",
    ),
    "eval": (
        "modeling_tvtsv2.evaluation.zero_shot",
        "eval_command",
        "zero-shot retrieval / classification / multiple-choice evaluation, results as JSON",
    ),
    "extract": (
        "modeling_tvtsv2.evaluation.extract_streaming",  # --streaming, else extract.run_extract
        "extract_command",
        "embed every video (or window) of a corpus into a 🤗 Dataset folder (resumable, multi-process)",
    ),
    "search": (
        "modeling_tvtsv2.evaluation.search",
        "main",
        "text-to-video / text-to-moment search in an index made by `tvtsv2 extract`",
    ),
    "index": (
        "modeling_tvtsv2.evaluation.ann_index",
        "main",
        "build a FAISS (HNSW / IVF-PQ) index beside an extracted index for fast search (needs .[search])",
    ),
    "app": (
        "modeling_tvtsv2.evaluation.app",
        "main",
        "browse an extracted index in the browser: text-to-moment search, playback, zero-shot labels (needs .[app])",
    ),
    "prepare-videos": (
        "modeling_tvtsv2.data.prepare_videos",
        "main",
        "transcode videos into training-ready files (H.264, shorter side 268, all-intra at <= 10 fps)",
    ),
}

def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: `-v/--verbose`, `--help` (listing the commands) and the command name."""
    parser = ToolArgumentParser(
        prog="tvtsv2",
        description="TVTSv2 tools for 🤗 Transformers",
        formatter_class=argparse.HelpFormatter,
        epilog="Every command accepts --a_b and --a-b spellings and a JSON/YAML argument file (--config FILE); "
        "`tvtsv2 COMMAND --help` lists its arguments.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, summary) in COMMANDS.items():
        subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The top-level options take no value, so the command is the first argument that is not an option.
    position = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    args = build_parser().parse_args(argv[: position + 1])  # --help, unknown options, bad commands: argparse
    if args.verbose:  # the package logs below transformers' logger (see __init__.py)
        logging.set_verbosity_info()
    module, function, _ = COMMANDS[args.command]
    command = getattr(importlib.import_module(module), function)
    return command(argv[position + 1 :], prog=f"tvtsv2 {args.command}")
