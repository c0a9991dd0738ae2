"""A full room server says so: one sentence in the cell, never asyncpg's traceback.

A stock PostgreSQL with a tiny max_connections plays the room's shared server; a real kernel
runs notebook cells against it through COURSEDB_URL, as a learner in that room would.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import nbformat
import pytest
from nbclient import NotebookClient

pytest.importorskip("pwd", reason="a Debian PostgreSQL run as its own user: Linux only")

from coursebook.system_postgres import available, system_postgres
from coursedb import room
from tests.helpers import ROOT, env_for

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

SENTENCE = "The course's shared PostgreSQL server refused a new connection"


def text_of(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("evalue", "") + "\n".join(output.get("traceback", [])))
        parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


async def fill(url: str, keep: list) -> None:
    """Open connections as the room's role until the server refuses one; keep them open.

    Filled again after a pause: the kernel's failed pool may still be closing what it opened.
    """
    for _ in range(3):
        for _ in range(50):
            try:
                keep.append(await asyncpg.connect(url, timeout=10))
            except asyncpg.TooManyConnectionsError:
                break
        else:
            raise AssertionError("the server never filled up")
        await asyncio.sleep(0.5)


@pytest.mark.timeout(300)
def test_a_full_server_is_one_sentence_in_plain_cells_and_in_ipytest(home):
    cells = [
        "from coursedb.notebook import setup\n\ndb_url = setup()",
        "import asyncpg\n\nbig_pool = await asyncpg.create_pool(db_url, min_size=20, max_size=20)",
        "conn = await asyncpg.connect(db_url)",  # run after the test filled every remaining slot
        "%%ipytest\n\n\nasync def test_uses_the_pool(db_pool):\n    assert await db_pool.fetchval('SELECT 1') == 1",
        "%%ipytest\nimport asyncpg\n\n\nasync def test_own_pool(db_url):\n    await asyncpg.create_pool(db_url)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    # 8 slots, 3 of them reserved for superusers: the room's role gets 5.
    with system_postgres(max_connections=8) as pg:
        env = env_for(home, COURSEDB_BACKEND="url", COURSEDB_URL=pg.room_url)
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": str(ROOT / "notebooks")}},
        )  # fmt: skip
        held: list = []
        loop = asyncio.new_event_loop()
        try:
            with client.setup_kernel(env=env):
                client.execute_cell(nb.cells[0], 0)
                assert "Ready" in text_of(nb.cells[0]), text_of(nb.cells[0])
                client.execute_cell(nb.cells[1], 1)
                loop.run_until_complete(fill(pg.room_url, held))
                client.execute_cell(nb.cells[2], 2)
                client.execute_cell(nb.cells[3], 3)
                client.execute_cell(nb.cells[4], 4)
        finally:
            for conn in held:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(conn.close())
            loop.close()
    # 1, 2: plain cells; 3: the db_pool fixture; 4: a test's own pool (coursedb.pytest_room).
    for index in (1, 2, 3, 4):
        text = text_of(nb.cells[index])
        assert SENTENCE in text, (index, text)
        assert "max_connections" in text and "instructor" in text, text
        # No traceback through asyncpg (ipytest may still show its own one-frame error).
        assert "asyncpg/" not in text and "asyncpg.exceptions" not in text, (index, text)
    # Plain cells: only the sentence, as the custom exception handler prints it.
    for index in (1, 2):
        lines = [line for line in text_of(nb.cells[index]).splitlines() if line.strip()]
        refused = asyncpg.TooManyConnectionsError("sorry, too many clients already")
        assert lines == [f"coursedb: {room.full_server_message(refused)}"], lines


def test_a_role_at_its_connection_limit_names_the_role_and_the_fix():
    async def scenario(pg) -> str:
        admin = await asyncpg.connect(pg.superuser_url)
        try:
            await admin.execute("ALTER ROLE room CONNECTION LIMIT 1")
        finally:
            await admin.close()
        first = await asyncpg.connect(pg.room_url)
        try:
            with pytest.raises(asyncpg.TooManyConnectionsError) as refused:
                await asyncpg.connect(pg.room_url)
        finally:
            await first.close()
        return room.full_server_message(refused.value)

    with system_postgres(max_connections=20) as pg:
        message = asyncio.run(scenario(pg))
    assert "the role room already has as many connections open as its CONNECTION LIMIT allows" in message
    assert "ALTER ROLE room CONNECTION LIMIT" in message and "instructor" in message
