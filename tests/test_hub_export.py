"""Hub export: the folder loads with trust_remote_code in a clean process without `modeling_tvtsv2`, and its model
card parses, validates and shows the evaluation results."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.tools.hub_export import export_for_hub
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


PARK = Path(__file__).parent / "data" / "park.mp4"
LABELS = ["walking a dog", "giving a speech", "cooking"]

# Hand-written evaluation records in the format of training/run_eval.py; the card must show exactly these numbers.
RETRIEVAL = {
    "task": "retrieval",
    "dataset": {"name": "MSR-VTT 1k-A", "type": "msrvtt", "split": "test"},
    "metrics": {
        "t2v": {"R1": 35.9, "R5": 61.2, "R10": 71.3, "R50": 90.0, "MedR": 3.0, "MeanR": 20.5},
        "v2t": {"R1": 33.1, "R5": 60.0, "R10": 70.2, "R50": 89.0, "MedR": 3.5, "MeanR": 18.25},
    },
}
CLASSIFICATION = {
    "task": "classification",
    "dataset": {"name": "HMDB-51", "split": "split1-test"},
    "metrics": {"top1": 50.4, "top5": 77.7, "num_samples": 1530},
}

# Runs in a fresh interpreter, in another directory, offline, with the package made unimportable even when it is
# pip-installed (editable installs put the repository on sys.path through a .pth file, so clearing PYTHONPATH is
# not enough).
REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_tvtsv2"] = None  # `import modeling_tvtsv2` now raises ImportError
    import json
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoProcessor, pipeline

    hub, video, labels = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        import modeling_tvtsv2  # noqa: F401
        raise SystemExit("modeling_tvtsv2 is importable")
    except ImportError:
        pass
    config = AutoConfig.from_pretrained(hub, trust_remote_code=True)
    model = AutoModel.from_pretrained(hub, trust_remote_code=True).eval()
    pretraining = AutoModelForPreTraining.from_pretrained(hub, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(hub, trust_remote_code=True)
    inputs = processor(text=labels, videos=[video], return_tensors="pt")
    with torch.no_grad():
        video_embeds = model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"]).pooler_output
        text_embeds = model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
    classifier = pipeline("zero-shot-video-classification", model=hub, trust_remote_code=True, device="cpu")
    extractor = pipeline("video-feature-extraction", model=hub, trust_remote_code=True, device="cpu")
    print(json.dumps({
        "config_class": type(config).__module__ + "." + type(config).__name__,
        "model_class": type(model).__module__ + "." + type(model).__name__,
        "pretraining_class": type(pretraining).__name__,
        "processor_class": type(processor).__name__,
        "pipeline_class": type(classifier).__name__,
        "video_embeds": video_embeds.tolist(),
        "text_embeds": text_embeds.tolist(),
        "sort_head_sum": sum(p.double().abs().sum().item() for p in pretraining.sort_head.parameters()),
        "zero_shot": classifier(video, candidate_labels=labels),
        "features": extractor(video),
    }))
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("export")
    model = TVTSv2ForPreTraining(TVTSv2Config.from_preset("tiny")).eval()
    processor = TVTSv2Processor.from_defaults(image_size=64, num_frames=4)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    (root / "results.json").write_text(json.dumps([RETRIEVAL, CLASSIFICATION]))
    hub = root / "hub"
    export_for_hub(
        root / "model", hub, root / "results.json", repo_id="someone/tvtsv2-tiny", datasets=["my-org/my-videos"]
    )
    return model, processor, hub


def test_folder_layout(exported):
    _, _, hub = exported
    files = {p.name for p in hub.iterdir()}
    for name in (
        "config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "tokenizer_config.json",
        "configuration_tvtsv2.py", "modeling_tvtsv2.py", "processing_tvtsv2.py", "video_processing_tvtsv2.py",
        "video_decoding_tvtsv2.py", "video_reading_tvtsv2.py", "video_transforms_tvtsv2.py",
        "video_sources_tvtsv2.py", "pipeline_tvtsv2.py", "README.md", "eval_results.json",
    ):  # fmt: skip
        assert name in files, name
    assert "__init__.py" not in files
    config = json.loads((hub / "config.json").read_text())
    assert config["auto_map"]["AutoConfig"] == "configuration_tvtsv2.TVTSv2Config"
    assert config["auto_map"]["AutoModel"] == "modeling_tvtsv2.TVTSv2Model"
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_tvtsv2.TVTSv2ForPreTraining"
    assert set(config["custom_pipelines"]) == {"zero-shot-video-classification", "video-feature-extraction"}
    assert config["custom_pipelines"]["zero-shot-video-classification"]["impl"] == (
        "pipeline_tvtsv2.ZeroShotVideoClassificationPipeline"
    )
    processor_config = json.loads((hub / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_tvtsv2.TVTSv2Processor"
    # every Python file imports its siblings relatively only (a Hub folder has no package)
    for path in hub.glob("*.py"):
        pattern = r"^\s*(?:from|import)\s+(modeling_tvtsv2|configuration|processing|training)\b"
        absolute = re.findall(pattern, path.read_text(), re.M)
        assert not absolute, path.name


def test_remote_code_loads_without_the_package(exported, tmp_path):
    model, processor, hub = exported
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TOKENIZERS_PARALLELISM="false")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    completed = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(hub), str(PARK), json.dumps(LABELS)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    remote = json.loads(completed.stdout.strip().splitlines()[-1])
    assert remote["config_class"].startswith("transformers_modules.")
    assert remote["model_class"].startswith("transformers_modules.") and remote["model_class"].endswith("TVTSv2Model")
    assert remote["pretraining_class"] == "TVTSv2ForPreTraining"
    assert remote["processor_class"] == "TVTSv2Processor"
    assert remote["pipeline_class"] == "ZeroShotVideoClassificationPipeline"

    inputs = processor(text=LABELS, videos=[str(PARK)], return_tensors="pt")
    with torch.no_grad():
        video = model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"]).pooler_output
        text = model.get_text_features(input_ids=inputs["input_ids"]).pooler_output
    np.testing.assert_allclose(remote["video_embeds"], video.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(remote["text_embeds"], text.numpy(), atol=1e-5, rtol=1e-5)
    sort_head_sum = sum(p.double().abs().sum().item() for p in model.sort_head.parameters())
    assert remote["sort_head_sum"] == pytest.approx(sort_head_sum, rel=1e-9)

    unit = video[0] / video[0].norm()
    np.testing.assert_allclose(remote["features"], unit.numpy(), atol=1e-5)
    with torch.no_grad():
        prompts = processor(text=[f"a person {label}" for label in LABELS], return_tensors="pt")
        prompt_embeds = model.get_text_features(input_ids=prompts["input_ids"]).pooler_output
    expected = (100 * torch.nn.functional.normalize(prompt_embeds, dim=-1) @ unit).softmax(dim=-1)
    scores = {item["label"]: item["score"] for item in remote["zero_shot"]}
    np.testing.assert_allclose([scores[label] for label in LABELS], expected.numpy(), atol=1e-5)
    assert [item["score"] for item in remote["zero_shot"]] == sorted(scores.values(), reverse=True)


def test_model_card_parses_validates_and_shows_results(exported):
    _, _, hub = exported
    card = ModelCard.load(hub / "README.md")  # raises on an invalid model-index (ignore_metadata_errors=False)
    data = card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "video-classification"
    assert data.license == "apache-2.0"  # a non-released (tiny) architecture: the library's licence by default
    assert "custom_code" in data.tags and "zero-shot-video-classification" in data.tags
    assert data.datasets == ["my-org/my-videos"]
    assert set(data.metrics) == {"recall", "accuracy"}
    results = {(r.task_type, r.dataset_name, r.metric_type): r for r in data.eval_results}
    assert results[("text-to-video-retrieval", "MSR-VTT 1k-A", "recall@1")].metric_value == 35.9
    assert results[("text-to-video-retrieval", "MSR-VTT 1k-A", "median_rank")].metric_value == 3.0
    assert results[("video-to-text-retrieval", "MSR-VTT 1k-A", "recall@10")].metric_value == 70.2
    assert results[("text-to-video-retrieval", "MSR-VTT 1k-A", "recall@1")].dataset_type == "msrvtt"
    assert results[("video-classification", "HMDB-51", "accuracy")].metric_value == 50.4
    assert results[("video-classification", "HMDB-51", "top_5_accuracy")].metric_value == 77.7
    assert results[("video-classification", "HMDB-51", "accuracy")].dataset_split == "split1-test"
    assert len(data.eval_results) == 8 + 2
    # the body: usage for AutoModel, both pipelines, continued pre-training, and a results table
    text = card.text
    assert 'AutoModel.from_pretrained("someone/tvtsv2-tiny", trust_remote_code=True)' in text
    assert 'pipeline("zero-shot-video-classification"' in text and 'pipeline("video-feature-extraction"' in text
    assert "AutoModelForPreTraining" in text and "run_pretrain.py" in text
    assert "| MSR-VTT 1k-A | text→video | 35.9 | 61.2 | 71.3 | 3.0 | 20.5 |" in text
    assert "| HMDB-51 | zero-shot classification | 50.4 | 77.7 |" in text


def test_cli_export_in_place_without_results(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "model"
    from modeling_tvtsv2 import TVTSv2Model

    model = TVTSv2Model(TVTSv2Config.from_preset("tiny"))
    model.save_pretrained(folder)
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(folder)
    # in place, as `tvtsv2 convert --hub` does: the weights are rewritten from the loaded (memory-mapped) model
    assert cli_main(["export", "--model", str(folder), "--output", str(folder), "--license", "mit", "--overwrite"]) == 0
    reloaded = TVTSv2Model.from_pretrained(folder)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, atol=0, rtol=0)
    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "mit" and not card.data.eval_results
    assert "No evaluation results" in card.text
    assert not (folder / "eval_results.json").exists()
    assert not list(tmp_path.glob(".model.*"))  # staging folders cleaned up


def test_export_without_processor_files_writes_the_default_one(tmp_path):
    from modeling_tvtsv2 import TVTSv2Model

    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(tmp_path / "bare")  # weights + config only
    export_for_hub(tmp_path / "bare", tmp_path / "hub")
    processor = TVTSv2Processor.from_pretrained(tmp_path / "hub")
    # the default processor follows the model: 64x64 frames (tiny preset), its number of temporal positions
    assert processor.video_processor.crop_size["height"] == 64
    assert processor.video_processor.num_frames == TVTSv2Config.from_preset("tiny").vision_config.num_frames
    assert processor(text="a cat", return_tensors="pt")["input_ids"].shape[-1] == 77
