"""`tvtsv2 app`: the video route serves only the index's files (path traversal refused, over a real socket), a missing
or broken video is a message in the page, no Gradio is one line and exit 2, a Space folder runs the same app, and in
a real headless Chromium (selenium + Debian's chromium-driver) a query finds the scene it describes and its player
starts at the moment."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from modeling_tvtsv2 import TVTSv2Config, TVTSv2Model
from modeling_tvtsv2.cli import main as cli_main
from modeling_tvtsv2.processing_tvtsv2 import TVTSv2Processor

from test_search import trained_on_demo  # noqa: F401 - the demo-trained model and its index (a fixture)

DATA = Path(__file__).parent / "data"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def tiny_library_folder(tmp_path_factory) -> Path:
    """A random tiny model and a windowed index of a copy of tests/data's two videos."""
    root = tmp_path_factory.mktemp("app")
    torch.manual_seed(0)
    TVTSv2Model(TVTSv2Config.from_preset("tiny")).save_pretrained(root / "model")
    TVTSv2Processor.from_defaults(image_size=64, num_frames=4).save_pretrained(root / "model")
    (root / "videos").mkdir()
    for name in ("park.mp4", "obama_speech.mp4"):
        shutil.copy(DATA / name, root / "videos" / name)
    argv = ["extract", "--model", str(root / "model"), "--input", str(root / "videos"), "--output",
            str(root / "index"), "--windows", "2,1", "--num-workers", "0", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0
    (root / "secret.txt").write_text("outside the video folder")
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningApp:
    """The app's server (`create_server`) under uvicorn in a thread, on a free localhost port."""

    def __init__(self, library, examples=()):
        import uvicorn

        from modeling_tvtsv2.evaluation.app import create_server

        self.port = free_port()
        config = uvicorn.Config(create_server(library, examples), host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningApp:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def get(self, raw_path: str, headers: dict | None = None) -> tuple[int, bytes]:
        """A request with the path sent exactly as written (no client-side normalisation of `..`)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.putrequest("GET", raw_path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()


def test_video_route_serves_only_the_index_files_and_broken_videos_are_messages(tiny_library_folder):
    pytest.importorskip("gradio", reason='Gradio is not installed (pip install ".[app]")')
    from modeling_tvtsv2.evaluation.app import MomentLibrary, player_html

    root = tiny_library_folder
    library = MomentLibrary(root / "index")
    assert library.video_root == (root / "videos").resolve()
    with RunningApp(library) as app:
        status, body = app.get("/videos/park.mp4")
        assert status == 200 and body == (root / "videos" / "park.mp4").read_bytes()
        status, body = app.get("/videos/park.mp4", {"Range": "bytes=10-19"})  # seeking needs ranges
        assert status == 206 and body == (root / "videos" / "park.mp4").read_bytes()[10:20]
        for attack in ("/videos/../secret.txt", "/videos/..%2Fsecret.txt", "/videos/%2e%2e/secret.txt",
                       "/videos/park.mp4/../../secret.txt", f"/videos/{root / 'secret.txt'}",
                       "/videos//etc/passwd", "/videos/..%2F..%2F..%2F..%2Fetc%2Fpasswd"):  # fmt: skip
            status, body = app.get(attack)
            assert status == 404 and b"outside" not in body and b"root:" not in body, attack
        status, _ = app.get("/")
        assert status == 200

    # a symlink put in place of an indexed video is not followed out of the folder
    hits = library.search("a man gives a speech", top_k=9)
    assert {h.video_id for h in hits} == {"park.mp4", "obama_speech.mp4"}
    assert library.problem(hits[0]) is None and "<video" in player_html(library, hits[0])
    park = root / "videos" / "park.mp4"
    kept = park.read_bytes()
    try:
        park.unlink()
        park.symlink_to(root / "secret.txt")
        assert library.video_path("park.mp4") is None
        park.unlink()
        park.write_bytes(b"not a video at all")
        library.thumbnail.cache_clear()
        broken = next(h for h in hits if h.video_id == "park.mp4")
        page = player_html(library, broken)
        assert "tvtsv2-video-error" in page and "Cannot play park.mp4" in page and "<video" not in page
        park.unlink()
        library.thumbnail.cache_clear()
        assert "not found in the served video folder" in player_html(library, broken)
    finally:
        park.unlink(missing_ok=True)
        park.write_bytes(kept)


def test_label_scores_per_video_and_per_window(tiny_library_folder):
    pytest.importorskip("gradio", reason='Gradio is not installed (pip install ".[app]")')
    from modeling_tvtsv2.evaluation.app import MomentLibrary

    library = MomentLibrary(tiny_library_folder / "index")
    header, rows = library.label_scores(["a park", "a speech", "a park", " "], per="video")
    assert header == ["video", "best label", "a park", "a speech"]
    assert [row[0] for row in rows] == ["obama_speech.mp4", "park.mp4"]
    for row in rows:
        assert sum(row[2:]) == pytest.approx(1.0, abs=1e-3) and row[1] == header[2 + row[2:].index(max(row[2:]))]
    header, rows = library.label_scores(["a park", "a speech"], per="window")
    assert header[:3] == ["video", "start", "end"] and len(rows) == len(library.index)


def test_app_without_gradio_says_how_to_install_it(tiny_library_folder):
    # `import gradio` raises ImportError in this interpreter, as on an install without the `.[app]` extra
    script = "\n".join(["import sys", "sys.modules['gradio'] = None", "from modeling_tvtsv2.cli import main",
                         "sys.exit(main(sys.argv[1:]))"])
    argv = ["app", "--index", str(tiny_library_folder / "index")]
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=180)
    assert result.returncode == 2
    assert result.stderr.strip() == 'error: tvtsv2 app needs Gradio: pip install ".[app]"'


def test_space_folder_holds_the_same_app(tiny_library_folder, tmp_path):
    pytest.importorskip("gradio", reason='Gradio is not installed (pip install ".[app]")')
    root = tiny_library_folder
    space = tmp_path / "space"
    argv = ["app", "--index", str(root / "index"), "--model", str(root / "model"), "--space-dir", str(space),
            "--examples", "a park"]  # fmt: skip
    assert cli_main(argv) == 0
    assert "sdk: gradio" in (space / "README.md").read_text() and "gradio" in (space / "requirements.txt").read_text()
    assert (space / "videos" / "park.mp4").read_bytes() == (root / "videos" / "park.mp4").read_bytes()
    assert (space / "modeling_tvtsv2" / "evaluation" / "app.py").is_file()
    # the Space's app.py, run from the Space folder, builds the same library (serving stubbed out by argv check)
    app_py = (space / "app.py").read_text()
    assert 'MomentLibrary("index", model="model", videos="videos")' in app_py and "['a park']" in app_py
    from modeling_tvtsv2.evaluation.app import MomentLibrary

    cwd = os.getcwd()
    try:
        os.chdir(space)
        library = MomentLibrary("index", model="model", videos="videos")
        assert library.video_path("park.mp4") == (space / "videos" / "park.mp4").resolve()
    finally:
        os.chdir(cwd)
    assert cli_main(argv) == 2  # an existing Space folder is not overwritten


# --------------------------------------------------------------------------------------------------------------
# In a real browser
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_browser_query_finds_the_scene_and_the_player_starts_there(trained_on_demo, tmp_path):  # noqa: F811
    pytest.importorskip("gradio", reason='Gradio is not installed (pip install ".[app]")')
    pytest.importorskip("selenium", reason='selenium is not installed (pip install ".[browser-test]")')
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no chromium + chromedriver on PATH (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from modeling_tvtsv2.evaluation.app import MomentLibrary

    index, long_rows = trained_on_demo
    row = long_rows[0]
    scene = 2  # on screen between 7.0 and 10.75 s (the borders of tests/test_search.py)
    query = row["segments"][scene]["text"]
    # the demo clips are MPEG-4 Part 2, which browsers do not play: H.264 copies (same names, same timestamps) are
    # served instead with `videos=`, as a user does with `tvtsv2 prepare-videos` + `tvtsv2 app --videos`
    playable = tmp_path / "h264"
    assert cli_main(["prepare-videos", "--input", str(index.parent / "long-videos"), "--output", str(playable),
                     "--num-workers", "1"]) == 0  # fmt: skip
    library = MomentLibrary(index, videos=playable)
    expected = library.search(query, top_k=1)[0]
    assert expected.video_id == f"{row['video_id']}.mp4"
    assert min(expected.end, 10.75) - max(expected.start, 7.0) >= 2.0 and expected.start > 0

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    with RunningApp(library, examples=[query]) as app:
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            wait = WebDriverWait(driver, 60)
            driver.get(f"http://127.0.0.1:{app.port}/")
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#query textarea")).send_keys(query)
            driver.find_element(By.ID, "search-button").click()
            first = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tvtsv2-results li"))[0]
            assert first.get_attribute("data-video") == expected.video_id
            assert float(first.get_attribute("data-start")) == pytest.approx(expected.start)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results button.thumbnail-item"))[0].click()
            player = "document.getElementById('tvtsv2-player')"
            wait.until(lambda d: d.execute_script(f"return {player} !== null && {player}.readyState >= 1"))
            current = driver.execute_script(f"return {player}.currentTime")
            assert current == pytest.approx(expected.start, abs=0.05)
            shot = tmp_path / "tvtsv2-app.png"
            driver.save_screenshot(str(shot))
            print(f"screenshot: {shot}")
        finally:
            driver.quit()
