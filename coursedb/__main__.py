"""``python -m coursedb start|status|stop``."""

from __future__ import annotations

import argparse
import sys

from . import server
from .errors import CourseDBError


def _print_status(info: dict) -> None:
    if not info["running"]:
        print(f"No coursedb server is running (state in {info['home']}). Start one: python -m coursedb start")
        return
    print(f"backend:   {info['backend']}")
    print(f"version:   PostgreSQL {info.get('version', '?')}")
    print(f"url:       {server.describe_url(info['admin_url'])}")
    if "tcp_url" in info:
        print(f"tcp url:   {server.describe_url(info['tcp_url'])}  (password in {info['home']}/password)")
    for key in ("data", "log", "container", "image"):
        if key in info:
            print(f"{key + ':':<10} {info[key]}")
    if "error" in info:
        print(f"error:     {info['error']}")
    dbs = info.get("databases", [])
    print(f"databases: {len(dbs)}")
    for db in dbs:
        owner = db["owner"] or {}
        who = "course schema template" if not owner else f"{owner.get('kind')} pid {owner.get('pid')}"
        state = "" if db["alive"] else "  (owner gone: dropped on next start)"
        print(f"  {db['name']:<28} {who}, {db['connections']} connection(s){state}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursedb", description=__doc__)
    parser.add_argument("command", choices=["start", "status", "stop"])
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            state = server.ensure()
            print(f"coursedb server running ({state['backend']}): {server.describe_url(state['admin_url'])}")
            stale = server.drop_stale(state)  # killed kernels' databases, if the server was already up
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
