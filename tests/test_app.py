"""sanrt-app as its users meet it: a real server process on 127.0.0.1, its API through gradio_client,
and its page in a real headless Chromium (selenium, Debian's chromium and chromium-driver). Every
answer is checked against the library's own for the same image and vocabulary: label maps bit for
bit, the page's picture pixel for pixel (Gradio serves it as the PNG the app returned: lossless)."""
import base64
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

NAMES = "cat,sofa,floor"


def need(ok, reason: str) -> None:
    """Skip with the reason; in CI (where .ci/run installs everything) fail instead."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI installs it (.ci/run), so the app tests must run")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    skimage_data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("chelsea", "coffee", "astronaut"):
        out[name] = folder / f"{name}.png"
        Image.fromarray(getattr(skimage_data, name)()).save(out[name])
    out["bad"] = folder / "notes.png"
    out["bad"].write_text("a text file, renamed .png\n")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc, grace: float = 15) -> float:
    """SIGTERM, then SIGKILL after `grace` seconds; returns how long it took."""
    t0 = time.monotonic()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def server(tiny_export, tmp_path_factory):
    """`python -m sanrt.app.server --export tiny_export --port FREE` until the module ends."""
    need(importlib.util.find_spec("gradio") and importlib.util.find_spec("gradio_client"),
         "Gradio is not installed (pip install -e '.[app]')")
    tmp = tmp_path_factory.mktemp("app")
    port = _free_port()
    log = tmp / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp / "gradio"))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sanrt.app.server", "--export", str(tiny_export), "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sanrt-app exited ({proc.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"sanrt-app did not answer within 120 s:\n{log.read_text()}")
            time.sleep(0.3)
        yield {"url": url, "proc": proc, "log": log}
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def library(tiny_export):
    """The library's answers, in this process (the same vocabulary cache as the server's)."""
    from sanrt.runtime import Segmenter, load_image

    seg = Segmenter(tiny_export)
    memo = {}

    def answer(photo, names, expansion="none"):
        key = (str(photo), names, expansion)
        if key not in memo:
            img = load_image(photo)
            vocab = seg.vocabulary(names.split(","), expand=None if expansion == "none" else expansion)
            memo[key] = img, seg.segment([img], vocab)[0]
        return memo[key]

    yield answer
    seg.close()


def expected_overlay(library, photo, names, expansion="none") -> np.ndarray:
    from sanrt.runtime.visualize import overlay

    img, r = library(photo, names, expansion)
    return np.asarray(overlay(img, r.labels, list(r.names), other=r.other))


# ---- the API ------------------------------------------------------------------------------------------
def test_api_label_png_is_the_librarys(server, library, photos, tmp_path):
    from gradio_client import Client, handle_file

    from sanrt.runtime import dataset_vocabulary
    from sanrt.runtime.visualize import label_png

    client = Client(server["url"], verbose=False, download_files=str(tmp_path))
    for expansion in ("none", "coco-all"):
        picture, legend, details, label_file, json_file = client.predict(
            handle_file(str(photos["chelsea"])), NAMES, expansion, api_name="/segment")
        _, r = library(photos["chelsea"], NAMES, expansion)
        with Image.open(label_file) as im:
            assert im.mode == label_png(r.labels).mode == "L"
            assert np.array_equal(np.asarray(im), r.labels), expansion
        report = json.loads(open(json_file, encoding="utf-8").read())
        assert report["classes"] == [c._asdict() for c in r.classes_present()]
        assert report["expansion"] == (None if expansion == "none" else expansion)
        assert all(f"| {c.name} | {c.fraction:.1%} |" in legend for c in r.classes_present())
        assert "onnxruntime" in details
        with Image.open(picture) as im:
            expected = expected_overlay(library, photos["chelsea"], NAMES, expansion)
            assert np.array_equal(np.asarray(im.convert("RGB")), expected)

    # past 255 classes the label PNG is 16-bit, as label_png writes it
    names = ",".join(dataset_vocabulary("pc459"))
    label_file = client.predict(handle_file(str(photos["coffee"])), names, "none", api_name="/segment")[3]
    _, r = library(photos["coffee"], names)
    with Image.open(label_file) as im:
        assert im.mode == label_png(r.labels).mode
        assert np.array_equal(np.asarray(im).astype(np.int64), r.labels)

    # a user's mistake is the message of one exception, and the server goes on
    from gradio_client.exceptions import AppError

    too_many = ",".join(f"thing {i}" for i in range(1100))
    for args, message in (((photos["bad"], NAMES, "none"), "not an image file"),
                          ((photos["chelsea"], "", "none"), "no class names"),
                          ((photos["chelsea"], "cat,Cat", "none"), "more than once"),
                          ((photos["chelsea"], too_many, "none"), "outside the export's range")):
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(args[0])), *args[1:], api_name="/segment")
    assert server["proc"].poll() is None


# ---- the page, in Chromium ----------------------------------------------------------------------------
def new_browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    need(chromium and driver, "Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    need(importlib.util.find_spec("selenium"), "selenium is not installed (pip install -e '.[dev]')")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # Debian's: selenium-manager never runs, nothing is downloaded
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


@pytest.fixture(scope="module")
def browser(server):
    d = new_browser()
    try:
        open_page(d, server["url"])
        yield d
    finally:
        d.quit()


def open_page(d, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d.get(url)
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run"))


def _src(d, css):
    from selenium.webdriver.common.by import By

    found = d.find_elements(By.CSS_SELECTOR, css)
    return found[0].get_attribute("src") if found else None


def fill_in(d, photo, names, expansion="none"):
    """Upload the photo through the page's file input, type the names, choose the expansion."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    for remove in d.find_elements(By.CSS_SELECTOR, "#input_image button[aria-label='Remove Image']"):
        remove.click()
    WebDriverWait(d, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#input_image img"))
    d.find_element(By.CSS_SELECTOR, "#input_image input[type=file]").send_keys(str(photo))
    # the upload is done when the preview shows the server's copy
    WebDriverWait(d, 30).until(lambda d: "/gradio_api/file=" in (_src(d, "#input_image img") or ""))
    box = d.find_element(By.CSS_SELECTOR, "#names textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(names)
    d.find_element(By.CSS_SELECTOR, f"#expansion [data-testid='{expansion}-radio-label']").click()


def click_run(d):
    from selenium.webdriver.common.by import By

    before = _src(d, "#output_image img")
    d.find_element(By.CSS_SELECTOR, "#run").click()
    return before


def wait_result(d, before, timeout=60) -> np.ndarray:
    """The output picture once it changed from `before`, read back from its src (URL or data URI)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(d, timeout).until(lambda d: (_src(d, "#output_image img") or before) != before)
    src = _src(d, "#output_image img")
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        with urllib.request.urlopen(src, timeout=30) as r:
            data = r.read()
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG", im.format  # format="png": no lossy WebP on the way
        return np.asarray(im.convert("RGB"))


def legend_text(d) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, "#legend").text


def test_page_shows_the_librarys_overlay_and_mask(browser, library, photos):
    from selenium.webdriver.common.by import By

    from sanrt.runtime.visualize import palette

    fill_in(browser, photos["chelsea"], NAMES)
    before = click_run(browser)
    assert np.array_equal(wait_result(browser, before), expected_overlay(library, photos["chelsea"], NAMES))
    _, r = library(photos["chelsea"], NAMES)
    for c in r.classes_present():
        assert f"{c.name} {c.fraction:.1%}" in legend_text(browser)

    # the mask view: class colours on black ("other" too), drawn again without a new run
    shown = _src(browser, "#output_image img")
    browser.find_element(By.CSS_SELECTOR, "#view [data-testid='mask-radio-label']").click()
    colours = palette(len(r.names) + 1)
    colours[len(r.names)] = 0
    assert np.array_equal(wait_result(browser, shown), colours[r.labels])
    masked = _src(browser, "#output_image img")
    browser.find_element(By.CSS_SELECTOR, "#view [data-testid='overlay-radio-label']").click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: _src(d, "#output_image img") not in (None, masked))
    assert _src(browser, "#output_image img") == shown  # the same picture: the same file in Gradio's cache


def test_two_visitors_at_once_get_their_own_answers(server, browser, library, photos):
    vocabularies = ("cup,saucer,table", "plate,spoon,wall,floor,hand")
    other = new_browser()
    try:
        open_page(other, server["url"])
        for d, names in zip((browser, other), vocabularies):
            fill_in(d, photos["coffee"], names)
        befores = [click_run(d) for d in (browser, other)]  # both queued at once
        for d, names, before in zip((browser, other), vocabularies, befores):
            assert np.array_equal(wait_result(d, before), expected_overlay(library, photos["coffee"], names)), names
            _, r = library(photos["coffee"], names)
            legend = legend_text(d)
            for c in r.classes_present():
                assert f"{c.name} {c.fraction:.1%}" in legend, names
        a, b = (library(photos["coffee"], names)[1] for names in vocabularies)
        assert not np.array_equal(a.labels, b.labels) or a.names != b.names
    finally:
        other.quit()


def test_a_bad_upload_is_a_message_and_the_next_request_works(server, browser, library, photos):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fill_in(browser, photos["bad"], NAMES)
    click_run(browser)
    body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
    WebDriverWait(browser, 30).until(lambda d: "notes.png is not an image file PIL can read" in body(d))
    assert "Traceback" not in body(browser)
    assert server["proc"].poll() is None

    fill_in(browser, photos["coffee"], "cup,table")
    before = click_run(browser)
    assert np.array_equal(wait_result(browser, before), expected_overlay(library, photos["coffee"], "cup,table"))


def test_screenshot_of_a_result(server, browser, library, photos, tmp_path):
    """docs/images/app.png (the README's picture) when SANRT_SCREENSHOT is set, else a temporary file."""
    open_page(browser, server["url"])  # a fresh page: no message left from an earlier test
    names = "person,flag,rocket,sky"
    fill_in(browser, photos["astronaut"], names)
    before = click_run(browser)
    assert np.array_equal(wait_result(browser, before), expected_overlay(library, photos["astronaut"], names))
    time.sleep(0.5)  # let the legend and the files settle before the picture
    browser.execute_script("window.scrollTo(0, 0)")
    target = ROOT / "docs" / "images" / "app.png" if os.environ.get("SANRT_SCREENSHOT") else tmp_path / "app.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(target))
    with Image.open(target) as im:
        assert im.format == "PNG" and im.width >= 1000


# ---- the command ---------------------------------------------------------------------------------------
def test_bad_arguments_are_one_error_line(tmp_path):
    need(importlib.util.find_spec("gradio"), "Gradio is not installed (pip install -e '.[app]')")
    for args, message in (([], "error: the following arguments are required: --export"),
                          (["--export", str(tmp_path / "missing")], "error: "),
                          (["--export", str(tmp_path), "--port", "0"], "error: --port 0 is not a TCP port")):
        p = subprocess.run([sys.executable, "-m", "sanrt.app.server", *args], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and p.stderr.startswith(message) and "Traceback" not in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_sigterm_stops_the_server_in_bounded_time(server):
    """Last in this file: it ends the module's server (the fixture's teardown then has nothing to stop)."""
    took = _stop(server["proc"])
    log = server["log"].read_text()
    assert server["proc"].returncode == 130 and took < 12, (took, log)
    assert "interrupted" in log and "Traceback" not in log, log
