"""JupyterHub for a room: three users run notebook 00 through the hub, on ONE shared server, each
as a PostgreSQL role of their own.

The hub runs hub/jupyterhub_config.py as it is: SimpleLocalProcessSpawner (every user's server
runs as this test's own OS user, each with a home of its own), a dummy authenticator, and an
admin service token the test drives everything with, over the hub's REST API only:
create users, start their servers, then, through the proxy, start a kernel on each user's
server and execute notebook 00's cells over the kernel's websocket, as JupyterLab does.
The shared server is a private embedded PostgreSQL listening on TCP with passwords; the roles
come from ``python -m coursedb room add``, whose credentials file the hub reads at each spawn.

configurable-http-proxy comes from npm, installed into hub/.proxy/ (not global) on first use;
without npm the test is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO
from urllib.parse import quote

import asyncpg
import nbformat
import pytest
from filelock import FileLock

from tests.helpers import ROOT, cli, tcp_server

HUB = ROOT / "hub"
PROXY_VERSION = "5.3.0"  # configurable-http-proxy, from the npm registry
PROXY = HUB / ".proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = ["ada", "grace", "linus"]
NOTEBOOK = ROOT / "notebooks" / "00_start_here.ipynb"
START_TIMEOUT = 180

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="JupyterHub's local spawners need a POSIX system")


def install_proxy() -> str | None:
    """Path of configurable-http-proxy, installed into hub/.proxy/ if needed; None if npm cannot.

    One install at a time: the hub's tests may run at once on two xdist workers of a fresh clone."""
    npm = shutil.which("npm")
    if npm is None:
        return str(PROXY) if PROXY.exists() else None
    PROXY.parents[2].mkdir(parents=True, exist_ok=True)
    with FileLock(PROXY.parents[2] / ".install.lock", timeout=400):
        if PROXY.exists():
            return str(PROXY)
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(PROXY.parents[2]),
             f"configurable-http-proxy@{PROXY_VERSION}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    return str(PROXY) if done.returncode == 0 and PROXY.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    async def api(self, method: str, path: str, body: dict | None = None, expect_error: bool = False):
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        request = HTTPRequest(
            self.base + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=json.dumps(body or {}) if method in ("POST", "PATCH") else None,
            allow_nonstandard_methods=True,
            request_timeout=120,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if expect_error:
            assert response.code >= 400, (method, path, response.code, response.body[:500])
            return response.body.decode(errors="replace")
        assert response.code < 400, (method, path, response.code, response.body[:500])
        return json.loads(response.body) if response.body else None

    async def wait_ready(self, user: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            info = await self.api("GET", f"/hub/api/users/{user}")
            server = (info.get("servers") or {}).get("", {})
            if server.get("ready"):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"{user}'s server did not become ready in {START_TIMEOUT} s")

    async def run_notebook(self, user: str, nb, after: str = "") -> list[dict]:
        """Start a kernel on the user's server (cwd notebooks/) and execute every code cell in order,
        then ``after`` if given.

        Returns per cell: status ('ok' or 'error'), its text output, and its tags.
        """
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        kernel = await self.api("POST", f"/user/{user}/api/kernels", {"name": "python3", "path": "notebooks"})
        url = f"ws://{self.base.removeprefix('http://')}/user/{user}/api/kernels/{kernel['id']}/channels"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {self.token}"}))
        session = uuid.uuid4().hex
        results = []
        try:
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                results.append(await execute(ws, session, cell.source) | {"tags": cell.metadata.get("tags", [])})
            if after:
                results.append(await execute(ws, session, after) | {"tags": []})
        finally:
            ws.close()
            await self.api("DELETE", f"/user/{user}/api/kernels/{kernel['id']}")
        return results


async def execute(ws, session: str, code: str) -> dict:
    msg_id = uuid.uuid4().hex
    await ws.write_message(
        json.dumps({
            "header": {"msg_id": msg_id, "session": session, "username": "test", "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        })
    )  # fmt: skip
    text, status, idle = [], None, False
    while status is None or not idle:
        raw = await asyncio.wait_for(ws.read_message(), timeout=300)
        assert raw is not None, "the kernel's websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            text.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            text.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "execute_reply":
            status = content["status"]
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return {"status": status, "text": "".join(text)}


def start_hub(credentials: Path, tmp_path: Path, proxy: str, **settings: str) -> tuple[subprocess.Popen, int, IO]:
    """hub/jupyterhub_config.py as it is, on free ports, logging to tmp_path/hub.log: (process, port, log)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEDB_", "PYTEST_", "JUPYTER"))}
    env.update(
        COURSE_HUB_ROOM_CREDENTIALS=str(credentials),
        COURSE_HUB_STATE=str(tmp_path / "state"),
        COURSE_HUB_PORT=str(port),
        COURSE_HUB_API_PORT=str(free_port()),
        COURSE_HUB_HUB_PORT=str(free_port()),
        COURSE_HUB_PROXY=proxy,
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        **settings,
    )
    log = open(tmp_path / "hub.log", "w")  # noqa: SIM115 (closed by stop_hub)
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(HUB / "jupyterhub_config.py")],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return process, port, log


def stop_hub(process: subprocess.Popen, log: IO) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the hub stops the users' servers, its services and the proxy
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    log.close()


@pytest.fixture
def room_server(home, tmp_path):
    """A private embedded server on TCP, a role per user made by `room add`: (credentials file, admin URL)."""
    with tcp_server() as server:
        credentials = tmp_path / "room-credentials.json"
        made = cli(
            home, "room", "add", *USERS, "--credentials", str(credentials),
            COURSEDB_BACKEND="url", COURSEDB_URL=server.url,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        yield credentials, server.admin_url


# Run in each user's kernel after the notebook: who the kernel logs in as, and who owns its database.
WHO = """
import asyncpg, coursedb
_conn = await asyncpg.connect(coursedb.database_url())
print("ROLE", await _conn.fetchval(
    "SELECT current_user || ' owns:' || pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
))
await _conn.close()
"""


@pytest.mark.timeout(900)
def test_three_users_run_notebook_00_through_the_hub_on_one_shared_server(room_server, tmp_path):
    proxy = install_proxy()
    if proxy is None:
        pytest.skip("configurable-http-proxy could not be installed (npm missing or the npm registry unreachable)")
    credentials, admin_url = room_server
    roles = {user: entry["role"] for user, entry in json.loads(credentials.read_text())["learners"].items()}
    token = secrets.token_hex(16)
    hub_process, port, log = start_hub(credentials, tmp_path, proxy, COURSE_HUB_SERVICE_TOKEN=token)
    hub = Hub(port, token)
    nb = nbformat.read(NOTEBOOK, as_version=4)

    async def scenario() -> dict[str, list[dict]]:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                await hub.api("GET", "/hub/api/")
                break
            except (OSError, AssertionError):
                assert hub_process.poll() is None, "the hub exited: " + (tmp_path / "hub.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the hub did not answer"
                await asyncio.sleep(0.5)
        for user in USERS:
            await hub.api("POST", f"/hub/api/users/{quote(user)}")
            await hub.api("POST", f"/hub/api/users/{quote(user)}/server")
        await asyncio.gather(*(hub.wait_ready(user) for user in USERS))
        runs = await asyncio.gather(*(hub.run_notebook(user, nb, after=WHO) for user in USERS))
        # A user the instructor gave no role cannot start a server; the hub says what to run.
        await hub.api("POST", "/hub/api/users/mallory")
        refused = await hub.api("POST", "/hub/api/users/mallory/server", expect_error=True)
        return dict(zip(USERS, runs, strict=True)), refused

    try:
        runs, refused = asyncio.run(scenario())
    finally:
        stop_hub(hub_process, log)

    databases = {}
    for user, cells in runs.items():
        for cell in cells:
            if "raises-exception" not in cell["tags"]:
                assert cell["status"] == "ok", f"{user}: {cell['text'][-3000:]}"
        assert "Ready" in cells[0]["text"], (user, cells[0]["text"])
        found = [word for cell in cells for word in cell["text"].split() if word.startswith("coursedb_")]
        assert found, (user, "notebook 00 names its database in the setup check")
        databases[user] = found[0].strip("'\",")
        # The kernel logged in as this user's own role, which owns the kernel's database.
        assert f"ROLE {roles[user]} owns:{roles[user]}" in cells[-1]["text"], (user, cells[-1]["text"])
    # Every user's kernel had a database of its own, all on the one shared server, each made by its user's role.
    assert len(set(databases.values())) == len(USERS), databases
    assert "mallory has no database role yet; the instructor runs: python -m coursedb room add mallory" in refused
    assert (tmp_path / "state" / "coursedb" / "ada").is_dir()

    async def leftovers() -> list[str]:
        conn = await asyncpg.connect(admin_url)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", list(databases.values())
            )
            return [row["datname"] for row in rows]
        finally:
            await conn.close()

    # Stopping the hub ended the kernels, and each kernel dropped its database as it went.
    deadline = time.monotonic() + 30
    while (left := asyncio.run(leftovers())) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], left
