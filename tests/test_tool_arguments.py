"""Every command-line tool parses with `HfArgumentParser` dataclasses (`modeling_tvtsv2.tools.arguments`): both
spellings, `--help` generated from the field docs, JSON/YAML argument files under typed flags, one-line errors with
exit code 2. Parsing only (no model, no video) except where the tool's own first check shows the value arrived."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.convert_tvtsv2_original_to_hf import ConvertArguments
from modeling_tvtsv2.data.corpus_builders import TranscriptCorpusArguments
from modeling_tvtsv2.data.prepare_videos import PrepareVideosArguments
from modeling_tvtsv2.evaluation.extract import ExtractArguments
from modeling_tvtsv2.evaluation.search import SearchArguments
from modeling_tvtsv2.evaluation.zero_shot import parse_eval_arguments
from modeling_tvtsv2.pretraining.arguments import parse_arguments
from modeling_tvtsv2.tools.arguments import parse_tool_arguments

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["--model", "m", "--input", "i", "--output", "o"]


def _extract(argv: list[str]) -> ExtractArguments:
    (args,) = parse_tool_arguments(ExtractArguments, argv, prog="tvtsv2 extract")
    return args


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return error


# --------------------------------------------------------------------------------------------------------------
# Spellings
# --------------------------------------------------------------------------------------------------------------


def test_snake_and_kebab_spellings_give_the_same_arguments():
    snake = _extract([*REQUIRED, "--embedding_dtype", "float16", "--shard_size=8", "--keep_columns", "label",
                      "--no_progress", "--use_cpu", "true", "--trust_remote_code", "false"])  # fmt: skip
    kebab = _extract([*REQUIRED, "--embedding-dtype", "float16", "--shard-size=8", "--keep-columns", "label",
                      "--no-progress", "--use-cpu", "true", "--trust-remote-code", "false"])  # fmt: skip
    assert snake == kebab
    assert (kebab.embedding_dtype, kebab.shard_size, kebab.keep_columns) == ("float16", 8, "label")
    assert kebab.no_progress is True and kebab.use_cpu is True and kebab.trust_remote_code is False
    assert _extract(REQUIRED) == ExtractArguments(model="m", input="i", output="o")  # the dataclass defaults


def test_abbreviations_are_refused_with_a_suggestion(capsys):
    # issue 20 item 11: `--vision` was silently `--vision_heads`, `--max_step` silently `--max_steps`
    with pytest.raises(SystemExit) as stopped:
        parse_tool_arguments(ConvertArguments, ["--checkpoint", "c", "--output", "o", "--vision", "5"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --vision" in _one_error_line(capsys)
    with pytest.raises(SystemExit):
        parse_arguments(["--max_step", "5", "--dry_run"], prog="tvtsv2 train")
    error = _one_error_line(capsys)
    assert "--max_step" in error and "(did you mean --max_steps?)" in error
    assert error.endswith("(see tvtsv2 train --help)")
    with pytest.raises(SystemExit):
        parse_eval_arguments(["--task", "retreival", "--output", "o"])
    assert "(did you mean retrieval?)" in _one_error_line(capsys)


def test_cli_command_typo_is_one_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli_main(["trian", "--max_steps", "1"])
    assert stopped.value.code == 2
    error = _one_error_line(capsys)
    assert "invalid choice: 'trian'" in error and "(did you mean train?)" in error


def test_negated_switch_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        parse_arguments(["--help"], prog="tvtsv2 train")
    output = capsys.readouterr().out
    assert output.startswith("usage: tvtsv2 train [RECIPE_FILE]")
    help_text = " ".join(output.split())
    assert "--no_demo_captions, --no-demo-captions turn --demo_captions off" in help_text
    # grouped: the TVTSv2 flags (the recipe's training knobs too) first, then every TrainingArguments flag
    order = ["TVTSv2 pre-training arguments", "--transcript_dataset", "--clip_learning_rate", "all TrainingArguments",
             "--per_device_train_batch_size", "--max_steps MAX_STEPS"]  # fmt: skip
    positions = [help_text.index(text) for text in order]
    assert positions == sorted(positions), dict(zip(order, positions))
    with pytest.raises(SystemExit):
        parse_tool_arguments(SearchArguments, ["--help"], prog="tvtsv2 search")
    assert "--top_k TOP_K, --top-k TOP_K hits per query" in " ".join(capsys.readouterr().out.split())


def test_repeatable_template_positional_queries_and_switches_next_to_them():
    args = parse_eval_arguments(["--task", "classification", "--output", "o", "--template", "a {}",
                                 "--template", "the {}", "--on_error", "skip"])  # fmt: skip
    assert args.templates == ["a {}", "the {}"] and args.on_error == "skip"
    assert parse_eval_arguments(["--task", "retrieval", "--output", "o", "--on-error", "skip"]).templates is None
    (search,) = parse_tool_arguments(SearchArguments, ["--json", "a man", "a dog", "--index", "ix", "--top_k", "2"])
    assert search == SearchArguments(queries=["a man", "a dog"], index="ix", top_k=2, json=True)


def test_cli_dispatch_reaches_the_tool_in_both_spellings(tmp_path, capsys):
    for flag in ("--top_k", "--top-k"):
        assert cli_main(["search", "--index", str(tmp_path), "a query", flag, "0"]) == 2
        assert "--top-k must be >= 1" in _one_error_line(capsys)


# --------------------------------------------------------------------------------------------------------------
# --help from the field docs
# --------------------------------------------------------------------------------------------------------------


def test_help_is_generated_from_the_field_docs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["extract", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: tvtsv2 extract")
    for field in dataclasses.fields(ExtractArguments):
        assert " ".join(field.metadata["help"].split()) in text, field.name
        assert f"--{field.name}" in text and f"--{field.name.replace('_', '-')}" in text
    assert "output dataset folder (required)" in text and "videos per shard (unit of resume) (default: 256)" in text
    assert "--config FILE" in text


def test_script_help_lists_both_spellings(capsys):
    script = ROOT / "processing" / "make_demo_corpus.py"
    spec = importlib.util.spec_from_file_location("make_demo_corpus_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: make_demo_corpus.py" in text and "--num_videos" in text and "--num-videos" in text


# --------------------------------------------------------------------------------------------------------------
# Argument files
# --------------------------------------------------------------------------------------------------------------


def test_json_and_yaml_argument_files_under_typed_flags(tmp_path):
    values = {"_comment": "keys starting with _ are comments", "model": "m", "input": "i", "output": "o",
              "shard_size": 8, "embedding_dtype": "float16", "num_frames": "6", "overwrite": True}  # fmt: skip
    config = tmp_path / "extract.json"
    config.write_text(json.dumps(values))
    from_file = _extract(["--config", str(config)])
    assert (from_file.shard_size, from_file.embedding_dtype, from_file.num_frames) == (8, "float16", 6)
    assert from_file.overwrite is True
    typed = _extract(["--config", str(config), "--shard-size", "4", "--overwrite", "false"])
    assert (typed.shard_size, typed.embedding_dtype, typed.overwrite) == (4, "float16", False)

    yaml_file = tmp_path / "videos.yaml"
    yaml_file.write_text("input: raw\noutput: prepared\nmax_fps: none\nextensions: .webm\nkeyframe_seconds: 1\n")
    (args,) = parse_tool_arguments(PrepareVideosArguments, [str(yaml_file), "--short-side", "200"])
    assert (args.input, args.output, args.max_fps, args.extensions) == ("raw", "prepared", None, [".webm"])
    assert (args.keyframe_seconds, args.short_side, args.crf) == (1, 200, 23)
    (args,) = parse_tool_arguments(PrepareVideosArguments, [str(yaml_file), "--max_fps", "5"])
    assert args.max_fps == 5.0


def test_an_argument_file_drives_the_real_command(tmp_path, capsys):
    config = tmp_path / "convert.yml"
    config.write_text(f"checkpoint: {tmp_path / 'from-file.pth'}\noutput: {tmp_path / 'out'}\n")
    assert cli_main(["convert", str(config)]) == 2
    assert f"Checkpoint not found: {tmp_path / 'from-file.pth'}" in _one_error_line(capsys)
    assert cli_main(["convert", str(config), "--checkpoint", str(tmp_path / "typed.pth")]) == 2
    assert f"Checkpoint not found: {tmp_path / 'typed.pth'}" in _one_error_line(capsys)


def test_a_yaml_recipe_for_pretraining(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("transcript_dataset: d\noutput_dir: out\nlearning_rate: 2.0e-4\n_note: comment\n")
    arguments = parse_arguments([str(recipe), "--learning-rate", "3e-4"])
    assert not arguments.is_demo and arguments.data.transcript_dataset == "d"
    assert arguments.training.learning_rate == 3e-4 and arguments.explicit == {"learning_rate"}
    assert parse_arguments(["--recipe", str(recipe)]).training.learning_rate == 2e-4


# --------------------------------------------------------------------------------------------------------------
# Errors: one line, exit code 2
# --------------------------------------------------------------------------------------------------------------


def test_unknown_keys_in_an_argument_file_are_one_error_line(tmp_path, capsys):
    config = tmp_path / "export.json"
    config.write_text(json.dumps({"model": "m", "output": "o", "learning_rat": 1, "repo-id": "x/y"}))
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", "--config", str(config)])
    assert exit_info.value.code == 2
    error = _one_error_line(capsys)
    assert f"argument file {config}: unknown argument(s) learning_rat, repo-id" in error
    assert "repo-id -> repo_id" in error


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["extract", *REQUIRED, "--shard-size", "x"], "argument --shard_size/--shard-size: invalid int value: 'x'"),
        (["extract", *REQUIRED, "--embedding-dtype", "float64"], "invalid choice: 'float64'"),
        (["convert", "--output", "o"], "the following arguments are required: --checkpoint"),
        (["eval", "--task", "retrieval", "--output", "o", "--autocast", "fp16", "--dtype", "float16"],
         "--autocast fp16 runs a float32 model in mixed precision"),
        (["prepare-videos", "stray", "--input", "i", "--output", "o"], "unrecognized arguments: stray"),
        (["search", "--index", "ix"], "the following arguments are required: queries"),
        (["export", "--model", "m", "--output", "o", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)  # fmt: skip
def test_bad_values_are_one_error_line_and_exit_2(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    error = _one_error_line(capsys)
    assert expected in error and f"(see tvtsv2 {argv[0]} --help)" in error


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"shard_size": "many"}, "shard_size: invalid value 'many'"),
        ({"shard_size": 2.5}, "shard_size: expected an integer, got 2.5"),
        ({"embedding_dtype": "float64"}, "embedding_dtype: invalid choice: 'float64'"),
        ({"overwrite": "maybe"}, "overwrite: invalid value 'maybe'"),
        ({"video_column": None}, "video_column: null is not allowed"),
    ],
)
def test_bad_values_in_an_argument_file_are_one_error_line(values, expected, tmp_path, capsys):
    config = tmp_path / "extract.yaml"
    config.write_text(json.dumps({"model": "m", "input": "i", "output": "o", **values}))  # JSON is YAML
    with pytest.raises(SystemExit) as exit_info:
        _extract([str(config)])
    assert exit_info.value.code == 2
    assert f"argument file {config}: {expected}" in _one_error_line(capsys)


def test_two_argument_files_or_a_broken_one_are_refused(tmp_path, capsys):
    first, second, broken = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "broken.yaml"
    for path in (first, second):
        path.write_text(json.dumps({"videos": "v", "output": "o"}))
    broken.write_text("videos: [unclosed\n")
    for argv, expected in (
        ([str(first), "--config", str(second)], f"two argument files given: {first} and --config {second}"),
        ([str(broken)], f"argument file {broken}: not valid YAML"),
        (["--config", str(tmp_path / "missing.json")], "missing.json: no such file"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse_tool_arguments(TranscriptCorpusArguments, argv)
        assert exit_info.value.code == 2
        assert expected in _one_error_line(capsys)
    (args,) = parse_tool_arguments(TranscriptCorpusArguments, [str(first), "--config", str(first)])
    assert (args.videos, args.output, args.validation_size) == ("v", "o", 0)
