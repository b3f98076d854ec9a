"""tools/app.py served on a free localhost port over miniature demo outputs, driven in a real headless
Chromium (Debian's ``chromium`` + ``chromedriver``, through Selenium; nothing is downloaded).

Screenshots land in ``output/test-artifacts/app/`` (``ALPSEG_TEST_ARTIFACTS`` to change); with
``ALPSEG_UPDATE_DOCS=1`` they are also copied to ``docs/images/`` (the README's screenshot).
Without Chromium, chromedriver or Selenium the tests are skipped with the reason; under CI (``CI`` set)
that is a failure instead, since ``scripts/setup_env.sh`` installs them there.
"""
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

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OID_ALPS = os.path.join("alps", "locnar_oid_train_alps.json")  # as in conftest.py

ARTIFACTS = os.environ.get("ALPSEG_TEST_ARTIFACTS", os.path.join(REPO, "output", "test-artifacts", "app"))
VOCABULARY = "dolphin, apple"
DOCS_PICTURES = {"app_segment.png", "app_alps.png", "app_results.png"}  # shown in README.md / docs/app.md
WAIT_S = 240  # first predictions load the model and the phrase bank on a loaded 2-core machine


def _browser_binaries():
    """(chromium, chromedriver) paths, or a skip/fail naming what is missing."""
    chromium = shutil.which(os.environ.get("ALPSEG_CHROMIUM") or "chromium") or shutil.which("chromium-browser")
    driver = shutil.which(os.environ.get("ALPSEG_CHROMEDRIVER") or "chromedriver")
    missing = [what for what, ok in (("chromium", chromium), ("chromedriver", driver)) if not ok]
    try:
        import selenium  # noqa: F401
        import gradio  # noqa: F401
    except ImportError as e:
        missing.append(f"python package {e.name}")
    if missing:
        reason = (f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver; "
                  f"pip install -e '.[dev,app]'; under CI .ci/run and make setup install them)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(f"SKIPPED: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")  # session: pytest sets up wider scopes first, so this runs before demo_outputs
def browser_binaries():
    return _browser_binaries()


@pytest.fixture(scope="module")
def app_url(browser_binaries, demo_outputs, tmp_path_factory):  # binaries first: skip before building
    port = _free_port()
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    env.pop("DETECTRON2_DATASETS", None)  # --demo-dir sets it to the demo's datasets
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tools", "app.py"), "--demo-dir", demo_outputs,
                                 "--port", str(port), "--score-thresh", "0", "--no-progress"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + WAIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tools/app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"tools/app.py did not answer on {url} in {WAIT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(browser_binaries):
    chromium, driver_path = browser_binaries
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1150", "--lang=en-US"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, css, timeout=WAIT_S):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
    return driver.find_elements(By.CSS_SELECTOR, css)


def _table(driver, elem_id):
    """Cell texts of a Gradio Dataframe, row by row."""
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} div[role=row][data-index]")
    return [[c.text for c in r.find_elements(By.CSS_SELECTOR, "[role=gridcell]")] for r in rows]


def _wait_rendered(driver, css, timeout=60):
    """Until every image under ``css`` has loaded and every plot under it has drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = ("const els = document.querySelectorAll(arguments[0]); return els.length > 0 && "
              "Array.from(els).every(e => e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0));")
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script, css))


def _screenshot(driver, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    assert driver.save_screenshot(path), path
    if os.environ.get("ALPSEG_UPDATE_DOCS") == "1" and name in DOCS_PICTURES:
        shutil.copy(path, os.path.join(REPO, "docs", "images", name))
    return path


def _first_validation_image(demo_outputs):
    folder = os.path.join(demo_outputs, "datasets", "openimages", "validation")
    return os.path.join(folder, sorted(f for f in os.listdir(folder) if f.endswith(".jpg"))[0])


@pytest.mark.timeout(900)
def test_segment_tab_shows_the_models_detections(app_url, browser, demo_outputs):
    from PIL import Image
    from selenium.webdriver.common.by import By

    from alpseg.app import SegmentSession
    from alpseg.app.segment import detection_rows

    image = _first_validation_image(demo_outputs)
    browser.get(app_url)
    _wait(browser, "#segment-image input[type=file]")[0].send_keys(image)
    _wait(browser, "#segment-image img")
    box = browser.find_element(By.CSS_SELECTOR, "#vocabulary textarea, #vocabulary input")
    box.clear()
    box.send_keys(VOCABULARY)
    browser.find_element(By.ID, "segment-button").click()
    _wait(browser, "#segment-output img")
    _wait(browser, "#detections div[role=row][data-index]")
    _wait_rendered(browser, "#segment-output img")

    # the same model in this process gives the same table (threshold 0: every detection the model keeps)
    model = os.path.join(demo_outputs, "fcos_mo_alp")
    instances, phrases = SegmentSession().predict(np.asarray(Image.open(image).convert("RGB")),
                                                  os.path.join(model, "config.yaml"),
                                                  os.path.join(model, "model_final.pth"), VOCABULARY)
    expected = detection_rows(instances, phrases, 0.0)
    assert len(expected) >= 5, "the test model should keep several detections"
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the table's rows appear while it renders: read it once the count line and all rows are there
    WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: f"{len(expected)} detections" in d.find_element(By.ID, "detections-count").text
        and len(_table(d, "detections")) == len(expected))
    rows = _table(browser, "detections")
    _screenshot(browser, "app_segment.png")
    assert len(rows) == len(expected)
    assert [r[1] for r in rows] == [e[1] for e in expected]
    assert {r[1] for r in rows} <= {"dolphin", "apple"}
    assert [float(r[2]) for r in rows] == pytest.approx([e[2] for e in expected], abs=1e-4)

    # the score threshold re-filters the same predictions: keep those scoring at least the 4th best
    thresh = f"{expected[3][2] - 1e-4:.4f}"
    kept = [e for e in expected if e[2] >= float(thresh)]
    assert 4 <= len(kept) < len(expected)
    number = browser.find_element(By.CSS_SELECTOR, "#score input[type=number]")
    number.clear()
    number.send_keys(thresh + "\t")

    # the table is re-rendered while it is read: retry on stale cells until it shows the kept rows
    WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: [r[1] for r in _table(d, "detections")] == [e[1] for e in kept])


@pytest.mark.timeout(600)
def test_alps_tab_highlights_the_phrase_and_draws_its_box(app_url, browser, demo_outputs):
    from PIL import Image
    from selenium.webdriver.common.by import By

    with open(os.path.join(demo_outputs, "datasets", OID_ALPS), encoding="utf-8") as f:
        data = json.load(f)
    first_image = data["images"][0]
    alps = [a for a in data["annotations"] if str(a["image_id"]) == str(first_image["id"])]
    assert alps, "the first image of ALPS.json has ALPs (images are listed only when they have some)"

    browser.get(app_url)
    _wait(browser, "#tab-alps-button")[0].click()
    marks = _wait(browser, "#alp-narration mark.alp")
    assert [m.get_attribute("data-phrase") for m in marks] == [a["phrase"] for a in
                                                                 sorted(alps, key=lambda a: a["char_start"])]
    assert [m.text.lower() for m in marks] == [a["text"] for a in sorted(alps, key=lambda a: a["char_start"])]
    src = _wait(browser, "#alp-image img")[0].get_attribute("src")
    _wait_rendered(browser, "#alp-image img, #curation-report canvas, #curation-report svg")
    _screenshot(browser, "app_alps.png")

    # the drawn image is 4x the miniature image, with the first ALP's box in the first palette colour
    with urllib.request.urlopen(src, timeout=30) as r:
        drawn = np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB")).astype(int)
    assert drawn.shape[:2] == (4 * first_image["height"], 4 * first_image["width"])
    from detectron2.utils.colormap import colormap

    color = colormap(rgb=True, maximum=255)[0].astype(int)
    x, y, w, h = (4 * v for v in alps[0]["bbox"])
    bottom = drawn[int(round(y + h)), int(x + 0.3 * w):int(x + 0.7 * w)]
    assert (np.abs(bottom - color).max(axis=1) <= 40).mean() >= 0.9, (bottom[:5], color)
    # and not a box everywhere: the image centre far from any ALP keeps the picture's own colours
    assert not (np.abs(drawn[5, 5] - color) <= 40).all()

    # filtering by a phrase of another image switches to the first image that has it and marks only it
    other = next(a for a in data["annotations"] if a["phrase"] not in {b["phrase"] for b in alps})["phrase"]
    target = next(str(im["id"]) for im in data["images"] if any(
        other in a["phrase"] and str(a["image_id"]) == str(im["id"]) for a in data["annotations"]))
    expected = sorted(a["phrase"] for a in data["annotations"] if str(a["image_id"]) == target and other in a["phrase"])
    box = browser.find_element(By.CSS_SELECTOR, "#alp-filter textarea, #alp-filter input")
    box.send_keys(other + "\n")

    def shown(d):
        marks = d.find_elements(By.CSS_SELECTOR, "#alp-narration mark.alp")
        return (d.find_element(By.CSS_SELECTOR, "#alp-image-id input").get_attribute("value"),
                sorted(m.get_attribute("data-phrase") for m in marks))

    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(browser, 60).until(lambda d: shown(d) == (target, expected))
    finally:
        _screenshot(browser, "app_alps_filtered.png")


@pytest.mark.timeout(300)
def test_results_tab_puts_the_runs_side_by_side(app_url, browser, demo_outputs):
    from alpseg.app.results import load_results, summary_rows

    browser.get(app_url)
    _wait(browser, "#tab-results-button")[0].click()
    _wait(browser, "#results-table div[role=row][data-index]")
    paths = [os.path.join(demo_outputs, "results.json"), os.path.join(demo_outputs, "fcos_mo_alp", "results.json")]
    expected = [[str(c) for c in row] for row in summary_rows(load_results(paths))]
    assert [r[:7] for r in _table(browser, "results-table")] == [r[:7] for r in expected]
    assert expected[2][:5] == ["fcos_mo_alp", "oid_challenge", "61.6", "79.3", "44.0"]  # the train_net file
    # per-category AP50 of the train_net file, best first
    _wait(browser, "#per-category-table div[role=row][data-index]")
    assert [r[:2] for r in _table(browser, "per-category-table")] == [
        ["apple", "92.5"], ["bird", "66.1"], ["dolphin", "51"], ["snail", "37"]]
    _wait_rendered(browser, "#per-category-plot canvas, #per-category-plot svg")
    _screenshot(browser, "app_results.png")
