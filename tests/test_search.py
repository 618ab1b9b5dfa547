"""`tvtsv2 search`: exact chunked top-k, the CLI and Python API over an index made by `tvtsv2 extract --windows`,
and text-to-moment search finding the right scene of a long demo clip with a model trained on those captions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.data.schema import load_corpus
from modeling_tvtsv2.data.demo_corpus import build_demo_corpus
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor
from modeling_tvtsv2.evaluation.search import SearchHit, VideoIndex, exact_top_k, search

DATA = Path(__file__).parent / "data"


def test_exact_top_k_in_chunks_equals_a_full_sort():
    generator = torch.Generator().manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(1000, 16, generator=generator), dim=-1).half().numpy()
    keys[500] = keys[10]  # a tie: the lower row comes first
    queries = torch.randn(3, 16, generator=generator)
    queries[2] = torch.from_numpy(keys[10]).float()
    scores, indices = exact_top_k(queries, keys, k=7, chunk_size=97)
    full = queries @ torch.from_numpy(keys).float().T
    expected = torch.sort(full, dim=1, descending=True, stable=True)
    torch.testing.assert_close(scores, expected.values[:, :7])
    assert torch.equal(indices, expected.indices[:, :7])
    assert indices[2, :2].tolist() == [10, 500]
    assert exact_top_k(queries, keys[:3], k=7)[1].shape == (3, 3)  # k larger than the index


@pytest.fixture(scope="module")
def random_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("search")
    torch.manual_seed(0)
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(root / "model")
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(root / "model")
    argv = ["extract", "--model", str(root / "model"), "--input", str(DATA), "--output", str(root / "index"),
            "--windows", "2,1", "--embedding-dtype", "float16", "--num-workers", "0", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0
    return root / "index"


def test_cli_and_python_api_agree(random_index, capsys):
    hits = search(random_index, "a man gives a speech", top_k=3)
    assert len(hits) == 3 and all(isinstance(hit, SearchHit) for hit in hits)
    assert hits[0].score >= hits[1].score >= hits[2].score
    index = VideoIndex(random_index)
    for hit in hits:  # a hit's score is the cosine with its stored row
        assert hit.video_id == index.video_ids[hit.row]
        assert (hit.start, hit.end) == (index.starts[hit.row], index.ends[hit.row])
    assert cli_main(["search", "--index", str(random_index), "a man gives a speech", "--top_k", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("query: 'a man gives a speech'")
    for line, hit in zip(printed[2:], hits):
        assert line.split() == [str(printed[2:].index(line) + 1), f"{hit.score:.3f}",
                                f"{hit.start:.2f}-{hit.end:.2f}", "s", hit.video_id]  # fmt: skip
    assert cli_main(["search", "--index", str(random_index), "a park", "a man", "--top-k", "2", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["query"] for line in lines] == ["a park", "a park", "a man", "a man"]


def test_search_user_errors(tmp_path, capsys):
    assert cli_main(["search", "--index", str(tmp_path), "a query"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --index") and "tvtsv2 extract" in error and "\n" not in error


# --------------------------------------------------------------------------------------------------------------
# Text-to-moment search with a model that learned the demo captions
# --------------------------------------------------------------------------------------------------------------

TRAIN_STEPS = 150


@pytest.fixture(scope="module")
def trained_on_demo(tmp_path_factory):
    """A tiny model trained (contrastive loss, AdamW, seeded) on the scene windows of 16 demo clips with their
    transcript cues as captions; the first two clips (15 s, four scenes each) are indexed as long videos."""
    root = tmp_path_factory.mktemp("moments")
    corpus = build_demo_corpus(root / "demo", num_videos=16, num_caption_videos=0, seed=7, validation_size=0)
    rows = list(load_corpus(corpus.transcript))
    processor = TVTSv2Processor.from_defaults(image_size=64, num_frames=4)
    pixels, texts = [], []
    for row in rows:
        for segment in row["segments"]:
            inputs = processor(videos=[row["video"]["bytes"]], start=segment["start"], end=segment["end"],
                               return_tensors="pt")  # fmt: skip
            pixels.append(inputs["pixel_values_videos"][0])
            texts.append(segment["text"])
    pixels = torch.stack(pixels)
    input_ids = processor(text=texts, return_tensors="pt")["input_ids"]
    torch.manual_seed(0)
    model = TVTSv2Model(TVTSv2Config.from_preset("tiny"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(TRAIN_STEPS):
        batch = torch.randperm(len(pixels), generator=generator)[:32]
        loss = model(input_ids=input_ids[batch], pixel_values_videos=pixels[batch], return_loss=True).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    videos = root / "long-videos"
    videos.mkdir()
    long_rows = rows[:2]
    for row in long_rows:
        (videos / f"{row['video_id']}.mp4").write_bytes(row["video"]["bytes"])
    argv = ["extract", "--model", str(root / "model"), "--input", str(videos), "--output", str(root / "index"),
            "--windows", "3,1", "--num-workers", "0", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0
    return root / "index", long_rows


@pytest.mark.slow
def test_search_finds_the_scene_a_caption_describes(trained_on_demo):
    index, long_rows = trained_on_demo
    # scene i of a demo clip is on screen between the middles of the gaps around cue window i (demo_corpus.py)
    borders = [0.0, 3.25, 7.0, 10.75, 15.0]
    correct, total = 0, 0
    for row in long_rows:
        for scene, segment in enumerate(row["segments"]):
            best = search(index, segment["text"], top_k=1)[0]
            overlap = min(best.end, borders[scene + 1]) - max(best.start, borders[scene])
            total += 1
            correct += best.video_id == f"{row['video_id']}.mp4" and overlap >= 2.0  # 2 of the window's 3 s
    assert correct >= total - 1, (correct, total)
