"""What a new user following the README meets (issue 20, items 6, 7, 10, 14): mistyped local paths, the README's
metric snippet, an offline recipe dry run, small wording."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.tools.model_loading import looks_local

from conftest import HANG_GUARD_SECONDS

ROOT = Path(__file__).resolve().parents[1]


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: "), captured.err
    return error


# ---- item 6: a mistyped local path is "no such folder", at once -------------------------------------------------


def test_what_looks_local():
    assert looks_local("./model") and looks_local("/abs/model") and looks_local("~/model")
    assert looks_local("a/b/c") and looks_local("has space")  # cannot be Hub ids
    assert not looks_local("openai/clip-vit-base-patch16") and not looks_local("tiny")
    assert looks_local(str(ROOT / "tests" / "dat"))


@pytest.mark.parametrize(
    "command, flag",
    [
        (["extract", "--model", "outputs/tvtsv2-dmeo", "--input", "tests/data", "--output", "out"], "--model"),
        (["extract", "--model", "outputs/tvtsv2-demo", "--input", "tests/dat", "--output", "out"], "--input"),
        (["export", "--model", "outputs/tvtsv2-dmeo", "--output", "out"], "--model"),
        (["eval", "--task", "retrieval", "--model", "./tvtsv2-demo", "--dataset", "d", "--output", "o"], "--model"),
        (["eval", "--task", "retrieval", "--model", "outputs/tvtsv2-demo", "--dataset", "./msrvtt", "--output", "o"],
         "--dataset"),
        (["train", "--model", "outputs/tvtsv2-dmeo", "--dry_run"], "--model"),
    ],
    ids=["extract-model", "extract-input", "export", "eval-model", "eval-dataset", "train"],
)
def test_mistyped_local_path_is_one_line_before_any_hub_attempt(command, flag, tmp_path, monkeypatch, capsys):
    # `outputs/` and `tests/` exist (a user's working folder): the typo is local, never a Hub id. A Hub attempt would
    # end in another message (offline: "cannot load", a connection error, a traceback), not in "no such folder".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "tvtsv2-demo").mkdir(parents=True)
    (tmp_path / "outputs" / "tvtsv2-demo" / "config.json").write_text("{}")
    (tmp_path / "tests" / "data").mkdir(parents=True)
    assert cli_main(command) == 2
    error = _one_error_line(capsys)
    typed = command[command.index(flag) + 1]
    assert error.startswith(f"error: {flag} {typed}: no such folder"), error
    if typed == "outputs/tvtsv2-dmeo":
        assert error.endswith("(did you mean outputs/tvtsv2-demo?)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


# ---- item 7: the README's metric snippet runs after a plain import -------------------------------------------


def test_readme_python_references_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    imports = sorted(set(re.findall(r"from (modeling_tvtsv2[\w.]*) import (\w+)", readme)))
    dotted = sorted(set(re.findall(r"(?<![\w./])(modeling_tvtsv2(?:\.\w+)+)\(", readme)))
    assert ("modeling_tvtsv2.evaluation.metrics", "retrieval_recall_metric_path") in imports
    # A fresh interpreter: every `from X import Y` of the README works, and every dotted `a.b.c(` names a function of
    # an importable module. The metric snippet of item 7 runs as written.
    code = ["import importlib, os", "missing = []"]
    for module, name in imports:
        code.append(f"if not hasattr(importlib.import_module({module!r}), {name!r}): missing.append({name!r})")
    for reference in dotted:
        module, name = reference.rsplit(".", 1)
        code.append(f"if not hasattr(importlib.import_module({module!r}), {name!r}): missing.append({reference!r})")
    code.append("from modeling_tvtsv2.evaluation.metrics import retrieval_recall_metric_path")
    code.append("assert os.path.isfile(os.path.join(retrieval_recall_metric_path(), 'retrieval_recall.py'))")
    code.append("print(missing)")
    result = subprocess.run([sys.executable, "-c", "\n".join(code)], capture_output=True, text=True,
                            timeout=HANG_GUARD_SECONDS, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


# ---- item 4: the flag names of transformers' examples, with their meaning ---------------------------------------


def test_pretraining_takes_the_examples_flag_names():
    from modeling_tvtsv2.pretraining.arguments import parse_arguments

    examples = parse_arguments([
        "--model_name_or_path", "b16", "--dataset_name", "you/corpus", "--dataset_config_name", "en",
        "--cache_dir", "hub-cache", "--max_train_samples", "5", "--max_eval_samples", "3", "--trust_remote_code",
        "--output_dir", "o",
    ])  # fmt: skip
    today = parse_arguments([
        "--model", "b16", "--transcript_dataset", "you/corpus", "--dataset-config-name", "en", "--cache-dir",
        "hub-cache", "--max-train-samples", "5", "--max-eval-samples", "3", "--trust-remote-code", "true",
        "--output_dir", "o",
    ])  # fmt: skip
    assert examples.model == today.model and examples.data == today.data
    assert (examples.model.model, examples.data.transcript_dataset) == ("b16", "you/corpus")
    assert (examples.model.cache_dir, examples.model.trust_remote_code) == ("hub-cache", True)
    assert (examples.data.max_train_samples, examples.data.max_eval_samples) == (5, 3)


def test_evaluation_takes_the_examples_flag_names():
    from modeling_tvtsv2.evaluation.zero_shot import parse_eval_arguments

    common = ["--task", "retrieval", "--output", "o"]
    examples = parse_eval_arguments([*common, "--model_name_or_path", "m", "--dataset_name", "d",
                                     "--dataset_config_name", "1k-A", "--cache_dir", "c", "--max_eval_samples", "7",
                                     "--trust_remote_code", "--dataset_display_name", "MSR-VTT"])  # fmt: skip
    today = parse_eval_arguments([*common, "--model", "m", "--dataset", "d", "--dataset-config-name", "1k-A",
                                  "--cache-dir", "c", "--max_samples", "7", "--trust-remote-code", "true",
                                  "--dataset-display-name", "MSR-VTT"])  # fmt: skip
    assert vars(examples) == vars(today)
    assert (today.model, today.dataset, today.max_samples, today.dataset_display_name) == ("m", "d", 7, "MSR-VTT")


def test_max_train_samples_keeps_the_first_rows(tmp_path):
    import datasets

    from modeling_tvtsv2.pretraining.arguments import parse_arguments
    from modeling_tvtsv2.pretraining.run import load_corpora

    rows = {"video": [f"v{i}.mp4" for i in range(10)], "text": [f"t{i}" for i in range(10)]}
    corpus = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                                   "validation": datasets.Dataset.from_dict(rows)})  # fmt: skip
    corpus.save_to_disk(str(tmp_path / "corpus"))
    arguments = parse_arguments(["--dataset_name", str(tmp_path / "corpus"), "--output_dir", str(tmp_path / "o"),
                                 "--max_train_samples", "4", "--max_eval_samples", "2"])  # fmt: skip
    train, held_out = load_corpora(arguments.data, arguments.training)
    # relative video paths come back resolved against the corpus folder
    assert train["transcript"]["video"] == [str(tmp_path / "corpus" / f"v{i}.mp4") for i in range(4)]
    assert held_out["video"] == [str(tmp_path / "corpus" / f"v{i}.mp4") for i in range(2)]


def test_evaluation_reads_a_dataset_load_dataset_understands(tmp_path):
    from modeling_tvtsv2.evaluation.zero_shot import load_eval_dataset

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps({"video": f"v{i}.mp4", "caption": "c"}) + "\n"
                                               for i in range(3)))  # fmt: skip
    dataset = load_eval_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert dataset["video"] == ["v0.mp4", "v1.mp4", "v2.mp4"]


# ---- item 14: small items -------------------------------------------------------------------------------------


@pytest.mark.parametrize("local_rank, lines", [("0", 1), pytest.param("1", 0, marks=pytest.mark.slow)])
def test_a_gpu_launch_without_gpus_is_one_line(local_rank, lines, tmp_path):
    # what `accelerate launch --config_file configuration/launch/ddp.yaml` gives each process, on a CPU-only machine
    import os

    env = dict(os.environ, WORLD_SIZE="8", RANK=local_rank, LOCAL_RANK=local_rank, LOCAL_WORLD_SIZE="8",
               MASTER_ADDR="127.0.0.1", MASTER_PORT="29561", CUDA_VISIBLE_DEVICES="")  # fmt: skip
    command = [sys.executable, str(ROOT / "training" / "run_pretrain.py"), "--max_steps", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    stderr = result.stderr.strip().splitlines()
    assert len(stderr) == lines, result.stderr[-2000:]
    if lines:
        assert stderr[0].startswith("error: launched as 8 processes for GPUs") and "--use_cpu true" in stderr[0]


def test_overwrite_wording_names_the_flag_and_the_argument(tmp_path):
    from modeling_tvtsv2.tools.output_folders import OutputFolderError, check_output_folder

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    with pytest.raises(OutputFolderError) as refused:
        check_output_folder(tmp_path / "out", overwrite=False)
    assert "add --overwrite to the command (overwrite=True in Python)" in str(refused.value)
