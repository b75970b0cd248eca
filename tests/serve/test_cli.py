"""`tunelab serve` as a command: safe bind defaults, names, and SIGTERM draining the requests in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx2
import pytest

from tests.serve.conftest import free_port

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)


def tunelab(*args, env=None, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "tunelab.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})}, **kwargs,
    )  # fmt: skip


def test_binding_beyond_loopback_without_a_key_is_refused(served_runs):
    proc = tunelab("serve", str(served_runs["sentiment"]), "--host", "0.0.0.0", env={"TUNELAB_API_KEY": ""})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "without an API key" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [(["--name", "a=X", "--name", "a=Y"], "given twice"), (["--name", "nonsense"], "NAME=RUN"), ([], "Give the runs")],
)
def test_names_must_be_unique_and_well_formed(args, message):
    proc = tunelab("serve", *args)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and message in err


def test_two_runs_with_one_folder_name_are_an_error(served_runs, tmp_path):
    import shutil

    other = tmp_path / "sentiment"
    shutil.copytree(served_runs["sentiment"], other)
    proc = tunelab("serve", str(served_runs["sentiment"]), str(other))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--name" in err


def test_sigterm_finishes_the_request_in_flight_then_exits(served_runs):
    port = free_port()
    proc = tunelab("serve", "--name", f"bot={served_runs['chatbot']}", "--port", str(port), "--max-tokens", "200")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx2.get(f"{url}/health").status_code == 200:
                break
        except httpx2.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.2)
    answers = []
    body = {"model": "bot", "prompt": ["Once upon a time"] * 64, "max_tokens": 200, "stop": ["\u2603"]}

    def ask():
        answers.append(httpx2.post(f"{url}/v1/completions", json=body, timeout=120))
        answers.append(time.monotonic())

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(0.5)  # the request is being decoded
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    asking.join(timeout=120)
    assert answers[1] > signalled, "the request ended before the signal: it tests nothing"
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["usage"]["completion_tokens"] > 0
    # uvicorn re-raises the signal once drained, so the exit status says "ended by SIGTERM", as a supervisor expects
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Finished server process" in proc.stderr.read()
