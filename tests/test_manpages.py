"""The man pages in man/: each renders without a warning (groff -ww, and man-db as a
reader would), cursus.conf(5) lists exactly the options of src/config/config_table.c
with the table's defaults (as build/tests/config-options prints them), cursus(8) every
command of `cursus help`, cursusd(8) every flag of `cursusd --help`."""
import os
import re
import subprocess

import pytest

TREE = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MAN = os.path.join(TREE, "man")
BUILD = os.environ["CURSUS_BUILD"]
PAGES = sorted(p for p in os.listdir(MAN) if re.fullmatch(r"[a-z.]+\.[1-8]", p))


def test_the_three_pages_exist():
    assert {"cursusd.8", "cursus.8", "cursus.conf.5"} <= set(PAGES), PAGES


@pytest.mark.parametrize("page", PAGES)
def test_renders_without_warnings(page):
    path = os.path.join(MAN, page)
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_STDERR="1")
    r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert len(r.stdout.splitlines()) > 20


def read(page):
    with open(os.path.join(MAN, page)) as f:
        return f.read()


def unescape(roff):
    return roff.replace("\\-", "-").replace("\\&", "")


def conf_entries():
    """Option name -> its entry's text, for every .TP/.TQ tag `.B name` of the page."""
    text = read("cursus.conf.5")
    entries = {}
    for m in re.finditer(r"^\.T[PQ]\n\.BI? ([a-z0-9_]+)\b.*?\n(.*?)(?=^\.(?:T[PQ]|S[HS]|PP)\b)",
                         text, re.M | re.S):
        entries[m.group(1)] = m.group(2)
    return entries


def table_options():
    r = subprocess.run([os.path.join(BUILD, "tests", "config-options")], capture_output=True,
                       text=True, timeout=30, check=True)
    out = {}
    for line in r.stdout.splitlines():
        name, scope, default = line.split(" ", 2)
        out[name] = (scope, default)
    assert len(out) > 50, r.stdout
    return out


def test_conf_page_lists_every_option_of_the_table():
    table = table_options()
    page = conf_entries()
    assert sorted(set(table) - set(page)) == [], "options missing from man/cursus.conf.5"
    assert sorted(set(page) - set(table)) == [], "man/cursus.conf.5 documents unknown options"


def test_conf_page_defaults_are_the_tables():
    page = conf_entries()
    wrong = []
    for name, (scope, default) in table_options().items():
        m = re.search(r"Default: \\fB(.*?)\\fR", page.get(name, ""))
        if default == "-":
            # No default in the table (computed, required or empty): the page says what
            # happens in words, never a bold value that could drift.
            if m:
                wrong.append((name, "no table default", unescape(m.group(1))))
        elif not m or unescape(m.group(1)) != default:
            wrong.append((name, default, unescape(m.group(1)) if m else None))
    assert wrong == []


def test_cursus_page_has_every_command():
    r = subprocess.run([os.path.join(BUILD, "cursus"), "help"], capture_output=True, text=True,
                       timeout=30)
    commands = set(re.findall(r"^  ([a-z][a-z-]*)\b", r.stdout + r.stderr, re.M))
    assert {"user", "queue", "check"} <= commands, r.stdout + r.stderr
    page = unescape(read("cursus.8"))
    missing = [c for c in sorted(commands) if not re.search(r"^\.(?:BI?|TQ\n\.BI?) \"?%s\b" % re.escape(c), page, re.M)]
    assert missing == []
    for name in ("sendmail", "mailq", "newaliases"):
        assert re.search(r"^\.TP\n\.B %s\b" % name, page, re.M), name


def test_cursusd_page_has_every_flag():
    r = subprocess.run([os.path.join(BUILD, "cursusd"), "--help"], capture_output=True,
                       text=True, timeout=30)
    flags = set(re.findall(r"^\s+(-\w), (--[\w-]+)", r.stderr, re.M))
    assert flags, r.stderr
    page = unescape(read("cursusd.8"))
    for short, long in sorted(flags):
        assert re.search(r"^\.BR %s \", \" %s\b" % (short, long), page, re.M), (short, long)
