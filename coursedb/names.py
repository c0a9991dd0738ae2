"""Every name coursedb writes on a server, made here and read back here, nowhere else.

- owner databases: ``coursedb_<pid>_<6 hex digits>``; the digits are the key of the advisory
  lock whose holder vouches for the database (see ``keeper``), the pid says who made it.
- templates: ``coursedb_template_<fingerprint>`` (the superuser's, one per migrations version)
  and ``coursedb_template_<fingerprint>_r<16 hex digits>`` (one per role on a room server; the
  digits hash the role's name, so two long role names that start alike never share one, and the
  name never needs cutting at PostgreSQL's 63 characters).
- sessions' ``application_name``: ``coursedb <kind> <pid>`` for an owner's liveness session
  (kind: kernel, pytest, xdist gw0, ...) and ``coursedb admin <pid>`` for short admin sessions.
- advisory lock keys: (class, objid) pairs in classes nothing else uses.

Producers and parsers sit side by side, so a change to one is a change to the other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "coursedb_"  # every database coursedb creates starts with this; it never touches others
TEMPLATE_PREFIX = PREFIX + "template"
MAX_NAME = 63  # PostgreSQL keeps the first 63 bytes of a name (NAMEDATALEN - 1) and drops the rest
KEY_DIGITS = 6  # hex digits of an owner database's lock key (24 bits: plenty for live owners)
ROLE_DIGITS = 16  # hex digits of a role's hash in its template's name (64 bits)

# Advisory locks are keyed (classid, objid): ours live in these classes.
OWNER_LOCKS = 0x43444201  # one lock per owner database; objid is the key in its name
TEMPLATE_BUILDS = 0x43444202  # held while a template is built; objid 0 for the superuser's

_OWNER = re.compile(rf"{PREFIX}(\d+)_([0-9a-f]{{{KEY_DIGITS}}})")
# The older naming, <fingerprint>_<role name> cut at 63 characters, is still read: an old template.
_TEMPLATE = re.compile(rf"{TEMPLATE_PREFIX}_([0-9a-f]+)(?:_r([0-9a-f]{{{ROLE_DIGITS}}})|(_.+))?", re.DOTALL)
_SESSION = re.compile(r"coursedb (.+) (\d+)")


# --- owner databases ------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerDatabase:
    pid: int  # the process that made it (for people: liveness is the lock's business)
    key: int  # its advisory lock's objid in OWNER_LOCKS


def owner_database(pid: int, key: int) -> str:
    """The database name that carries lock ``key``."""
    if not 0 <= key < 16**KEY_DIGITS or pid < 0:
        raise ValueError(f"no owner database name for pid {pid}, key {key}")
    return f"{PREFIX}{pid}_{key:0{KEY_DIGITS}x}"


def parse_owner_database(name: str) -> OwnerDatabase | None:
    """The pid and lock key in an owner database's name, or None for any other name."""
    found = _OWNER.fullmatch(name)
    return None if found is None else OwnerDatabase(int(found.group(1)), int(found.group(2), 16))


def lock_key(name: str) -> int | None:
    """The advisory lock key (objid in OWNER_LOCKS) of an owner database, or None."""
    owner = parse_owner_database(name)
    return None if owner is None else owner.key


def is_coursedbs(name: str) -> bool:
    """Does the name say coursedb made it? (Only such databases are ever dropped.)"""
    return name.startswith(PREFIX)


# --- templates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    fingerprint: str  # of the migrations it holds
    role_hash: str | None  # None: the superuser's shared template
    legacy: bool = False  # named the older way (by the role's name): never the current one


def role_hash(role: str) -> str:
    return hashlib.sha256(role.encode()).hexdigest()[:ROLE_DIGITS]


def template(fingerprint: str, role: str | None = None, salt: str | None = None) -> str:
    """The template for migrations ``fingerprint``: the shared one, or ``role``'s own.

    With ``salt``: a name nobody can predict, for a role whose usual name another role took first.
    """
    mixed = role if salt is None else f"{role or ''}\0{salt}"
    name = f"{TEMPLATE_PREFIX}_{fingerprint}" + ("" if mixed is None else f"_r{role_hash(mixed)}")
    if len(name) > MAX_NAME or not re.fullmatch(r"[0-9a-f]+", fingerprint):
        raise ValueError(f"no template name for fingerprint {fingerprint!r}")
    return name


def parse_template(name: str) -> Template | None:
    found = _TEMPLATE.fullmatch(name)
    return None if found is None else Template(found.group(1), found.group(2), found.group(3) is not None)


def is_template(name: str) -> bool:
    """Any template coursedb made, of any migrations and any role."""
    return parse_template(name) is not None


def template_build_lock(role: str | None = None) -> tuple[int, int]:
    """The advisory lock held while ``role``'s template (None: the shared one) is built."""
    if role is None:
        return TEMPLATE_BUILDS, 0
    return TEMPLATE_BUILDS, int(role_hash(role)[:8], 16) - 2**31  # objid is a signed 32-bit int


# --- sessions' application_name -------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    kind: str  # "admin", or the owner's kind: "kernel", "pytest", "xdist gw0", ...
    pid: int


def owner_session(kind: str, pid: int) -> str:
    """application_name of an owner's liveness session (its keeper)."""
    tail = f" {pid}"
    # The server keeps 63 characters: shorten the kind, never the pid that parsers need.
    return f"coursedb {kind}"[: MAX_NAME - len(tail)] + tail


def admin_session(pid: int) -> str:
    """application_name of a short-lived admin session opened by process ``pid``."""
    return owner_session("admin", pid)


def parse_session(application_name: str) -> Session | None:
    found = _SESSION.fullmatch(application_name.strip())
    return None if found is None else Session(found.group(1), int(found.group(2)))


def session_pid(database: str, application_name: str) -> int | None:
    """The process a session belongs to: by its owner database's name, else by its application_name."""
    owner = parse_owner_database(database)
    if owner is not None:
        return owner.pid
    session = parse_session(application_name)
    return None if session is None else session.pid


# --- roles an instructor makes for a room (python -m coursedb room add) ----------------------

LEARNER_ROLE_PREFIX = PREFIX + "learner_"
INSTRUCTOR_ROLE = PREFIX + "instructor"  # a member of every learner role: sees every learner's databases
_PLAIN_LEARNER = re.compile(r"[a-z0-9_]{1,40}")


def learner_role(learner: str) -> str:
    """The role of one learner (a JupyterHub user name, say): the name itself where it is plain.

    Any other name (capitals, dots, '@', too long) keeps a readable part and gains a hash of the
    whole, so two learners never share a role and the name never needs cutting.
    """
    if _PLAIN_LEARNER.fullmatch(learner):
        return LEARNER_ROLE_PREFIX + learner
    readable = re.sub(r"[^a-z0-9]+", "_", learner.lower()).strip("_")[:24]
    return f"{LEARNER_ROLE_PREFIX}{readable}_{role_hash(learner)[:8]}"
