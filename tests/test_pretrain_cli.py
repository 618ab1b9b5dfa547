"""`training/run_pretrain.py` / `tvtsv2 train` / `python -m modeling_tvtsv2.pretraining`: argument resolution,
the paper recipes (checked against the original code's values, written here from the fact sheet), `--dry_run`,
Hub ids resolved offline through a Hugging Face cache laid out by the test, output-folder protection, Hub-ready
outputs, launcher-independent demo numbers and unusable corpora.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import CLIPConfig

from modeling_tvtsv2.pretraining.run import main
from modeling_tvtsv2.pretraining.arguments import PretrainingArgumentError, parse_arguments

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------------------------
# The original recipe per variant (original_tvtsv2_facts.md §1, §4): NOT derived from this package's code.
# --------------------------------------------------------------------------------------------------------------
CLIP_IDS = {
    "b32": "openai/clip-vit-base-patch32",
    "b16": "openai/clip-vit-base-patch16",
    "h14": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
}
# CLIP tower sizes of the checkpoints the original initialised from (fact sheet §1).
CLIP_TOWERS = {
    "b32": dict(vision=(768, 12, 12, 3072, 32, "quick_gelu"), text=(512, 12, 8, 2048, "quick_gelu"), proj=512),
    "b16": dict(vision=(768, 12, 12, 3072, 16, "quick_gelu"), text=(512, 12, 8, 2048, "quick_gelu"), proj=512),
    "h14": dict(vision=(1280, 32, 16, 5120, 14, "gelu"), text=(1024, 24, 16, 4096, "gelu"), proj=1024),
}
ORIGINAL = {
    "b32": dict(mask_ratio=0.0, batch=24, precision="fp32", frozen_text="0-8", text_layers=12),
    "b16": dict(mask_ratio=0.5, batch=12, precision="fp32", frozen_text="0-8", text_layers=12),
    "h14": dict(mask_ratio=0.7, batch=2, precision="fp16", frozen_text="0-17", text_layers=24),
}
# Parameter counts from the fact sheet §1: downstream total + sort head; "new" = video-tower new parameters minus
# the temporal embedding (12 x width, which the original trains at the CLIP rate) + the sort head.
_B_TEXT_BLOCK = (63_428_096 - 49408 * 512 - 77 * 512 - 2 * 512 - 512 * 512) // 12  # 3,152,384
_H_TEXT_BLOCK = (354_032_640 - 49408 * 1024 - 77 * 1024 - 2 * 1024 - 1024 * 1024) // 24  # 12,596,224
PARAMETERS = {
    "b32": dict(total=179_653_376 + 6_308_868, new=28_376_064 - 12 * 768 + 6_308_868, frozen=9 * _B_TEXT_BLOCK),
    "b16": dict(total=177_996_800 + 6_308_868, new=28_376_064 - 12 * 768 + 6_308_868, frozen=9 * _B_TEXT_BLOCK),
    "h14": dict(total=1_196_085_760 + 25_200_644, new=209_976_320 - 12 * 1280 + 25_200_644, frozen=18 * _H_TEXT_BLOCK),
}


def clip_config(variant: str) -> CLIPConfig:
    spec = CLIP_TOWERS[variant]
    v_width, v_layers, v_heads, v_mlp, patch, v_act = spec["vision"]
    t_width, t_layers, t_heads, t_mlp, t_act = spec["text"]
    return CLIPConfig(
        vision_config=dict(
            hidden_size=v_width, num_hidden_layers=v_layers, num_attention_heads=v_heads, intermediate_size=v_mlp,
            patch_size=patch, image_size=224, hidden_act=v_act,
        ),
        text_config=dict(
            hidden_size=t_width, num_hidden_layers=t_layers, num_attention_heads=t_heads, intermediate_size=t_mlp,
            hidden_act=t_act,
        ),
        projection_dim=spec["proj"],
    )  # fmt: skip


def tiny_clip():
    import torch
    from transformers import CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),
        vision_config=dict(
            hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8, hidden_act="quick_gelu",
        ),
        projection_dim=16,
    )  # fmt: skip
    return CLIPModel(config).eval()


def lay_out_hub_model(hf_home: Path, repo_id: str, save) -> None:
    """The cache layout `huggingface_hub` leaves after a download: models--org--name/snapshots/<sha>/ + refs/main."""
    folder = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    save(folder / "snapshots" / revision)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(revision)


def lay_out_hub_dataset(hf_home: Path, repo_id: str, splits: dict) -> None:
    """The 🤗 Datasets cache layout `load_dataset(repo_id)` leaves: org___name/default/0.0.0/<hash>/."""
    import datasets
    from datasets.packaged_modules.parquet.parquet import Parquet

    source = hf_home / "parquet-source"
    source.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, dataset in splits.items():
        files[split] = [str(source / f"{split}.parquet")]
        dataset.to_parquet(files[split][0])
    cache = hf_home / "datasets"
    org, name = repo_id.split("/")
    builder = Parquet(
        cache_dir=str(cache / "build"), dataset_name=name, data_files=files, config_name="default",
        hash=hashlib.sha1(repo_id.encode()).hexdigest()[:16], features=next(iter(splits.values())).features,
    )  # fmt: skip
    builder.download_and_prepare()
    target = cache / f"{org}___{name}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.move(str(next((cache / "build").glob("*/default*"))), str(target / "default"))
    assert datasets.__version__  # the layout above is the one of datasets >= 3 (used offline)


def offline_env(hf_home: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_CACHE=str(hf_home / "hub"), HF_HUB_OFFLINE="1")
    env.update(HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", HF_DATASETS_CACHE=str(hf_home / "datasets"))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMP_NUM_THREADS"):
        env.pop(name, None)
    return env


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


# --------------------------------------------------------------------------------------------------------------
# 8.1: demo vs real from the parsed arguments; every flag wins in any spelling
# --------------------------------------------------------------------------------------------------------------


def test_dash_spelling_of_the_dataset_flag_is_a_real_run_not_the_demo():
    for flags in (["--transcript-dataset", "d"], ["--transcript_dataset=d"], ["--dataset-name", "d"]):
        arguments = parse_arguments([*flags, "--output-dir", "out"])
        training = arguments.training
        assert not arguments.is_demo, flags
        assert arguments.data.transcript_dataset == "d"
        # the library's (paper) settings, not the demo's lr 3e-3 / no freezing / 30 epochs / cosine
        assert training.learning_rate == 1e-4 and training.clip_learning_rate == 1e-7
        assert training.freeze_schedule == "paper"
        assert training.num_train_epochs != 30 and str(training.lr_scheduler_type.value) != "cosine"


def test_explicit_flags_win_over_demo_defaults_in_any_spelling():
    flags = ["--learning-rate=2e-3", "--freeze_schedule", "text_layers<2", "--num-train-epochs", "3"]
    arguments = parse_arguments(flags)
    assert arguments.is_demo
    assert arguments.training.learning_rate == 2e-3
    assert arguments.training.freeze_schedule == "text_layers<2"
    assert arguments.training.num_train_epochs == 3
    assert arguments.training.clip_learning_rate == 5e-4  # the untouched demo default


@pytest.mark.parametrize("flags", [["--save_steps", "10"], ["--save-steps=10"]])
def test_save_steps_turns_checkpointing_on_for_the_demo(flags):
    training = parse_arguments([*flags, "--max_steps", "40"]).training
    assert training.save_strategy.value == "steps" and training.save_steps == 10 and training.max_steps == 40
    assert parse_arguments(["--max_steps", "40"]).training.save_strategy.value == "no"  # demo default


def test_recipe_values_then_flags():
    arguments = parse_arguments(["--recipe", "paper_b16", "--learning-rate", "5e-5", "--bf16", "--use-cpu"])
    training = arguments.training
    assert arguments.recipe_path.endswith("paper_b16.json") and not arguments.is_demo
    assert training.learning_rate == 5e-5 and training.clip_learning_rate == 1e-7
    assert arguments.model.model == CLIP_IDS["b16"]
    h14 = parse_arguments([str(ROOT / "configuration" / "recipes" / "paper_h14.json"), "--bf16", "--use_cpu"]).training
    assert h14.bf16 and not h14.fp16  # bf16 is the documented opt-in: it replaces the recipe's fp16


def test_bad_recipes_are_one_line_errors(tmp_path):
    with pytest.raises(PretrainingArgumentError, match="not a shipped recipe"):
        parse_arguments(["--recipe", "paper_b17"])
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"transcript_dataset": "d", "output_dir": "o", "learning_rat": 1e-4}))
    with pytest.raises(PretrainingArgumentError, match="unknown argument.*learning_rat"):
        parse_arguments([str(typo)])


def test_a_recipe_refuses_random_weights_unless_allowed(tmp_path, capsys):
    output = tmp_path / "out"
    assert main(["--recipe", "paper_b16", "--model", "b16", "--output_dir", str(output), "--dry_run"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "random weights" in error and "--allow_random_init" in error
    argv = ["--recipe", "paper_b16", "--model", "b16", "--allow_random_init", "true", "--dry_run"]
    assert main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["model"]["kind"] == "preset" and plan["model"]["init"].startswith("random")


def test_non_empty_output_dir_is_refused_and_kept(tmp_path, capsys):
    output = tmp_path / "trained"
    output.mkdir()
    (output / "model.safetensors").write_bytes(b"previous run")
    argv = ["--output_dir", str(output), "--demo_dir", str(tmp_path / "demo"), "--max_steps", "1"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--overwrite_output_dir" in error and str(output) in error
    assert (output / "model.safetensors").read_bytes() == b"previous run"
    assert not (tmp_path / "demo").exists()  # refused before any work


# --------------------------------------------------------------------------------------------------------------
# 8.2: initialisation from CLIP keeps the variant's mask ratio
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["b32", "b16", "h14"])
def test_clip_towers_of_a_released_variant_get_its_mask_ratio(variant):
    from modeling_tvtsv2.from_clip import config_from_clip

    config = config_from_clip(clip_config(variant))
    assert config.pretraining_mask_ratio == ORIGINAL[variant]["mask_ratio"]
    assert config_from_clip(clip_config(variant), pretraining_mask_ratio=0.25).pretraining_mask_ratio == 0.25


# --------------------------------------------------------------------------------------------------------------
# --dry_run of the paper recipes, with the CLIP ids resolved offline from a laid-out Hub cache (configs only)
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_hub_cache(tmp_path_factory) -> Path:
    hf_home = tmp_path_factory.mktemp("hf_home")
    for variant, repo_id in CLIP_IDS.items():
        lay_out_hub_model(hf_home, repo_id, clip_config(variant).save_pretrained)
    return hf_home


@pytest.fixture(scope="module")
def paper_plans(clip_hub_cache, tmp_path_factory, tvtsv2_script) -> dict[str, dict]:
    """`--dry_run` of each paper recipe through three entry points (one JSON object on stdout each): the
    pretraining module, the training script and the console script (the one installed with this interpreter)."""
    cwd = tmp_path_factory.mktemp("dry_run")
    env = offline_env(clip_hub_cache)
    commands = {
        "b32": [sys.executable, "-m", "modeling_tvtsv2.pretraining", "--recipe", "paper_b32", "--dry_run"],
        "b16": [sys.executable, str(ROOT / "training" / "run_pretrain.py"), str(ROOT / "configuration" / "recipes" /
                "paper_b16.json"), "--dry-run"],
        "h14": [str(tvtsv2_script), "train", "--recipe", "paper_h14", "--dry_run", "true"],
    }  # fmt: skip
    plans = {}
    for variant, command in commands.items():
        result = run(command, env, cwd, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        plans[variant] = json.loads(result.stdout)  # exactly one JSON object
    assert not any(cwd.iterdir())  # a dry run writes nothing
    return plans


@pytest.mark.parametrize("variant", ["b32", "b16", "h14"])
def test_dry_run_of_the_paper_recipe_prints_the_original_values(paper_plans, variant):
    plan, original, counts = paper_plans[variant], ORIGINAL[variant], PARAMETERS[variant]
    model = plan["model"]
    assert (model["source"], model["origin"], model["kind"]) == (CLIP_IDS[variant], "hub", "clip")
    assert model["variant"] == variant and model["parameters"] == counts["total"]
    assert plan["mask_ratio"] == original["mask_ratio"]
    assert plan["precision"] == original["precision"]
    assert plan["max_grad_norm"] == 0.0  # the original never clips
    assert plan["contrastive_gradient"] == "original"
    assert plan["num_train_epochs"] == 10 and plan["max_steps"] == -1
    schedule = plan["lr_schedule"]
    assert schedule["type"] == "step" and schedule["gamma"] == 0.1 and schedule["after_epochs"] == [6, 8]
    assert schedule["warmup_steps"] == 0
    optimizer = plan["optimizer"]
    # the original's AdamW rule and torch 1.11's zero-filled gradient clearing (tests/test_original_train_step.py)
    assert optimizer["name"] == "adamw_original" and optimizer["zero_grad_to_none"] is False
    assert optimizer["eps"] == 1e-6 and optimizer["betas"] == [0.9, 0.999]
    groups = {g["name"]: g for g in optimizer["groups"]}
    assert {name: (g["lr"], g["weight_decay"]) for name, g in groups.items()} == {
        "new_decay": (1e-4, 0.05), "new_no_decay": (1e-4, 0.0),
        "clip_decay": (1e-7, 0.05), "clip_no_decay": (1e-7, 0.0),
    }  # fmt: skip
    assert groups["new_decay"]["parameters"] + groups["new_no_decay"]["parameters"] == counts["new"]
    assert sum(g["parameters"] for g in groups.values()) == counts["total"]
    frozen = plan["freeze_schedule"]["frozen_for_whole_run"]
    assert frozen["text_layers"] == original["frozen_text"] and frozen["num_text_layers"] == original["text_layers"]
    assert frozen["parameters"] == counts["frozen"] and plan["freeze_schedule"]["changes_at_steps"] == []
    assert model["trainable_parameters_at_start"] == counts["total"] - counts["frozen"]
    batch = plan["batch_size"]
    assert batch["per_device_train"] == original["batch"] and batch["gradient_accumulation_steps"] == 1
    corpora = plan["corpora"]
    assert corpora["ratio"] == "1:1" and corpora["num_frames"] == 12 and corpora["num_transcripts"] == 4
    assert corpora["transcript"] and corpora["caption"]
    assert plan["output_dir"] == f"runs/tvtsv2-{variant}"


def test_unresolvable_hub_model_is_a_one_line_error(clip_hub_cache, tmp_path):
    command = [sys.executable, "-m", "modeling_tvtsv2.pretraining", "--recipe", "paper_b16", "--model",
               "nobody/not-cached", "--dry_run"]  # fmt: skip
    result = run(command, offline_env(clip_hub_cache), tmp_path, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--model nobody/not-cached" in result.stderr


# --------------------------------------------------------------------------------------------------------------
# End-to-end runs (real script, real PyAV files, real Trainer)
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory):
    from modeling_tvtsv2.data.demo_corpus import build_demo_corpus

    return build_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", num_videos=40)


@pytest.mark.slow
def test_hub_model_and_dataset_ids_checkpoints_and_hub_ready_outputs(demo_corpus, tmp_path):
    """--model and --dataset-name as Hub ids (offline cache), --save_steps checkpoints, the full processor in every
    checkpoint, save_state/save_metrics, --overwrite_output_dir replacing a previous run only at the end, and
    --push_to_hub writing the `tvtsv2 export` model card (the upload itself fails offline: one line, exit 1)."""
    from datasets import load_from_disk

    hf_home = tmp_path / "hf_home"
    lay_out_hub_model(hf_home, "someone/tiny-clip", tiny_clip().save_pretrained)
    transcripts = load_from_disk(str(demo_corpus.transcript))
    lay_out_hub_dataset(hf_home, "someone/demo-transcripts", dict(transcripts))
    output = tmp_path / "out"
    output.mkdir()
    (output / "old-run.txt").write_text("previous run")
    command = [
        sys.executable, str(ROOT / "training" / "run_pretrain.py"),
        "--model", "someone/tiny-clip", "--dataset-name", "someone/demo-transcripts",
        "--output-dir", str(output), "--overwrite-output-dir", "true",
        "--max_steps", "4", "--save-steps", "2", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--num_frames", "4", "--freeze_schedule", "none",
        "--disable_tqdm", "true", "--push_to_hub", "--hub_model_id", "someone/tvtsv2-test",
    ]  # fmt: skip
    result = run(command, offline_env(hf_home), tmp_path)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "someone/tvtsv2-test" in last and "Traceback" not in result.stderr

    assert not (output / "old-run.txt").exists() and not (tmp_path / "out.partial").exists()
    for checkpoint in ("checkpoint-2", "checkpoint-4"):
        processor_config = json.loads((output / checkpoint / "processor_config.json").read_text())
        assert "video_processor" in processor_config and (output / checkpoint / "tokenizer.json").is_file()
    for name in ("trainer_state.json", "train_results.json", "all_results.json", "pretraining_metrics.json"):
        assert (output / name).is_file(), name

    import modeling_tvtsv2  # noqa: F401
    from transformers import AutoModel, AutoProcessor

    assert AutoModel.from_pretrained(output).config.vision_config.hidden_size == 48  # from the tiny CLIP
    assert AutoProcessor.from_pretrained(output).video_processor.num_frames == 4

    exported = tmp_path / "exported"
    export = [sys.executable, "-m", "modeling_tvtsv2", "export", "--model", str(output), "--output", str(exported),
              "--repo-id", "someone/tvtsv2-test", "--base-model", "someone/tiny-clip",
              "--dataset", "someone/demo-transcripts"]  # fmt: skip
    result = run(export, offline_env(hf_home), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output / "README.md").read_text() == (exported / "README.md").read_text()


def _final_weights(output: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(output / "model.safetensors"))


@pytest.mark.slow
def test_demo_gives_the_same_weights_under_python_and_accelerate_launch(demo_corpus, tmp_path):
    import torch

    env = offline_env(tmp_path / "hf_home")  # plain `python` then runs with torch's default thread count
    common = ["--demo_dir", str(Path(demo_corpus.transcript).parent), "--demo_num_videos", "40", "--max_steps", "3",
              "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--use_cpu"]  # fmt: skip
    script = str(ROOT / "training" / "run_pretrain.py")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", script]  # fmt: skip
    outputs = {}
    for name, prefix in {"python": [sys.executable, script], "accelerate": launch}.items():
        outputs[name] = tmp_path / name
        result = run([*prefix, *common, "--output_dir", str(outputs[name])], env, tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    plain, launched = _final_weights(outputs["python"]), _final_weights(outputs["accelerate"])
    assert plain.keys() == launched.keys()
    for key in plain:
        assert torch.equal(plain[key], launched[key]), key


def _corrupt_transcript_corpus(folder: Path) -> Path:
    from datasets import Dataset, DatasetDict

    from modeling_tvtsv2.data.schema import transcript_features

    rows = []
    for i in range(12):
        words = [{"word": w, "time": float(t)} for t, w in enumerate("a red square moves left then stops".split())]
        rows.append(dict(video={"bytes": b"not a video " * 50, "path": f"clip{i}.mp4"}, video_id=f"clip{i}",
                         duration=20.0, words=words))  # fmt: skip
    features = transcript_features("words")
    DatasetDict(train=Dataset.from_list(rows, features=features)).save_to_disk(str(folder))
    return folder




@pytest.mark.slow
def test_a_corpus_of_unreadable_videos_stops_with_one_clear_line(tmp_path):
    corpus = _corrupt_transcript_corpus(tmp_path / "corrupt")
    output = tmp_path / "out"
    command = [
        sys.executable, str(ROOT / "training" / "run_pretrain.py"), "--transcript_dataset", str(corpus),
        "--output_dir", str(output), "--max_steps", "4", "--per_device_train_batch_size", "2",
        "--max_skip_fraction", "0.5", "--disable_tqdm", "true", "--num_frames", "4",
    ]  # fmt: skip
    result = run(command, offline_env(tmp_path / "hf_home"), tmp_path)
    assert result.returncode not in (0, None), result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    # DataLoader workers may still log their own skip warnings after the main process printed its error: the error
    # is the one `error:` line, wherever it lands among them.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "skipped" in errors[0], result.stderr[-3000:]
    assert not (output / "model.safetensors").exists()


# --------------------------------------------------------------------------------------------------------------
# 8.9: run_eval does not silently score another split
# --------------------------------------------------------------------------------------------------------------


def test_run_eval_without_a_test_split_names_the_available_splits(tmp_path):
    from datasets import Dataset, DatasetDict

    from modeling_tvtsv2.evaluation.zero_shot import load_eval_dataset

    folder = tmp_path / "bench"
    DatasetDict(train=Dataset.from_dict({"video": ["a.mp4"], "caption": ["x"]})).save_to_disk(str(folder))
    with pytest.raises(ValueError, match=r"no 'test' split.*\['train'\]"):
        load_eval_dataset(str(folder))
    assert len(load_eval_dataset(str(folder), split="train")) == 1

    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model

    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(tmp_path / "model")
    command = [sys.executable, str(ROOT / "training" / "run_eval.py"), "--task", "retrieval", "--model",
               str(tmp_path / "model"), "--dataset", str(folder), "--output", str(tmp_path / "r.json")]  # fmt: skip
    result = run(command, offline_env(tmp_path / "hf_home"), tmp_path, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "['train']" in errors[0] and result.stderr.strip().endswith(errors[0])


def test_launch_configs_leave_precision_to_the_run(monkeypatch, capsys):
    """A launch config's mixed_precision silently overrides a recipe that sets neither fp16 nor bf16 (transformers
    reads it from the environment): the shipped configs set none, and --dry_run shows the effective precision."""
    import yaml

    for path in sorted((ROOT / "configuration" / "launch").glob("*.yaml")):
        assert yaml.safe_load(path.read_text())["mixed_precision"] == "no", path.name
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    argv = ["--recipe", "paper_b16", "--model", "b16", "--allow_random_init", "true", "--dry_run"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "bf16"
