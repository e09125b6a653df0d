"""Fixtures of the integration suite.

start_server(**overrides): a factory; each call writes a configuration into a fresh
temporary directory (free loopback ports, users alice and bob, TLS self-signed), starts
`cursusd -d` and returns a cursus_testlib.Server once every listener greets. Overrides:
global limits (max_message_size=2048, ...), listener_opts={"smtp": {...}},
aliases=[(address, target), ...].

server: one shared daemon per module with the default limits and aliases
sales@ -> alice, postmaster@ -> alice, team@ -> alice+bob.

Teardown of both: the daemon must still be running (no input may crash it), must stop
on SIGTERM with status 0, and its log must hold no sanitizer report."""
import os

import pytest

import cursus_testlib as lib

SHARED_ALIASES = [
    ("sales@example.test", "alice@example.test"),
    ("postmaster@example.test", "alice@example.test"),
    ("team@example.test", "alice@example.test"),
    ("team@example.test", "bob@example.test"),
]


def _require_binaries():
    for b in (lib.CURSUSD, lib.CURSUS):
        if not os.access(b, os.X_OK):
            pytest.fail("%s is not built (CURSUS_BUILD=%s)" % (b, lib.BUILD))


@pytest.fixture
def start_server(tmp_path):
    _require_binaries()
    servers = []

    def factory(**overrides):
        srv = lib.Server(tmp_path / ("srv%d" % len(servers)), **overrides)
        servers.append(srv)
        srv.start()
        return srv

    yield factory
    problems = lib.finish_servers(servers)
    assert not problems, "\n\n".join(problems)


@pytest.fixture(scope="module")
def _shared_server(tmp_path_factory):
    _require_binaries()
    srv = lib.Server(tmp_path_factory.mktemp("shared"), aliases=SHARED_ALIASES)
    srv.start()
    yield srv
    problems = lib.finish_servers([srv])
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def server(_shared_server):
    srv = _shared_server
    if not srv.running():
        # An earlier test killed it: that test failed already; give this one a daemon.
        srv.start()
    yield srv
    assert srv.running(), "cursusd died during this test (status %s); log tail:\n%s" % (
        srv.proc.returncode, srv.log[-4000:])


@pytest.fixture
def open_root():
    """A directory an unprivileged user can pass through (pytest's own is 0700), for
    tests that run cursusd as another user."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="cursus-root-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def token(request):
    """A token unique to this test, for Message-IDs and subjects."""
    import re
    import uuid
    return "t%s-%s" % (uuid.uuid4().hex[:12], re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40])
