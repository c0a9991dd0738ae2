"""The instructor's view of a room: `coursedb status` counts connections and headroom, `coursedb room N` sizes it."""

from __future__ import annotations

import asyncio
import re

import asyncpg

import coursedb
from coursedb import room
from tests.helpers import cli, settings_for

HEADROOM = re.compile(
    r"connections: (\d+) of max_connections (\d+) in use \((\d+) reserved for superusers\): room for (\d+)"
)


def headroom_line(home) -> tuple[int, int, int, int]:
    result = cli(home, "status")
    assert result.returncode == 0, result.stderr
    match = HEADROOM.search(result.stdout)
    assert match, result.stdout
    return tuple(int(x) for x in match.groups())


def test_status_counts_the_connections_in_use_and_the_headroom_left(home):
    assert cli(home, "start").returncode == 0
    admin_url = coursedb.status(settings_for(home)).state.admin_url
    used, max_connections, reserved, free = headroom_line(home)
    assert free == max_connections - reserved - used

    async def hold_three_and_look() -> tuple[int, int, int, int]:
        held = [await asyncpg.connect(admin_url) for _ in range(3)]
        try:
            return await asyncio.to_thread(headroom_line, home)
        finally:
            for conn in held:
                await conn.close()

    used_now, _, _, free_now = asyncio.run(hold_three_and_look())
    assert used_now == used + 3
    assert free_now == free - 3


def test_room_says_what_n_learners_need(home):
    result = cli(home, "room", "60")  # starts nothing
    assert result.returncode == 0, result.stderr
    needs = room.room_needs(60)
    assert f"A room of 60 learners needs {needs['connections']} connections" in result.stdout
    assert f"max_connections = {needs['max_connections']}" in result.stdout
    assert needs["connections"] >= 60 * room.BUDGET


LOG = """\
2026-11-25 10:00:00.001 UTC [11] LOG:  connection authorized: user=postgres database=coursedb_1_aaaaaa
2026-11-25 10:00:00.002 UTC [12] LOG:  connection authorized: user=postgres database=coursedb_1_aaaaaa
2026-11-25 10:00:00.003 UTC [12] LOG:  disconnection: session time: 0:00:00.001 user=postgres
2026-11-25 10:00:00.004 UTC [13] LOG:  connection authorized: user=postgres database=coursedb_1_aaaaaa
2026-11-25 10:00:00.005 UTC [14] LOG:  connection authorized: user=postgres database=coursedb_1_aaaaaa
2026-11-25 10:00:00.006 UTC [14] LOG:  disconnection: session time: 0:00:00.001 user=postgres
2026-11-25 10:00:00.007 UTC [13] LOG:  disconnection: session time: 0:00:00.003 user=postgres
2026-11-25 10:00:00.008 UTC [15] LOG:  connection authorized: user=postgres database=coursedb_1_aaaaaa
"""


def test_connection_peaks_replay_the_log_and_leave_out_skipped_spans():
    """The peak is counted, not sampled: sessions 11, 13 and 14 were open at once. Sessions that start
    in a skipped span (a wrong answer's run) are not counted, nor are their disconnections."""
    peaks = room.connection_peaks(LOG)
    assert (peaks.total, peaks.sessions) == (3, 5)
    assert LOG[peaks.peak_at :].startswith("2026-11-25 10:00:00.005 UTC [14]")
    span = (LOG.index("10:00:00.004") - 11, LOG.index("10:00:00.006") - 11)  # sessions 13 and 14 start here
    skipped = room.connection_peaks(LOG, skipped=[span])
    assert (skipped.total, skipped.sessions) == (2, 3)
