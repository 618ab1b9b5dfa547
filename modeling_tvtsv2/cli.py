"""`tvtsv2` command line (also `python -m modeling_tvtsv2`)."""

from __future__ import annotations

import argparse
import sys

from transformers.utils import logging


def _add_convert_subparser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an original TVTSv2 .pth checkpoint to a transformers model folder",
        description="Convert an original TVTSv2 checkpoint (trainer or downstream format) to config.json + "
        "model.safetensors (+ processor files). Released sizes are detected from tensor shapes; other sizes need "
        "--layout and the head counts.",
    )
    parser.add_argument("--checkpoint", required=True, help="original .pth file")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--variant", choices=["b32", "b16", "h14"], help="released variant (default: detect)")
    parser.add_argument("--layout", choices=["openai-clip", "open-clip"], help="CLIP flavour of a non-standard size")
    parser.add_argument("--vision-heads", type=int, help="attention heads of the video tower")
    parser.add_argument("--text-heads", type=int, help="attention heads of the text tower")
    parser.add_argument("--sort-heads", type=int, help="attention heads of the sort head")
    parser.add_argument("--no-processor", action="store_true", help="do not write processor/tokenizer files")
    parser.add_argument("--hub", action="store_true", help="also write a Hub-ready folder (remote code, model card)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --output as a whole once the conversion is done"
    )
    parser.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from .convert_tvtsv2_original_to_hf import run_convert

    return run_convert(args)


def _add_train_subparser(subparsers) -> None:
    # Listed for --help only: `tvtsv2 train ...` hands its arguments to the pre-training parser (see `main`).
    subparsers.add_parser(
        "train",
        help="pre-train TVTSv2 (the demo, a recipe such as paper_b16, or your corpora); same arguments as "
        "training/run_pretrain.py (tvtsv2 train --help)",
        add_help=False,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvtsv2", description="TVTSv2 tools for 🤗 Transformers")
    parser.add_argument("-v", "--verbose", action="store_true")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_convert_subparser(subparsers)
    _add_train_subparser(subparsers)
    try:
        from .tools.hub_export import add_export_subparser
    except ImportError:  # pragma: no cover - hub export not available in this install
        pass
    else:
        add_export_subparser(subparsers)
    from .evaluation.zero_shot import add_eval_subparser

    add_eval_subparser(subparsers)
    from .evaluation.extract import add_extract_subparser
    from .evaluation.search import add_search_subparser

    add_extract_subparser(subparsers)
    add_search_subparser(subparsers)
    from .data.prepare_videos import add_prepare_videos_subparser

    add_prepare_videos_subparser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from .pretraining.run import main as train_main

        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.verbose:  # the package logs below transformers' logger (see __init__.py)
        logging.set_verbosity_info()
    return args.func(args)
