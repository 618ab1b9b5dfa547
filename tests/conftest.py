"""Shared test fixtures: the original-implementation fixture (`tests/fixtures/original_tiny_b16/`) and its conversion.

Keep this file small and generic; test-specific helpers live in the test modules.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


ORIGINAL_FIXTURE_DIR = Path(__file__).parent / "fixtures" / "original_tiny_b16"
# The tiny fixture is not a released size: the converter needs the layout and the head counts (constructor.json).
ORIGINAL_TINY_CONVERT_ARGS = [
    "--layout", "openai-clip", "--vision-heads", "4", "--text-heads", "4", "--sort-heads", "4",
]  # fmt: skip


@pytest.fixture(scope="session")
def original_fixture_dir() -> Path:
    """Folder with the original implementation's checkpoints (`checkpoint_{trainer,downstream}_format.pth`)."""
    return ORIGINAL_FIXTURE_DIR


@pytest.fixture(scope="session")
def original_reference() -> dict[str, torch.Tensor]:
    """Inputs and outputs of the original TVTSv2 code (`reference.safetensors`; see the fixture README)."""
    return load_file(str(ORIGINAL_FIXTURE_DIR / "reference.safetensors"))


@pytest.fixture(scope="session")
def converted_original(tmp_path_factory) -> dict[str, Path]:
    """Both fixture checkpoints converted with the `tvtsv2 convert` CLI: `{"trainer": dir, "downstream": dir}`."""
    from modeling_tvtsv2.cli import main

    root = tmp_path_factory.mktemp("converted_original")
    folders = {}
    for name in ("trainer", "downstream"):
        folders[name] = root / name
        argv = ["convert", "--checkpoint", str(ORIGINAL_FIXTURE_DIR / f"checkpoint_{name}_format.pth")]
        argv += ["--output", str(folders[name]), *ORIGINAL_TINY_CONVERT_ARGS]
        assert main(argv) == 0, f"tvtsv2 convert failed for the {name} checkpoint"
    return folders


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: compiles or runs long (> ~20 s on the 2-core box); -m 'not slow' skips")
