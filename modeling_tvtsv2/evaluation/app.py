"""`tvtsv2 app`: a Gradio app over an index made by `tvtsv2 extract` (install with `pip install ".[app]"`).

    tvtsv2 app --index INDEX [--model MODEL] [--host 127.0.0.1 --port 7860]

* **Search**: a query (or an example query), the number of results, an optional video filter. Results are a
  gallery of moments (a thumbnail of the moment's middle frame read with the package's PyAV reader, the score, the
  file, the time window) and a list; selecting one opens a player on the moment (an HTML5 `<video>` with a
  `#t=start,end` media fragment: the browser seeks to the start and pauses at the end).
* **Zero-shot labels**: candidate labels, one per line, scored against every video (mean of its windows) or every
  window (the softmax of the model's scaled cosines over the labels, with the zero-shot prompt templates).
* **Serving videos**: only files of the index are served, read-only, from the folder recorded in the index (or
  `--videos DIR`), under `/videos/<video_id>`; anything else (another path, `..`, a symlink out of the folder) is a
  404. A missing or undecodable video gives a placeholder thumbnail and a message in the page instead of a player.
* **Cost**: the model is loaded once; query and label embeddings and thumbnails are cached (LRU), so a repeated
  query only searches. Search goes through `search.VideoIndex` (the FAISS index of `tvtsv2 index` when present).
* **Codecs**: browsers play H.264 / VP8 / VP9 / AV1, not MPEG-4 Part 2 (`mpeg4`) and others that PyAV reads; a
  player that stays black means such a file: `tvtsv2 prepare-videos --input DIR --output PLAYABLE` (H.264, same
  names and timestamps) then `tvtsv2 app --videos PLAYABLE`.
* The server binds to `127.0.0.1` by default; `--host 0.0.0.0` exposes it to the network.
* **Hub Space**: `tvtsv2 app --index INDEX --model MODEL --space-dir SPACE` writes a folder to push as a Gradio
  Space: `app.py` (this app on 0.0.0.0:7860), `requirements.txt`, a README with the Space header, the package
  source, the model, the index and its videos.

`MomentLibrary` holds everything but the UI (testable without Gradio); `build_demo` makes the Blocks and
`create_server` the FastAPI app (the video route + the mounted Blocks).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import torch
from transformers.utils import logging

from ..data.schema import is_saved_dataset
from ..video_reading_tvtsv2 import read_video
from .embedding import embed_texts
from .extract import ExtractionError, load_model_for_command
from .search import SearchHit, VideoIndex, exact_top_k
from .zero_shot import build_class_embeddings


logger = logging.get_logger(__name__)

INSTALL_HINT = 'tvtsv2 app needs Gradio: pip install ".[app]"'
VIDEO_ROUTE = "/videos"
THUMBNAIL_WIDTH = 320

__all__ = ["MomentLibrary", "build_demo", "create_server", "main", "write_space"]


class MomentLibrary:
    """An extracted index, its model (loaded once), the folder its videos are served from, and caches.

    Args:
        index: folder written by `tvtsv2 extract` (a windowed index gives moments, a plain one whole videos).
        model: model folder or Hub id (default: the one recorded in the index); or `(model, processor)`.
        videos: folder the index's video ids are relative to (default: the folder recorded in the index).
    """

    def __init__(self, index: str | os.PathLike[str], model: Any = None, videos: str | os.PathLike[str] | None = None):
        self.index = VideoIndex(index)
        if isinstance(model, tuple):
            self.model, self.processor = model
        else:
            name = model or self.index.model_name
            if not name:
                raise ExtractionError(f"{self.index.path} does not record its model: pass --model")
            self.model, self.processor = load_model_for_command(name)
        self.model.eval()
        source = videos if videos is not None else self.index.settings.get("source")
        root = Path(os.fspath(source)).resolve() if source else None
        # only a folder of videos can be served; a dataset source keeps its videos inside it
        self.video_root = root if root is not None and root.is_dir() and not is_saved_dataset(root) else None
        self.video_ids = sorted(set(self.index.video_ids))
        self.rows_of: dict[str, np.ndarray] = {}
        for row, video_id in enumerate(self.index.video_ids):
            self.rows_of.setdefault(video_id, []).append(row)
        self.rows_of = {k: np.asarray(v) for k, v in self.rows_of.items()}
        self.query_embedding = functools.lru_cache(maxsize=1024)(self._embed_query)
        self.label_embeddings = functools.lru_cache(maxsize=64)(self._embed_labels)
        self.thumbnail = functools.lru_cache(maxsize=1024)(self._thumbnail)

    # ---- search -----------------------------------------------------------------------------------------------

    def _embed_query(self, text: str) -> torch.Tensor:
        with torch.inference_mode():
            return embed_texts(self.model, self.processor, [text])

    def search(self, query: str, top_k: int = 8, video: str | None = None) -> list[SearchHit]:
        """The best `top_k` moments for `query` (in one video with `video`); exact scores, best first."""
        query = query.strip()
        if not query:
            return []
        embedding = self.query_embedding(query)
        if not video:
            return self.index.search_embeddings(embedding, top_k=int(top_k))[0]
        rows = self.rows_of.get(video)
        if rows is None:
            raise ExtractionError(f"no video {video!r} in the index")
        scores, order = exact_top_k(embedding, self.index.embeddings[rows], int(top_k))
        return [self.index.hit(int(rows[i]), float(s)) for s, i in zip(scores[0], order[0])]

    # ---- videos -----------------------------------------------------------------------------------------------

    def video_path(self, video_id: str) -> Path | None:
        """The file of an indexed video, inside the served folder; None for anything else (never outside it)."""
        if self.video_root is None or video_id not in self.rows_of:
            return None
        path = (self.video_root / video_id).resolve()
        if not path.is_relative_to(self.video_root) or not path.is_file():
            return None
        return path

    def video_url(self, hit: SearchHit) -> str:
        fragment = f"#t={hit.start:.3f},{hit.end:.3f}" if hit.start is not None else ""
        return f"{VIDEO_ROUTE}/{quote(hit.video_id)}{fragment}"

    def _thumbnail(self, video_id: str, start: float | None, end: float | None):
        """The middle frame of the moment (PIL image, `THUMBNAIL_WIDTH` wide), or `(None, reason)`."""
        from PIL import Image

        path = self.video_path(video_id)
        if path is None:
            return None, "not found in the served video folder"
        middle = None if start is None else (start + end) / 2
        try:
            window = {} if middle is None else {"start": max(0.0, middle - 0.25), "end": middle + 0.25}
            frames, _ = read_video(str(path), num_frames=1, **window)
        except (ValueError, OSError) as error:
            return None, str(error).splitlines()[0]
        image = Image.fromarray(frames[0].numpy())
        height = max(1, round(image.height * THUMBNAIL_WIDTH / image.width))
        return image.resize((THUMBNAIL_WIDTH, height)), None

    def problem(self, hit: SearchHit) -> str | None:
        """Why `hit`'s video cannot be shown, or None."""
        return self.thumbnail(hit.video_id, hit.start, hit.end)[1]

    # ---- zero-shot labels -------------------------------------------------------------------------------------

    def _embed_labels(self, labels: tuple[str, ...]) -> torch.Tensor:
        with torch.inference_mode():
            return build_class_embeddings(self.model, self.processor, list(labels), show_progress=False)

    def label_scores(self, labels: Sequence[str], per: str = "video") -> tuple[list[str], list[list[Any]]]:
        """Zero-shot probabilities of `labels` for every video (mean of its rows) or every row: `(header, rows)`."""
        labels = tuple(dict.fromkeys(label.strip() for label in labels if label.strip()))
        if not labels:
            return ["video"], []
        classes = self.label_embeddings(labels)
        scale = float(self.model.logit_scale_value())  # TVTSv2's 1 / temperature (or the learnt scale)
        if per == "video":
            names = self.video_ids
            embeddings = torch.stack([
                torch.from_numpy(self.index.embeddings[self.rows_of[v]]).float().mean(0) for v in names
            ])  # fmt: skip
            embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
            described = [[name] for name in names]
        else:
            embeddings = torch.from_numpy(np.asarray(self.index.embeddings)).float()
            described = [[h.video_id, h.start, h.end] for h in (self.index.hit(i, 0) for i in range(len(self.index)))]
        probabilities = (scale * embeddings @ classes.T).softmax(dim=-1)
        header = ["video"] + ([] if per == "video" else ["start", "end"]) + ["best label", *labels]
        rows = [
            [*where, labels[int(p.argmax())], *[round(float(x), 4) for x in p]]
            for where, p in zip(described, probabilities)
        ]
        return header, rows


# --------------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------------


def player_html(library: MomentLibrary, hit: SearchHit | None) -> str:
    if hit is None:
        return "<p class='tvtsv2-note'>Select a moment to play it.</p>"
    where = f"{hit.start:.2f}–{hit.end:.2f} s" if hit.start is not None else "whole video"
    title = f"{html.escape(hit.video_id)} · {where} · score {hit.score:.3f}"
    problem = library.problem(hit)
    if problem is not None:
        return (f"<div id='tvtsv2-video-error' class='tvtsv2-error'><b>Cannot play {html.escape(hit.video_id)}</b>: "
                f"{html.escape(problem)}</div>")  # fmt: skip
    return (
        f"<div class='tvtsv2-player'><p id='tvtsv2-now-playing'>{title}</p>"
        f"<video id='tvtsv2-player' src='{html.escape(library.video_url(hit))}' controls preload='auto' "
        "style='width:100%;max-height:60vh' data-start='{0}'></video></div>".format(hit.start or 0.0)
    )


def results_html(hits: list[SearchHit]) -> str:
    if not hits:
        return "<p class='tvtsv2-note'>No results.</p>"
    items = "".join(
        f"<li data-video='{html.escape(h.video_id)}' data-start='{h.start}' data-end='{h.end}'>"
        f"<b>{h.score:.3f}</b> {html.escape(h.video_id)}"
        + (f" {h.start:.2f}–{h.end:.2f} s" if h.start is not None else "")
        + "</li>"
        for h in hits
    )
    return f"<ol id='tvtsv2-results'>{items}</ol>"


def build_demo(library: MomentLibrary, examples: Sequence[str] = ()):
    """The Gradio Blocks of the app (search tab, zero-shot labels tab)."""
    import gradio as gr
    from PIL import Image

    placeholder = Image.new("RGB", (THUMBNAIL_WIDTH, THUMBNAIL_WIDTH * 9 // 16), (90, 90, 90))

    def run_search(query: str, top_k: float, video: str | None):
        try:
            hits = library.search(query, int(top_k), video or None)
        except ExtractionError as error:
            return [], [], f"<div class='tvtsv2-error'>{html.escape(str(error))}</div>", player_html(library, None)
        gallery = []
        for hit in hits:
            image, problem = library.thumbnail(hit.video_id, hit.start, hit.end)
            where = f"{hit.start:.1f}–{hit.end:.1f} s" if hit.start is not None else "whole video"
            note = f" ⚠ {problem}" if problem else ""
            gallery.append((image or placeholder, f"{hit.score:.3f} · {hit.video_id} · {where}{note}"))
        return gallery, hits, results_html(hits), player_html(library, None)

    def play(hits: list[SearchHit], event: gr.SelectData):
        return player_html(library, hits[event.index] if hits and 0 <= event.index < len(hits) else None)

    # Gradio finds the event argument by its annotation; this module's annotations are strings (`__future__`)
    play.__annotations__["event"] = gr.SelectData

    def run_labels(text: str, per: str):
        header, rows = library.label_scores(text.replace(",", "\n").splitlines(), per)
        return gr.Dataframe(value=rows, headers=header)

    with gr.Blocks(title="TVTSv2 video search") as demo:
        gr.Markdown(f"# TVTSv2 video search\n{len(library.index):,} rows of {len(library.video_ids):,} videos "
                    f"in `{library.index.path.name}`" + (f" · ANN: {library.index.ann.kind}" if library.index.ann
                                                          else " · exact search"))  # fmt: skip
        with gr.Tab("Search"):
            with gr.Row():
                query = gr.Textbox(label="Query", placeholder="a man gives a speech", elem_id="query", scale=4)
                top_k = gr.Slider(1, 50, value=8, step=1, label="Results", elem_id="top-k", scale=2)
                video = gr.Dropdown(["", *library.video_ids], value="", label="Only in video", elem_id="video-filter",
                                    scale=2)  # fmt: skip
            button = gr.Button("Search", variant="primary", elem_id="search-button")
            if examples:
                gr.Examples(examples=[[e] for e in examples], inputs=[query])
            hits = gr.State([])
            with gr.Row():
                with gr.Column(scale=3):
                    gallery = gr.Gallery(label="Moments", columns=4, height="auto", allow_preview=False,
                                         elem_id="results")  # fmt: skip
                with gr.Column(scale=2):
                    player = gr.HTML(player_html(library, None), elem_id="player")
            listing = gr.HTML("", elem_id="results-list")
            outputs = [gallery, hits, listing, player]
            button.click(run_search, [query, top_k, video], outputs)
            query.submit(run_search, [query, top_k, video], outputs)
            gallery.select(play, [hits], [player])
        with gr.Tab("Zero-shot labels"):
            labels = gr.Textbox(label="Candidate labels (one per line)", lines=4, elem_id="labels")
            per = gr.Radio(["video", "window"], value="video", label="Score per", elem_id="labels-per")
            labels_button = gr.Button("Score", elem_id="labels-button")
            table = gr.Dataframe(elem_id="label-scores")
            labels_button.click(run_labels, [labels, per], [table])
    return demo


def create_server(library: MomentLibrary, examples: Sequence[str] = ()):
    """FastAPI app: `GET /videos/<video_id>` (the index's files only; ranges for seeking) + the Gradio page at /."""
    import gradio as gr
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse

    server = FastAPI()

    @server.get(VIDEO_ROUTE + "/{video_id:path}")
    def video(video_id: str):
        path = library.video_path(video_id)
        if path is None:
            raise HTTPException(status_code=404, detail="not a video of this index")
        return FileResponse(path)

    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts: offline
    return gr.mount_gradio_app(server, build_demo(library, examples), path="/", theme=theme)


def serve(library: MomentLibrary, host: str = "127.0.0.1", port: int = 7860, examples: Sequence[str] = ()) -> None:
    import uvicorn

    print(f"TVTSv2 app on http://{host}:{port} ({len(library.index):,} rows; Ctrl+C to stop)", flush=True)
    uvicorn.run(create_server(library, examples), host=host, port=port, log_level="warning")


# --------------------------------------------------------------------------------------------------------------
# Hub Space
# --------------------------------------------------------------------------------------------------------------

SPACE_APP = '''"""TVTSv2 video search (a Gradio Space written by `tvtsv2 app --space-dir`)."""
from modeling_tvtsv2.evaluation.app import MomentLibrary, serve

serve(MomentLibrary("index", model="model", videos="videos"), host="0.0.0.0", port=7860, examples={examples!r})
'''
SPACE_README = """---
title: TVTSv2 video search
sdk: gradio
app_file: app.py
pinned: false
---

Text-to-moment search over {rows} rows of {videos} videos with a TVTSv2 model (`tvtsv2 app`).
"""
SPACE_REQUIREMENTS = ["torch", "transformers>=5.24,<6", "accelerate", "datasets", "av", "peft", "safetensors",
                      "huggingface_hub", "ftfy", "regex", "gradio>=5,<7", "pillow"]  # fmt: skip


def write_space(library: MomentLibrary, model_dir: str, output: str | os.PathLike[str], examples=()) -> Path:
    """A folder to push as a Gradio Space: app.py, requirements.txt, README, the package, model, index, videos."""
    from ..tools.output_folders import staged_output_folder

    if library.video_root is None:
        raise ExtractionError("--space-dir needs an index made from a folder of videos (or --videos)")
    if not Path(model_dir).is_dir():
        raise ExtractionError(f"--model {model_dir}: --space-dir needs a local model folder")
    package = Path(__file__).resolve().parents[1]
    inputs = [library.index.path, model_dir, library.video_root]
    with staged_output_folder(output, inputs=inputs, flag="--space-dir") as folder:
        folder = Path(folder)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(package, folder / "modeling_tvtsv2", ignore=ignore)
        shutil.copytree(model_dir, folder / "model")
        shutil.copytree(library.index.path, folder / "index")
        for video_id in library.video_ids:
            path = library.video_path(video_id)
            if path is not None:
                (folder / "videos" / video_id).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, folder / "videos" / video_id)
        (folder / "app.py").write_text(SPACE_APP.format(examples=list(examples)), encoding="utf-8")
        (folder / "requirements.txt").write_text("\n".join(SPACE_REQUIREMENTS) + "\n", encoding="utf-8")
        (folder / "README.md").write_text(
            SPACE_README.format(rows=len(library.index), videos=len(library.video_ids)), encoding="utf-8"
        )
    return Path(output)


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class AppArguments:
    """`tvtsv2 app` (parsed by `modeling_tvtsv2.tools.arguments`: `--a_b` and `--a-b`, `--config FILE`)."""

    index: str = dataclasses.field(metadata={"help": "output folder of `tvtsv2 extract` (--windows for moments)"})
    model: str | None = dataclasses.field(
        default=None, metadata={"help": "model folder (default: the one recorded in the index)"}
    )
    videos: str | None = dataclasses.field(
        default=None, metadata={"help": "folder of the videos (default: the folder recorded in the index)"}
    )
    host: str = dataclasses.field(default="127.0.0.1", metadata={"help": "address to bind (0.0.0.0: the network)"})
    port: int = dataclasses.field(default=7860, metadata={"help": "port"})
    examples: list[str] = dataclasses.field(
        default_factory=list, metadata={"help": "example queries shown under the query box", "repeatable": True}
    )
    space_dir: str | None = dataclasses.field(
        default=None, metadata={"help": "write a Hub Space folder (app, model, index, videos) here and exit"}
    )


APP_DESCRIPTION = (
    f"Browse an extracted index in the browser: search, thumbnails, player, zero-shot labels. {INSTALL_HINT}."
)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`tvtsv2 app --index INDEX`: serves until interrupted; returns the exit status (2 with one `error: ...` line
    for a user mistake or a missing Gradio)."""
    from ..tools.arguments import parse_tool_arguments
    from ..tools.output_folders import OutputFolderError

    (args,) = parse_tool_arguments(AppArguments, argv, prog=prog, description=APP_DESCRIPTION)
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        if not 0 < args.port < 65536:
            raise ExtractionError(f"--port must be in 1..65535, got {args.port}")
        library = MomentLibrary(args.index, args.model, args.videos)
        if args.space_dir:
            model_dir = args.model or library.index.model_name
            print(f"Space folder: {write_space(library, model_dir, args.space_dir, args.examples)}")
            return 0
    except (ExtractionError, OutputFolderError, OSError) as error:
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    serve(library, args.host, args.port, args.examples)
    return 0
