"""Pipeline conventions (issue 9, item 7): `timeout`, `logit_scale=None`, `top_k`, templates, empty inputs.

Reference values come from the model and processor called directly, never from the pipeline code.
"""

import http.server
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor


PARK = Path(__file__).parent / "data" / "park.mp4"
LABELS = ["walking a dog", "giving a speech", "cooking"]


@pytest.fixture(scope="module")
def cosines(model_dir):
    """Cosine of the park clip with each "a person {label}" prompt, from the model and processor directly."""
    model = TVTSv2Model.from_pretrained(model_dir).eval()
    processor = TVTSv2Processor.from_pretrained(model_dir)
    with torch.no_grad():
        video = processor(videos=[str(PARK)], return_tensors="pt")["pixel_values_videos"]
        video_embed = F.normalize(model.get_video_features(pixel_values_videos=video).pooler_output[0], dim=-1)
        text = processor(text=[f"a person {label}" for label in LABELS], return_tensors="pt")
        text_embeds = F.normalize(model.get_text_features(input_ids=text["input_ids"]).pooler_output, dim=-1)
    return text_embeds @ video_embed


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def video_server():
    """A local HTTP server: `/park.mp4` serves the clip, `/stall.mp4` answers only after 3 s."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            if self.path == "/stall.mp4":
                time.sleep(3)
            body = PARK.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_timeout_fetches_urls_within_the_limit(classifier, extractor, video_server):
    from_url = classifier(f"{video_server}/park.mp4", candidate_labels=LABELS, timeout=10)
    assert from_url == classifier(str(PARK), candidate_labels=LABELS)
    features = extractor(f"{video_server}/park.mp4", timeout=10.0, return_tensors=True)
    assert torch.equal(features, extractor(str(PARK), return_tensors=True))
    started = time.monotonic()
    with pytest.raises(ValueError, match="within timeout=0.5"):
        extractor(f"{video_server}/stall.mp4", timeout=0.5)
    assert time.monotonic() - started < 2.5
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        extractor(str(PARK), timeout=-1)


def test_logit_scale_default_100_and_none_uses_the_model_scale(classifier, cosines):
    config = TVTSv2Config.from_preset("tiny")
    for logit_scale, expected_scale in [(100.0, 100.0), (None, 1.0 / config.temperature), (7.0, 7.0)]:
        kwargs = {} if logit_scale == 100.0 else {"logit_scale": logit_scale}
        result = classifier(str(PARK), candidate_labels=LABELS, **kwargs)
        expected = (expected_scale * cosines).softmax(-1)
        by_label = {item["label"]: item["score"] for item in result}
        for i, label in enumerate(LABELS):
            assert by_label[label] == pytest.approx(expected[i].item(), rel=1e-4, abs=1e-6)


def test_top_k(classifier):
    everything = classifier(str(PARK), candidate_labels=LABELS)
    assert classifier(str(PARK), candidate_labels=LABELS, top_k=2) == everything[:2]
    assert classifier(str(PARK), candidate_labels=LABELS, top_k=10) == everything
    for bad in (-1, 0, 1.5):
        with pytest.raises(ValueError, match="top_k must be a positive integer"):
            classifier(str(PARK), candidate_labels=LABELS, top_k=bad)


def test_template_with_a_stray_placeholder_is_a_clear_error(classifier):
    with pytest.raises(ValueError, match=r"hypothesis_template 'a \{x\} person \{\}' cannot be filled"):
        classifier(str(PARK), candidate_labels=LABELS, hypothesis_template="a {x} person {}")
    # escaped braces are text
    result = classifier(str(PARK), candidate_labels=LABELS, hypothesis_template="{{clip}} a person {}")
    assert sorted(item["label"] for item in result) == sorted(LABELS)


def test_empty_input_list_gives_an_empty_result(classifier, extractor):
    assert classifier([], candidate_labels=LABELS) == []
    assert extractor([]) == []


# ---- item 8: progress bars follow transformers' settings ---------------------------------------------------------


def test_evaluation_progress_bars_follow_transformers_setting(model_dir, capsys):
    from transformers.utils import logging as hf_logging

    from modeling_tvtsv2.evaluation.zero_shot import compute_text_embeddings

    model = TVTSv2Model.from_pretrained(model_dir).eval()
    processor = TVTSv2Processor.from_pretrained(model_dir)
    compute_text_embeddings(model, processor, ["a cat", "a dog"], batch_size=1)
    assert "Text embeddings" in capsys.readouterr().err
    hf_logging.disable_progress_bar()
    try:
        compute_text_embeddings(model, processor, ["a cat", "a dog"], batch_size=1)
    finally:
        hf_logging.enable_progress_bar()
    assert "Text embeddings" not in capsys.readouterr().err
