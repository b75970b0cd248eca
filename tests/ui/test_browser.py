"""The dashboard end to end in a real headless Chromium (Debian's chromium + chromium-driver, through Selenium): the
runs table lists the runs, a run's page plots as many points as its metrics.jsonl holds and the count grows while a
tiny run trains, compare shows both runs. Screenshots go under the test's temporary directory.

Where no browser is installed the test says so loudly and skips; under CI=true (where .ci/run installs it) it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import warnings

import pytest

import tunelab
from tests.conftest import tiny_recipe

pytest.importorskip("fastapi")


def browser_or_skip():
    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if chromium and driver:
        return chromium, driver
    message = ("NO BROWSER: the dashboard's browser test needs Debian's chromium and chromium-driver (apt-get install "
               "chromium chromium-driver) and selenium; .ci/run installs them.")  # fmt: skip
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    warnings.warn(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, monkeypatch):
    import uvicorn

    from tunelab.ui import app

    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(root))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app(root), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield root, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    chromium, driver = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        opts.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=opts)
    yield b
    b.quit()


def wait_for(condition, timeout=30.0, every=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def records(run_dir) -> list[dict]:
    p = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_the_page_in_a_real_browser(server, browser, tiny_bert, sentiment_csv, tmp_path):
    from selenium.webdriver.common.by import By

    root, url = server
    done = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, root / "finished"), show_progress=False)

    # a live run: 40 steps, a record each, slowed down so the page sees it grow
    live_dir = root / "live"
    recipe = tiny_recipe(tiny_bert, sentiment_csv, live_dir, train={"max_steps": 40, "log_every": 1, "eval_every": 10})
    thread = threading.Thread(target=lambda: tunelab.train(recipe, show_progress=False,
                                                           on_step=lambda s: time.sleep(0.25)))  # fmt: skip
    thread.start()
    try:
        browser.get(url + "/#/")
        rows = wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 2 or None)
        assert rows
        names = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#runs tbody td:nth-child(2)")}
        assert names == {"finished", "live"}
        browser.save_screenshot(str(tmp_path / "runs.png"))

        link = browser.find_element(By.LINK_TEXT, "live")
        link.click()
        count = lambda: int(browser.find_element(By.ID, "curves").get_attribute("data-records") or 0)  # noqa: E731
        first = wait_for(lambda: (n := _safe(count)) and n > 0 and n)
        wait_for(lambda: (_safe(count) or 0) > first, timeout=60)  # grew while training, without a reload
        browser.save_screenshot(str(tmp_path / "live.png"))
    finally:
        thread.join(120)
    lines = records(live_dir)
    wait_for(lambda: _safe(count) == len(lines), timeout=30)  # every record of metrics.jsonl is on the page
    losses = sum("loss" in r for r in lines) + sum("val_loss" in r for r in lines)
    svg = browser.find_element(By.CSS_SELECTOR, "svg[data-title='loss']")
    assert int(svg.get_attribute("data-points")) == losses
    assert "completed" in wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "h1 .status").text == "completed"
                                   and "completed")  # fmt: skip
    browser.save_screenshot(str(tmp_path / "run.png"))

    from tunelab.ui.server import run_id

    ids = [run_id(str(p.resolve())) for p in (done.dir, live_dir)]
    browser.get(url + f"/#/compare/{ids[0]},{ids[1]}")
    legend = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#overlay .legend"))
    assert {"finished", "live"} <= {s.text.strip("━ ").strip() for s in legend[0].find_elements(By.TAG_NAME, "span")}
    assert "train.max_steps" in browser.find_element(By.TAG_NAME, "main").text  # the recipe diff
    browser.save_screenshot(str(tmp_path / "compare.png"))
    assert all((tmp_path / f).stat().st_size > 10_000 for f in ("runs.png", "live.png", "run.png", "compare.png"))


def _safe(f):
    try:
        return f()
    except Exception:  # noqa: BLE001 — the page is redrawn between two lookups
        return None
