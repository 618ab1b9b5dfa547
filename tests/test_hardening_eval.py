"""`run_eval.py` with an unreadable video (issue 10 item 11): the error names the row; `--on_error skip` leaves the row
out and reports it. Real PyAV videos, the tiny TVTSv2 model, 🤗 Datasets on disk."""

import json

import av
import datasets
import numpy as np
import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.evaluation.zero_shot import VideoRowError, main, run_evaluation
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


def make_video(path, value, num_frames=8, size=48):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.height = stream.width = size
        stream.pix_fmt = "yuv420p"
        for i in range(num_frames):
            frame = np.full((size, size, 3), (value + 9 * i) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    model = TVTSv2Model(TVTSv2Config.from_preset("tiny")).eval()
    processor = TVTSv2Processor.from_defaults(image_size=64, num_frames=4)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    paths = [make_video(root / f"v{i}.mp4", 40 * i) for i in range(4)]
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 400)  # ~5000 bytes
    rows = {
        "video": [paths[0], paths[1], str(broken), paths[2], paths[3]],
        "video_id": ["a", "b", "broken", "c", "d"],
        "caption": ["one", "two", "three", "four", "five"],
        "label": ["x", "y", "x", "y", "x"],
        "options": [["p", "q"], ["q", "p"], ["p", "q"], ["r", "p", "q"], ["p", "q"]],
        "answer": [0, 1, 0, 2, 1],
    }
    full = datasets.Dataset.from_dict(rows)
    full.save_to_disk(root / "full")
    full.select([0, 1, 3, 4]).save_to_disk(root / "readable")
    return root, model, processor


def test_unreadable_video_names_the_row(setup, capsys):
    root, model, processor = setup
    with pytest.raises(VideoRowError, match=r"row 2 \(video_id 'broken'\)"):
        run_evaluation("retrieval", model, processor, str(root / "full"), show_progress=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--task", "retrieval", "--model", str(root / "model"), "--dataset", str(root / "full"),
              "--output", str(root / "r.json"), "--no-progress"])  # fmt: skip
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    error = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in stderr and len(error) == 1
    assert "row 2 (video_id 'broken')" in error[0] and "--on-error skip" in error[0]
    assert not (root / "r.json").exists()


@pytest.mark.parametrize("task", ["retrieval", "classification", "multiple-choice"])
def test_skip_leaves_the_row_out_and_reports_it(setup, task):
    root, model, processor = setup
    out = root / f"{task}.json"
    main(["--task", task, "--model", str(root / "model"), "--dataset", str(root / "full"), "--output", str(out),
          "--no-progress", "--on_error", "skip", "--batch-size", "2"])  # fmt: skip
    written = json.loads(out.read_text())
    assert written["num_skipped_videos"] == 1 and written["num_videos"] == 4
    [skipped] = written["skipped_videos"]
    assert skipped["index"] == 2 and skipped["video_id"] == "broken" and skipped["reason"]
    # the metrics are those of the dataset without the unreadable row
    reference = run_evaluation(task, model, processor, str(root / "readable"), show_progress=False)
    for key, value in reference["metrics"].items():  # one level of nesting for retrieval (t2v / v2t)
        assert written["metrics"][key] == pytest.approx(value)
    if task == "retrieval":
        assert written["num_texts"] == 4
