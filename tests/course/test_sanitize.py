"""notebooks/sanitize.cfg: the setup check's output sanitizes the same on every server the course supports.

Notebook 00 prints the backend and ``SHOW server_version``; the committed output was recorded on the
embedded server. Every PostgreSQL 14-18, with or without a distribution suffix (Debian's packages, the
official Debian-based images, most servers behind COURSEDB_URL), must compare equal under strict nbval.
"""

from __future__ import annotations

import re

import pytest
from nbval.plugin import get_sanitize_patterns

from coursebook import ROOT
from coursebook.commands import SANITIZE_FILE

PATTERNS = dict(get_sanitize_patterns((ROOT / SANITIZE_FILE).read_text()))


def sanitize(text: str) -> str:
    for regex, replace in PATTERNS.items():  # the order nbval applies them in
        text = re.sub(regex, replace, text)
    return text


def setup_check(backend: str, version: str) -> str:
    lines = {"backend": backend, "server": f"PostgreSQL {version}", "database": "coursedb_1234_abcdef"}
    return "".join(f"{key:>16}: {value}\n" for key, value in lines.items())  # as notebook 00 prints it


RECORDED = sanitize(setup_check("embedded", "18.6"))


@pytest.mark.parametrize(
    "backend, version",
    [
        ("embedded", "18.6"),
        ("docker", "14.19"),
        ("docker", "16.10"),
        ("docker", "17.6"),
        ("url", "15.20 (Debian 15.20-0+deb12u1)"),  # Debian bookworm's postgresql-15
        ("docker", "16.4 (Debian 16.4-1.pgdg120+1)"),  # the official postgres:16 image
        ("url", "14.13 (Ubuntu 14.13-0ubuntu0.22.04.1)"),
        ("url", "18.0 (Homebrew)"),
        ("url", "18beta1"),
    ],
)
def test_setup_check_sanitizes_the_same_on_every_server(backend, version):
    assert sanitize(setup_check(backend, version)) == RECORDED


def test_the_version_pattern_stays_narrow():
    # Only the version after "PostgreSQL " and its parenthesised suffix: the rest of a line is still compared.
    assert sanitize("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) said (hello)") == "PostgreSQL VERSION said (hello)"
    assert sanitize("PostgreSQL 16 is (not) a version") == "PostgreSQL VERSION is (not) a version"
