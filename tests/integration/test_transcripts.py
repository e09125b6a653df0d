"""Golden SMTP transcripts: each file in transcripts/ is a dialog with the daemon, the
client's lines and the exact replies, and documents one behaviour.

Format, one directive per line:
  # text           a comment (the first comment says what the dialog shows)
  @listener NAME   smtp (default), submission, or local (the sendmail socket)
  @option NAME VALUE
                   a global option for a daemon of the transcript's own (without any,
                   the module's shared daemon answers)
  C: LINE          sent as LINE CRLF; consecutive C: lines go out together (pipelined)
  S: LINE          one reply line, compared exactly, except that {*} matches any text
                   (session ids, dates)
  CLOSED           the server has closed the connection
  TLS              the TLS handshake, at once (after "C: STARTTLS" and its 220); the
                   server's certificate is not checked
A transcript whose replies differ fails with both versions side by side."""
import os
import re
import socket

import pytest

import cursus_testlib as lib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transcripts")
FILES = sorted(f for f in os.listdir(HERE) if f.endswith(".txt"))


def parse(path):
    opts, listener, steps = {}, "smtp", []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            if line.startswith("@listener "):
                listener = line.split(None, 1)[1]
            elif line.startswith("@option "):
                _, k, v = line.split(None, 2)
                opts[k] = v
            elif line.startswith("C: ") or line == "C:":
                steps.append(("C", line[3:], n))
            elif line.startswith("S: "):
                steps.append(("S", line[3:], n))
            elif line == "CLOSED":
                steps.append(("CLOSED", None, n))
            elif line == "TLS":
                steps.append(("TLS", None, n))
            else:
                raise AssertionError("%s:%d: not a transcript line: %r" % (path, n, line))
    return opts, listener, steps


def pattern(expected):
    return re.compile("".join(".*" if p == "{*}" else re.escape(p)
                              for p in re.split(r"(\{\*\})", expected)) + r"\Z", re.S)


def connect(srv, listener):
    if listener == "local":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(os.path.join(srv.root, "var", "run", "local.sock"))
        return s
    return socket.create_connection(("127.0.0.1", srv.ports[listener]), timeout=10)


def run(srv, listener, steps):
    """Plays the client's side; returns the lines it saw, aligned with the S: steps."""
    sock, buf, seen = connect(srv, listener), b"", []
    try:
        out = b""
        for kind, text, _ in steps:
            if kind == "C":
                out += text.encode("utf-8") + b"\r\n"
                continue
            if kind == "TLS":
                # Nothing may be pending in clear: the server discards it anyway.
                assert not out and not buf, "TLS with clear text pending: %r %r" % (out, buf)
                sock = lib.tls_client_context().wrap_socket(sock)
                continue
            if out:
                sock.sendall(out)
                out = b""
            while b"\r\n" not in buf:
                try:
                    chunk = sock.recv(65536)
                except (ConnectionResetError, socket.timeout, TimeoutError):
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
            if kind == "CLOSED":
                seen.append("CLOSED" if not buf else "still open, sent %r" % buf)
                continue
            if b"\r\n" not in buf:
                seen.append("<connection closed>")
                break
            line, buf = buf.split(b"\r\n", 1)
            seen.append(line.decode("utf-8", "replace"))
    finally:
        sock.close()
    return seen


@pytest.mark.parametrize("name", FILES)
def test_transcript(name, server, start_server):
    opts, listener, steps = parse(os.path.join(HERE, name))
    srv = start_server(**opts) if opts else server
    expected = [(k, t, n) for k, t, n in steps if k not in ("C", "TLS")]
    seen = run(srv, listener, steps)
    report, ok = [], len(seen) == len(expected)
    for i, (kind, text, n) in enumerate(expected):
        got = seen[i] if i < len(seen) else "<nothing>"
        good = got == "CLOSED" if kind == "CLOSED" else bool(pattern(text).match(got))
        ok = ok and good
        report.append("%s line %d: expected %-40s got %s" % ("  " if good else "!!", n,
                                                              text or "CLOSED", got))
    assert ok, "%s differs from the daemon's replies:\n%s" % (name, "\n".join(report))
