"""A room with a role per learner, on a stock Debian PostgreSQL 15: no learner reaches another.

``python -m coursedb room add`` makes the roles (and the instructor's); then one learner (bob)
attacks another (ada) in every way a learner in the same room could:
connect to ada's database, read her rows, drop it, end her session, sweep it, plant her template
(under the name she would use, marked IS_TEMPLATE, before she builds it), share hers through a
long similar role name, and hold her template build lock. Every attack fails; ada's work goes on.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import asyncpg
import nbformat
import pytest
from nbclient import NotebookClient

pytest.importorskip("pwd", reason="a Debian PostgreSQL run as its own user: Linux only")

from coursebook.system_postgres import available, system_postgres
from coursedb import names, room
from coursedb.migrate import schema_fingerprint
from tests.helpers import (
    ROOT,
    assert_one_line_error,
    cleanup,
    cli,
    dbname,
    end_owner,
    env_for,
    fetch,
    make_home,
    run,
    start_owner,
)

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

# Two learners whose names agree on their first 50 characters: cut at 63, their templates' names
# were one and the same.
LONG = "learner_with_a_rather_long_name_from_the_university_"
LEARNERS = ["ada", "bob", LONG + "one", LONG + "two"]
LARGEST = ROOT / "notebooks" / "07_putting_it_together.ipynb"  # the most connections at once (its header states it)


@pytest.fixture(scope="module")
def pg():
    with system_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def roles(pg, tmp_path_factory):
    """``room add`` for every learner; the credentials file it wrote, read back."""
    folder = tmp_path_factory.mktemp("room")
    path = folder / room.CREDENTIALS_FILE
    home = make_home()
    try:
        result = cli(home, "room", "add", *LEARNERS, "--credentials", str(path), **admin(pg))
        assert result.returncode == 0, result.stderr
    finally:
        cleanup(home)
    return json.loads(path.read_text())


def admin(pg) -> dict[str, str]:
    return {"COURSEDB_BACKEND": "url", "COURSEDB_URL": pg.superuser_url}


def as_learner(roles: dict, learner: str) -> dict[str, str]:
    return {"COURSEDB_BACKEND": "url", "COURSEDB_URL": roles["learners"][learner]["url"]}


def url_of(login_url: str, database: str) -> str:
    """Database ``database`` on the same server, logged in as ``login_url``'s role."""
    return login_url.replace("/postgres?", f"/{database}?", 1)


def same_server(url: str, login_url: str) -> str:
    """``url``'s database, logged in as ``login_url``'s role."""
    return url_of(login_url, dbname(url))


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def learner_homes():
    homes = {}

    def home_of(learner: str) -> Path:
        if learner not in homes:
            homes[learner] = make_home()
        return homes[learner]

    yield home_of
    for home in homes.values():
        cleanup(home)


# --- room add ---------------------------------------------------------------------------------


def test_room_add_makes_one_role_per_learner_and_an_instructor_idempotently(pg, tmp_path, home):
    path = tmp_path / "credentials.json"
    first = cli(home, "room", "add", "cleo", "Dan.Brown@uni.edu", "--credentials", str(path), **admin(pg))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("instructor: role coursedb_instructor (")
    assert lines[1] == (
        f"cleo: role coursedb_learner_cleo (made; CREATEDB, CONNECTION LIMIT {room.LEARNER_CONNECTION_LIMIT}); "
        f"its COURSEDB_URL is in {path}"
    )
    assert lines[2].startswith("Dan.Brown@uni.edu: role coursedb_learner_dan_brown_uni_edu_")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert "password" not in first.stdout and stored["learners"]["cleo"]["url"].split(":")[2] not in first.stdout

    rows = run(fetch(
        pg.superuser_url,
        "SELECT rolname, rolcreatedb, rolconnlimit, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ANY($1)",
        [stored["learners"][n]["role"] for n in ("cleo", "Dan.Brown@uni.edu")],
    ))  # fmt: skip
    assert len(rows) == 2
    for row in rows:
        assert row["rolcreatedb"] and row["rolcanlogin"] and not row["rolsuper"]
        assert row["rolconnlimit"] == room.LEARNER_CONNECTION_LIMIT

    # Again, with one more learner: the roles are there already, their passwords kept.
    again = cli(home, "room", "add", "cleo", "eve", "--credentials", str(path), **admin(pg))
    assert again.returncode == 0, again.stderr
    assert "cleo: role coursedb_learner_cleo (there already; CREATEDB" in again.stdout
    assert "eve: role coursedb_learner_eve (made;" in again.stdout
    after = json.loads(path.read_text())
    assert after["learners"]["cleo"] == stored["learners"]["cleo"]
    assert set(after["learners"]) == {"cleo", "Dan.Brown@uni.edu", "eve"}

    async def log_in_with_each() -> None:
        for entry in [after["instructor"], *after["learners"].values()]:
            conn = await asyncpg.connect(entry["url"])
            assert await conn.fetchval("SELECT current_user") == entry["role"]
            await conn.close()

    run(log_in_with_each())


def test_room_add_never_takes_over_a_role_coursedb_did_not_make(pg, tmp_path, home):
    run(fetch(pg.superuser_url, "CREATE ROLE coursedb_learner_mallory LOGIN"))
    result = cli(home, "room", "add", "mallory", "--credentials", str(tmp_path / "c.json"), **admin(pg))
    assert_one_line_error(result, "A role named coursedb_learner_mallory already exists", "coursedb did not make it")
    row = run(fetch(pg.superuser_url, "SELECT rolcreatedb FROM pg_roles WHERE rolname = 'coursedb_learner_mallory'"))
    assert row[0]["rolcreatedb"] is False


def test_room_add_says_what_is_missing_in_one_sentence(pg, roles, tmp_path, home):
    no_url = cli(home, "room", "add", "zoe", COURSEDB_BACKEND=None, COURSEDB_URL=None)
    assert_one_line_error(no_url, "room add needs COURSEDB_URL")
    learner = cli(home, "room", "add", "zoe", "--credentials", str(tmp_path / "c.json"), **as_learner(roles, "ada"))
    assert_one_line_error(learner, "may not create roles", "CREATEROLE")
    assert "coursedb_learner_ada:***@" in learner.stderr
    assert_one_line_error(cli(home, "room", "add", **admin(pg)), "Name the learners to add")


# --- the attacks --------------------------------------------------------------------------------


def test_a_learner_cannot_connect_to_read_drop_or_end_another_learners_database(pg, roles, learner_homes):
    ada, bob = as_learner(roles, "ada"), as_learner(roles, "bob")
    owner, url = start_owner(learner_homes("ada"), **ada)
    try:
        run(execute(url, "CREATE TABLE diary (line text); INSERT INTO diary VALUES ('ada was here')"))
        victim = dbname(url)
        bob_login = bob["COURSEDB_URL"]

        async def connect() -> str:
            try:
                await (await asyncpg.connect(same_server(url, bob_login))).close()
            except asyncpg.InsufficientPrivilegeError as exc:
                return str(exc)
            return "connected"

        async def attacks() -> dict[str, str]:
            seen = {"connect": await connect()}
            conn = await asyncpg.connect(bob_login)
            try:
                for what, sql in [
                    ("drop", f"DROP DATABASE {victim} WITH (FORCE)"),
                    ("rename", f"ALTER DATABASE {victim} RENAME TO stolen"),
                    ("grant", f"GRANT CONNECT ON DATABASE {victim} TO {roles['learners']['bob']['role']}"),
                    (
                        "terminate",
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        f" WHERE usename = '{roles['learners']['ada']['role']}'",
                    ),
                ]:
                    try:
                        await conn.execute(sql)
                        seen[what] = "done"
                    except asyncpg.PostgresError as exc:
                        seen[what] = str(exc)
            finally:
                await conn.close()
            seen["connect after grant"] = await connect()
            return seen

        seen = run(attacks())
        assert seen["connect"].startswith(f'permission denied for database "{victim}"'), seen
        assert seen["drop"] == f"must be owner of database {victim}", seen
        assert seen["rename"] == f"must be owner of database {victim}", seen
        assert seen["connect after grant"] == seen["connect"], seen  # the GRANT granted nothing (a warning)
        # PostgreSQL 15: "must be a member of the role whose process is being terminated or ..."
        assert "pg_signal_backend" in seen["terminate"], seen
        # ada's work is untouched, and her session (the keeper) lives on.
        assert run(fetch(url, "SELECT line FROM diary"))[0]["line"] == "ada was here"
        assert owner.poll() is None
    finally:
        end_owner(owner)


def test_another_learners_sweeps_and_stop_leave_a_learners_databases_alone(pg, roles, learner_homes):
    ada, bob = as_learner(roles, "ada"), as_learner(roles, "bob")
    live, live_url = start_owner(learner_homes("ada"), **ada)
    killed, killed_url = start_owner(learner_homes("ada"), **ada)
    end_owner(killed, kill=True)  # ada's kernel dies: its database is stale, and ada's
    try:
        for command in ("start", "stop", "start"):
            result = cli(learner_homes("bob"), command, **bob)
            assert result.returncode == 0, result.stderr
        names_now = {r["datname"] for r in run(fetch(pg.superuser_url, "SELECT datname FROM pg_database"))}
        assert {dbname(live_url), dbname(killed_url)} <= names_now
        # The instructor (a member of every learner's role) opens both, and sweeps neither.
        instructor = roles["instructor"]["url"]
        for url in (live_url, killed_url):
            assert run(fetch(same_server(url, instructor), "SELECT count(*) AS n FROM users"))[0]["n"] == 0
        result = cli(learner_homes("teacher"), "stop", COURSEDB_BACKEND="url", COURSEDB_URL=instructor)
        assert result.returncode == 0, result.stderr
        names_now = {r["datname"] for r in run(fetch(pg.superuser_url, "SELECT datname FROM pg_database"))}
        assert {dbname(live_url), dbname(killed_url)} <= names_now
    finally:
        end_owner(live)
        cli(learner_homes("ada"), "stop", **ada)


def test_a_template_planted_under_a_learners_name_is_never_cloned(pg, roles, learner_homes):
    """bob creates the database ada's template would be called, with tables of his, IS_TEMPLATE,
    before ada's first start: ada builds her own under a name bob cannot guess, and owns her tables."""
    ada, bob = as_learner(roles, "ada"), as_learner(roles, "bob")
    ada_role, bob_role = roles["learners"]["ada"]["role"], roles["learners"]["bob"]["role"]
    usual = names.template(schema_fingerprint(), ada_role)
    drop_templates_of(pg, ada_role)
    bob_owner, _ = start_owner(learner_homes("bob"), **bob)  # bob's own template exists now
    end_owner(bob_owner)
    bob_template = names.template(schema_fingerprint(), bob_role)

    async def plant() -> None:
        conn = await asyncpg.connect(bob["COURSEDB_URL"])
        try:
            await conn.execute(f"CREATE DATABASE {usual} TEMPLATE {bob_template}")
            await conn.execute(f"ALTER DATABASE {usual} IS_TEMPLATE true")
        finally:
            await conn.close()

    run(plant())
    try:
        owner, url = start_owner(learner_homes("ada"), **ada)
        try:
            tables = run(fetch(url, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"))
            assert tables and {t["tableowner"] for t in tables} == {ada_role}
            mine = run(fetch(
                pg.superuser_url,
                "SELECT datname FROM pg_database WHERE datistemplate AND pg_get_userbyid(datdba) = $1", ada_role,
            ))  # fmt: skip
            assert [r["datname"] for r in mine] != [usual] and len(mine) == 1
            assert names.parse_template(mine[0]["datname"]).fingerprint == schema_fingerprint()

            async def bob_tries() -> str:
                try:
                    await asyncpg.connect(url_of(bob["COURSEDB_URL"], mine[0]["datname"]))
                except asyncpg.PostgresError as exc:
                    return str(exc)
                return "connected"

            refused = run(bob_tries())  # closed to every connection, and bob has no CONNECT on it anyway
            assert refused == f'database "{mine[0]["datname"]}" is not currently accepting connections', refused
        finally:
            end_owner(owner)
    finally:
        run(drop_database(pg, usual))


def test_two_long_similar_learner_names_never_share_a_template(pg, roles, learner_homes):
    owners = {}
    try:
        for learner in (LONG + "one", LONG + "two"):
            owners[learner] = start_owner(learner_homes(learner), **as_learner(roles, learner))
        for learner, (_, url) in owners.items():
            role = roles["learners"][learner]["role"]
            tables = run(fetch(url, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"))
            assert tables and {t["tableowner"] for t in tables} == {role}, learner
        templates = run(fetch(
            pg.superuser_url,
            "SELECT pg_get_userbyid(datdba) AS role, datname FROM pg_database WHERE datistemplate AND datname LIKE $1",
            names.TEMPLATE_PREFIX + "%",
        ))  # fmt: skip
        by_role = {t["role"]: t["datname"] for t in templates}
        one, two = (roles["learners"][LONG + s]["role"] for s in ("one", "two"))
        assert by_role[one] != by_role[two]
    finally:
        for proc, _ in owners.values():
            end_owner(proc)


def test_another_role_holding_a_learners_build_lock_is_named_in_one_sentence(pg, roles, learner_homes):
    ada, bob = as_learner(roles, "ada"), as_learner(roles, "bob")
    ada_role = roles["learners"]["ada"]["role"]
    drop_templates_of(pg, ada_role)

    async def hold_and_start() -> tuple:
        conn = await asyncpg.connect(bob["COURSEDB_URL"])
        try:
            await conn.execute("SELECT pg_advisory_lock($1, $2)", *names.template_build_lock(ada_role))
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            result = await asyncio.to_thread(cli, learner_homes("ada"), "start", **ada)
            # bob's own builds are not held up by it.
            bob_result = await asyncio.to_thread(cli, learner_homes("bob"), "start", **bob)
            return pid, result, bob_result
        finally:
            await conn.close()

    pid, result, bob_result = run(hold_and_start())
    assert_one_line_error(
        result,
        f"a session of role {roles['learners']['bob']['role']} (server pid {pid}) holds the lock",
        f"SELECT pg_terminate_backend({pid})",
    )
    assert "coursedb stop" not in result.stderr
    assert bob_result.returncode == 0, bob_result.stderr
    again = cli(learner_homes("ada"), "start", **ada)  # bob's session is gone: ada builds
    assert again.returncode == 0, again.stderr


# --- the connection limit fits the course -----------------------------------------------------


@pytest.mark.timeout(900)
def test_a_learners_connection_limit_fits_two_copies_of_the_largest_notebook_at_once(pg, roles, learner_homes):
    """Notebook 07 peaks at its budget of 8 (its pytest -n 2 demo); a learner runs it twice at once, in two
    kernels as one role: every cell behaves as in CI, and the server refused that role nothing."""
    env = env_for(learner_homes("ada"), **as_learner(roles, "ada"))
    books = [nbformat.read(LARGEST, as_version=4) for _ in range(2)]
    log_from = pg.log.stat().st_size

    async def run_both() -> None:
        where = {"metadata": {"path": str(ROOT / "notebooks")}}
        clients = [NotebookClient(nb, timeout=300, allow_errors=True, resources=where) for nb in books]
        await asyncio.gather(*(client.async_execute(env=env) for client in clients))

    asyncio.run(run_both())
    log = pg.log.read_text(errors="replace")[log_from:]
    role = roles["learners"]["ada"]["role"]
    assert f'too many connections for role "{role}"' not in log
    for nb in books:
        for cell in nb.cells:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if cell.cell_type == "code" and "raises-exception" not in cell.metadata.get("tags", []):
                assert not errors, (cell.source[:200], errors[0].get("evalue"))
    peaks = room.connection_peaks(log)  # only ada's kernels use the server meanwhile
    print(f"two copies of {LARGEST.stem} at once: {peaks.total} connections at the peak, {peaks.refused} refused")
    assert peaks.refused == 0 and peaks.total <= room.LEARNER_CONNECTION_LIMIT


# --- what status says about the room --------------------------------------------------------


def test_status_says_whether_a_room_is_isolated_or_trusting(pg, roles, learner_homes):
    start = cli(learner_homes("ada"), "start", **as_learner(roles, "ada"))
    assert start.returncode == 0, start.stderr
    mine = cli(learner_homes("ada"), "status", **as_learner(roles, "ada"))
    assert "room:      isolated: role coursedb_learner_ada is ada's alone" in mine.stdout, mine.stdout
    shared = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": pg.room_url}
    assert cli(learner_homes("room"), "start", **shared).returncode == 0
    trusting = cli(learner_homes("room"), "status", **shared)
    assert "room:      TRUSTING: everyone who logs in as role room" in trusting.stdout, trusting.stdout
    teacher = {"COURSEDB_BACKEND": "url", "COURSEDB_URL": roles["instructor"]["url"]}
    assert cli(learner_homes("teacher"), "start", **teacher).returncode == 0
    assert (
        "room:      instructor: role coursedb_instructor" in cli(learner_homes("teacher"), "status", **teacher).stdout
    )


# --- helpers --------------------------------------------------------------------------------


def drop_templates_of(pg, role: str) -> None:
    """As the superuser: no template of ``role``'s, so its next start builds one."""
    rows = run(fetch(
        pg.superuser_url,
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND pg_get_userbyid(datdba) = $2",
        names.TEMPLATE_PREFIX, role,
    ))  # fmt: skip
    for row in rows:
        run(drop_database(pg, row["datname"]))


async def drop_database(pg, name: str) -> None:
    conn = await asyncpg.connect(pg.superuser_url)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" IS_TEMPLATE false')
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    except asyncpg.InvalidCatalogNameError:
        pass  # gone already
    finally:
        await conn.close()
