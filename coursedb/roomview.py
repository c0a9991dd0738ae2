"""The instructor's live view of a room: ``python -m coursedb room view``.

A page served from the room server's own data (the outcomes table of ``coursedb.progress``):
a grid of learners × exercises (passed / trying / not started), per exercise how many are stuck
(``progress.STUCK_AFTER`` failed runs and never passed) and the checks they fail most, counted
by check id (the test's name) with the sentence one of them said; who has run no checker for
``IDLE_AFTER``; the connections in use against the room's budget. The page refreshes itself
every few seconds and exports CSV.

It runs on the instructor's role, which owns the outcomes table and so reads every learner's
rows (row-level security shows a learner's role only its own). It uses ONE connection.

Standalone it listens on 127.0.0.1 and asks for the token printed at start (kept in a cookie).
As a JupyterHub service (``hub/jupyterhub_config.py``) the hub's OAuth decides: only hub users
granted ``access:services!service=<name>`` (the instructor's hub role) get in.

Starlette serves it (the course already has it); uvicorn, from the instructors' requirement set,
runs it. Neither is imported before the view is started.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from . import progress, room

IDLE_AFTER = timedelta(minutes=10)
REFRESH_S = 5
TOP_CHECKS = 3  # failing checks listed per exercise
COOKIE = "coursedb_room_view"
URL_ENV = "COURSE_ROOM_VIEW_URL"  # the hub's service gets the instructor's URL here


# --- the data ---------------------------------------------------------------------------------


@dataclass
class Learner:
    role: str
    name: str  # as shown: the hub's user name where the role says it, else the role
    connections: int = 0
    limit: int | None = None  # the role's CONNECTION LIMIT, None when unlimited
    last_seen: datetime | None = None  # last checker run, else when its first session started
    ran_checker: bool = False


@dataclass
class Failing:
    check: str
    said: str  # the sentence most of them saw
    learners: int


@dataclass
class ExerciseSummary:
    exercise: str
    book: str
    stuck: list[str] = field(default_factory=list)  # names
    failing: list[Failing] = field(default_factory=list)
    passed: int = 0
    trying: int = 0


@dataclass
class Room:
    now: datetime
    learners: list[Learner]
    books: list[progress.BookExercises]
    standings: dict[tuple[str, str], progress.Standing]
    exercises: list[ExerciseSummary]
    headroom: dict

    @property
    def idle(self) -> list[Learner]:
        return [x for x in self.learners if x.last_seen is None or self.now - x.last_seen >= IDLE_AFTER]

    def standing(self, learner: Learner, exercise: str) -> progress.Standing:
        return self.standings.get((learner.role, exercise)) or progress.Standing()


SESSIONS_SQL = """
SELECT a.usename AS role, count(*) AS connections, min(a.backend_start) AS first_start
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
GROUP BY a.usename
"""
# Every learner's role (`room add` marks it with the learner's name: the hub's user name), every role with
# outcomes or sessions; superusers and the view's own role are not learners.
ROLES_SQL = """
SELECT rolname AS role, rolconnlimit AS connlimit, shobj_description(oid, 'pg_authid') AS mark
FROM pg_roles
WHERE NOT rolsuper AND rolname <> current_user
  AND (shobj_description(oid, 'pg_authid') LIKE $1 || '%' OR rolname = ANY($2::text[]))
"""


def shown_name(role: str, mark: str | None) -> str:
    """The learner's name as the room knows it (the hub's user name): from the mark `room add` left."""
    if mark and mark.startswith(room._LEARNER_MARK):
        return mark.removeprefix(room._LEARNER_MARK).strip() or role
    return role


async def gather(conn: asyncpg.Connection, books: Sequence[progress.BookExercises]) -> Room:
    """Everything the page shows, read from the room's server in a few statements."""
    now = await conn.fetchval("SELECT now()")
    outcomes = await progress.fetch(conn)
    sessions = {row["role"]: row for row in await conn.fetch(SESSIONS_SQL)}
    seen = sorted({o.learner for o in outcomes} | set(sessions))
    by_role: dict[str, Learner] = {}
    for row in await conn.fetch(ROLES_SQL, room._LEARNER_MARK, seen):
        session = sessions.get(row["role"])
        by_role[row["role"]] = Learner(
            row["role"],
            shown_name(row["role"], row["mark"]),
            session["connections"] if session else 0,
            None if row["connlimit"] < 0 else row["connlimit"],
            session["first_start"] if session else None,
        )
    for learner in {o.learner for o in outcomes} - set(by_role):
        by_role[learner] = Learner(learner, learner)  # a role dropped since (or a superuser's test runs)
    standings = progress.standings(outcomes)
    last_run: dict[str, datetime] = {}
    for (role, _exercise), s in standings.items():
        if s.last_at is not None and (role not in last_run or s.last_at > last_run[role]):
            last_run[role] = s.last_at
    for role, at in last_run.items():  # without any checker run, the first session says since when
        by_role[role].last_seen, by_role[role].ran_checker = at, True
    learners = sorted(by_role.values(), key=lambda x: (x.name.lower(), x.role))
    summaries = [summarize(ex, book.stem, learners, standings) for book in books for ex in book.exercises]
    return Room(now, learners, list(books), standings, summaries, await room.headroom(conn))


def summarize(
    exercise: str, book: str, learners: Sequence[Learner], standings: dict[tuple[str, str], progress.Standing]
) -> ExerciseSummary:
    """Per exercise: who is stuck, and the checks failed by the latest run of those not passed yet."""
    summary = ExerciseSummary(exercise, book)
    counts: Counter[str] = Counter()
    said: dict[str, Counter[str]] = {}
    for learner in learners:
        s = standings.get((learner.role, exercise))
        if s is None:
            continue
        if s.passed:
            summary.passed += 1
            continue
        summary.trying += 1
        if s.stuck:
            summary.stuck.append(learner.name)
        for check in {f.check for f in s.last_failed}:  # each learner counts once per check
            counts[check] += 1
        for f in s.last_failed:
            said.setdefault(f.check, Counter())[f.said] += 1
    summary.failing = [
        Failing(check, said[check].most_common(1)[0][0], n) for check, n in counts.most_common(TOP_CHECKS)
    ]  # fmt: skip
    return summary


# --- the page ---------------------------------------------------------------------------------


def readable(check: str) -> str:
    """test_cancel_twice -> 'cancel twice'."""
    return check.removeprefix("test_").replace("_", " ")


def ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"


STYLE = """
body { font: 14px/1.35 system-ui, sans-serif; margin: 1rem 1.5rem; color: #222; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
.meta { color: #555; } .meta b { color: #222; } a { color: #1458a8; }
table.grid { border-collapse: collapse; margin-top: .6rem; }
.grid th, .grid td { border: 1px solid #ddd; padding: 2px 5px; text-align: center; white-space: nowrap; }
.grid th.learner, .grid td.learner { text-align: left; }
.grid thead th { background: #f4f4f4; font-weight: 600; font-size: 12px; }
td.passed { background: #c8e6c9; } td.trying { background: #fff3c4; }
td.stuck { background: #ffcdd2; font-weight: 700; }
td.none { color: #bbb; } td.over { background: #ffcdd2; } tr.idle td.learner { color: #a15c00; }
table.ex { border-collapse: collapse; margin: .4rem 0 .8rem; }
.ex th, .ex td { border-bottom: 1px solid #e4e4e4; padding: 3px 8px; text-align: left; vertical-align: top; }
.ex thead th { font-size: 12px; color: #555; } .said { color: #555; } #idle { margin: .3rem 0; }
.legend span { display: inline-block; padding: 0 .4rem; margin-right: .4rem; border: 1px solid #ddd; }
"""

SCRIPT = """
setInterval(async () => {
  try {
    const r = await fetch(location.pathname + '?part=room', {credentials: 'same-origin'});
    if (r.ok) { document.getElementById('room').innerHTML = await r.text(); }
  } catch (e) { /* the server restarts: keep the last picture, try again */ }
}, REFRESH_MS);
"""


def render_room(data: Room, csv_href: str = "room.csv") -> str:
    """The part of the page that refreshes: a summary line, the exercises where learners are stuck or
    failing (what to explain next), who has gone quiet, then the grid."""
    e = html.escape
    h = data.headroom
    stuck_total = len({n for s in data.exercises for n in s.stuck})
    minutes = int(IDLE_AFTER.total_seconds() // 60)
    out = [
        f'<p class="meta"><b>{len(data.learners)}</b> learners · <b>{stuck_total}</b> stuck · '
        f"<b>{len(data.idle)}</b> with no checker run for {minutes} min · connections "
        f'<b id="connections">{h["used"]} of {h["max_connections"] - h["reserved"]}</b> '
        f"(budget {room.BUDGET} per learner; room for about {h['headroom'] // room.BUDGET} more learners) · "
        f'as of {data.now.strftime("%H:%M:%S")} · <a id="csv" href="{e(csv_href)}" download>CSV</a></p>'
    ]
    out.append(
        '<table class="ex" id="exercises"><thead><tr><th>exercise</th><th>passed</th><th>trying</th>'
        f"<th>stuck ({progress.STUCK_AFTER}+ failed runs)</th><th>most failed checks "
        "(latest run of those not passed yet)</th></tr></thead><tbody>"
    )
    busy = [s for s in data.exercises if s.trying]
    for s in busy:
        checks = "<br>".join(
            f'<span data-check="{e(f.check)}"><b>{e(readable(f.check))}</b>: <span class="said">{e(f.said)}</span>'
            f' — <span class="count">{f.learners}</span> learner{"s" if f.learners != 1 else ""}</span>'
            for f in s.failing
        )
        stuck = f'<span class="count">{len(s.stuck)}</span>' + (f" ({e(', '.join(s.stuck))})" if s.stuck else "")
        out.append(
            f'<tr data-exercise="{e(s.exercise)}"><td><b>{e(s.exercise)}</b></td><td>{s.passed}</td>'
            f'<td>{s.trying}</td><td class="stuck-names">{stuck}</td><td class="checks">{checks}</td></tr>'
        )
    if not busy:
        out.append('<tr><td colspan="5">nobody is trying an exercise without passing it</td></tr>')
    out.append("</tbody></table>")
    idle = ", ".join(f'<span data-learner="{e(x.name)}">{e(x.name)}</span>' for x in data.idle) or "nobody"
    out.append(f'<p id="idle"><b>No checker run for {minutes} min:</b> {idle}</p>')
    out.append(
        '<p class="legend"><span style="background:#c8e6c9">✓ passed</span>'
        '<span style="background:#fff3c4">n: failed runs, trying</span>'
        f'<span style="background:#ffcdd2">stuck: {progress.STUCK_AFTER}+ failed, none passed</span>'
        '<span style="color:#999">· not started</span></p>'
    )
    out.append('<table class="grid" id="grid"><thead><tr><th class="learner" rowspan="2">learner</th>')
    for book in data.books:
        if book.exercises:
            out.append(f'<th colspan="{len(book.exercises)}" title="{e(book.title)}">{e(book.stem[:2])}</th>')
    out.append('<th rowspan="2">connections</th><th rowspan="2">last checker run</th></tr><tr>')
    out += [f"<th>{e(s.exercise)}</th>" for s in data.exercises]
    out.append("</tr></thead><tbody>")
    idle_roles = {x.role for x in data.idle}
    for learner in data.learners:
        row = ' class="idle"' if learner.role in idle_roles else ""
        out.append(f'<tr{row} data-learner="{e(learner.name)}"><td class="learner">{e(learner.name)}</td>')
        for summary in data.exercises:
            s = data.standing(learner, summary.exercise)
            status = "stuck" if s.stuck else {"passed": "passed", "trying": "trying"}.get(s.status, "none")
            text = "✓" if s.passed else (str(s.failed_runs) if s.runs else "·")
            tip = f"{summary.exercise}: {s.status}, {s.runs} run(s)"
            if not s.passed and s.last_failed:
                tip += " — " + "; ".join(f"{readable(f.check)}: {f.said}" for f in s.last_failed)
            out.append(f'<td class="{status}" data-status="{s.status}" title="{e(tip)}">{text}</td>')
        limit = learner.limit if learner.limit is not None else room.BUDGET
        over = " over" if learner.connections > limit else ""
        out.append(f'<td class="conn{over}">{learner.connections} / {limit}</td>')
        checker = ago(data.now, learner.last_seen) if learner.ran_checker else "none yet"
        out.append(f"<td>{e(checker)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_page(data: Room, refresh_s: float = REFRESH_S) -> str:
    script = SCRIPT.replace("REFRESH_MS", str(int(refresh_s * 1000)))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Room view · coursedb</title>'
        f"<style>{STYLE}</style></head><body><h1>Room view</h1>"
        f'<div id="room">{render_room(data)}</div><script>{script}</script></body></html>'
    )


CSV_FIELDS = [
    "learner", "role", "notebook", "exercise", "status", "stuck", "checker_runs", "failed_runs",
    "last_run_utc", "failing_checks", "connections",
]  # fmt: skip


def render_csv(data: Room) -> str:
    """One row per learner and exercise, as the grid shows it, plus the latest run's failing check ids."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for learner in data.learners:
        for summary in data.exercises:
            s = data.standing(learner, summary.exercise)
            failing = "" if s.passed else ";".join(f.check for f in s.last_failed)
            last = s.last_at.isoformat() if s.last_at else ""
            writer.writerow([
                learner.name, learner.role, summary.book, summary.exercise, s.status, int(s.stuck), s.runs,
                s.failed_runs, last, failing, learner.connections,
            ])  # fmt: skip
    return buffer.getvalue()


# --- the web app ------------------------------------------------------------------------------


class Source:
    """The view's one connection to the room's server, re-opened if the server restarted."""

    def __init__(self, url: str, books: Sequence[progress.BookExercises]) -> None:
        self.url, self.books = url, list(books)
        self.conn: asyncpg.Connection | None = None
        self.lock = asyncio.Lock()

    async def room(self) -> Room:
        async with self.lock:
            for attempt in (1, 2):
                if self.conn is None or self.conn.is_closed():
                    self.conn = await asyncpg.connect(self.url, timeout=10, server_settings={
                        "application_name": "coursedb room view"})  # fmt: skip
                try:
                    return await gather(self.conn, self.books)
                except (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError, OSError):
                    self.conn = None  # lost: one more try on a new session
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.conn is not None and not self.conn.is_closed():
            await self.conn.close()


def make_app(source: Source, token: str | None = None, hub: Any = None, refresh_s: float = REFRESH_S):
    """The Starlette app: ``/`` the page (``?part=room`` its refreshing part), ``/room.csv``.

    ``token``: standalone, the secret from the start line (``?token=`` once, then a cookie).
    ``hub``: a ``jupyterhub.services.auth.HubOAuth``: the hub's OAuth decides instead.
    """
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/") if hub is not None else "/"

    async def allowed(request: Request) -> Response | None:
        """None if the request may see the room; else the response that says why not (or logs in)."""
        if hub is not None:
            return await _hub_check(hub, request, prefix)
        if token is None:
            return None
        given = request.query_params.get("token")
        if given is not None and secrets.compare_digest(given, token):
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response
        cookie = request.cookies.get(COOKIE, "")
        if cookie and secrets.compare_digest(cookie, token):
            return None
        return PlainTextResponse(
            "This room view needs the link with ?token=... that 'python -m coursedb room view' printed.", 403
        )

    async def page(request: Request) -> Response:
        refused = await allowed(request)
        if refused is not None:
            return refused
        try:
            data = await source.room()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            return PlainTextResponse(f"The room's server did not answer ({exc}); this page tries again.", 503)
        if request.query_params.get("part") == "room":
            return HTMLResponse(render_room(data))
        return HTMLResponse(render_page(data, refresh_s))

    async def export(request: Request) -> Response:
        refused = await allowed(request)
        if refused is not None:
            return refused
        data = await source.room()
        stamp = data.now.strftime("%Y%m%d-%H%M")
        return Response(
            render_csv(data),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="room-{stamp}.csv"'},
        )

    async def callback(request: Request) -> Response:
        return await _hub_callback(hub, request, prefix)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await source.close()

    routes = [Route(prefix, page), Route(prefix + "room.csv", export)]
    if hub is not None:
        routes.append(Route(prefix + "oauth_callback", callback))
    return Starlette(routes=routes, lifespan=lifespan)


async def _hub_check(hub: Any, request: Any, prefix: str) -> Any:
    from starlette.responses import PlainTextResponse, RedirectResponse

    token = request.cookies.get(hub.cookie_name) or _bearer(request)
    user = await hub.user_for_token(token, sync=False) if token else None
    if user is None:
        verifier, challenge, method = hub.generate_pkce_code_challenge()
        state = hub.generate_state(next_url=str(request.url.path), code_verifier=verifier)
        login = f"{hub.login_url}&state={state}&code_challenge={challenge}&code_challenge_method={method}"
        response = RedirectResponse(login, status_code=302)
        response.set_cookie(hub.state_cookie_name, state, httponly=True, max_age=600, path=prefix)
        return response
    if not hub.check_scopes(hub.access_scopes, user):
        return PlainTextResponse(
            f"{user.get('name')} may not see the room view: the hub grants it to the instructor's role.", 403
        )
    return None


def _bearer(request: Any) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None


async def _hub_callback(hub: Any, request: Any, prefix: str) -> Any:
    from starlette.responses import PlainTextResponse, RedirectResponse

    code, state = request.query_params.get("code"), request.query_params.get("state")
    if not code or not state or state != request.cookies.get(hub.state_cookie_name):
        return PlainTextResponse(
            "The hub's login did not complete (its state did not match): open the page again.", 403
        )
    token = await hub.token_for_code(code, code_verifier=hub.get_code_verifier(state), sync=False)
    next_url = hub.get_next_url(state) or prefix
    hub.clear_oauth_state(state)
    response = RedirectResponse(next_url, status_code=302)
    response.set_cookie(hub.cookie_name, token, httponly=True, path=prefix, samesite="lax")
    response.delete_cookie(hub.state_cookie_name, path=prefix)
    return response


# --- starting it ---------------------------------------------------------------------------------


async def prepare(url: str) -> str:
    """Check the role can see the whole room (creating the outcomes table if missing); say what was done."""
    from .names import INSTRUCTOR_ROLE

    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await progress.create_table(conn, reader=INSTRUCTOR_ROLE)
    finally:
        await conn.close()


def outcomes_table(admin_url: str) -> str:
    """For ``room add``: make the outcomes table the room view reads (one line on what happened)."""
    from ._aio import run_sync

    try:
        return f"progress: {run_sync(prepare(admin_url))}"
    except ValueError as exc:
        return f"progress: {exc}"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
        return f"progress: could not make {progress.TABLE}: {exc}"


def serve(url: str, host: str = "127.0.0.1", port: int = 8765, refresh_s: float = REFRESH_S) -> None:
    """Run the view until Ctrl+C (standalone, or as the hub's service when the hub started it)."""
    import uvicorn

    hub = None
    token = None
    if os.environ.get("JUPYTERHUB_API_TOKEN") and os.environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        from jupyterhub.services.auth import HubOAuth

        hub = HubOAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
    else:
        token = secrets.token_urlsafe(16)
    app = make_app(Source(url, progress.course_exercises()), token=token, hub=hub, refresh_s=refresh_s)
    if token is not None:
        print(f"Room view: http://{host}:{port}/?token={token}   (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def port_free_on(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str]) -> int:
    """``python -m coursedb room view [--url URL] [--host H] [--port P] [--refresh S]``.

    The server: ``--url``, else $COURSE_ROOM_VIEW_URL (the hub's service), else the instructor's URL in the
    credentials file ``room add`` wrote, else COURSEDB_URL, else the running coursedb server."""
    import argparse

    from .errors import CourseDBError
    from .settings import Settings, describe_url

    parser = argparse.ArgumentParser(
        prog="python -m coursedb room view",
        description="Serve the instructor's live view of the room (learners × exercises) from the room's server.",
    )
    parser.add_argument("--url", help="the room's server as the instructor's role (default: see below)")
    parser.add_argument(
        "--credentials", type=Path, default=Path(room.CREDENTIALS_FILE),
        help=f"the file 'room add' wrote; its instructor's URL is the default (default {room.CREDENTIALS_FILE})",
    )  # fmt: skip
    hub = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))  # as a hub service: where the hub expects it
    parser.add_argument("--host", default=hub.hostname or "127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=hub.port or 8765, help="port to listen on (default 8765)")
    parser.add_argument("--refresh", type=float, default=REFRESH_S, help="seconds between the page's refreshes")
    args = parser.parse_args(argv)
    instructor = room.read_credentials(args.credentials).get("instructor") or {}
    url = args.url or os.environ.get(URL_ENV) or instructor.get("url") or Settings.from_env().url
    if not url:
        from . import server

        state = server.status(Settings.from_env()).state
        url = state.admin_url if state is not None else None
    if not url:
        raise CourseDBError(
            f"The room view needs the room's server: run it where {room.CREDENTIALS_FILE} is (python -m coursedb "
            "room add wrote it), or pass --url postgresql://coursedb_instructor:...@<host>/postgres."
        )
    try:
        said = asyncio.run(prepare(url))
    except ValueError as exc:
        raise CourseDBError(f"{exc}.") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
        raise CourseDBError(f"The room view cannot use {describe_url(url)}: {exc}") from None
    try:
        import uvicorn  # noqa: F401  (the ASGI server, from the instructors' set)
    except ImportError:
        raise CourseDBError(
            "The room view runs on uvicorn, which comes with the instructors' tools: python3 course.py setup --dev."
        ) from None
    if not port_free_on(args.host, args.port):
        raise CourseDBError(f"Port {args.port} is already in use on {args.host}; pass another one with --port.")
    print(f"Room view of {describe_url(url)}: {said}.", flush=True)
    serve(url, args.host, args.port, args.refresh)
    return 0
