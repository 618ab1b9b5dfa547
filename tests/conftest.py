"""Shared test fixtures: the original-implementation fixture (`tests/fixtures/original_tiny_b16/`) and its conversion,
a saved tiny model (`model_dir`) for the pipeline and autocast tests, its two pipelines, and the `tvtsv2` console
script of the interpreter running the tests (`tvtsv2_script`: found without the shell's PATH).

Keep this file small and generic; test-specific helpers live in the test modules.
"""

import os
import sys
import sysconfig
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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A randomly initialised (seed 0) tiny TVTSv2 model with a 64-pixel, 4-frame processor, saved to a folder.

    Module scope: each test module gets its own copy, built after reseeding torch as each module did before."""
    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
    from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(folder)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(model_dir):
    """The zero-shot video classification pipeline of ``model_dir``."""
    from transformers import pipeline

    from modeling_tvtsv2.pipeline_tvtsv2 import register_pipelines

    register_pipelines()
    return pipeline("zero-shot-video-classification", model=str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def extractor(model_dir):
    """The video feature extraction pipeline of ``model_dir``."""
    from transformers import pipeline

    from modeling_tvtsv2.pipeline_tvtsv2 import register_pipelines

    register_pipelines()
    return pipeline("video-feature-extraction", model=str(model_dir), device="cpu")


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


@pytest.fixture(scope="session")
def tvtsv2_script() -> Path:
    """The `tvtsv2` console script installed with this interpreter's package (its environment's bin folder), so that
    the tests do not depend on the shell's PATH. Tests that do not test the console script itself run
    `sys.executable -m modeling_tvtsv2` instead. Missing: a setup error saying why (not a failure, not a skip)."""
    folders = [sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")]
    for folder in folders:
        script = Path(folder) / "tvtsv2"
        if script.is_file() and os.access(script, os.X_OK):
            return script
    pytest.fail(
        f"no tvtsv2 console script in {' or '.join(folders)} (the scripts folders of {sys.executable}): install the "
        "package into the environment that runs the tests (pip install -e .)",
        pytrace=False,
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: compiles or runs long (> ~20 s on the 2-core box); -m 'not slow' skips")
