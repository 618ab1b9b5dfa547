"""`tvtsv2 convert` on files that are not original checkpoints (issue 10 item 8): one line naming the file and the
reason, exit code 2, no traceback, no output folder, and never the advice to load with `weights_only=False`."""

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modeling_tvtsv2.cli import main as cli_main


TINY_ARGS = ["--layout", "openai-clip", "--vision-heads", "4", "--text-heads", "4", "--sort-heads", "4"]


class CallsSystem:
    """Pickles as a call of os.system (the payload is harmless, and the converter must never run it anyway)."""

    def __reduce__(self):
        return (os.system, ("true",))


def _original(fixture_dir: Path) -> dict:
    return torch.load(fixture_dir / "checkpoint_downstream_format.pth", weights_only=True)["state_dict"]


def _bad_files(folder: Path, fixture_dir: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase the error must contain)."""
    files = {}
    path = folder / "system.pth"
    torch.save({"state_dict": _original(fixture_dir), "config": CallsSystem()}, path)
    files["names_os_system"] = (path, "system")
    path = folder / "random.pth"
    path.write_bytes(os.urandom(5000))
    files["random_bytes"] = (path, "not a readable torch checkpoint")
    path = folder / "weights.safetensors"
    save_file({"a": torch.zeros(3)}, str(path))
    files["safetensors"] = (path, "safetensors")
    path = folder / "int_key.pth"
    torch.save({"state_dict": {**_original(fixture_dir), 0: torch.zeros(2)}}, path)
    files["int_key"] = (path, "key 0")
    path = folder / "scalar.pth"
    torch.save({"state_dict": {**_original(fixture_dir), "video_model.class_embedding": torch.tensor(4.6)}}, path)
    files["zero_d_tensor"] = (path, "0-d tensor")
    state = _original(fixture_dir)
    path = folder / "both.pth"
    torch.save({"state_dict": {**state, "module.text_projection": state["text_projection"] + 1}}, path)
    files["module_prefix_collision"] = (path, "'text_projection' and 'module.text_projection'")
    path = folder / "pickle_only.pth"
    path.write_bytes(pickle.dumps({"state_dict": "not tensors"}))
    files["plain_pickle"] = (path, "")
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, original_fixture_dir):
    return _bad_files(tmp_path_factory.mktemp("bad"), original_fixture_dir)


@pytest.mark.parametrize(
    "name",
    ["names_os_system", "random_bytes", "safetensors", "int_key", "zero_d_tensor", "module_prefix_collision",
     "plain_pickle"],
)  # fmt: skip
def test_bad_checkpoints_give_one_line_and_exit_code_2(bad_files, name, tmp_path, capsys):
    path, phrase = bad_files[name]
    out = tmp_path / "out"
    assert cli_main(["convert", "--checkpoint", str(path), "--output", str(out), *TINY_ARGS]) == 2
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: ") and str(path) in error
    assert phrase in error
    assert "weights_only=False" not in captured.err + captured.out and "Traceback" not in captured.err
    assert not out.exists()
