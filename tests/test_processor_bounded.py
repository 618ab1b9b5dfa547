"""``TVTSv2VideoProcessor.preprocess`` reads through ``read_video_pixels`` (issue 12 follow-up).

The processor output must stay exactly what ``read_video`` + the documented transform give (same pixels, same
random draws) for every processor option, while memory no longer grows with the source resolution.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessor
from modeling_tvtsv2.video_reading_tvtsv2 import read_video
from modeling_tvtsv2.video_transforms_tvtsv2 import _transform


REPO = Path(__file__).resolve().parent.parent
CLIPS = sorted((REPO / "tests" / "data").glob("*.mp4"))  # obama_speech (320x240, 3.5 s), park (640x480, 0.6 s)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_read_limits import _write_two_frame_video, run_child  # noqa: E402



def _reference(video, transform, generator=None, short_side=268, crop=224, **read_kwargs):
    """The previous processor path: every sampled frame at source size, then the transform."""
    frames, _ = read_video(video, generator=generator, **read_kwargs)
    return _transform(frames, transform, short_side, (crop, crop), generator)


@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.stem)
@pytest.mark.parametrize("transform", ["eval", "train", "extract"])
def test_outputs_identical_to_read_video_then_transform(clip, transform):
    processor = TVTSv2VideoProcessor()
    for sampling in ("uniform", "random"):
        got = processor(str(clip), transform=transform, sampling=sampling,
                        generator=torch.Generator().manual_seed(3), return_tensors="pt")["pixel_values_videos"][0]
        want = _reference(str(clip), transform, torch.Generator().manual_seed(3), num_frames=12, sampling=sampling)
        assert got.shape == (12, 3, 224, 224)
        assert torch.equal(got, want), (clip.name, transform, sampling)


def test_windows_fps_pad_device_and_decoded_inputs():
    obama, park = str(REPO / "tests/data/obama_speech.mp4"), str(REPO / "tests/data/park.mp4")
    processor = TVTSv2VideoProcessor()
    # start/end window, random train crop
    got = processor(obama, start=0.5, end=2.0, transform="train", sampling="random",
                    generator=torch.Generator().manual_seed(1), return_tensors="pt")["pixel_values_videos"][0]
    want = _reference(obama, "train", torch.Generator().manual_seed(1), num_frames=12, sampling="random",
                      start=0.5, end=2.0)
    assert torch.equal(got, want)
    # fps instead of num_frames
    got = processor(obama, fps=2.0)["pixel_values_videos"][0]
    want = _reference(obama, "eval", num_frames=None, fps=2.0)
    assert got.shape[0] == want.shape[0] > 1 and torch.equal(got, want)
    # short_videos="pad": park has fewer frames than asked; every frame once, then zero frames
    frames, _ = read_video(park, num_frames=None)
    n = frames.shape[0]
    got = processor(park, num_frames=n + 5, short_videos="pad", return_tensors="pt")["pixel_values_videos"][0]
    assert got.shape[0] == n + 5
    assert torch.equal(got[:n], _transform(frames, "eval", 268, (224, 224)))
    assert not got[n:].any()
    # already-decoded input (channels-last uint8 array with its frame rate), device placement
    decoded = frames.numpy()
    got = processor(decoded, num_frames=4, transform="extract", video_metadata={"fps": 30.0}, device="cpu",
                    return_tensors="pt")["pixel_values_videos"][0]
    want = _reference(decoded, "extract", num_frames=4, source_fps=30.0)
    assert got.device.type == "cpu" and torch.equal(got, want)
    # a subclass's sample_frames is honoured (callable sampling inside the read)
    class EveryOther(TVTSv2VideoProcessor):
        def sample_frames(self, metadata, num_frames=None, fps=None, sampling=None, generator=None, **kwargs):
            return np.arange(0, int(metadata.total_num_frames), 2)[: num_frames or None]

    got = EveryOther()(obama, num_frames=5, return_tensors="pt")["pixel_values_videos"][0]
    all_frames, _ = read_video(obama, num_frames=None)
    assert torch.equal(got, _transform(all_frames[[0, 2, 4, 6, 8]], "eval", 268, (224, 224)))


def test_processor_peak_memory_follows_the_output_on_a_large_source(tmp_path):
    # 2400x2400 source, 48 frames: the old path (read_video at source size, then the transform) holds 48 x 17 MB
    # = 830 MB of uint8 frames; cropping each decoded frame as it comes out keeps the peak near the output.
    path = tmp_path / "large.mp4"
    _write_two_frame_video(path, 2400, 2400)
    out = run_child(
        f"""
        from modeling_tvtsv2.video_processing_tvtsv2 import TVTSv2VideoProcessor
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        processor = TVTSv2VideoProcessor()
        path = {str(path)!r}
        for transform in ("train", "extract"):
            processor(path, num_frames=1, transform=transform)  # warm-up: codecs, one frame
        before = peak()
        for transform in ("eval", "train", "extract"):
            pixels = processor(path, num_frames=48, transform=transform, return_tensors="pt")["pixel_values_videos"]
            assert pixels.shape == (1, 48, 3, 224, 224), pixels.shape
        print("PEAK_GROWTH_MB", (peak() - before) / 2**20)
        """,
        extra_address_space_gib=3.0,
    )
    growth = float(out.split("PEAK_GROWTH_MB")[1])
    assert growth < 250, f"peak memory grew by {growth:.0f} MB for 48-frame processor calls on a 2400x2400 video"
