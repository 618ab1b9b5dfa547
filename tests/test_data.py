"""Sample construction, the pre-training collator, skipped samples, corpus mixing (map-style and streaming).

Expected texts, windows and layouts are worked out by hand in the comments, not produced by the code under test.
"""

from __future__ import annotations

import itertools
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from datasets import Dataset

from modeling_tvtsv2.data.corpus_builders import build_transcript_corpus
from modeling_tvtsv2.data.collator import TVTSv2PretrainingCollator
from modeling_tvtsv2.data.corpus_mixing import MixedCorpusBatchDataset, MixedCorpusBatchStream
from modeling_tvtsv2.data.schema import CAPTION_FEATURES, TRANSCRIPT_SEGMENTS_FEATURES, TRANSCRIPT_WORDS_FEATURES, corpus_kind, load_corpus
from modeling_tvtsv2.data.skipping import SampleSkipped, is_empty_batch
from modeling_tvtsv2.data.transcript_windows import row_word_timings, sample_transcript_span

DATA = Path(__file__).parent / "data"
IMAGENET_MEAN, IMAGENET_STD = 0.485, 0.229  # red channel
SIZE, PATCH = 32, 8  # 16 patches per frame


def make_video(path: Path, seconds: float = 10.0, fps: int = 5, size: int = 32) -> Path:
    """Grey ramp: frame i of n has grey level 255 * i / (n - 1)."""
    frames = int(seconds * fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps, 1))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}
        for i in range(frames):
            array = np.full((size, size, 3), round(255 * i / (frames - 1)), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from modeling_tvtsv2.tokenization_tvtsv2 import build_clip_tokenizer

    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def ramp_bytes(tmp_path_factory) -> bytes:
    return make_video(tmp_path_factory.mktemp("ramp") / "ramp.mp4").read_bytes()


# 10 s video; the sampler's shortest span is 15 s, so it uses [0, 10 - 1] = [0, 9]: four windows of
# (9 - 3 gaps) / 4 = 1.5 s: [0, 1.5], [2.5, 4], [5, 6.5], [7.5, 9].
SEGMENTS = [
    {"start": 0.2, "end": 1.2, "text": "alpha one"},
    {"start": 1.6, "end": 2.4, "text": "in the gap"},
    {"start": 2.6, "end": 3.8, "text": "bravo two"},
    {"start": 5.2, "end": 6.2, "text": "charlie three"},
    {"start": 7.6, "end": 8.8, "text": "delta four"},
    {"start": 9.3, "end": 9.9, "text": "after the span"},
]
EXPECTED_TEXTS = ["alpha one", "bravo two", "charlie three", "delta four"]


def transcript_row(video: bytes, video_id: str = "ramp", segments=SEGMENTS, duration: float = 10.0) -> dict:
    return {"video": {"bytes": video, "path": None}, "video_id": video_id, "duration": duration, "segments": segments}


# ----------------------------------------------------------------------------------------------------------------
# Span sampling
# ----------------------------------------------------------------------------------------------------------------


def test_short_video_uses_whole_video_windows():
    times = np.array([0.5, 1.5, 2.5, 4.2, 4.8, 6.1, 7.5])
    words = ["a", "gap", "b", "c", "d", "e", "late"]
    # duration 8 -> [0, 7]; windows of (7 - 3) / 4 = 1 s: [0, 1], [2, 3], [4, 5], [6, 7]
    span = sample_transcript_span(times, words, 8.0, rng=np.random.default_rng(0))
    assert (span.start, span.end) == (0.0, 7.0)
    assert span.windows == ((0.0, 1.0), (2.0, 3.0), (4.0, 5.0), (6.0, 7.0))
    assert span.texts == ("a", "b", "c d", "e")
    assert span.word_counts == (1, 1, 2, 1)


def test_words_on_window_borders_are_outside():
    times = np.array([0.0, 1.0, 2.0, 2.5, 6.0, 6.5])
    words = ["s", "e", "s2", "in", "s4", "in4"]
    span = sample_transcript_span(times, words, 8.0, rng=np.random.default_rng(0), min_words_per_window=0)
    assert span.texts == ("", "in", "", "in4")
    with pytest.raises(SampleSkipped) as info:
        sample_transcript_span(times, words, 8.0, rng=np.random.default_rng(0))
    assert info.value.reason == "no_words"


def test_long_video_spans_follow_the_original_rule():
    rng = np.random.default_rng(123)
    times = np.arange(0.05, 100.0, 0.1)
    words = [f"w{i}" for i in range(len(times))]
    lengths = set()
    for _ in range(300):
        span = sample_transcript_span(times, words, 100.0, rng=rng)
        assert 0.0 <= span.start and span.end <= 99.0
        (s0, e0), (s1, e1), (s2, e2), (s3, e3) = span.windows
        assert s1 - e0 == pytest.approx(1.0) and s2 - e1 == pytest.approx(1.0) and s3 - e2 == pytest.approx(1.0)
        length = e0 - s0
        assert e1 - s1 == pytest.approx(length) and e3 == pytest.approx(span.end)
        # span = L * 4 + 3 with L in {3, 4, 5}; the end may be clipped to duration - 1 by less than 1 s
        assert 2.75 <= length <= 5.0 + 1e-9
        lengths.add(round(length))
        assert all(count >= 1 for count in span.word_counts)
    assert lengths == {3, 4, 5}


def test_span_arguments():
    times = np.arange(0.25, 40, 0.5)
    words = ["x"] * len(times)
    span = sample_transcript_span(
        times, words, 40.0, rng=np.random.default_rng(1), num_transcripts=2, window_min=2, window_max=2, gap=0.5
    )
    assert len(span.windows) == 2
    assert span.windows[0][1] - span.windows[0][0] == pytest.approx(2.0)
    assert span.windows[1][0] - span.windows[0][1] == pytest.approx(0.5)


def test_row_word_timings():
    segments = [{"start": 2.0, "end": 4.0, "text": "c d"}, {"start": 0, "end": 1, "text": "a"}]
    times, words = row_word_timings({"segments": segments})
    assert words == ["a", "c", "d"] and times.tolist() == [0.5, 2.5, 3.5]
    words_column = [{"word": "b", "time": 2.0}, {"word": " ", "time": 3}, {"word": "a", "time": 1.0}]
    times, words = row_word_timings({"words": words_column})
    assert words == ["a", "b"] and times.tolist() == [1.0, 2.0]


# ----------------------------------------------------------------------------------------------------------------
# Collator
# ----------------------------------------------------------------------------------------------------------------


def recover_grey(pixels: torch.Tensor) -> torch.Tensor:
    """Mean grey level (0..255) per frame of [T, 3, S, S] ImageNet-normalised pixels (red channel)."""
    return (pixels[:, 0] * IMAGENET_STD + IMAGENET_MEAN).mean(dim=(1, 2)) * 255


def test_collator_transcript_batch(tokenizer, ramp_bytes):
    collator = TVTSv2PretrainingCollator(
        tokenizer, num_frames=12, image_size=SIZE, patch_size=PATCH, mask_ratio=0.5, training=False, seed=3
    )
    rows = [transcript_row(ramp_bytes, "a"), transcript_row(ramp_bytes, "b")]
    batch = collator(rows)
    assert set(batch) == {
        "input_ids", "attention_mask", "pixel_values_videos", "keep_indices", "sort_labels", "return_loss",
        "num_skipped",
    }
    assert batch["input_ids"].shape == (2, 4, 77) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].shape == (2, 4, 77)
    assert batch["pixel_values_videos"].shape == (2, 12, 3, SIZE, SIZE)
    assert batch["pixel_values_videos"].dtype == torch.float32
    assert batch["keep_indices"].shape == (2, 8)  # int(16 * (1 - 0.5))
    assert batch["sort_labels"].tolist() == [[0, 1, 2, 3]] * 2
    assert batch["return_loss"] is True
    assert batch["num_skipped"].tolist() == [0]
    for sample in range(2):
        keep = batch["keep_indices"][sample]
        assert len(set(keep.tolist())) == 8 and int(keep.min()) >= 0 and int(keep.max()) < 16

    expected = tokenizer(EXPECTED_TEXTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"][0], expected["input_ids"])
    assert torch.equal(batch["attention_mask"][1], expected["attention_mask"])

    # Frames cover the span [0, 9] s of the 10 s ramp, in order: grey rises from near 0 but never reaches the
    # last second (frames 45..49, grey >= 234).
    grey = recover_grey(batch["pixel_values_videos"][0])
    assert bool((grey[1:] >= grey[:-1] - 2).all())
    assert float(grey[0]) < 20 and 180 < float(grey[-1]) < 234


def test_collator_caption_batch(tokenizer, ramp_bytes):
    collator = TVTSv2PretrainingCollator(tokenizer, num_frames=6, image_size=SIZE, patch_size=PATCH, training=True)
    rows = [
        {"video": {"bytes": ramp_bytes, "path": None}, "video_id": "x", "caption": " a grey   ramp ", "duration": 10.0}
    ]
    threads = torch.get_num_threads()
    batch = collator(rows)
    assert torch.get_num_threads() == threads  # the collator runs single-threaded and restores the setting
    assert "sort_labels" not in batch and "keep_indices" not in batch  # no sort loss, no masking at ratio 0
    assert batch["input_ids"].shape == (1, 1, 77)
    assert batch["pixel_values_videos"].shape == (1, 6, 3, SIZE, SIZE)
    expected = tokenizer(["a grey ramp"], padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
    assert torch.equal(batch["input_ids"][0], expected)
    grey = recover_grey(batch["pixel_values_videos"][0])
    assert float(grey[-1]) > 200  # caption frames span the whole video


def test_skipped_samples_are_counted_and_batches_shrink(tokenizer, ramp_bytes):
    obama = (DATA / "obama_speech.mp4").read_bytes()
    rows = [
        transcript_row(ramp_bytes, "good"),
        transcript_row(obama[:30_000], "truncated"),
        transcript_row(b"", "zero-byte"),
        transcript_row(b"this is text, not a video", "text-as-mp4"),
        transcript_row(ramp_bytes, "words-outside-windows", segments=[{"start": 9.2, "end": 9.8, "text": "late"}]),
    ]
    collator = TVTSv2PretrainingCollator(tokenizer, num_frames=4, image_size=SIZE, patch_size=PATCH, mask_ratio=0.25)
    batch = collator(rows)
    assert batch["pixel_values_videos"].shape[0] == 1
    assert batch["input_ids"].shape == (1, 4, 77)
    assert batch["keep_indices"].shape == (1, 12)
    assert batch["num_skipped"].tolist() == [4]
    assert collator.skip_counter.as_dict() == {"decode_error": 3, "no_words": 1}

    # every sample fails: the empty-batch marker, with consistent shapes
    empty = collator(rows[1:])
    assert is_empty_batch(empty)
    assert empty["num_skipped"].tolist() == [4]
    assert empty["input_ids"].shape == (0, 4, 77)
    assert empty["pixel_values_videos"].shape == (0, 4, 3, SIZE, SIZE)
    assert empty["keep_indices"].shape == (0, 12)
    assert empty["sort_labels"].shape == (0, 4)
    assert collator.skip_counter.total == 8


def test_reserves_replace_failed_samples(tokenizer, ramp_bytes):
    rows = [transcript_row(ramp_bytes, f"ok{i}") for i in range(5)] + [transcript_row(b"broken", "bad")]
    corpus = Dataset.from_list(rows, features=TRANSCRIPT_SEGMENTS_FEATURES)
    mixed = MixedCorpusBatchDataset({"yt": corpus}, batch_size=3, world_size=1, num_reserve=2, seed=0)
    collator = TVTSv2PretrainingCollator(tokenizer, num_frames=2, image_size=SIZE, patch_size=PATCH)
    groups = [mixed[i] for i in range(len(mixed))]
    with_bad = [g for g in groups if "bad" in [r["video_id"] for r in g["rows"]]]
    assert len(with_bad) == 1  # each row once per epoch, 6 rows = 2 groups
    group = with_bad[0]
    batch = collator([group])
    reserve_ids = [r["video_id"] for r in group["reserve_rows"]]
    # reserves are tried in order until one decodes
    leading_bad = next((i for i, v in enumerate(reserve_ids) if v != "bad"), len(reserve_ids))
    assert batch["num_skipped"].tolist() == [1 + leading_bad]
    assert batch["pixel_values_videos"].shape[0] == (3 if leading_bad < len(reserve_ids) else 2)


def test_randomness_is_per_sample_and_reproducible(tokenizer, tmp_path):
    long_ramp = make_video(tmp_path / "long.mp4", seconds=40.0, fps=2).read_bytes()
    corpus = Dataset.from_list(
        [transcript_row(long_ramp, f"v{i}", duration=40.0) for i in range(4)], features=TRANSCRIPT_SEGMENTS_FEATURES
    )
    # words every 0.5 s over 40 s so that every span has words
    dense = [{"start": t, "end": t + 0.5, "text": f"w{int(t * 2)}"} for t in np.arange(0, 39, 0.5)]
    corpus = corpus.map(lambda row: {"segments": dense})
    mixed = MixedCorpusBatchDataset([corpus], batch_size=2, world_size=1, seed=5)

    def collate(seed, item, epoch=0):
        mixed.set_epoch(epoch)
        collator = TVTSv2PretrainingCollator(tokenizer, num_frames=3, image_size=SIZE, patch_size=PATCH,
                                             mask_ratio=0.5, seed=seed)
        return collator([mixed[item]])

    first, again = collate(0, 1), collate(0, 1)  # a fresh collator (e.g. after a resume) gives the same batch
    for key in ("input_ids", "pixel_values_videos", "keep_indices"):
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first["keep_indices"][0], first["keep_indices"][1]) or not torch.equal(
        first["input_ids"][0], first["input_ids"][1]
    )
    other_seed = collate(1, 1)
    assert not torch.equal(first["input_ids"], other_seed["input_ids"])
    next_epoch = collate(0, 1, epoch=1)
    assert not torch.equal(first["input_ids"], next_epoch["input_ids"])

    # evaluation on plain rows: the draw depends on the video id only, not on the call
    collator = TVTSv2PretrainingCollator(tokenizer, num_frames=3, image_size=SIZE, patch_size=PATCH, training=False)
    a = collator([corpus[0], corpus[1]])
    b = collator([corpus[1]])
    assert torch.equal(a["input_ids"][1], b["input_ids"][0])
    assert torch.equal(a["pixel_values_videos"][1], b["pixel_values_videos"][0])


def test_real_media_corpus_to_batch(tmp_path, tokenizer):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(DATA / "obama_speech.mp4", videos)
    shutil.copy(DATA / "obama_speech.pocketsphinx.srt", videos)
    (videos / "broken.mp4").write_bytes(b"\x00" * 64)
    (videos / "broken.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhi\n", encoding="utf-8")
    report = build_transcript_corpus(videos, tmp_path / "corpus", embed_videos=True)
    assert report.skipped_counts == {"unreadable_video": 1}
    corpus = load_corpus(tmp_path / "corpus")
    assert corpus_kind(corpus) == "transcript"
    collator = TVTSv2PretrainingCollator(tokenizer, image_size=SIZE, patch_size=PATCH, mask_ratio=0.5, training=True)
    batch = collator([corpus[0]])
    assert batch["input_ids"].shape == (1, 4, 77)
    assert batch["pixel_values_videos"].shape == (1, 12, 3, SIZE, SIZE)
    assert batch["keep_indices"].shape == (1, 8)
    assert batch["num_skipped"].tolist() == [0]
    # every transcript holds words of the real transcript, in chronological order
    vocabulary = (DATA / "obama_speech.pocketsphinx.srt").read_text().split()
    decoded = [tokenizer.decode(ids, skip_special_tokens=True).split() for ids in batch["input_ids"][0]]
    assert all(words and set(words) <= set(vocabulary) for words in decoded)
    positions = [vocabulary.index(words[0]) for words in decoded]
    assert positions == sorted(positions)


# ----------------------------------------------------------------------------------------------------------------
# Mixing and distribution
# ----------------------------------------------------------------------------------------------------------------


def tiny_corpora(n_yt: int = 24, n_wv: int = 10):
    """Rows without real videos: enough to check schedules and sharding (nothing is decoded)."""
    yt = Dataset.from_dict(
        {"video": [f"/yt/{i}.mp4" for i in range(n_yt)], "video_id": [f"yt{i}" for i in range(n_yt)],
         "segments": [[] for _ in range(n_yt)]}
    )
    wv = Dataset.from_dict(
        {"video": [f"/wv/{i}.mp4" for i in range(n_wv)], "video_id": [f"wv{i}" for i in range(n_wv)],
         "caption": ["c"] * n_wv}
    )
    return yt, wv


def test_schedule_alternates_and_covers_the_primary_corpus():
    yt, wv = tiny_corpora()
    # 24 yt rows, batch 2, world 2 -> 6 yt steps; 1:1 -> 12 steps of 2 groups
    mixed = MixedCorpusBatchDataset({"yt": yt, "webvid": wv}, batch_size=2, world_size=2, seed=0)
    assert mixed.num_steps == 12 and len(mixed) == 24
    corpora = [mixed[i]["corpus"] for i in range(len(mixed))]
    assert corpora == ["yt", "yt", "webvid", "webvid"] * 6
    yt_rows = [r["video_id"] for i in range(len(mixed)) if mixed[i]["corpus"] == "yt" for r in mixed[i]["rows"]]
    assert sorted(yt_rows) == sorted(f"yt{i}" for i in range(24))  # each primary row exactly once per epoch
    wv_rows = [r["video_id"] for i in range(len(mixed)) if mixed[i]["corpus"] == "webvid" for r in mixed[i]["rows"]]
    assert len(wv_rows) == 24 and set(wv_rows) == {f"wv{i}" for i in range(10)}  # cycled: 10 + 10 + 4
    assert all(mixed[i]["kind"] == ("transcript" if mixed[i]["corpus"] == "yt" else "caption") for i in range(24))

    first = [r["video_id"] for r in mixed[0]["rows"]]
    mixed.set_epoch(1)
    assert [r["video_id"] for r in mixed[0]["rows"]] != first  # reshuffled
    mixed.set_epoch(0)
    assert [r["video_id"] for r in mixed[0]["rows"]] == first

    two_to_one = MixedCorpusBatchDataset([yt, wv], batch_size=2, ratio=[2, 1], world_size=1)
    assert [two_to_one.step_corpus(s) for s in range(6)] == ["corpus0", "corpus1", "corpus0"] * 2
    accumulated = MixedCorpusBatchDataset({"yt": yt, "webvid": wv}, batch_size=2, world_size=2,
                                          gradient_accumulation_steps=2)
    assert [accumulated[i]["corpus"] for i in range(8)] == ["yt"] * 4 + ["webvid"] * 4


def _rank_batches(dataset, world: int, rank: int, skip: int = 0):
    from accelerate.data_loader import prepare_data_loader, skip_first_batches

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=1, sampler=torch.utils.data.SequentialSampler(dataset), collate_fn=lambda groups: groups[0]
    )
    prepared = prepare_data_loader(loader, num_processes=world, process_index=rank, put_on_device=False,
                                   dispatch_batches=False)
    if skip:
        prepared = skip_first_batches(prepared, skip)
    return list(prepared)


def test_accelerate_sharding_gives_ranks_the_same_corpus_per_step():
    yt, wv = tiny_corpora()
    mixed = MixedCorpusBatchDataset({"yt": yt, "webvid": wv}, batch_size=2, world_size=2, seed=0)
    rank0, rank1 = _rank_batches(mixed, 2, 0), _rank_batches(mixed, 2, 1)
    assert len(rank0) == len(rank1) == 12
    for g0, g1 in zip(rank0, rank1):
        assert g0["corpus"] == g1["corpus"] and g0["step"] == g1["step"]
        if g0["corpus"] == "yt":
            assert not {r["video_id"] for r in g0["rows"]} & {r["video_id"] for r in g1["rows"]}
    assert [g["corpus"] for g in rank0] == ["yt", "webvid"] * 6
    # resuming after 5 steps skips through the sampler and continues with the same groups
    resumed = _rank_batches(mixed, 2, 1, skip=5)
    assert [g["rows"] for g in resumed] == [g["rows"] for g in rank1[5:]]


def test_trainer_dataloader_keeps_the_schedule(tmp_path):
    from transformers import Trainer, TrainingArguments

    yt, wv = tiny_corpora()
    mixed = MixedCorpusBatchDataset({"yt": yt, "webvid": wv}, batch_size=2, world_size=1, seed=0)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=1, train_sampling_strategy="sequential",
        remove_unused_columns=False, report_to=[], use_cpu=True,
    )
    trainer = Trainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=mixed,
                      data_collator=lambda groups: {"step": torch.tensor([groups[0]["step"]])})
    steps = [int(batch["step"]) for batch in trainer.get_train_dataloader()]
    assert steps == list(range(mixed.num_steps))


def test_streaming_rows_and_stream_mixing(tokenizer, ramp_bytes):
    corpus = Dataset.from_list([transcript_row(ramp_bytes, f"v{i}") for i in range(4)],
                               features=TRANSCRIPT_SEGMENTS_FEATURES)
    stream = corpus.to_iterable_dataset(num_shards=2)
    collator = TVTSv2PretrainingCollator(tokenizer, num_frames=3, image_size=SIZE, patch_size=PATCH, training=False)
    loader = torch.utils.data.DataLoader(stream, batch_size=2, collate_fn=collator, num_workers=2)
    batches = list(loader)
    assert [b["input_ids"].shape for b in batches] == [(2, 4, 77)] * 2
    assert all(b["num_skipped"].tolist() == [0] for b in batches)

    yt, wv = tiny_corpora(n_yt=16, n_wv=6)
    streams = {"yt": yt.to_iterable_dataset(num_shards=2), "webvid": wv.to_iterable_dataset()}
    mixed = MixedCorpusBatchStream(streams, batch_size=2, rank=0, world_size=1, num_reserve=0)
    groups = list(itertools.islice(mixed, 16))  # the stream is endless: 16 groups = one pass over yt
    assert [g["corpus"] for g in groups] == ["yt", "webvid"] * 8
    assert sorted(r["video_id"] for g in groups if g["corpus"] == "yt" for r in g["rows"]) == sorted(
        f"yt{i}" for i in range(16)
    )


def _streamed_groups(corpora, rank: int, world: int, workers: int, count: int, state=None, **kwargs) -> list:
    stream = MixedCorpusBatchStream(corpora, batch_size=2, rank=rank, world_size=world, num_reserve=0, **kwargs)
    if state is not None:
        stream.load_state_dict(state)
    loader = torch.utils.data.DataLoader(stream, batch_size=1, num_workers=workers, collate_fn=lambda g: g[0])
    return list(itertools.islice(loader, count))


def test_stream_layout_with_workers_and_ranks():
    """2 ranks x 2 DataLoader workers (4 parts, split_dataset_by_node): at every micro-step both ranks get the same
    corpus and different rows, the corpora alternate, and in one pass every primary row is read exactly once across
    ranks and workers (8 shards: whole shards per part; 6 webvid rows in 1 shard: every 4th row per part)."""
    yt, wv = tiny_corpora(n_yt=32, n_wv=6)
    corpora = {"yt": yt.to_iterable_dataset(num_shards=8), "webvid": wv.to_iterable_dataset(num_shards=1)}
    # 32 yt rows / (2 ranks x 2 rows) = 8 yt micro-steps per pass, alternating with webvid: 16 groups per rank
    per_rank = [_streamed_groups(corpora, rank, 2, 2, 16) for rank in range(2)]
    rank0, rank1 = per_rank
    assert [(g["step"], g["corpus"]) for g in rank0] == [(n, ("yt", "webvid")[n % 2]) for n in range(16)]
    assert [(g["step"], g["corpus"]) for g in rank1] == [(g["step"], g["corpus"]) for g in rank0]
    yt_rows = [r["video_id"] for groups in per_rank for g in groups if g["corpus"] == "yt" for r in g["rows"]]
    assert sorted(yt_rows) == sorted(f"yt{i}" for i in range(32))  # each once: no row read twice, none lost
    for g0, g1 in zip(rank0, rank1):
        assert not {r["video_id"] for r in g0["rows"]} & {r["video_id"] for r in g1["rows"]}


def test_a_resumed_stream_continues_with_the_next_groups():
    """The position the trainer saves (the last group consumed from each worker) resumes each worker where it
    stopped: the groups after it are those of the uninterrupted stream, also with another role per worker."""
    from modeling_tvtsv2.data.corpus_mixing import STREAM_STATE_KEY

    yt, wv = tiny_corpora(n_yt=24, n_wv=6)
    corpora = {"yt": yt.to_iterable_dataset(num_shards=4), "webvid": wv.to_iterable_dataset(num_shards=2)}
    ids = lambda groups: [(g["corpus"], [r["video_id"] for r in g["rows"]]) for g in groups]  # noqa: E731
    whole = _streamed_groups(corpora, 1, 2, 2, 20)  # rank 1 of 2, 2 workers: past one pass of yt (6 yt groups)
    consumed = 7  # odd: the resumed loader's worker 0 takes over the role of the old worker 1
    last = {}
    for group in whole[:consumed]:
        last[group[STREAM_STATE_KEY]["role"]] = group[STREAM_STATE_KEY]
    stream = MixedCorpusBatchStream(corpora, batch_size=2, rank=1, world_size=2, num_reserve=0)
    state = json.loads(json.dumps(stream.checkpoint_state(last, num_workers=2)))  # as written to the checkpoint
    resumed = _streamed_groups(corpora, 1, 2, 2, 20 - consumed, state=state)
    assert ids(resumed) == ids(whole[consumed:])
    assert [g["step"] for g in resumed] == [g["step"] for g in whole[consumed:]]
    assert [g["keys"] for g in resumed] == [g["keys"] for g in whole[consumed:]]  # the collator's random draws


def test_features_constants():
    assert corpus_kind(TRANSCRIPT_SEGMENTS_FEATURES) == "transcript"
    assert corpus_kind(TRANSCRIPT_WORDS_FEATURES) == "transcript"
    assert corpus_kind(CAPTION_FEATURES) == "caption"
    assert set(TRANSCRIPT_WORDS_FEATURES["words"].feature) == {"word", "time"}
    with pytest.raises(ValueError):
        corpus_kind({"video": "x"})
