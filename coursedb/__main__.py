"""``python -m coursedb start|status|stop``, and ``room N``: what a room of N learners needs."""

from __future__ import annotations

import argparse
import sys

from . import backends, databases, room, server
from .errors import CourseDBError
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
    if info.connections is not None:
        print(f"connections: {room.describe_headroom(info.connections)}")
    for note in info.notes:
        print(f"note:      {note}")
    print(f"databases: {len(info.databases)}")
    for db in info.databases:
        print(f"  {db.name:<32} {_describe(db)}")


def _describe(db: databases.OwnedDatabase) -> str:
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
    if not db.may_drop:
        return f"{who}, stale (no session holds its lock); owned by role {db.role}, not ours to drop, {conns}"
    return f"{who}, stale (no session holds its lock): dropped on next start, {conns}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursedb", description=__doc__)
    parser.add_argument("command", choices=["start", "status", "stop", "room"])
    parser.add_argument("learners", nargs="?", type=int, default=30, help="room: how many learners (default 30)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            settings = Settings.from_env()
            state = server.ensure(settings)
            print(f"coursedb server running ({state.backend}): {describe_url(state.admin_url)}")
            note = server.mismatch(settings, state)
            if note:
                print(f"note: {note}")
            swept = server.sweep(state)  # killed kernels' databases, if the server was already up
            if swept.dropped:
                print(
                    f"dropped {len(swept.dropped)} database(s) whose owner process is gone: {', '.join(swept.dropped)}"
                )
            for name, why in swept.skipped:
                print(f"left stale database {name}: {why}")
            if swept.postponed:
                print(f"the server just restarted: {len(swept.postponed)} database(s) wait for their owners to return")
        elif args.command == "status":
            _print_status(server.status(Settings.from_env()))
        elif args.command == "room":
            for line in room.describe_needs(room.room_needs(args.learners)):
                print(line)
        else:
            for line in server.stop():
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
