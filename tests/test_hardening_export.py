"""Output-folder policy of `tvtsv2 export` and `tvtsv2 convert` (issue 10 item 1).

A non-empty output is refused without `--overwrite`; the result is built beside the output and moved into place only
when complete; with `--overwrite` the folder is replaced as a whole; an output that contains the input is refused.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model, TVTSv2Processor
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.tools.hub_export import export_for_hub
from modeling_tvtsv2.tools.output_folders import OutputExistsError, OutputFolderError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(folder)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(folder)
    return folder


def _existing_hub_folder(path: Path) -> dict[str, bytes]:
    """A folder a user already has: an unrelated weights backup and notes."""
    path.mkdir(parents=True)
    save_file({"backup": torch.arange(4.0)}, str(path / "model_backup.safetensors"))
    (path / "README.md").write_text("my own notes\n")
    return {p.name: p.read_bytes() for p in path.iterdir()}


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_export_refuses_a_non_empty_output_and_keeps_its_files(tmp_path, model_dir, capsys):
    out = tmp_path / "hub"
    before = _existing_hub_folder(out)
    assert cli_main(["export", "--model", str(model_dir), "--output", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(out) in error and "--overwrite" in error
    assert _snapshot(out) == before  # the backup shard and the notes are untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]  # no staging folder left behind
    with pytest.raises(OutputExistsError):
        export_for_hub(model_dir, out)


def test_export_overwrite_replaces_the_folder_as_a_whole_after_success(tmp_path, model_dir):
    out = tmp_path / "hub"
    _existing_hub_folder(out)
    assert cli_main(["export", "--model", str(model_dir), "--output", str(out), "--overwrite"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "model_backup.safetensors" not in names  # the folder was replaced, not merged
    assert {"model.safetensors", "config.json", "README.md", "modeling_tvtsv2.py"} <= names
    assert "my own notes" not in (out / "README.md").read_text()
    reloaded = load_file(str(out / "model.safetensors"))
    for name, tensor in load_file(str(model_dir / "model.safetensors")).items():
        assert torch.equal(reloaded[name], tensor)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


def test_failed_export_leaves_the_old_folder_untouched(tmp_path, model_dir):
    out = tmp_path / "hub"
    before = _existing_hub_folder(out)
    with pytest.raises(ValueError):  # save_pretrained fails inside the staging folder
        export_for_hub(model_dir, out, overwrite=True, max_shard_size="not-a-size")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


def test_export_refuses_an_output_that_contains_the_model(tmp_path, model_dir, capsys):
    parent = tmp_path / "work"
    (parent / "model").parent.mkdir()
    import shutil

    shutil.copytree(model_dir, parent / "model")
    before = _snapshot(parent / "model")
    assert cli_main(["export", "--model", str(parent / "model"), "--output", str(parent), "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert "contains the input" in error
    assert _snapshot(parent / "model") == before


TINY_ARGS = ["--layout", "openai-clip", "--vision-heads", "4", "--text-heads", "4", "--sort-heads", "4"]


def test_convert_refuses_a_non_empty_output_with_and_without_hub(tmp_path, original_fixture_dir, capsys):
    checkpoint = str(original_fixture_dir / "checkpoint_downstream_format.pth")
    out = tmp_path / "converted"
    before = _existing_hub_folder(out)
    for extra in ([], ["--hub"]):
        assert cli_main(["convert", "--checkpoint", checkpoint, "--output", str(out), *TINY_ARGS, *extra]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and "not empty" in error and str(out) in error
        assert _snapshot(out) == before
    assert cli_main(["convert", "--checkpoint", checkpoint, "--output", str(out), *TINY_ARGS, "--hub",
                     "--overwrite"]) == 0  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert "model_backup.safetensors" not in names and {"model.safetensors", "modeling_tvtsv2.py"} <= names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"]


def test_convert_refuses_an_output_holding_the_checkpoint(tmp_path, original_fixture_dir, capsys):
    import shutil

    checkpoint = tmp_path / "ckpt" / "model.pth"
    checkpoint.parent.mkdir()
    shutil.copy(original_fixture_dir / "checkpoint_downstream_format.pth", checkpoint)
    argv = ["convert", "--checkpoint", str(checkpoint), "--output", str(checkpoint.parent), *TINY_ARGS, "--overwrite"]
    assert cli_main(argv) == 2
    assert "contains the input" in capsys.readouterr().err
    assert checkpoint.is_file()


def test_convert_checks_an_unwritable_output_before_reading_the_checkpoint(tmp_path, capsys):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 64)  # would be refused too, but only after the output check
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert cli_main(["convert", "--checkpoint", str(garbage), "--output", str(blocker / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--output" in error and "is a file" in error
    with pytest.raises(OutputFolderError):
        from modeling_tvtsv2.convert_tvtsv2_original_to_hf import convert_checkpoint

        convert_checkpoint(garbage, blocker / "out")
