"""STARTTLS (RFC 3207) and implicit TLS (RFC 8314): capabilities before and after,
the session reset, no plaintext command surviving into TLS (CVE-2011-0411 family),
and the Received header under TLS."""
import re
import smtplib
import socket
import ssl

import pytest

import cursus_testlib as lib
from cursus_testlib import make_body, received_header


def keywords(reply):
    return [l.split()[0].upper() for l in reply.lines[1:]]


def test_starttls_before_ehlo(server):
    """Accepted (gsasl --starttls sends it first; Postfix and Dovecot accept it): the
    session starts afresh after the handshake anyway."""
    with server.smtp() as c:
        c.starttls()
        c.expect("MAIL FROM:<a@example.test>", 503, "5.5.1")   # EHLO still needed
        r = c.ehlo()
        assert "STARTTLS" not in keywords(r), r


def test_starttls_with_arguments(server):
    with server.smtp() as c:
        c.ehlo()
        c.expect("STARTTLS now", 501, "5.5.4")
        c.expect("NOOP", 250, "2.0.0")


def test_starttls_smtplib(server):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        assert s.has_extn("starttls")
        code, msg = s.starttls(context=lib.tls_client_context())
        assert code == 220, msg
        code, msg = s.ehlo("client.test")
        assert code == 250
        assert not s.has_extn("starttls"), msg
        for k in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking", "dsn"):
            assert s.has_extn(k), (k, msg)
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")


def test_starttls_twice(server):
    with server.smtp() as c:
        c.ehlo()
        c.starttls()
        c.expect("STARTTLS", 503, "5.5.1")   # before EHLO again: sequence
        r = c.ehlo()
        assert "STARTTLS" not in keywords(r), r
        c.expect("STARTTLS", 503, "5.5.1")
        c.expect("NOOP", 250, "2.0.0")


def test_starttls_resets_session(server):
    with server.smtp() as c:
        c.ehlo()
        c.starttls()
        # RFC 3207 4.2: the EHLO before TLS is forgotten.
        c.expect("MAIL FROM:<s@example.test>", 503, "5.5.1")
        c.ehlo()
        c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")


def test_starttls_inside_transaction_forgets_it(server):
    with server.smtp() as c:
        c.ehlo()
        c.expect("MAIL FROM:<s@example.test>", 250, "2.1.0")
        c.expect("RCPT TO:<alice@example.test>", 250, "2.1.5")
        r = c.cmd("STARTTLS")
        if r.code == 220:
            assert c.buf == b""
            c.sock = lib.tls_client_context().wrap_socket(c.sock)
            c.ehlo()
            c.expect("DATA", 503, "5.5.1")
        else:
            # Refusing STARTTLS inside a transaction is correct too.
            assert (r.code, r.enhanced) == (503, "5.5.1"), r


@pytest.mark.parametrize("injected", [
    b"MAIL FROM:<evil@example.test>\r\n",
    b"EHLO evil.test\r\n",
    b"NOOP\r\nNOOP\r\n",
    b"RSET\r\nEHLO evil.test\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<alice@example.test>\r\n",
])
def test_starttls_command_injection(server, injected):
    """STARTTLS and commands in ONE write: what followed STARTTLS in clear must be
    discarded, so the first reply inside TLS answers our first TLS command."""
    with server.smtp() as c:
        c.ehlo()
        c.send(b"STARTTLS\r\n" + injected)
        r = c.reply()
        assert (r.code, r.enhanced) == (220, "2.0.0"), r
        # The server must not have answered the injected commands in clear either.
        assert c.buf == b"", "replies in clear after 220: %r" % c.buf
        c.sock.settimeout(10)
        c.sock = lib.tls_client_context().wrap_socket(c.sock)
        c.send("NOOP\r\n")
        r = c.reply()
        assert (r.code, r.enhanced) == (250, "2.0.0"), "first reply in TLS: %r" % r
        assert c.quiet(0.5), "extra reply in TLS (injected command ran): %r" % c.buf
        # And the session was reset: no EHLO (neither ours nor the injected one).
        c.expect("MAIL FROM:<s@example.test>", 503, "5.5.1")


def test_starttls_injection_split_across_writes(server):
    """Bytes sent right after STARTTLS, before the handshake, in a second write."""
    with server.smtp() as c:
        c.ehlo()
        c.send(b"STARTTLS\r\n")
        c.send(b"EHLO evil.test\r\n")
        c.expect(None, 220, "2.0.0")
        assert c.buf == b""
        try:
            c.sock = lib.tls_client_context().wrap_socket(c.sock)
        except (ssl.SSLError, OSError):
            # The injected bytes broke the handshake: acceptable, nothing ran.
            return
        c.expect("MAIL FROM:<s@example.test>", 503, "5.5.1")


def test_starttls_garbage_handshake_does_not_crash(server):
    with server.smtp() as c:
        c.ehlo()
        c.expect("STARTTLS", 220, "2.0.0")
        c.send(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100 + b"QUIT\r\n")
        c.wait_closed(10)
    with server.smtp() as c:
        c.expect("NOOP", 250, "2.0.0")


def test_starttls_then_disconnect(server):
    for _ in range(3):
        with server.smtp() as c:
            c.ehlo()
            c.expect("STARTTLS", 220, "2.0.0")
    with server.smtp() as c:
        c.expect("NOOP", 250, "2.0.0")


def test_delivered_over_starttls_has_esmtps(server, token):
    with server.smtp() as c:
        c.ehlo()
        c.starttls()
        version, cipher = c.sock.version(), c.sock.cipher()[0]
        c.ehlo("tls.client.test")
        c.send_message("s@example.test", ["alice@example.test"], make_body(token))
    rec = received_header(server.wait_message("alice@example.test", token))
    assert re.search(r" with ESMTPS id ", rec), rec
    assert version in rec, (version, rec)
    assert cipher in rec, (cipher, rec)
    assert "from tls.client.test " in rec, rec


def test_helo_after_starttls_is_smtp_with_tls_info(server, token):
    with server.smtp() as c:
        c.ehlo()
        c.starttls()
        version = c.sock.version()
        c.expect("HELO tls.client.test", 250)
        c.send_message("s@example.test", ["bob@example.test"], make_body(token))
    rec = received_header(server.wait_message("bob@example.test", token))
    # RFC 3848 has no keyword for HELO over TLS: SMTP, and the TLS comment still there.
    assert re.search(r" with SMTP id ", rec), rec
    assert version in rec, rec


def test_implicit_tls_submissions(server):
    raw = socket.create_connection(("127.0.0.1", server.ports["submissions"]), timeout=10)
    with lib.tls_client_context().wrap_socket(raw) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        c = lib.Smtp.__new__(lib.Smtp)
        c.sock, c.buf, c.timeout = s, b"", 10
        c.expect(None, 220)
        r = c.ehlo()
        assert "STARTTLS" not in keywords(r), r
        c.expect("STARTTLS", 503, "5.5.1")
        c.expect("MAIL FROM:<alice@example.test>", 530, "5.7.0")
        c.expect("QUIT", 221, "2.0.0")


def test_implicit_tls_port_refuses_plaintext(server):
    with socket.create_connection(("127.0.0.1", server.ports["submissions"]), timeout=10) as s:
        s.sendall(b"EHLO plain.test\r\n")
        s.settimeout(10)
        data = b""
        try:
            for _ in range(100):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        assert b"250" not in data, data
    with server.smtp("submissions") as c:
        c.expect("NOOP", 250, "2.0.0")


def test_implicit_tls_smtplib(server):
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], timeout=10,
                          context=lib.tls_client_context()) as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        assert not s.has_extn("starttls")
        code, msg = s.mail("alice@example.test")
        assert code == 530 and msg.startswith(b"5.7.0"), (code, msg)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_min_version(server):
    ctx = lib.tls_client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    raw = socket.create_connection(("127.0.0.1", server.ports["submissions"]), timeout=10)
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(raw).close()
    finally:
        raw.close()
