"""`python3 course.py lab` opens JupyterLab without the "get notified about Jupyter news?" prompt.

JupyterLab asks while its `fetchNews` setting is "none". course.py writes a settings override
(as binder/postBuild does on Binder); a real JupyterLab server then reports "false" as its default.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import course

NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_jupyterlab_does_not_ask_about_news(tmp_path):
    course.no_news_prompt()  # what `python3 course.py lab` does first, to this venv's JupyterLab
    port, token = free_port(), "course-test"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1"]
    command += [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    lab = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/lab/api/settings/{NOTIFICATION}?token={token}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    settings = json.load(response)
                break
            except OSError:
                assert lab.poll() is None, "jupyter lab exited"
                time.sleep(0.5)
        else:
            raise AssertionError("jupyter lab did not answer within a minute")
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    # Overrides change the defaults the frontend merges with the user's (empty) settings.
    defaults = {name: spec.get("default") for name, spec in settings["schema"]["properties"].items()}
    assert "fetchNews" not in settings["settings"], "a user setting would hide what this test checks"
    assert defaults["fetchNews"] == "false"  # "none" makes JupyterLab ask
    assert defaults["checkForUpdates"] is False
