"""Streamed pre-training under real `accelerate launch` (2 CPU processes, gloo), and two simulated machines
(issue 18, items 1 and 5), and the multi-node launch templates. Slow: the tests that launch real multi-process
runs.

The corpus is 16 real video files (PyAV) served by an HTTP server on loopback (range requests); its rows hold the
URLs, so the server sees every video any process or DataLoader worker decodes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from loopback_http import serve_folder
from test_remote_videos import make_ramp

ROOT = Path(__file__).resolve().parents[1]
NUM_VIDEOS = 16  # 2 processes x 2 rows per step: 4 steps per epoch
MAX_STEPS = 6


@pytest.fixture(scope="module")
def served_corpus(tmp_path_factory):
    from datasets import Dataset, DatasetDict

    from modeling_tvtsv2.data.schema import TRANSCRIPT_SEGMENTS_PATH_FEATURES

    root = tmp_path_factory.mktemp("streamed")
    videos = root / "www"
    videos.mkdir()
    segments = [{"start": 0.5 + 2 * k, "end": 1.5 + 2 * k, "text": f"scene {k}"} for k in range(4)]
    with serve_folder(videos) as server:
        rows = []
        for i in range(NUM_VIDEOS):
            make_ramp(videos / f"v{i}.mp4", frames=40)  # 8 s at 5 fps
            rows.append({"video": f"{server.url}/v{i}.mp4", "video_id": f"v{i}", "duration": 8.0,
                         "segments": segments})  # fmt: skip
        corpus = root / "corpus"
        DatasetDict(train=Dataset.from_list(rows, features=TRANSCRIPT_SEGMENTS_PATH_FEATURES)).save_to_disk(corpus)
        yield corpus, server


def _env() -> dict[str, str]:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMP_NUM_THREADS"):
        env.pop(name, None)
    return env


def _port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(corpus: Path, output: Path, *, machines: int = 1, machine_rank: int = 0, port: int | None = None,
            save_steps: int = 2) -> list[str]:  # fmt: skip
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", str(machines), "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(port or _port()),
    ]  # fmt: skip
    if machines > 1:
        launcher += ["--machine_rank", str(machine_rank), "--main_process_ip", "127.0.0.1"]
    return [
        *launcher, str(ROOT / "training" / "run_pretrain.py"), "--transcript_dataset", str(corpus),
        "--output_dir", str(output), "--streaming", "true", "--streaming_shuffle_buffer", "0",
        "--max_steps", str(MAX_STEPS), "--save_steps", str(save_steps), "--per_device_train_batch_size", "2",
        "--num_frames", "4", "--dataloader_num_workers", "2", "--torch_threads", "1", "--freeze_schedule", "none",
        "--learning_rate", "1e-3", "--use_cpu", "--disable_tqdm", "true",
    ]  # fmt: skip


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-4000:]
    return result


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process below it, as a preempted machine loses them all at once."""
    for victim in [pid, *_descendants(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _assert_same_weights(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


@pytest.fixture(scope="module")
def one_machine(served_corpus, tmp_path_factory):
    corpus, server = served_corpus
    output = tmp_path_factory.mktemp("one-machine") / "out"
    server.requests.clear()
    _run(_launch(corpus, output))
    opened = Counter(path for method, path, _ in server.requests if method == "HEAD")  # one HEAD per open
    return output, opened


@pytest.mark.slow
def test_each_video_is_read_once_per_epoch_across_ranks_and_workers(one_machine):
    output, opened = one_machine
    # after 4 steps (one epoch: 16 rows / (2 processes x 2 rows)) every part of the corpus (2 ranks x 2 workers, 4
    # rows each) was read to its end, once
    for rank in range(2):
        state = json.loads((output / "checkpoint-4" / f"stream_state-rank{rank}.json").read_text())
        assert state["consumed"] == 4 and sorted(state["roles"]) == ["0", "1"]
        for role in state["roles"].values():
            assert (role["transcript"]["pass"], role["transcript"]["position"]) == (0, 4)
    # the server saw every video opened; in 6 steps (1.5 epochs: 8 videos twice) and the DataLoader's prefetching
    # (2 batches per worker: the rest of the second pass, the start of a third) none more than 3 times
    assert sorted(opened) == sorted(f"/v{i}.mp4" for i in range(NUM_VIDEOS))
    assert max(opened.values()) <= 3 and sum(opened.values()) >= NUM_VIDEOS + NUM_VIDEOS // 2


@pytest.mark.slow
def test_a_killed_streamed_run_resumes_to_the_same_weights(served_corpus, one_machine, tmp_path):
    corpus, _ = served_corpus
    output = tmp_path / "out"
    command = _launch(corpus, output, save_steps=1)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(),
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while not (output / "checkpoint-3" / "trainer_state.json").is_file():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    _kill_tree(process.pid)  # the launcher, its training processes (torch elastic gives them their own groups), workers
    process.wait()
    assert not (output / "all_results.json").exists(), "the run finished before it could be killed"
    result = _run(command)  # the same command again: resumes from the newest checkpoint
    assert "resuming the unfinished run" in result.stderr and "streams continue after" in result.stderr
    _assert_same_weights(_weights(output), _weights(one_machine[0]))


@pytest.mark.slow
def test_two_simulated_machines_give_the_weights_of_one_machine(served_corpus, one_machine, tmp_path):
    """Two launches, `--num_machines 2 --machine_rank 0/1`, one process each, rendezvous on 127.0.0.1."""
    corpus, _ = served_corpus
    output = tmp_path / "out"
    port = _port()
    machines = [
        subprocess.Popen(_launch(corpus, output, machines=2, machine_rank=rank, port=port), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
        for rank in range(2)
    ]
    for machine in machines:
        stdout, stderr = machine.communicate(timeout=900)
        assert machine.returncode == 0, stdout[-2000:] + stderr[-4000:]
    _assert_same_weights(_weights(output), _weights(one_machine[0]))


@pytest.mark.parametrize("name", ["ddp_multinode.yaml", "fsdp_multinode.yaml"])
def test_multinode_launch_templates_are_accelerate_configs_for_several_machines(name):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(ROOT / "configuration" / "launch" / name))
    assert config.num_machines == 2 and config.num_processes % config.num_machines == 0
    assert config.rdzv_backend == "static" and config.main_process_port and not config.use_cpu
