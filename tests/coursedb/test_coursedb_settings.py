"""coursedb's choices before any server exists: settings, backend selection, URL checks, Docker probe.

Nothing here starts PostgreSQL; the CLI cases run ``python -m coursedb`` with a private
COURSEDB_HOME that no server ever uses.
"""

from __future__ import annotations

import pytest

from coursedb import CourseDBError, Settings, server
from coursedb.backends import docker
from coursedb.settings import describe_url
from tests.helpers import assert_one_line_error, cli, silent_listener


@pytest.fixture
def no_engine(monkeypatch):
    monkeypatch.setattr(docker, "engine_problem", lambda: "no engine in this test")


@pytest.fixture
def engine(monkeypatch):
    monkeypatch.setattr(docker, "engine_problem", lambda: None)


def settings(**env: str) -> Settings:
    return Settings.from_env({"COURSEDB_HOME": "/tmp/cdb-not-used", **env})


# --- backend selection ------------------------------------------------------------------


def test_auto_without_url_or_engine_is_embedded(no_engine):
    assert server.choose_backend(settings()) == "embedded"


def test_auto_with_an_engine_is_docker(engine):
    assert server.choose_backend(settings()) == "docker"


def test_auto_with_a_url_is_url_even_with_an_engine(engine):
    assert server.choose_backend(settings(COURSEDB_URL="postgresql://u@db.example/postgres")) == "url"


@pytest.mark.parametrize("backend", ["docker", "embedded", "url"])
def test_an_explicit_backend_wins_over_auto_detection(engine, backend):
    chosen = settings(COURSEDB_BACKEND=backend, COURSEDB_URL="postgresql://u@db.example/postgres")
    assert server.choose_backend(chosen) == backend


def test_backend_name_is_case_and_space_insensitive():
    assert settings(COURSEDB_BACKEND=" Embedded ").backend == "embedded"
    assert settings(COURSEDB_BACKEND="").backend == "auto"


def test_defaults():
    s = Settings.from_env({})
    assert (s.backend, s.url, s.port, s.image) == ("auto", None, None, "postgres:16-alpine")
    assert s.home.name.startswith("coursedb-")


# --- errors in settings -----------------------------------------------------------------


def test_unknown_backend_names_the_choices():
    with pytest.raises(CourseDBError, match=r"COURSEDB_BACKEND='podman' is not one of auto, docker, embedded, url"):
        settings(COURSEDB_BACKEND="podman")


def test_url_backend_without_url_says_what_to_set():
    with pytest.raises(CourseDBError, match="COURSEDB_BACKEND=url needs COURSEDB_URL"):
        settings(COURSEDB_BACKEND="url")


def test_sqlalchemy_url_gets_the_driver_hint():
    with pytest.raises(CourseDBError) as info:
        settings(COURSEDB_URL="postgresql+psycopg2://u:p@localhost/db")
    assert "must start with postgresql://" in str(info.value)
    assert "Drop the SQLAlchemy driver part (e.g. '+psycopg2')" in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u@localhost/db", "must start with postgresql:// (got 'mysql')"),
        ("localhost:5432/db", "must start with postgresql://"),
        ("postgresql://u@localhost:99999/db", "COURSEDB_URL is malformed"),
        ("postgresql://u@[::1/db", "COURSEDB_URL is malformed"),
    ],
)
def test_malformed_urls_are_rejected_before_connecting(url, expected):
    with pytest.raises(CourseDBError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        settings(COURSEDB_URL=url)


@pytest.mark.parametrize("url", ["postgresql://u@localhost/db", "postgres://u:p@127.0.0.1:5433/db?sslmode=disable"])
def test_plain_dsns_are_accepted(url):
    assert settings(COURSEDB_URL=url).url == url


@pytest.mark.parametrize("port", ["0", "65536", "54x", "-1", "٣٤٥٦", "５４３２", "+5432", "054320"])
def test_bad_port_is_named(port):
    """Digits of other scripts are digits to int() ('٣٤٥٦' is 3456), not to a learner reading the setting."""
    with pytest.raises(CourseDBError, match=r"is not a TCP port number \(1-65535\)"):
        settings(COURSEDB_PORT=port)


@pytest.mark.parametrize("seconds", ["٦٠", "nan", "inf", "0", "soon"])
def test_bad_pull_timeout_is_named(seconds):
    with pytest.raises(CourseDBError, match="is not a number of seconds"):
        settings(COURSEDB_PULL_TIMEOUT=seconds)


@pytest.mark.parametrize("seconds", ["٦٠", "nan", "inf", "-1", "86401", "soon"])
def test_bad_sweep_grace_is_named(seconds):
    with pytest.raises(CourseDBError, match=r"COURSEDB_SWEEP_GRACE=.* is not a number of seconds \(0-86400\)"):
        settings(COURSEDB_SWEEP_GRACE=seconds)


def test_the_sweep_grace_is_far_longer_than_a_keeper_needs_to_come_back():
    from coursedb.keeper import RECONNECT_BOUND

    assert settings().sweep_grace == 600 > 10 * RECONNECT_BOUND
    assert settings(COURSEDB_SWEEP_GRACE="0").sweep_grace == 0  # tests: drop at the first free lock


# --- the backends' registry and their state records ------------------------------------------


def test_the_registry_is_made_from_the_settings_names():
    from coursedb.backends import ALL
    from coursedb.settings import BACKENDS

    assert sorted(ALL) == sorted(b for b in BACKENDS if b != "auto")
    assert all(name == module.NAME for name, module in ALL.items())
    assert [name for name, module in ALL.items() if not module.RUNS_SERVER] == ["url"]  # the one not ours


def test_a_module_that_is_not_a_backend_is_refused_with_its_problems():
    import types

    from coursedb.backends.base import check_backend

    half = types.ModuleType("half")
    half.NAME = "half"
    half.start = lambda settings: None
    half.STATE_FIELDS = ("socket",)
    with pytest.raises(TypeError) as info:
        check_backend("half", half)
    message = str(info.value)
    for problem in ("alive() is missing", "describe() is missing", "RUNS_SERVER", "'socket', which ServerState"):
        assert problem in message, message


@pytest.mark.parametrize("name", ["url", "docker", "embedded"])
def test_every_backends_record_reads_back(name):
    """A record of each backend survives the state file: a None here would start a fresh server on every call."""
    from coursedb.backends import ALL, ServerState, read

    record = {"backend": name, "admin_url": "postgresql://postgres@h/postgres", "home": "/tmp/h"}
    record.update({field: f"some {field}" for field in ALL[name].STATE_FIELDS})
    state = ServerState(**record)
    assert read(state.to_json()) == state
    for field in ALL[name].STATE_FIELDS:  # and a record without what the backend needs is refused
        assert read(ServerState(**{**record, field: None}).to_json()) is None
    for torn in ("", '{"backend": "url"', "[]", '{"admin_url": "postgresql://h/db"}'):
        assert read(torn) is None


def test_a_record_of_a_backend_this_coursedb_does_not_know_is_a_sentence_not_a_fresh_server():
    from coursedb.backends import ServerState, read

    record = ServerState(backend="podman", admin_url="postgresql://postgres@h/postgres").to_json()
    with pytest.raises(CourseDBError) as info:
        read(record, source="/tmp/h/state.json")
    assert "/tmp/h/state.json records a 'podman' server, which this coursedb does not know" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_backend_registry_refuses_a_name_without_its_file_and_a_file_without_its_name(tmp_path, monkeypatch):
    """Adding a backend is its file plus its name in settings.BACKENDS; forgetting either fails at import."""
    from coursedb.backends import registry

    package = tmp_path / "somebackends"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("")
    (package / "podman.py").write_text("")  # a new backend's file, its name forgotten
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError) as info:
        registry(("auto", "url", "lxc"), package="somebackends", path=[str(package)])
    message = str(info.value)
    assert "settings.BACKENDS names 'url', but somebackends/url.py does not exist" in message
    assert "settings.BACKENDS names 'lxc', but somebackends/lxc.py does not exist" in message
    assert "somebackends/podman.py is not named in settings.BACKENDS: add 'podman' there" in message
    assert "base" not in message.replace("somebackends", "")


def test_passwords_are_hidden_when_printed():
    assert describe_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert describe_url("postgresql://u@/db?host=/tmp/x") == "postgresql://u@/db?host=/tmp/x"


# --- the CLI turns every one of these into one line --------------------------------------


@pytest.mark.parametrize(
    ("command", "env", "fragment"),
    [
        ("start", {"COURSEDB_BACKEND": "podman"}, "is not one of auto, docker, embedded, url"),
        ("status", {"COURSEDB_URL": "postgresql+asyncpg://u@localhost/db"}, "Drop the SQLAlchemy driver part"),
        ("stop", {"COURSEDB_PORT": "http"}, "is not a TCP port number"),
    ],
)
def test_cli_settings_errors_are_one_line(home, command, env, fragment):
    assert_one_line_error(cli(home, command, **env), fragment)


def test_cli_unreachable_url_is_one_line(home):
    result = cli(home, "start", COURSEDB_BACKEND="url", COURSEDB_URL="postgresql://x@127.0.0.1:1/db")
    assert_one_line_error(result, "Cannot reach the PostgreSQL server at postgresql://x@127.0.0.1:1/db", "COURSEDB_URL")
    assert not (home / "state.json").exists()


def test_cli_unknown_host_is_one_line(home):
    result = cli(home, "start", COURSEDB_BACKEND=None, COURSEDB_URL="postgresql://x@no-such-host.invalid:5432/db")
    assert_one_line_error(result, "Cannot reach the PostgreSQL server", "no-such-host.invalid")


# --- Docker without an engine -----------------------------------------------------------


def test_docker_without_an_engine_is_one_line_and_starts_nothing(home):
    """A socket path with nothing behind it: the client fails at once."""
    result = cli(home, "start", COURSEDB_BACKEND="docker", DOCKER_HOST=f"unix://{home}/no-docker.sock")
    assert_one_line_error(
        result, "COURSEDB_BACKEND=docker, but no Docker engine is reachable", "unset COURSEDB_BACKEND"
    )
    assert not (home / "state.json").exists()


@pytest.fixture
def silent_endpoint():
    """A TCP endpoint that accepts connections and never answers: the probe must not hang on it."""
    with silent_listener() as address:
        yield f"tcp://{address}"


@pytest.mark.exact_timeout  # the limit is the check: stretched for the load, it could let a 60 s wait pass
@pytest.mark.timeout(30)  # without the probe's own timeout, docker-py would wait 60 s per request
def test_docker_probe_returns_on_an_endpoint_that_never_answers(monkeypatch, silent_endpoint):
    monkeypatch.setenv("DOCKER_HOST", silent_endpoint)
    problem = docker.engine_problem()
    assert problem is not None  # so auto picks embedded, and docker gets a one-line refusal
    assert "\n" not in problem and len(problem) <= 160


# --- Windows on ARM: no embedded server ------------------------------------------------------


@pytest.fixture
def windows_on_arm(monkeypatch):
    from coursedb import platform

    monkeypatch.setattr(platform, "WINDOWS", True)
    monkeypatch.setattr(platform, "machine", lambda: "arm64")


def test_windows_on_arm_uses_docker_when_it_answers(windows_on_arm, engine):
    assert server.choose_backend(settings()) == "docker"


def test_windows_on_arm_without_docker_says_what_to_do_in_one_sentence(windows_on_arm, no_engine):
    with pytest.raises(CourseDBError) as info:
        server.choose_backend(settings())
    message = str(info.value)
    assert "\n" not in message and message.count(". ") == 0, message
    for what in ("Windows on ARM", "Docker", "COURSEDB_URL", "x64 Python"):
        assert what in message, message


def test_windows_on_arm_refuses_the_embedded_backend_before_creating_anything(windows_on_arm, tmp_path):
    home = tmp_path / "home"
    with pytest.raises(CourseDBError, match="The embedded server cannot run here: this is Windows on ARM"):
        server.ensure(settings(COURSEDB_BACKEND="embedded", COURSEDB_HOME=str(home)))
    assert not home.exists()
