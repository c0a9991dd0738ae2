"""JupyterHub for a room that outgrows laptops: every learner's kernels get databases on ONE server,
each learner as a PostgreSQL role of their own.

The whole course-specific part is the environment every user's server gets:

    COURSEDB_URL      the room's shared PostgreSQL, as THIS learner's role (its own password)
    COURSEDB_BACKEND  url: nobody's kernel starts a server of its own
    COURSEDB_HOME     per user: coursedb's small state folder (a lock and a state file)

The roles come from one instructor command, run once before the room (and again for latecomers):

    COURSEDB_URL=postgresql://postgres:...@db:5432/postgres \
        python -m coursedb room add ada grace linus --credentials /srv/course/room-credentials.json

It makes a role per learner (CREATEDB, a CONNECTION LIMIT that fits two notebooks at the largest
budget) and writes each one's COURSEDB_URL to that file (mode 0600, the hub's eyes only); this file
reads it at every spawn, so learners added while the hub runs get theirs too. coursedb then gives
every kernel (and every pytest run) a database of its own, which only that learner's role can open.
Size max_connections with ``python -m coursedb room N`` (docs/instructor-guide.md, "A room on one server").

This file runs as it is for the course's test (tests/launch/test_jupyterhub.py): SimpleLocalProcessSpawner
starts every user's server as the hub's own OS user, with a home folder per user, and a dummy
authenticator; the test drives the hub through its REST API with a service token. So in the test every
learner's credentials live in processes of ONE OS user: they are only as private as the spawner makes
them, and this one makes them private from nobody on that account. For a real room keep the
``c.Spawner.environment`` block and use a spawner with real accounts: The Littlest JupyterHub (systemd
spawner, one Unix user per learner) or Zero to JupyterHub (KubeSpawner, a pod per learner; hand each
pod its URL as a Kubernetes secret); see the instructor guide.

Settings come from the environment, so the same file serves the test and a trial run:

    COURSE_HUB_ROOM_CREDENTIALS  the file `python -m coursedb room add` wrote (required)
    COURSE_HUB_STATE       folder for the hub's database, cookie secret and users' homes (default ./hub-state)
    COURSE_HUB_PORT        public port of the proxy (default 8000)
    COURSE_HUB_API_PORT, COURSE_HUB_HUB_PORT   the proxy's API and the hub's own port (8001, 8081)
    COURSE_HUB_PROXY       the configurable-http-proxy executable (npm install configurable-http-proxy)
    COURSE_HUB_SERVICE_TOKEN  if set, an admin service "course-admin" with this API token (for scripts and tests)
    COURSE_HUB_INSTRUCTORS    hub users (comma-separated) who see the room view at /services/room-view/
    COURSE_HUB_VIEW_PORT      where the room view listens, on 127.0.0.1 (default 8765)
"""

import json
import os
import sys
from pathlib import Path

from tornado import web

c = get_config()  # noqa: F821  (JupyterHub provides get_config when it loads this file)

COURSE = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("COURSE_HUB_STATE", "hub-state")).resolve()
STATE.mkdir(parents=True, exist_ok=True)
CREDENTIALS = Path(os.environ["COURSE_HUB_ROOM_CREDENTIALS"])
PORT = int(os.environ.get("COURSE_HUB_PORT", "8000"))


# --- the course part: one shared server for every user's kernels, a role per learner ------------
def learner_url(spawner) -> str:
    """This learner's COURSEDB_URL, from the file `python -m coursedb room add` wrote (coursedb.room's format:
    {"learners": {name: {"role": ..., "url": ...}}, "instructor": {...}}); read at every spawn."""
    name = spawner.user.name
    try:
        url = json.loads(CREDENTIALS.read_text())["learners"][name]["url"]
    except (OSError, ValueError, KeyError, TypeError):
        url = None
    if not url:
        raise web.HTTPError(
            503, f"{name} has no database role yet; the instructor runs: python -m coursedb room add {name}"
        )
    return url


c.Spawner.environment = {
    "COURSEDB_URL": learner_url,
    "COURSEDB_BACKEND": "url",
    # Short, per user, outside the notebooks: coursedb keeps a lock and a state file there.
    "COURSEDB_HOME": lambda spawner: str(STATE / "coursedb" / spawner.user.name),
}

# --- where users work ---------------------------------------------------------------------------
# Every user opens the course folder (its notebooks find coursedb and conftest.py there). In a real
# room give each user a copy instead: `python3 course.py learners` writes notebooks without outputs.
c.Spawner.notebook_dir = str(COURSE)
c.Spawner.default_url = "/lab/tree/notebooks/00_start_here.ipynb"
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# --- the test's spawner and authenticator (replace for a real room) ---------------------------
c.JupyterHub.spawner_class = "simple"  # every user's server runs as the hub's own OS user
c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "home" / "{username}")
if os.geteuid() == 0:  # containers and CI run as root; jupyter_server refuses that without this
    c.Spawner.args = ["--allow-root"]
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

# --- the hub itself -------------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('COURSE_HUB_HUB_PORT', '8081')}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('COURSE_HUB_API_PORT', '8001')}"
if os.environ.get("COURSE_HUB_PROXY"):
    c.ConfigurableHTTPProxy.command = [os.environ["COURSE_HUB_PROXY"]]
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server (and so their kernels)

services, roles = [], []
if os.environ.get("COURSE_HUB_SERVICE_TOKEN"):
    services.append({"name": "course-admin", "api_token": os.environ["COURSE_HUB_SERVICE_TOKEN"]})
    roles.append({
        "name": "course-admin",
        "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"],
        "services": ["course-admin"],
    })  # fmt: skip

# --- the instructor's room view (coursedb/roomview.py) as a hub service ----------------------------
# At /services/room-view/, behind the hub's own login (OAuth): only the hub users named in
# COURSE_HUB_INSTRUCTORS get in. It reads the room's server as the instructor's role, whose URL
# `room add` wrote to the same credentials file; names on the page are the hub's user names.
INSTRUCTORS = [name.strip() for name in os.environ.get("COURSE_HUB_INSTRUCTORS", "").split(",") if name.strip()]
if INSTRUCTORS:
    VIEW_PORT = int(os.environ.get("COURSE_HUB_VIEW_PORT", "8765"))
    services.append({
        "name": "room-view",
        "url": f"http://127.0.0.1:{VIEW_PORT}",  # the view listens where the hub says (JUPYTERHUB_SERVICE_URL)
        "command": [sys.executable, "-m", "coursedb", "room", "view", "--credentials", str(CREDENTIALS)],
        "oauth_no_confirm": True,
        "display": True,
    })  # fmt: skip
    roles.append({"name": "instructor", "scopes": ["access:services!service=room-view"], "users": INSTRUCTORS})
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles
