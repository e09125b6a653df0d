"""`cursus check`: the policy lint of a configuration. Each file in tests/integration/check/
provokes one finding; the line it must point at carries a comment "# expect: ID SEVERITY".
The test installs what the configuration refers to (a certificate from a test CA for the
hostname, or a broken one; a user database with postmaster aliases and relay credentials),
runs the real tool and asserts the one finding (id, severity, file:line), the exit status
(0 no problem, 1 problems, 2 unreadable configuration) and the --json document."""
import json
import os
import re
import shutil
import subprocess

import pytest

import cursus_testlib as lib
import testca
from testca import TestCA

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check")
HOSTNAME = "mail.example.test"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+|\(default\)): (?P<sev>error|warning|info): "
                  r"(?P<id>[a-z0-9-]+): (?P<msg>.+)\. Fix: (?P<fix>.+)\.$")


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"), "cursus check test CA")


def run(conf, *args, stdin=None):
    return subprocess.run([lib.CURSUS, "-c", conf] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(conf))


def openssl_self_signed(d):
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
                        "cert.pem", "-days", "365", "-subj", "/CN=" + HOSTNAME,
                        "-addext", "subjectAltName=DNS:" + HOSTNAME],
                       cwd=d, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def install_cert(ca, d, kind):
    """tls/cert.pem and tls/key.pem (0600) in d: a good CA-signed certificate for the
    hostname valid for a year, or the broken kind a test asks for."""
    tls = os.path.join(d, "tls")
    os.makedirs(tls)
    if kind in ("missing", "self_signed_option"):
        return
    if kind == "self_signed":
        openssl_self_signed(tls)
    else:
        t = testca.now()
        names, nb, na = [HOSTNAME], t - testca.DAY, t + 365 * testca.DAY
        if kind == "expired":
            nb, na = t - 30 * testca.DAY, t - testca.DAY
        elif kind == "expiring":
            # Half a day past 10 so the whole days left read 10 in every run of
            # one test (a cert ending exactly at now+10d reads 9 a second later).
            na = t + 10 * testca.DAY + testca.DAY / 2
        elif kind == "name_mismatch":
            names = ["other.example.test"]
        crt, key = ca.leaf("leaf-" + os.path.basename(d), names, not_before=nb, not_after=na)
        if kind == "key_mismatch":
            key = ca.leaf("other-" + os.path.basename(d), [HOSTNAME])[1]
        shutil.copy(crt, os.path.join(tls, "cert.pem"))
        shutil.copy(key, os.path.join(tls, "key.pem"))
    os.chmod(os.path.join(tls, "key.pem"), 0o644 if kind == "key_permissions" else 0o600)


def make_conf(ca, tmp_path, name, cert="good", creds=()):
    """The configuration copied into a fresh directory (its state_dir is "."), with the
    certificate, an admin user, postmaster aliases and relay credentials."""
    d = str(tmp_path / name)
    os.makedirs(d)
    conf = os.path.join(d, "cursus.conf")
    shutil.copy(os.path.join(HERE, name + ".conf"), conf)
    install_cert(ca, d, cert)
    for args, stdin in [(("user", "add", "admin@example.test"), lib.PASSWORD + "\n"),
                        (("alias", "add", "postmaster@example.test", "admin@example.test"), None),
                        (("alias", "add", "postmaster@example.org", "admin@example.test"), None)] + \
            [(("relay-auth", "add", nh, "account"), "relay secret\n") for nh in creds
             if not nh.startswith("oauth:")] + \
            [(("relay-auth", "add", nh[6:], "account", "--oauth", "https://login.example/token",
               "--client-id", "cid"), "client secret\nrefresh token\n")
             for nh in creds if nh.startswith("oauth:")]:
        r = run(conf, *args, stdin=stdin)
        assert r.returncode == 0, "cursus %s: %s" % (" ".join(args), r.stderr)
    return conf


def expected(conf):
    """(id, severity, line) of the "# expect:" comment of conf."""
    with open(conf) as f:
        for n, text in enumerate(f, 1):
            m = re.search(r"#\s*expect:\s*(\S+)\s+(\S+)", text)
            if m:
                return m.group(1), m.group(2), n
    raise AssertionError("no expect: comment in " + conf)


def findings(r):
    out = [LINE.match(line) for line in r.stdout.splitlines()[:-1]]
    assert all(out), "not a finding line in:\n" + r.stdout
    return out


CASES = [
    ("auth_cleartext", "good", ()),
    ("auth_on_smtp_port", "good", ()),
    ("submission_role_smtp", "good", ()),
    ("submission_no_tls", "good", ()),
    ("submission_no_mechanism", "good", ()),
    ("cram_md5", "good", ()),
    ("smtp_no_tls", "good", ()),
    ("cert_self_signed", "self_signed", ()),
    ("cert_expired", "expired", ()),
    ("cert_expiring", "expiring", ()),
    ("cert_name_mismatch", "name_mismatch", ()),
    ("cert_missing", "missing", ()),
    ("self_signed_option", "self_signed_option", ()),
    ("key_permissions", "key_permissions", ()),
    ("key_mismatch", "key_mismatch", ()),
    ("relay_auth_unverified", "good", ()),
    ("relay_tls_not_verify", "good", ("[192.0.2.5]:587",)),
    ("relay_auth_no_tls", "good", ("[192.0.2.5]:587",)),
    ("relay_oauth_ca", "good", ("oauth:[192.0.2.5]:587",)),
    ("relay_mta_sts_ca", "good", ()),
    ("lmtp_tls_unverified", "good", ()),
    ("postmaster_missing", "good", ()),
]


@pytest.mark.parametrize("name,cert,creds", CASES, ids=[c[0] for c in CASES])
def test_one_finding(ca, tmp_path, name, cert, creds):
    conf = make_conf(ca, tmp_path, name, cert, creds)
    fid, sev, line = expected(conf)
    r = run(conf, "check")
    got = findings(r)
    assert [(m["file"], m["line"], m["sev"], m["id"]) for m in got] == \
        [(conf, str(line), sev, fid)], r.stdout + r.stderr
    assert r.returncode == (0 if sev == "info" else 1), r.stdout
    assert r.stdout.splitlines()[-1] == ("configuration OK" if sev == "info" else
                                         "%d error%s, %d warning%s" % (
        sev == "error", "" if sev == "error" else "s", sev == "warning",
        "" if sev == "warning" else "s"))

    j = run(conf, "check", "--json")
    assert j.returncode == r.returncode
    doc = json.loads(j.stdout)
    assert doc["file"] == conf and doc["status"] == ("ok" if sev == "info" else "problems")
    assert [(f["id"], f["severity"], f["file"], f["line"]) for f in doc["findings"]] == \
        [(fid, sev, conf, line)]
    assert doc["findings"][0]["message"] == got[0]["msg"]
    if name == "cert_expiring":
        assert got[0]["msg"].endswith(" expires in 10 days"), got[0]["msg"]
    assert doc["findings"][0]["fix"] == got[0]["fix"]
    assert (doc["errors"], doc["warnings"], doc["infos"]) == (
        int(sev == "error"), int(sev == "warning"), int(sev == "info"))


def test_clean(ca, tmp_path):
    conf = make_conf(ca, tmp_path, "clean")
    r = run(conf, "check")
    assert (r.returncode, r.stdout, r.stderr) == (0, "configuration OK\n", "")
    j = run(conf, "check", "--json")
    assert j.returncode == 0
    assert json.loads(j.stdout) == {"file": conf, "status": "ok", "errors": 0, "warnings": 0,
                                    "infos": 0, "findings": []}


def test_oauth_credentials_clean(ca, tmp_path):
    """OAuth credentials for a verified route: no finding (not a password, nothing
    wrong), and exit 0."""
    conf = make_conf(ca, tmp_path, "relay_oauth_clean", creds=("oauth:[192.0.2.5]:587",))
    r = run(conf, "check")
    assert (r.returncode, r.stdout) == (0, "configuration OK\n"), r.stdout + r.stderr


def test_lmtp_local_or_verified_clean(ca, tmp_path):
    """LMTP over a UNIX socket, to a loopback address, or with lmtp_tls verify: no
    finding."""
    conf = make_conf(ca, tmp_path, "lmtp_clean")
    r = run(conf, "check")
    assert (r.returncode, r.stdout) == (0, "configuration OK\n"), r.stdout + r.stderr


def test_expiry_threshold(ca, tmp_path):
    """--cert-days moves the threshold: 10 days left is fine against 5."""
    conf = make_conf(ca, tmp_path, "cert_expiring", "expiring")
    r = run(conf, "check", "--cert-days", "5")
    assert (r.returncode, r.stdout) == (0, "configuration OK\n")
    r = run(conf, "check", "--cert-days", "soon")
    assert r.returncode == 2


def test_note_keeps_exit_zero(ca, tmp_path):
    """Credentials stored for a next hop no relay_host names: a note (info, line
    "(default)": the setting is in the store, not the file), exit 0."""
    conf = make_conf(ca, tmp_path, "clean", creds=("[192.0.2.9]:587",))
    r = run(conf, "check")
    got = findings(r)
    assert [(m["line"], m["sev"], m["id"]) for m in got] == \
        [("(default)", "info", "relay-auth-unused")]
    assert r.returncode == 0 and r.stdout.endswith("configuration OK\n")
    doc = json.loads(run(conf, "check", "--json").stdout)
    assert doc["status"] == "ok" and doc["infos"] == 1 and doc["findings"][0]["line"] is None


def test_syntax_error_exit_2(tmp_path):
    conf = str(tmp_path / "cursus.conf")
    shutil.copy(os.path.join(HERE, "syntax_error.conf"), conf)
    with open(conf) as f:
        bad = [n for n, t in enumerate(f, 1) if "sometimes" in t][0]
    r = run(conf, "check")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("%s:%d: tls: unknown tls \"sometimes\"" % (conf, bad)), r.stderr
    j = run(conf, "check", "--json")
    assert j.returncode == 2
    doc = json.loads(j.stdout)
    assert doc["status"] == "unreadable" and doc["findings"] == []
    assert doc["errors"][0].startswith("%s:%d: " % (conf, bad))


def test_missing_file_exit_2(tmp_path):
    conf = str(tmp_path / "nonexistent.conf")
    r = subprocess.run([lib.CURSUS, "-c", conf, "check"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr == "%s: cannot open: No such file or directory\n" % conf
    j = subprocess.run([lib.CURSUS, "-c", conf, "check", "--json"], capture_output=True,
                       text=True, timeout=60)
    assert j.returncode == 2
    assert json.loads(j.stdout) == {"file": conf, "status": "unreadable", "findings": [],
                                    "errors": ["%s: cannot open: No such file or directory"
                                               % conf]}
