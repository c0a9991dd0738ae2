"""Every name coursedb writes on a server goes through coursedb.names, and reads back the same.

The producers are called the way coursedb calls them (a keeper's session, an admin session,
the benchmarks' unheld databases, a role's template) and their names are read back by the
parsers every consumer uses: sweeps and status (list_owned), the notebook run's connection
budget (coursebook's Family.owns) and benchmarks/room.py (names.session_pid).
"""

from __future__ import annotations

import os

import pytest

from coursedb import databases, names
from coursedb._aio import run_sync
from coursedb.keeper import Keeper
from coursedb.migrate import schema_fingerprint
from tests.helpers import fetch, owned, run, tcp_server


@pytest.fixture(scope="module")
def tcp_srv():
    with tcp_server() as server:
        yield server


@pytest.mark.parametrize("pid", [0, 1, 4242, 4194304, 2**31 - 1])
@pytest.mark.parametrize("key", [0, 1, 0xABCDEF, 16**names.KEY_DIGITS - 1])
def test_owner_database_names_round_trip(pid, key):
    name = names.owner_database(pid, key)
    assert len(name) <= names.MAX_NAME
    assert names.parse_owner_database(name) == names.OwnerDatabase(pid, key)
    assert names.lock_key(name) == key
    assert names.session_pid(name, "") == pid
    assert names.parse_template(name) is None


@pytest.mark.parametrize("bad", [-1, 16**names.KEY_DIGITS])
def test_a_key_the_name_cannot_carry_is_refused_not_cut(bad):
    with pytest.raises(ValueError):
        names.owner_database(1, bad)


@pytest.mark.parametrize(
    "other",
    [
        "coursedb_1_cafe0",  # 5 digits
        "coursedb_1_cafe0123",  # 8 digits: what benchmarks wrote before, never swept
        "coursedb_1_CAFE01",
        "coursedb_x_cafe01",
        "coursedb__cafe01",
        "coursedb_my_copy",
        "coursedb_1_cafe01\n",
        "postgres",
        "coursedb_template_abc",
    ],
)
def test_other_names_are_not_owner_databases(other):
    assert names.parse_owner_database(other) is None
    assert names.lock_key(other) is None


def test_templates_round_trip_and_long_similar_roles_never_share_one():
    fingerprint = schema_fingerprint()
    shared = names.template(fingerprint)
    assert names.parse_template(shared) == names.Template(fingerprint, None)
    a, b = "learner_" + "x" * 54 + "a", "learner_" + "x" * 54 + "b"  # 63 characters each, alike but the last
    name_a, name_b = names.template(fingerprint, a), names.template(fingerprint, b)
    assert name_a != name_b
    for role, name in ((a, name_a), (b, name_b), ('O"Brien é', names.template(fingerprint, 'O"Brien é'))):
        assert len(name.encode()) <= names.MAX_NAME  # nothing for the server to cut
        assert names.parse_template(name) == names.Template(fingerprint, names.role_hash(role))
        assert fingerprint in name
        assert names.lock_key(name) is None
    assert names.template_build_lock(a) != names.template_build_lock(b) != names.template_build_lock()


def test_a_template_named_the_older_way_is_an_old_template():
    old = names.parse_template(f"{names.TEMPLATE_PREFIX}_{schema_fingerprint()}_learner_a")
    assert old is not None and old.legacy


@pytest.mark.parametrize("kind", ["kernel", "pytest", "xdist gw0", "python", "admin", "k" * 80])
@pytest.mark.parametrize("pid", [1, 4194304])
def test_session_names_round_trip_within_63_characters(kind, pid):
    name = names.owner_session(kind, pid)
    assert len(name) <= names.MAX_NAME
    session = names.parse_session(name)
    assert session is not None and session.pid == pid and kind.startswith(session.kind.removesuffix(" "))
    assert names.session_pid("postgres", name) == pid
    assert names.parse_session(names.admin_session(pid)) == names.Session("admin", pid)


def test_the_budget_counters_read_the_same_names():
    from coursebook.run.book import Family

    me = os.getpid()
    family = Family(me)
    try:
        assert family.owns(names.owner_database(me, 7), "")
        assert family.owns("postgres", names.owner_session("kernel", me))
        assert family.owns("postgres", names.admin_session(me))
        assert not family.owns(names.owner_database(0, 7), names.owner_session("kernel", 0))
        assert not family.owns("coursedb_my_copy", "psql")
    finally:
        family.stop()


# --- the producers as coursedb runs them, on a server ------------------------------------------


def test_what_coursedb_writes_on_a_server_reads_back(tcp_srv):
    """A keeper's and an admin session's application_name, a benchmark's unheld database and an
    owner's database, seen on the server and read by the parsers; the unheld one is swept."""
    keeper = Keeper(tcp_srv.admin_url, names.owner_session("pytest", os.getpid()))
    try:

        async def sessions() -> list[str]:
            await keeper.session()
            async with databases.admin_connection(tcp_srv.admin_url):
                rows = await fetch(tcp_srv.admin_url, "SELECT application_name FROM pg_stat_activity")
            return [r["application_name"] for r in rows]

        seen = [names.parse_session(app) for app in keeper.call(sessions(), 30)]
        assert names.Session("pytest", os.getpid()) in seen
        assert names.Session("admin", os.getpid()) in seen
    finally:
        keeper.close()
    unheld = run_sync(databases.create_owned(tcp_srv.admin_url, "benchmark"))
    listed = {d.name: d for d in run(owned(tcp_srv.admin_url))}
    assert listed[unheld].kind == "owner" and not listed[unheld].locked
    assert names.parse_owner_database(unheld).pid == os.getpid()
    assert listed[databases.template_name()].kind == "template"

    async def sweep():
        async with databases.admin_connection(tcp_srv.admin_url) as conn:
            return await databases.drop_stale(conn, grace=0)

    assert unheld in run(sweep()).dropped
