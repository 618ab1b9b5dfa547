"""Checkpoint converter (`tvtsv2 convert`): mapping, inferred config, refusals, and safe loading of pickled objects.

The expected mapping is written out independently below from the original key tables (fact sheet §2) and the fixture's
`constructor.json`; it is not derived from `modeling_tvtsv2.convert_tvtsv2_original_to_hf`.
"""

import configparser
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modeling_tvtsv2  # noqa: F401
from modeling_tvtsv2 import TVTSv2Config, TVTSv2ForPreTraining
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.convert_tvtsv2_original_to_hf import (
    CheckpointConversionError,
    convert_checkpoint,
    infer_config,
    load_original_checkpoint,
    map_original_state_dict,
)

from conftest import HANG_GUARD_SECONDS


TINY_KWARGS = dict(layout="openai-clip", vision_heads=4, text_heads=4, sort_heads=4)
TINY_ARGS = ["--layout", "openai-clip", "--vision-heads", "4", "--text-heads", "4", "--sort-heads", "4"]


def original_state_dict(fixture_dir, name="trainer"):
    """The fixture checkpoint's tensors with `module.` stripped (read directly with torch, not with the converter)."""
    checkpoint = torch.load(fixture_dir / f"checkpoint_{name}_format.pth", map_location="cpu", weights_only=True)
    return {key.removeprefix("module."): value for key, value in checkpoint["state_dict"].items()}


def save_checkpoint(path, state_dict, **extra):
    torch.save({"state_dict": state_dict, **extra}, path)
    return path


def run_cli(argv):
    return cli_main(["convert", *argv])


# ---------------------------------------------------------------------------------------------------------------
# An independent statement of the mapping original -> 🤗 names (fact sheet §2.2 "suggested HF mapping")


def _split3(prefix, suffix, value):
    rows = value.shape[0] // 3
    return {f"{prefix}.{n}_proj.{suffix}": value[i * rows : (i + 1) * rows] for i, n in enumerate("qkv")}


def expected_hf_state_dict(original):
    out = {}
    block_renames = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "ln_3": "temporal_layer_norm",
                     "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2", "attn.out_proj": "self_attn.out_proj",
                     "attn.proj": "self_attn.out_proj", "timeattn.proj": "temporal_attn.out_proj",
                     "norm1": "layer_norm1", "norm2": "layer_norm2",
                     "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}  # fmt: skip
    singles = {
        "text_positional_embedding": "text_model.embeddings.position_embedding.weight",
        "text_token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "text_ln_final.weight": "text_model.final_layer_norm.weight",
        "text_ln_final.bias": "text_model.final_layer_norm.bias",
        "video_model.class_embedding": "vision_model.embeddings.class_embedding",
        "video_model.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "video_model.temporal_embedding": "vision_model.embeddings.temporal_embedding",
        "video_model.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "video_model.ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "video_model.ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "video_model.ln_post.weight": "vision_model.post_layernorm.weight",
        "video_model.ln_post.bias": "vision_model.post_layernorm.bias",
        "pred_model.norm.weight": "sort_head.final_layer_norm.weight",
        "pred_model.norm.bias": "sort_head.final_layer_norm.bias",
        "pred_model.head.weight": "sort_head.classifier.weight",
        "pred_model.head.bias": "sort_head.classifier.bias",
    }
    for key, value in original.items():
        if key in singles:
            out[singles[key]] = value
        elif key == "text_projection":  # x @ P  ->  Linear weight P^T
            out["text_projection.weight"] = value.t()
        elif key == "video_model.proj":
            out["visual_projection.weight"] = value.t()
        elif key == "pred_model.type_embed":
            out["sort_head.type_embeddings"] = value[0]
        elif m := re.fullmatch(r"text_model\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", key):
            out.update(_split3(f"text_model.encoder.layers.{m[1]}.self_attn", m[2], value))
        elif m := re.fullmatch(r"video_model\.transformer\.resblocks\.(\d+)\.(attn|timeattn)\.qkv\.(weight|bias)", key):
            attention = "self_attn" if m[2] == "attn" else "temporal_attn"
            out.update(_split3(f"vision_model.encoder.layers.{m[1]}.{attention}", m[3], value))
        elif m := re.fullmatch(r"pred_model\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key):
            out.update(_split3(f"sort_head.layers.{m[1]}.self_attn", m[2], value))
        elif m := re.fullmatch(
            r"(text_model\.resblocks|video_model\.transformer\.resblocks|pred_model\.blocks)"
            r"\.(\d+)\.(.+)\.(weight|bias)",
            key,
        ):
            prefix = {"text_model.resblocks": "text_model.encoder.layers", "pred_model.blocks": "sort_head.layers",
                      "video_model.transformer.resblocks": "vision_model.encoder.layers"}[m[1]]  # fmt: skip
            out[f"{prefix}.{m[2]}.{block_renames[m[3]]}.{m[4]}"] = value
        else:
            raise AssertionError(f"test mapping does not know {key}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Converting the fixture


def test_converted_weights_are_the_independently_mapped_original_tensors(converted_original, original_fixture_dir):
    original = original_state_dict(original_fixture_dir)
    assert len(original) == 127 and sum(k.startswith("pred_model.") for k in original) == 29  # constructor.json
    expected = expected_hf_state_dict(original)
    saved = load_file(str(converted_original["trainer"] / "model.safetensors"))
    assert set(saved) == set(expected)
    for key, value in expected.items():
        assert saved[key].dtype == torch.float32
        assert torch.equal(saved[key], value), key


def test_both_checkpoint_formats_give_identical_tensors(converted_original):
    trainer = load_file(str(converted_original["trainer"] / "model.safetensors"))
    downstream = load_file(str(converted_original["downstream"] / "model.safetensors"))
    assert set(trainer) - set(downstream) == {k for k in trainer if k.startswith("sort_head.")}
    assert set(downstream) <= set(trainer)
    for key, value in downstream.items():
        assert torch.equal(value, trainer[key]), key
    configs = {name: json.loads((folder / "config.json").read_text()) for name, folder in converted_original.items()}
    assert configs["trainer"]["architectures"] == ["TVTSv2ForPreTraining"]
    assert configs["downstream"]["architectures"] == ["TVTSv2Model"]
    for config in configs.values():
        config.pop("architectures")
    assert configs["trainer"] == configs["downstream"]


def test_converted_config_matches_the_fixture_constructor(converted_original, original_fixture_dir):
    constructor = json.loads((original_fixture_dir / "constructor.json").read_text())
    vision, text, sort = constructor["vision"], constructor["text"], constructor["sort_head"]
    config = TVTSv2Config.from_pretrained(converted_original["trainer"])
    v, t = config.vision_config, config.text_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads) == (
        vision["width"], vision["layers"], vision["heads"]
    )
    assert (v.patch_size, v.image_size, v.intermediate_size) == (
        vision["patch_size"], vision["input_resolution"], vision["mlp_hidden"]
    )
    assert v.num_frames == vision["num_frames_temporal_embedding_rows"]
    assert (v.hidden_act, v.layer_norm_upcast, v.layer_norm_eps) == ("quick_gelu", True, 1e-5)
    assert (t.vocab_size, t.hidden_size, t.num_hidden_layers, t.num_attention_heads) == (
        text["vocab_size"], text["width"], text["layers"], text["heads"]
    )
    assert (t.intermediate_size, t.max_position_embeddings) == (text["mlp_hidden"], text["context_length"])
    assert (t.hidden_act, t.layer_norm_upcast) == ("quick_gelu", True)
    assert (t.bos_token_id, t.eos_token_id) == (text["special_tokens"]["sot"], text["special_tokens"]["eot"])
    assert config.projection_dim == vision["output_dim"] == text["projection_dim"]
    assert (config.sort_head_num_attention_heads, config.sort_head_num_layers) == (sort["num_heads"], sort["depth"])
    assert (config.sort_head_num_classes, config.sort_head_mlp_ratio) == (sort["num_classes"], sort["mlp_ratio"])
    assert config.sort_head_layer_norm_eps == 1e-6
    assert config.sort_head_video_tokens == "all_tokens_post_ln"
    assert (config.temperature, config.sort_loss_weight, config.learnable_temperature) == (0.05, 2.0, False)


def test_cli_reports_what_it_wrote(tmp_path, original_fixture_dir, capsys):
    trainer_out, downstream_out = tmp_path / "trainer", tmp_path / "downstream"
    assert run_cli(["--checkpoint", str(original_fixture_dir / "checkpoint_trainer_format.pth"),
                    "--output", str(trainer_out), "--no-processor", *TINY_ARGS]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "TVTSv2ForPreTraining (with sort head)" in printed
    n_params = sum(v.numel() for v in original_state_dict(original_fixture_dir).values())
    assert f"{n_params:,} parameters" in printed
    assert (trainer_out / "config.json").is_file() and (trainer_out / "model.safetensors").is_file()

    assert run_cli(["--checkpoint", str(original_fixture_dir / "checkpoint_downstream_format.pth"),
                    "--output", str(downstream_out), "--no-processor", *TINY_ARGS[:-2]]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "TVTSv2Model (no sort head)" in printed
    assert "no sort head" in printed.split("parameters", 1)[1]  # the note about the fresh sort head


def test_bare_state_dict_and_repeated_module_prefix_are_accepted(tmp_path, original_fixture_dir, converted_original):
    original = original_state_dict(original_fixture_dir, "downstream")
    path = tmp_path / "bare.pth"
    torch.save({f"module.module.{k}": v for k, v in original.items()}, path)  # no {"state_dict": ...} wrapper
    result = convert_checkpoint(path, **TINY_KWARGS)
    assert not result.has_sort_head
    expected = load_file(str(converted_original["downstream"] / "model.safetensors"))
    state = result.model.state_dict()
    assert set(state) == set(expected) and all(torch.equal(state[k], v) for k, v in expected.items())


# ---------------------------------------------------------------------------------------------------------------
# Released sizes: the full key tables of the original (fact sheet §2.1), on the meta device


def original_key_shapes(variant):
    b = variant in ("b32", "b16")
    tw, tl, vw, vl, dim = (512, 12, 768, 12, 512) if b else (1024, 24, 1280, 32, 1024)
    patch = {"b32": 32, "b16": 16, "h14": 14}[variant]
    grid = 224 // patch
    shapes = {"text_positional_embedding": (77, tw), "text_projection": (tw, dim),
              "text_token_embedding.weight": (49408, tw), "text_ln_final.weight": (tw,), "text_ln_final.bias": (tw,),
              "video_model.class_embedding": (vw,), "video_model.positional_embedding": (grid * grid + 1, vw),
              "video_model.proj": (vw, dim), "video_model.temporal_embedding": (12, vw),
              "video_model.conv1.weight": (vw, 3, patch, patch), "video_model.ln_pre.weight": (vw,),
              "video_model.ln_pre.bias": (vw,), "video_model.ln_post.weight": (vw,), "video_model.ln_post.bias": (vw,),
              "pred_model.type_embed": (1, 2, dim), "pred_model.norm.weight": (dim,), "pred_model.norm.bias": (dim,),
              "pred_model.head.weight": (4, dim), "pred_model.head.bias": (4,)}  # fmt: skip

    def mlp(prefix, w, fc1="mlp.c_fc", fc2="mlp.c_proj"):
        shapes.update({f"{prefix}{fc1}.weight": (4 * w, w), f"{prefix}{fc1}.bias": (4 * w,),
                       f"{prefix}{fc2}.weight": (w, 4 * w), f"{prefix}{fc2}.bias": (w,)})  # fmt: skip

    def norms(prefix, w, names):
        shapes.update({f"{prefix}{n}.{p}": (w,) for n in names for p in ("weight", "bias")})

    def attention(prefix, w, qkv="qkv.", proj="proj"):
        shapes.update({f"{prefix}{qkv}weight": (3 * w, w), f"{prefix}{qkv}bias": (3 * w,),
                       f"{prefix}{proj}.weight": (w, w), f"{prefix}{proj}.bias": (w,)})  # fmt: skip

    for i in range(tl):
        prefix = f"text_model.resblocks.{i}."
        attention(prefix + "attn.", tw, qkv="in_proj_", proj="out_proj")
        norms(prefix, tw, ("ln_1", "ln_2"))
        mlp(prefix, tw)
    for i in range(vl):
        prefix = f"video_model.transformer.resblocks.{i}."
        attention(prefix + "attn.", vw)
        attention(prefix + "timeattn.", vw)
        norms(prefix, vw, ("ln_1", "ln_2", "ln_3"))
        mlp(prefix, vw)
    for i in range(2):
        prefix = f"pred_model.blocks.{i}."
        attention(prefix + "attn.", dim)
        norms(prefix, dim, ("norm1", "norm2"))
        mlp(prefix, dim, fc1="mlp.fc1", fc2="mlp.fc2")
    return shapes


ORIGINAL_KEY_COUNTS = {"b32": (403, 179_653_376), "b16": (403, 177_996_800), "h14": (907, 1_196_085_760)}


@pytest.mark.parametrize("variant", ["b32", "b16", "h14"])
def test_released_sizes_are_detected_and_fully_mapped(variant):
    shapes = original_key_shapes(variant)
    n_keys, n_downstream_params = ORIGINAL_KEY_COUNTS[variant]
    assert len(shapes) == n_keys  # self-check of the table against the fact sheet
    downstream = {k: s for k, s in shapes.items() if not k.startswith("pred_model.")}
    assert sum(torch.Size(s).numel() for s in downstream.values()) == n_downstream_params
    original = {k: torch.empty(s, device="meta") for k, s in shapes.items()}

    config = infer_config(original)  # no flags: the variant is detected from the shapes
    preset = TVTSv2Config.from_preset(variant)
    for sub in ("vision_config", "text_config"):
        got, want = getattr(config, sub).to_dict(), getattr(preset, sub).to_dict()
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
                    "layer_norm_upcast", "layer_norm_eps"):  # fmt: skip
            assert got[key] == want[key], f"{sub}.{key}"
    for key in ("projection_dim", "sort_head_num_attention_heads", "sort_head_num_layers", "sort_head_num_classes",
                "sort_head_video_tokens", "pretraining_mask_ratio", "num_frozen_text_layers"):  # fmt: skip
        assert getattr(config, key) == getattr(preset, key), key
    assert (config.text_config.bos_token_id, config.text_config.eos_token_id) == (49406, 49407)
    assert (config.vision_config.image_size, config.vision_config.num_frames) == (224, 12)

    mapped, unmapped = map_original_state_dict(original)
    assert unmapped == []
    with torch.device("meta"):
        model = TVTSv2ForPreTraining(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == expected


# ---------------------------------------------------------------------------------------------------------------
# Refusals


def _convert_error(tmp_path, state_dict, **kwargs):
    path = save_checkpoint(tmp_path / "bad.pth", state_dict)
    with pytest.raises(CheckpointConversionError) as info:
        convert_checkpoint(path, **{**TINY_KWARGS, **kwargs})
    return str(info.value)


def test_refuses_a_hugging_face_state_dict(tmp_path, converted_original, capsys):
    hf_state = load_file(str(converted_original["downstream"] / "model.safetensors"))
    message = _convert_error(tmp_path, hf_state)
    assert "video_model.class_embedding" in message  # a required original key that is missing
    assert "text_model.embeddings" in message or "vision_model." in message  # the keys that were found instead
    assert run_cli(["--checkpoint", str(tmp_path / "bad.pth"), "--output", str(tmp_path / "out"), *TINY_ARGS]) == 2
    assert "video_model.class_embedding" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_refuses_unknown_keys_and_names_them(tmp_path, original_fixture_dir):
    original = original_state_dict(original_fixture_dir)
    original["video_model.transformer.resblocks.0.ls_1.gamma"] = torch.ones(64)
    original["text_model.extra_bias"] = torch.zeros(48)
    message = _convert_error(tmp_path, original)
    assert "video_model.transformer.resblocks.0.ls_1.gamma" in message and "text_model.extra_bias" in message


@pytest.mark.parametrize(
    "key, shape, expected_in_message",
    [
        ("video_model.transformer.resblocks.1.ln_3.weight", (63,), ["layers.1", "(63,)"]),
        ("video_model.temporal_embedding", (4, 60), ["temporal_embedding", "(4, 60)"]),
        ("video_model.transformer.resblocks.0.timeattn.qkv.weight", (190, 64), ["layers.0", "temporal_attn", "190"]),
        ("video_model.transformer.resblocks.0.timeattn.qkv.weight", (192, 60), ["layers.0.temporal_attn"]),
        ("text_model.resblocks.2.attn.in_proj_weight", (144, 40), ["layers.2.self_attn"]),
        ("pred_model.head.bias", (5,), ["classifier.bias"]),
    ],
)
def test_refuses_wrong_shapes_and_names_the_tensor(tmp_path, original_fixture_dir, key, shape, expected_in_message):
    original = original_state_dict(original_fixture_dir)
    original[key] = torch.zeros(shape)
    message = _convert_error(tmp_path, original)
    for fragment in expected_in_message:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(
    "key, expected_in_message",
    [
        ("video_model.transformer.resblocks.1.ln_3.bias", "layers.1.temporal_layer_norm.bias"),
        ("video_model.transformer.resblocks.0.timeattn.proj.weight", "layers.0.temporal_attn.out_proj.weight"),
        ("pred_model.type_embed", "sort_head.type_embeddings"),
        ("text_projection", "text_projection"),
        ("video_model.temporal_embedding", "video_model.temporal_embedding"),
    ],
)
def test_refuses_missing_tensors_and_names_them(tmp_path, original_fixture_dir, key, expected_in_message):
    original = original_state_dict(original_fixture_dir)
    del original[key]
    message = _convert_error(tmp_path, original)
    assert expected_in_message in message, message


def test_refuses_non_contiguous_blocks(tmp_path, original_fixture_dir):
    # A whole text block missing in the middle (blocks 0, 2, 3 left) is not silently renumbered.
    original = original_state_dict(original_fixture_dir)
    original = {k: v for k, v in original.items() if "text_model.resblocks.1." not in k}
    message = _convert_error(tmp_path, original)
    assert "non-contiguous" in message and "[0, 2, 3]" in message


def test_refuses_non_tensor_entries_and_non_dict_files(tmp_path, original_fixture_dir):
    original = original_state_dict(original_fixture_dir)
    original["video_model.ln_pre.bias"] = [0.0] * 64
    message = _convert_error(tmp_path, original)
    assert "video_model.ln_pre.bias" in message and "not a tensor" in message

    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(CheckpointConversionError, match="expected a dict"):
        convert_checkpoint(tmp_path / "list.pth", **TINY_KWARGS)

    (tmp_path / "garbage.pth").write_bytes(os.urandom(256))
    with pytest.raises(CheckpointConversionError, match="not a readable torch checkpoint"):
        convert_checkpoint(tmp_path / "garbage.pth", **TINY_KWARGS)


def test_missing_file_gives_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "does_not_exist.pth"
    with pytest.raises(FileNotFoundError, match="does_not_exist.pth"):
        convert_checkpoint(missing)
    assert run_cli(["--checkpoint", str(missing), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not found" in err and "does_not_exist.pth" in err


def test_non_standard_size_requires_layout_and_heads(tmp_path, original_fixture_dir, capsys):
    trainer = original_fixture_dir / "checkpoint_trainer_format.pth"
    downstream = original_fixture_dir / "checkpoint_downstream_format.pth"
    with pytest.raises(CheckpointConversionError) as info:
        convert_checkpoint(trainer)
    for flag in ("--layout", "--vision-heads", "--text-heads", "--sort-heads"):
        assert flag in str(info.value)
    assert "released sizes" in str(info.value)

    with pytest.raises(CheckpointConversionError) as info:  # only what is still missing is asked for
        convert_checkpoint(trainer, layout="openai-clip", vision_heads=4)
    assert "--text-heads" in str(info.value) and "--sort-heads" in str(info.value)
    assert "--layout" not in str(info.value) and "--vision-heads" not in str(info.value)

    with pytest.raises(CheckpointConversionError) as info:  # no sort head in the file: no --sort-heads needed
        convert_checkpoint(downstream)
    assert "--sort-heads" not in str(info.value) and "--layout" in str(info.value)
    assert not convert_checkpoint(downstream, layout="openai-clip", vision_heads=4, text_heads=4).has_sort_head

    assert run_cli(["--checkpoint", str(trainer), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--vision-heads" in err and "--layout" in err
    assert not (tmp_path / "out").exists()


def test_console_script_exit_code_and_message(tmp_path, tvtsv2_script):
    result = subprocess.run(
        [str(tvtsv2_script), "convert", "--checkpoint", str(tmp_path / "nope.pth"), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=HANG_GUARD_SECONDS,
    )  # fmt: skip
    assert result.returncode == 2
    assert "error: Checkpoint not found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "flags", [["--layout", "openai-clip", "--vision-heads", "5", "--text-heads", "4"], ["--variant", "b32"]]
)
def test_cli_inconsistent_flags_exit_2(tmp_path, original_fixture_dir, capsys, flags):
    checkpoint = original_fixture_dir / "checkpoint_downstream_format.pth"
    code = run_cli(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out"), *flags])
    assert code == 2
    assert "error:" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Pickled Python objects in trainer checkpoints: tensors are extracted without importing/executing anything


THROWAWAY_MODULE = '''
import pathlib
MARKERS = pathlib.Path({markers!r})
(MARKERS / "imported").write_text("the throwaway module was imported")


class TrainerState:
    def __init__(self, value):
        self.value = value

    def __setstate__(self, state):
        (MARKERS / "setstate").write_text("TrainerState.__setstate__ ran")
        self.__dict__.update(state)


class Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path({markers!r}, 'exec').write_text('pickled exec ran')",))
'''


@pytest.mark.parametrize("module_importable", [False, True], ids=["module_gone", "module_still_importable"])
def test_pickled_objects_are_not_imported_or_executed(
    tmp_path, original_fixture_dir, converted_original, module_importable
):
    markers = tmp_path / "markers"
    markers.mkdir()
    modules = tmp_path / "modules"
    modules.mkdir()
    name = f"tvtsv2_throwaway_{uuid.uuid4().hex}"
    (modules / f"{name}.py").write_text(THROWAWAY_MODULE.format(markers=str(markers)))

    sys.path.insert(0, str(modules))
    try:
        throwaway = __import__(name)
        checkpoint = torch.load(original_fixture_dir / "checkpoint_trainer_format.pth", weights_only=True)
        parser = configparser.ConfigParser()
        parser["trainer"] = {"epochs": "10", "save_dir": "/somewhere"}
        checkpoint["config"] = parser  # what the original trainer stored
        checkpoint["trainer_state"] = throwaway.TrainerState(3)
        checkpoint["exploit"] = throwaway.Exploit()
        path = tmp_path / "trainer_with_objects.pth"
        torch.save(checkpoint, path)
    finally:
        sys.modules.pop(name, None)
        if not module_importable:
            sys.path.remove(str(modules))
    for marker in markers.iterdir():
        marker.unlink()

    try:
        with pytest.raises(Exception):  # the plain safe loader refuses the file: the converter needs its fallback
            torch.load(path, weights_only=True)
        output = tmp_path / "converted"
        assert run_cli(["--checkpoint", str(path), "--output", str(output), *TINY_ARGS]) == 0
        assert sorted(p.name for p in markers.iterdir()) == [], "code from the checkpoint ran during conversion"
        assert name not in sys.modules

        converted = load_file(str(output / "model.safetensors"))
        expected = load_file(str(converted_original["trainer"] / "model.safetensors"))
        assert set(converted) == set(expected)
        assert all(torch.equal(converted[k], v) for k, v in expected.items())
        assert set(load_original_checkpoint(path)) == set(original_state_dict(original_fixture_dir))

        if module_importable:
            # Control: an ordinary (unsafe) load of the same file does run the payload, so the check above can fail.
            torch.load(path, weights_only=False)
            assert {p.name for p in markers.iterdir()} == {"imported", "setstate", "exec"}
    finally:
        sys.modules.pop(name, None)
        if module_importable:
            sys.path.remove(str(modules))


def test_frozen_text_layers_of_other_depths_follow_the_original_names():
    # The original freezes text blocks by name (resblocks.9.-.11. trained): a 4-block tower is frozen whole.
    fixtures = Path(__file__).parent / "fixtures"
    four = load_original_checkpoint(fixtures / "original_tiny_b16" / "checkpoint_trainer_format.pth")
    assert infer_config(four, **TINY_KWARGS).num_frozen_text_layers == 4
    # 12 blocks: the set the original trainer itself froze (tests/fixtures/original_train_step_b16/runs.json)
    step_fixture = fixtures / "original_train_step_b16"
    frozen = json.loads((step_fixture / "runs.json").read_text())["w1_pair"]["frozen"]
    frozen_blocks = {int(re.match(r"text_model\.resblocks\.(\d+)\.", name).group(1)) for name in frozen}
    twelve = load_original_checkpoint(step_fixture / "checkpoint_trainer_format.pth")
    config = infer_config(twelve, layout="openai-clip", vision_heads=2, text_heads=4, sort_heads=2)
    assert config.text_config.num_hidden_layers == 12
    assert frozen_blocks == set(range(config.num_frozen_text_layers))
