"""``python -m coursedb start|status|stop``."""

from __future__ import annotations

import argparse
import sys

from . import backends, server
from .errors import CourseDBError
from .settings import describe_url


def _print_status(info: server.Status) -> None:
    state = info.state
    if state is None:
        print(f"No coursedb server is running (state in {info.home}). Start one: python -m coursedb start")
        return
    print(f"backend:   {state.backend}")
    print(f"version:   PostgreSQL {info.version or '?'}")
    print(f"url:       {describe_url(state.admin_url)}")
    for label, value in backends.get(state.backend).describe(state):
        print(f"{label + ':':<10} {value}")
    if info.error is not None:
        print(f"error:     {info.error}")
    print(f"databases: {len(info.databases)}")
    for db in info.databases:
        owner = db.owner or {}
        who = "course schema template" if not owner else f"{owner.get('kind')} pid {owner.get('pid')}"
        gone = "" if db.alive else "  (owner gone: dropped on next start)"
        print(f"  {db.name:<28} {who}, {db.connections} connection(s){gone}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursedb", description=__doc__)
    parser.add_argument("command", choices=["start", "status", "stop"])
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            state = server.ensure()
            print(f"coursedb server running ({state.backend}): {describe_url(state.admin_url)}")
            stale = server.sweep(state)  # killed kernels' databases, if the server was already up
            if stale:
                print(f"dropped {len(stale)} database(s) whose owner process is gone: {', '.join(stale)}")
        elif args.command == "status":
            _print_status(server.status())
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
