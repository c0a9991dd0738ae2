"""``python -m coursedb start|status|stop``; ``room N``: what a room of N learners needs;
``room add NAME ...``: a role of their own for each learner (and one for the instructor);
``room view``: the instructor's live view of the room (coursedb.roomview)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import asyncpg

from . import backends, databases, room, server
from ._aio import run_sync
from .errors import CourseDBError, reason
from .settings import Settings, describe_url


def _print_status(info: server.Status) -> None:
    state = info.state
    if state is None:
        print(f"No coursedb server is running (state in {info.home}). Start one: python -m coursedb start")
        return
    print(f"backend:   {state.backend}")
    version = f"PostgreSQL {info.version}" if info.version else "unknown (the server did not answer; see error)"
    print(f"version:   {version}")
    print(f"url:       {describe_url(state.admin_url)}")
    for label, value in backends.get(state.backend).describe(state):
        print(f"{label + ':':<10} {value}")
    if info.error is not None:
        print(f"error:     could not list the databases: {info.error}")
        return
    print(f"room:      {_isolation(state.admin_url)}")
    if info.connections is not None:
        print(f"connections: {room.describe_headroom(info.connections)}")
    for note in info.notes:
        print(f"note:      {note}")
    print(f"databases: {len(info.databases)}")
    for db in info.databases:
        print(f"  {db.name:<32} {_describe(db, info.grace)}")


def _isolation(admin_url: str) -> str:
    """Who else on this server can reach your databases (on a shared role: everyone on it)."""

    async def ask() -> str:
        async with databases.admin_connection(admin_url) as conn:
            return await room.isolation(conn)

    try:
        return run_sync(ask())
    except databases.DB_ERRORS as exc:
        return f"unknown (the server did not say: {reason(exc)})"


def _describe(db: databases.OwnedDatabase, grace: float) -> str:
    """One database's line: what it is, who made it, live or stale by its lock, connections."""
    conns = f"{db.connections} connection(s)"
    if db.kind == "template":
        return f"course schema template, {conns}"
    if db.kind == "old template":
        left = "" if db.may_drop else f"; owned by role {db.role}, not ours to drop"
        return f"course schema template of other migrations (dropped when unused{left}), {conns}"
    if db.kind != "owner":
        return f"not made by coursedb (never dropped by it), role {db.role}, {conns}"
    owner = db.owner or {}
    who = f"{owner.get('kind', 'owner')} pid {owner.get('pid', '?')}"
    if owner.get("host"):
        who += f" on {owner['host']}"
    if db.locked:
        return f"{who}, live (its session holds the lock), {conns}"
    if db.free_for is None:
        seen = "lock free (no sweep has timed it yet)"
    else:
        seen = f"lock free for {db.free_for:.0f} s, as sweeps saw it"
    if not db.may_drop:
        return f"{who}, {seen}; owned by role {db.role}, not ours to drop, {conns}"
    return f"{who}, {seen}: a sweep drops it once free for {grace:g} s, {conns}"


def describe_sweep(swept: databases.Sweep) -> list[str]:
    """What a sweep saw and did, as lines: observations (how long each lock was free), not guesses."""

    def timed(names: list[str]) -> str:
        return ", ".join(f"{n} (lock free for {swept.free_for[n]:.0f} s)" if n in swept.free_for else n for n in names)

    lines = []
    owners = [n for n in swept.dropped if n in swept.free_for]
    templates = [n for n in swept.dropped if n not in swept.free_for]
    if owners:
        lines.append(f"dropped {len(owners)} database(s) whose lock stayed free for {swept.grace:g} s: {timed(owners)}")
    if templates:
        lines.append(f"dropped {len(templates)} template(s) of other migrations nobody used: {', '.join(templates)}")
    if swept.waiting:
        lines.append(
            f"kept {len(swept.waiting)} database(s) whose lock is free, for their owners to come back "
            f"(a sweep drops one once free for {swept.grace:g} s): {timed(swept.waiting)}"
        )
    lines += [f"left database {name}: {why}" for name, why in swept.skipped]
    return lines


def _room_add(learners: list[str], path: Path) -> None:
    if not learners:
        raise CourseDBError("Name the learners to add, e.g. python -m coursedb room add ada grace linus.")
    admin_url = Settings.from_env().url
    if admin_url is None:
        raise CourseDBError(
            "room add needs COURSEDB_URL naming the room's server as a role that may create roles "
            "(a superuser, or one with CREATEROLE), e.g. postgresql://postgres:secret@db:5432/postgres."
        )
    try:
        added = run_sync(room.add_learners(admin_url, learners, path))
    except asyncpg.InsufficientPrivilegeError as exc:
        raise CourseDBError(
            f"The role in COURSEDB_URL ({describe_url(admin_url)}) may not create roles ({exc}); "
            "use a superuser or a role with CREATEROLE."
        ) from None
    except databases.DB_ERRORS as exc:
        raise CourseDBError(f"Adding the learners' roles on {describe_url(admin_url)} failed: {reason(exc)}") from None
    for line in room.describe_added(added, path):
        print(line)
    from . import roomview  # the outcomes table every learner's checker runs go to, for the room view

    print(roomview.outcomes_table(admin_url))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["room", "view"]:  # the instructor's live view: options of its own (coursedb.roomview)
        from . import roomview

        try:
            return roomview.main(argv[2:])
        except CourseDBError as exc:
            print(f"coursedb: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
    parser = argparse.ArgumentParser(prog="python -m coursedb", description=__doc__)
    parser.add_argument("command", choices=["start", "status", "stop", "room"])
    parser.add_argument("--force", action="store_true", help="stop: even while kernels or test runs use the server")
    parser.add_argument(
        "room", nargs="*", metavar="N | add NAME ...",
        help="room N: what N learners need (default 30); room add NAME ...: a role for each learner",
    )  # fmt: skip
    parser.add_argument(
        "--credentials", type=Path, default=Path(room.CREDENTIALS_FILE),
        help=f"room add: the file the roles' COURSEDB_URLs go to (default {room.CREDENTIALS_FILE})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.room and args.command != "room":
        parser.error(f"{args.command} takes no arguments")
    try:
        if args.command == "start":
            settings = Settings.from_env()
            state = server.ensure(settings)
            print(f"coursedb server running ({state.backend}): {describe_url(state.admin_url)}")
            note = server.mismatch(settings, state)
            if note:
                print(f"note: {note}")
            swept = server.sweep(state, settings.sweep_grace)  # killed kernels' databases
            for line in describe_sweep(swept):
                print(line)
        elif args.command == "status":
            _print_status(server.status(Settings.from_env()))
        elif args.command == "room" and args.room[:1] == ["add"]:
            _room_add(args.room[1:], args.credentials)
        elif args.command == "room":
            learners = args.room[0] if args.room else "30"
            if len(args.room) > 1 or not (learners.isascii() and learners.isdigit()) or not 0 < int(learners) < 100_000:
                raise CourseDBError(
                    f"'room {' '.join(args.room)}': say how many learners (room 30) or add some (room add ada)."
                )
            for line in room.describe_needs(room.room_needs(int(learners))):
                print(line)
        else:
            for line in server.stop(force=args.force):
                print(line)
    except CourseDBError as exc:
        print(f"coursedb: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coursedb: interrupted; nothing was left half-started.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
