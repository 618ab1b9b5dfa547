"""Preemption (issue 18, item 6): a rerun with the same output_dir resumes from the newest complete checkpoint there,
`--resume_from_checkpoint PATH` still works, a non-empty output_dir without checkpoints is refused, and no rerun
deletes the checkpoints of an unfinished run (an interrupted `--overwrite_output_dir` run included).

The slow test kills real `training/run_pretrain.py` runs (SIGKILL, as a preempted node) once a checkpoint is on
disk, reruns the same command and compares the final weights with an uninterrupted run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modeling_tvtsv2.pretraining.run import main, newest_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / "trainer_state.json").write_text("{}")
    return path


def test_newest_checkpoint_passes_over_an_incomplete_one(tmp_path):
    assert newest_checkpoint(tmp_path / "missing") is None
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 11, complete=False)  # killed while it was written
    (tmp_path / "checkpoint-x").mkdir()
    assert newest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numerically newest, not by name


def test_interrupted_overwrite_run_is_kept_and_resumed_only_when_asked(tmp_path, capsys):
    output = tmp_path / "trained"
    output.mkdir()
    (output / "model.safetensors").write_bytes(b"previous run")
    partial = _checkpoint(tmp_path / "trained.partial", 3)
    argv = ["--output_dir", str(output), "--demo_dir", str(tmp_path / "demo"), "--max_steps", "1"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(tmp_path / "trained.partial") in error and "--overwrite_output_dir" in error
    assert (partial / "trainer_state.json").is_file() and (output / "model.safetensors").read_bytes() == b"previous run"
    assert not (tmp_path / "demo").exists()  # refused before any work


def test_files_and_only_an_incomplete_checkpoint_are_refused(tmp_path, capsys):
    output = tmp_path / "trained"
    _checkpoint(output, 1, complete=False)
    (output / "notes.txt").write_text("mine")
    assert main(["--output_dir", str(output), "--demo_dir", str(tmp_path / "demo"), "--max_steps", "1"]) == 2
    assert "--overwrite_output_dir" in capsys.readouterr().err
    assert (output / "checkpoint-1" / "model.safetensors").is_file() and (output / "notes.txt").is_file()


# --------------------------------------------------------------------------------------------------------------
# Real runs, killed after a checkpoint
# --------------------------------------------------------------------------------------------------------------
MAX_STEPS = 6


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    from modeling_tvtsv2.data.demo_corpus import build_demo_corpus

    folder = tmp_path_factory.mktemp("demo")
    build_demo_corpus(folder / "corpus", num_videos=40)
    return folder / "corpus"


def _env() -> dict[str, str]:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return env


def _command(demo: Path, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(ROOT / "training" / "run_pretrain.py"), "--demo_dir", str(demo),
        "--demo_num_videos", "40", "--output_dir", str(output), "--max_steps", str(MAX_STEPS), "--save_steps", "1",
        "--per_device_train_batch_size", "4", "--num_frames", "4", "--max_eval_samples", "8",
        "--disable_tqdm", "true", "--use_cpu", "--dataloader_num_workers", "1", *extra,
    ]  # fmt: skip


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _kill_after_checkpoint(command: list[str], folder: Path, step: int = 2) -> None:
    """Start the run and SIGKILL it (with its DataLoader workers) once `checkpoint-{step}` is complete."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(),
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while not (folder / f"checkpoint-{step}" / "trainer_state.json").is_file():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (folder / f"checkpoint-{MAX_STEPS}").exists(), "the run finished before it could be killed"


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(demo_folder, tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("uninterrupted") / "out"
    _run(_command(demo_folder, output))
    return _weights(output)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["same-command", "overwrite-run", "resume-flag"])
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(demo_folder, uninterrupted, tmp_path, how):
    import torch

    output = tmp_path / "out"
    extra: list[str] = []
    if how == "overwrite-run":  # the run replaces an earlier one: it trains in out.partial
        output.mkdir()
        (output / "earlier-run.txt").write_text("earlier")
        extra = ["--overwrite_output_dir", "true"]
    folder = tmp_path / "out.partial" if how == "overwrite-run" else output
    _kill_after_checkpoint(_command(demo_folder, output, *extra), folder)
    newest = newest_checkpoint(folder)
    if how == "resume-flag":
        extra = ["--resume_from_checkpoint", str(folder / "checkpoint-2")]
    result = _run(_command(demo_folder, output, *extra))
    if how != "resume-flag":
        assert f"from its newest checkpoint {newest}" in result.stderr
    resumed = _weights(output)
    assert resumed.keys() == uninterrupted.keys()
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    assert not (tmp_path / "out.partial").exists() and not (output / "earlier-run.txt").exists()
