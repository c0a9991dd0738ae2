"""From nothing to a running JupyterLab: what a learner's first `python3 course.py lab` costs.

    python3 benchmarks/launch.py [REF ...] [--runs N]      (default: HEAD; standard library only)

Each run makes a fresh clone of this repository at REF in a temporary folder, with an empty pip
cache of its own and a private COURSEDB_HOME, runs the README's `python3 course.py lab --no-browser`
there and times it until JupyterLab answers on its port. Then it counts what the learner's venv
holds (`pip list`, its size on disk), stops Lab and the server, and deletes the clone. Several REFs
are measured in turns (REF1, REF2, REF1, ...), so a busy machine weighs on each alike. Prints a table
and writes benchmarks/results/launch.json; never asserts anything.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "launch.json"
LAB_TIMEOUT = 1800  # seconds: a first install on a slow, shared machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_python(clone: Path) -> Path:
    return clone / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def size_mib(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except (OSError, AttributeError):
                pass  # removed while counted, or no st_blocks (Windows): counts as nothing
    return total / 2**20


def lab_answers(port: int, token: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop(lab: subprocess.Popen) -> None:
    """Lab and whatever it started (its session), however far it got."""
    for sig, wait in ((signal.SIGTERM, 30), (getattr(signal, "SIGKILL", signal.SIGTERM), 10)):
        try:
            if hasattr(os, "killpg"):
                os.killpg(lab.pid, sig)
            else:
                lab.terminate()
            lab.wait(wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            if lab.poll() is not None:
                return


def one_run(ref: str, workdir: Path) -> dict:
    clone = workdir / "course"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True, check=True)
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit.stdout.strip()], check=True)
    port, token = free_port(), secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEDB_", "VIRTUAL_ENV", "PYTEST_"))}
    env.update(COURSEDB_HOME=str(workdir / "cdb"), PIP_CACHE_DIR=str(workdir / "pip-cache"))
    log = open(workdir / "lab.log", "wb")  # noqa: SIM115 - closed after Lab stops
    args = [sys.executable, "course.py", "lab", "--no-browser", f"--port={port}", f"--IdentityProvider.token={token}"]
    started = time.monotonic()
    lab = subprocess.Popen(args, cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not lab_answers(port, token):
            if lab.poll() is not None or time.monotonic() - started > LAB_TIMEOUT:
                tail = (workdir / "lab.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"launch: Lab did not come up for {ref}:\n{tail}")
            time.sleep(0.25)
        seconds = time.monotonic() - started
        listed = subprocess.run(
            [str(venv_python(clone)), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, env=env
        )
        packages = len(json.loads(listed.stdout or "[]"))
        venv_size = size_mib(clone / ".venv")
    finally:
        stop(lab)
        log.close()
        subprocess.run([str(venv_python(clone)), "-m", "coursedb", "stop"], cwd=clone, env=env, capture_output=True)
    return {
        "ref": ref,
        "commit": commit.stdout.strip()[:12],
        "seconds_to_lab": round(seconds, 1),
        "pip_list_packages": packages,
        "venv_mib": round(venv_size),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("refs", nargs="*", default=["HEAD"])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    python = ".".join(map(str, sys.version_info[:3]))
    rows = []
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    for _ in range(args.runs):
        for ref in args.refs:
            with tempfile.TemporaryDirectory(prefix="launch-") as tmp:
                os.chmod(tmp, 0o711)  # as root the server runs as its own user, who must enter the home below
                row = one_run(ref, Path(tmp))
            row.update(python=python, load_avg_1m_before=load)
            load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| ref | commit | Python | nothing to a running Lab | `pip list` packages | venv size | load before |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['ref']} | {r['commit']} | {r['python']} | {r['seconds_to_lab']} s | {r['pip_list_packages']} "
            f"| {r['venv_mib']} MiB | {r['load_avg_1m_before']} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), "runs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
