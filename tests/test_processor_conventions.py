"""transformers conventions of `TVTSv2Processor` / `TVTSv2VideoProcessor` (issue 9, items 1, 2, 3, 6, 12)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor
from transformers.models.auto.video_processing_auto import AutoVideoProcessor

import modeling_tvtsv2  # noqa: F401 - registers the Auto classes
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor
from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer
from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessor


DATA = Path(__file__).parent / "data"
PARK = DATA / "park.mp4"


def _json_files(folder: Path) -> dict[str, object]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _has_key(value, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_has_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_has_key(v, key) for v in value)
    return False


# ---- item 1: saving has no side effects ------------------------------------------------------------------------


def test_processor_save_writes_no_code_and_round_trips_identically(tmp_path):
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    before = processor.to_dict()
    processor.save_pretrained(tmp_path / "first")
    assert processor.to_dict() == before  # the in-memory processor is unchanged by saving
    assert not list((tmp_path / "first").glob("*.py"))
    first = _json_files(tmp_path / "first")
    assert not any(_has_key(data, "auto_map") for data in first.values()), "auto_map written by a plain save"
    reloaded = AutoProcessor.from_pretrained(tmp_path / "first")
    assert type(reloaded) is TVTSv2Processor
    reloaded.save_pretrained(tmp_path / "second")
    assert _json_files(tmp_path / "second") == first
    assert not list((tmp_path / "second").glob("*.py"))


def test_video_processor_save_writes_no_code(tmp_path):
    TVTSv2VideoProcessor(image_size=32, num_frames=2).save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.py"))
    assert not any(_has_key(data, "auto_map") for data in _json_files(tmp_path).values())
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is TVTSv2VideoProcessor


def test_hub_export_still_registers_remote_code_and_leaves_no_trace(tmp_path):
    from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
    from modeling_tvtsv2.tools.hub_export import save_hub_folder

    torch.manual_seed(0)
    model = TVTSv2Model(TVTSv2Config.from_preset("tiny")).eval()
    processor = TVTSv2Processor.from_defaults(image_size=64, num_frames=4)
    hub = save_hub_folder(model, processor, tmp_path / "hub")
    processor_config = json.loads((hub / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_tvtsv2.TVTSv2Processor"
    video_map = processor_config["video_processor"]["auto_map"]
    assert video_map["AutoVideoProcessor"] == "video_processing_tvtsv2.TVTSv2VideoProcessor"
    assert (hub / "processing_tvtsv2.py").exists() and (hub / "video_processing_tvtsv2.py").exists()
    # the export's registration is temporary: a later ordinary save is clean again
    processor.save_pretrained(tmp_path / "plain")
    assert not list((tmp_path / "plain").glob("*.py"))
    assert not any(_has_key(data, "auto_map") for data in _json_files(tmp_path / "plain").values())


# ---- item 3: text length comes from the tokenizer ----------------------------------------------------------------


def test_text_length_comes_from_the_tokenizer():
    video_processor = TVTSv2VideoProcessor(image_size=32, num_frames=2)
    processor = TVTSv2Processor(video_processor=video_processor, tokenizer=build_clip_tokenizer(model_max_length=16))
    assert processor(text="a photo of a cat")["input_ids"].shape == (1, 16)
    long = " ".join(["word"] * 40)
    ids = processor(text=long)["input_ids"][0].tolist()
    assert len(ids) == 16 and ids[-1] == 49407  # truncated at the tokenizer's length, end token kept last
    assert processor(text="a cat", max_length=20)["input_ids"].shape == (1, 20)  # the call still wins
    default = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    assert default(text="a cat")["input_ids"].shape == (1, 77)


def test_tokenizer_length_survives_save_and_reload(tmp_path):
    video_processor = TVTSv2VideoProcessor(image_size=32, num_frames=2)
    processor = TVTSv2Processor(video_processor=video_processor, tokenizer=build_clip_tokenizer(model_max_length=24))
    processor(text="a cat", max_length=40)  # a call with another length must not leak into the saved tokenizer
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert reloaded(text="a cat")["input_ids"].shape == (1, 24)


# ---- item 6: positional misuse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "video",
    [str(PARK), "clip.mp4", PARK, PARK.read_bytes(), np.zeros((2, 8, 8, 3), np.uint8), {"path": "clip.mp4"}],
    ids=["existing-path", "file-name", "pathlib", "bytes", "array", "datasets-cell"],
)
def test_video_given_as_text_is_rejected(video):
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    with pytest.raises(ValueError, match="first positional argument of TVTSv2Processor is text"):
        processor(video)


def test_captions_that_mention_files_are_still_text():
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=2)
    out = processor(["a man opens video.mp4 on his laptop", "cooking"])
    assert out["input_ids"].shape == (2, 77)


# ---- item 2: frame-sampling kwargs ------------------------------------------------------------------------------


def _ramp(num_frames: int, height: int = 40, width: int = 48) -> np.ndarray:
    """Frames whose grey level encodes their index (10 * i), so sampled frames can be told apart."""
    return np.stack([np.full((height, width, 3), 10 * i, np.uint8) for i in range(num_frames)])


def _levels(pixel_values: torch.Tensor, processor: TVTSv2VideoProcessor) -> list[int]:
    """Back from normalised pixels to each frame's grey level."""
    mean, std = processor.image_mean[0], processor.image_std[0]
    return [round((frame[0].mean().item() * std + mean) * 255) for frame in pixel_values]


def test_kwargs_class_name():
    from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessorKwargs, TVTSv2VideosKwargs

    assert TVTSv2VideoProcessor.valid_kwargs is TVTSv2VideoProcessorKwargs
    assert TVTSv2VideosKwargs is TVTSv2VideoProcessorKwargs  # the old name still works


@pytest.mark.parametrize("layout", ["dict", "nested-dict", "nested-metadata", "list-metadata"])
def test_nested_video_metadata_is_accepted(layout):
    from transformers.video_utils import VideoMetadata

    processor = TVTSv2VideoProcessor(image_size=32, num_frames=3)
    entry = {"fps": 10.0, "total_num_frames": 20}
    metadata = {
        "dict": [entry],
        "nested-dict": [[entry]],
        "nested-metadata": [[VideoMetadata(total_num_frames=20, fps=10.0)]],
        "list-metadata": [VideoMetadata(total_num_frames=20, fps=10.0)],
    }[layout]
    out = processor([_ramp(20)], video_metadata=metadata, start=1.0, end=2.0, return_tensors="pt")
    # frames 10..19 are the window; uniform sampling of 10 frames into 3 segments takes 11, 14, 17
    assert _levels(out["pixel_values_videos"][0], processor) == [110, 140, 170]


def test_fps_and_num_frames_are_alternatives():
    processor = TVTSv2VideoProcessor(image_size=32)  # default num_frames=12
    two_seconds = _ramp(20)  # 10 fps
    out = processor([two_seconds], video_metadata=[{"fps": 10.0}], fps=3, return_metadata=True)
    # every 1/3 s of the 2 s clip: 6 distinct frames, not 12 with 6 copies of the last one
    assert out["video_metadata"][0].frames_indices == [0, 3, 6, 10, 13, 16]
    assert _levels(out["pixel_values_videos"][0], processor) == [0, 30, 60, 100, 130, 160]
    # a saved fps is replaced by a call's num_frames, and fps at init replaces the default count
    by_rate = TVTSv2VideoProcessor(image_size=32, fps=5)
    assert by_rate.num_frames is None
    counted = by_rate([two_seconds], video_metadata=[{"fps": 10.0}], num_frames=4, return_metadata=True)
    assert counted["video_metadata"][0].frames_indices == [2, 7, 12, 17]
    # both in one call: num_frames steps at that rate (documented)
    both = processor([two_seconds], video_metadata=[{"fps": 10.0}], fps=5, num_frames=3, return_metadata=True)
    assert both["video_metadata"][0].frames_indices == [0, 2, 4]


def test_fps_on_a_real_file():
    processor = TVTSv2VideoProcessor(image_size=32)
    out = processor(str(PARK), fps=2, return_metadata=True, return_tensors="pt")
    meta = out["video_metadata"][0]
    expected = int(np.ceil(meta.duration * 2 - 1e-9))
    assert out["pixel_values_videos"].shape[1] == expected == len(set(meta.frames_indices))


class _FirstMiddleLast(TVTSv2VideoProcessor):
    def sample_frames(self, metadata, num_frames=None, fps=None, **kwargs):
        n = metadata.total_num_frames
        return np.array([0, n // 2, n - 1])


def test_preprocess_goes_through_sample_frames():
    processor = _FirstMiddleLast(image_size=32)
    out = processor([_ramp(9)], return_metadata=True, return_tensors="pt")
    assert _levels(out["pixel_values_videos"][0], processor) == [0, 40, 80]
    from_file = processor(str(PARK), return_metadata=True, return_tensors="pt")
    n = from_file["video_metadata"][0].total_num_frames
    assert from_file["video_metadata"][0].frames_indices == [0, n // 2, n - 1]
    windowed = processor([_ramp(20)], video_metadata=[{"fps": 10.0}], start=1.0, end=2.0, return_tensors="pt")
    assert _levels(windowed["pixel_values_videos"][0], processor) == [100, 150, 190]


def test_sample_frames_returning_bad_indices_is_a_clear_error():
    class Broken(TVTSv2VideoProcessor):
        def sample_frames(self, metadata, **kwargs):
            return np.array([0, metadata.total_num_frames])

    with pytest.raises(ValueError, match="sample_frames returned indices outside"):
        Broken(image_size=32)([_ramp(5)])


def test_device_is_honoured():
    processor = TVTSv2VideoProcessor(image_size=32, num_frames=2)
    out = processor([_ramp(4)], device="meta", return_tensors="pt")
    assert out["pixel_values_videos"].device.type == "meta"


def test_input_data_format_is_honoured():
    processor = TVTSv2VideoProcessor(image_size=32, num_frames=2)
    generator = torch.Generator().manual_seed(0)
    # [T, 40, 3, 3] with varied pixels: in channels-first form [T, 3, 40, 3] the channel axis cannot be detected
    channels_last = torch.randint(0, 256, (4, 40, 3, 3), generator=generator, dtype=torch.uint8)
    channels_first = channels_last.permute(0, 3, 1, 2).contiguous()  # [T, 3, 40, 3]
    expected = processor([channels_last], return_tensors="pt")["pixel_values_videos"]
    got = processor([channels_first], input_data_format="channels_first", return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(got, expected)
    same = processor([channels_last], input_data_format="channels_last", return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(same, expected)


def test_fixed_options_are_rejected_clearly():
    from transformers.image_utils import PILImageResampling

    processor = TVTSv2VideoProcessor(image_size=32, num_frames=2)
    video = [_ramp(4)]
    with pytest.raises(ValueError, match="resample=.* is not what transform='eval' uses"):
        processor(video, resample=PILImageResampling.BICUBIC)
    assert processor(video, resample=PILImageResampling.NEAREST, return_tensors="pt")["pixel_values_videos"].shape
    extract = processor(video, transform="extract", resample=PILImageResampling.BILINEAR, return_tensors="pt")
    assert extract["pixel_values_videos"].shape == (1, 2, 3, 32, 32)
    with pytest.raises(ValueError, match="data_format must be 'channels_first'"):
        processor(video, data_format="channels_last")
    with pytest.raises(ValueError, match="do_convert_rgb=False"):
        processor(video, do_convert_rgb=False)
    with pytest.raises(ValueError, match=r"size must be \{'shortest_edge': N\}"):
        processor(video, size={"height": 40, "width": 40})
    assert processor(video, size=48, return_tensors="pt")["pixel_values_videos"].shape == (1, 2, 3, 32, 32)


# ---- item 12: the original zero padding of short videos ---------------------------------------------------------


def _original_uniform_indices(num_frames: int, vlen: int) -> list[int]:
    """The original data loaders' frame choice, written from their description: min(T, n) segments, middles."""
    count = min(num_frames, vlen)
    edges = np.linspace(start=0, stop=vlen, num=count + 1).astype(int)
    return [(edges[i] + edges[i + 1] - 1) // 2 for i in range(count)]


def test_short_videos_pad_zero_frames_after_normalisation(tmp_path):
    padded = TVTSv2VideoProcessor(image_size=32, num_frames=6, short_videos="pad")
    out = padded([_ramp(4)], return_metadata=True, return_tensors="pt")
    pixels = out["pixel_values_videos"][0]
    assert pixels.shape == (6, 3, 32, 32)
    assert out["video_metadata"][0].frames_indices == _original_uniform_indices(6, 4) == [0, 1, 2, 3]
    assert _levels(pixels[:4], padded) == [0, 10, 20, 30]
    assert torch.count_nonzero(pixels[4:]) == 0  # zeros after normalisation: the mean colour
    # the default repeats frames: no blank frames
    repeated = TVTSv2VideoProcessor(image_size=32, num_frames=6)([_ramp(4)], return_tensors="pt")
    assert all(torch.count_nonzero(frame) > 0 for frame in repeated["pixel_values_videos"][0][1:])
    # long enough videos are not affected, and the option survives save/load
    long = _ramp(12)
    assert torch.equal(
        padded([long], return_tensors="pt")["pixel_values_videos"],
        TVTSv2VideoProcessor(image_size=32, num_frames=6)([long], return_tensors="pt")["pixel_values_videos"],
    )
    padded.save_pretrained(tmp_path)
    assert AutoVideoProcessor.from_pretrained(tmp_path).short_videos == "pad"
    with pytest.raises(ValueError, match="short_videos must be one of"):
        padded([long], short_videos="loop")


def test_short_videos_pad_through_the_processor_on_a_file():
    processor = TVTSv2Processor.from_defaults(image_size=32, num_frames=40, short_videos="pad")
    out = processor(videos=[str(PARK)], return_metadata=True)
    n = out["video_metadata"][0].total_num_frames
    assert n < 40
    assert out["video_metadata"][0].frames_indices == list(range(n))
    assert torch.count_nonzero(out["pixel_values_videos"][0, n:]) == 0
    assert all(torch.count_nonzero(frame) > 0 for frame in out["pixel_values_videos"][0, :n])
