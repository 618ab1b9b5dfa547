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
