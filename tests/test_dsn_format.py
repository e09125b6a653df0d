"""DSNs built by src/dsn parsed back with Python's email package, field by field.

The unit test binary (tests/unit/test_dsn.c) writes each report it builds to
$DSN_SAMPLES_DIR/NAME.eml; here every one is read as a mail reader would read it."""
import email
import email.policy
import email.utils
import os
import re
import subprocess

import pytest

BUILD = os.environ.get("CURSUS_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
BINARY = os.path.join(BUILD, "tests", "test_dsn")

# The times of tests/unit/test_dsn.c.
T_RECEIVED, T_ATTEMPT, T_NOW, T_UNTIL = 1700000000, 1700003600, 1700007200, 1700345600
ARRIVAL = "Tue, 14 Nov 2023 22:13:20 +0000"
ATTEMPT = "Tue, 14 Nov 2023 23:13:20 +0000"
UNTIL = "Sat, 18 Nov 2023 22:13:20 +0000"
PER_MESSAGE = {"Reporting-MTA": "dns; mx.cursus.test", "Arrival-Date": ARRIVAL}
SUBJECT = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Mail relayed",
}
LUNCH_HEADERS = [
    ("Received", "from client (client [192.0.2.1])\tby mx.cursus.test"),
    ("From", "Alice <alice@cursus.test>"),
    ("To", "bob@example.org"),
    ("Subject", "Lunch"),
    ("Message-ID", "<lunch.1@cursus.test>"),
]


def rcpt(final, action, status, **more):
    fields = {"Final-Recipient": final, "Action": action, "Status": status}
    fields.update({k.replace("_", "-"): v for k, v in more.items()})
    return fields


def bob_failed(status, diag, **more):
    return rcpt("rfc822; bob@example.org", "failed", status, Remote_MTA="dns; mx.example.org",
                Diagnostic_Code=diag, Last_Attempt_Date=ATTEMPT, **more)


LONG_WORDS = " ".join(f"word{i}" for i in range(200))
# The 1500-octet word is cut after 900 by a fold, which leaves one space on unfolding.
LONG_DIAG = "smtp; 550 5.7.1 " + LONG_WORDS + " " + "x" * 900 + " " + "x" * 600

# name: (overall kind, per-message extra, per-recipient groups, returned type, returned check)
CASES = {
    "failed": ("failed", {"Original-Envelope-Id": "QQ314159"}, [
        {"Original-Recipient": "rfc822; Bob@Example.org",
         **bob_failed("5.1.1", "smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: "
                      "User unknown in virtual mailbox table")}],
        "message/rfc822", "lunch"),
    "delayed": ("delayed", {}, [
        rcpt("rfc822; carol@example.net", "delayed", "4.4.1",
             Diagnostic_Code="X-Cursus; connect to mx.example.net[192.0.2.7]:25: "
                             "Connection timed out",
             Last_Attempt_Date=ATTEMPT, Will_Retry_Until=UNTIL)],
        "message/rfc822", "lunch"),
    "delivered": ("delivered", {}, [
        rcpt("rfc822; carol@example.net", "delivered", "2.0.0", Last_Attempt_Date=ATTEMPT)],
        "message/rfc822", "lunch"),
    "relayed": ("relayed", {}, [
        rcpt("rfc822; carol@example.net", "relayed", "2.0.0",
             Remote_MTA="dns; relay.example.net",
             Diagnostic_Code="smtp; 250 2.0.0 Ok: queued as 4SVx1", Last_Attempt_Date=ATTEMPT)],
        "message/rfc822", "lunch"),
    "several": ("failed", {}, [
        bob_failed("5.1.1", "smtp; 550 5.1.1 unknown user"),
        rcpt("rfc822; carol@example.net", "delayed", "4.2.2", Remote_MTA="dns; mx.example.net",
             Diagnostic_Code="smtp; 452 4.2.2 mailbox full", Last_Attempt_Date=ATTEMPT,
             Will_Retry_Until=UNTIL),
        rcpt("rfc822; dave@cursus.test", "failed", "5.2.2",
             Diagnostic_Code="X-Cursus; mailbox over quota", Last_Attempt_Date=ATTEMPT)],
        "text/rfc822-headers", "lunch-headers"),
    "eightbit": ("failed", {}, [bob_failed("5.6.7", "smtp; 553 5.6.7 cannot take 8-bit")],
                 "message/rfc822", "eightbit"),
    "utf8": ("failed", {}, [
        rcpt("utf-8; jos\\x{E9}\\x{2B}x\\x{3D}y@exampl\\x{E9}.org", "failed", "5.1.1",
             Remote_MTA="dns; mx.example.org", Diagnostic_Code="smtp; 550 5.1.1 unknown",
             Last_Attempt_Date=ATTEMPT, Original_Recipient="utf-8; jos\\x{E9}@example.org")],
        "message/global", "utf8"),
    "utf8hdrs": ("failed", {}, [
        rcpt("utf-8; jos\\x{E9}\\x{2B}x\\x{3D}y@exampl\\x{E9}.org", "failed", "5.1.1",
             Remote_MTA="dns; mx.example.org", Diagnostic_Code="smtp; 550 5.1.1 unknown",
             Last_Attempt_Date=ATTEMPT, Original_Recipient="utf-8; jos\\x{E9}@example.org")],
        "message/global-headers", "utf8hdrs"),
    "longdiag": ("failed", {}, [bob_failed("5.7.1", LONG_DIAG)], "message/rfc822", "lunch"),
    "nasty": ("failed", {}, [
        rcpt("rfc822; bob@example.org", "failed", "5.0.0",
             Remote_MTA="dns; mx.example.org X-Injected: yes",
             Diagnostic_Code="smtp; 550-5.1.1 first line 550 5.1.1 caf?? ?[31mred ?",
             Last_Attempt_Date=ATTEMPT)],
        "message/rfc822", "lunch"),
    "barelf": ("failed", {}, None, "message/rfc822", "barelf"),
    "longline": ("failed", {}, None, "text/rfc822-headers", "longline"),
    "longheader": ("failed", {}, None, "text/rfc822-headers", "longheader"),
    "binary": ("failed", {}, None, "text/rfc822-headers", "lunch-headers"),
    "empty": ("failed", {}, None, "message/rfc822", "empty"),
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    d = tmp_path_factory.mktemp("dsn")
    r = subprocess.run([BINARY], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, DSN_SAMPLES_DIR=str(d)))
    assert r.returncode == 0 and " 0 failed" in r.stdout, r.stdout + r.stderr
    return d


def parse(samples, name):
    raw = (samples / f"{name}.eml").read_bytes()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def content(part):
    """The decoded text with the wire's CRLF as Python's newline."""
    return part.get_content().replace("\r\n", "\n")


def check_returned(part, what):
    """The third part: the original message or its header, as the reader sees it."""
    if what in ("lunch-headers", "longline", "longheader"):
        hdrs = email.message_from_string(part.get_payload(), policy=email.policy.default)
        want = {"lunch-headers": LUNCH_HEADERS, "longline": [("Subject", "long")],
                # Cut every 900 octets by a fold, whose space stays on unfolding.
                "longheader": [("X-Long", " ".join("z" * n for n in (892, 900, 198))),
                               ("Subject", "after")]}[what]
        assert [(k, str(v)) for k, v in hdrs.items()] == want
        assert hdrs.get_payload() == ""
        return
    (orig,) = part.get_payload()
    if what == "lunch":
        assert [(k, str(v)) for k, v in orig.items()] == LUNCH_HEADERS
        assert content(orig) == "Shall we meet at noon?\n"
    elif what == "eightbit":
        assert part["Content-Transfer-Encoding"] == "8bit"
        assert orig["Subject"] == "plain"
        assert orig.get_payload(decode=True) == "na\u00efve\r\n".encode()
    elif what == "utf8":
        assert part["Content-Transfer-Encoding"] == "8bit"
        assert orig["Subject"] == "caf\u00e9?"
        assert content(orig) == "Un caf\u00e9 \u00e0 midi ?\n"
    elif what == "utf8hdrs":
        assert orig["From"] == "Jos\u00e9 <jose@cursus.test>"
        assert orig["Subject"] == "\u00e9t\u00e9"
    elif what == "barelf":
        assert orig["Subject"] == "lf"
        assert content(orig) == "line one\nline two\n"
    elif what == "empty":
        assert list(orig.items()) == [] and orig.get_payload() == ""
    else:
        raise AssertionError(what)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dsn_parses(samples, name):
    kind, per_message, groups, returned_type, returned = CASES[name]
    raw, msg = parse(samples, name)

    assert msg.defects == []
    assert msg["From"].addresses[0].display_name == "Mail Delivery System"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.cursus.test"
    assert msg["To"].addresses[0].addr_spec == "alice@cursus.test"
    assert msg["Subject"] == SUBJECT[kind]
    assert msg["Date"].datetime.timestamp() == T_NOW
    assert re.fullmatch(r"<[0-9a-f]+\.[0-9a-f]{16}@mx\.cursus\.test>", msg["Message-ID"])
    assert msg["MIME-Version"] == "1.0"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg.is_multipart()
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    boundary = msg.get_boundary()
    assert raw.count(boundary.encode()) == 5  # the parameter and four delimiter lines

    text, status, orig = msg.get_payload()
    assert [p.get_content_type() for p in (text, status, orig)] == \
        ["text/plain", "message/delivery-status", returned_type]
    assert all(p.defects == [] for p in (text, status, orig))

    words = content(text)
    assert words.startswith("This is the mail system at mx.cursus.test.\n\n")
    if returned_type.endswith("headers"):
        assert words.endswith("The header of your message is attached below.\n")
    else:
        assert words.endswith("Your message is attached below.\n")

    blocks = status.get_payload()
    assert dict(blocks[0].items()) == {**per_message, **PER_MESSAGE}
    assert email.utils.parsedate_to_datetime(blocks[0]["Arrival-Date"]).timestamp() == T_RECEIVED
    if groups is not None:
        assert [dict((k, str(v)) for k, v in b.items()) for b in blocks[1:]] == groups
        for g, b in zip(groups, blocks[1:]):
            # The RFC 3464 order of the fields a group has.
            order = ["Original-Recipient", "Final-Recipient", "Action", "Status", "Remote-MTA",
                     "Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until"]
            assert list(b.keys()) == [f for f in order if f in g]
            if "Last-Attempt-Date" in g:
                assert email.utils.parsedate_to_datetime(b["Last-Attempt-Date"]).timestamp() \
                    == T_ATTEMPT
            if "Will-Retry-Until" in g:
                assert email.utils.parsedate_to_datetime(b["Will-Retry-Until"]).timestamp() \
                    == T_UNTIL
    else:
        assert len(blocks) == 2 and blocks[1]["Action"] == "failed"
    check_returned(orig, returned)


def test_plain_words(samples):
    _, msg = parse(samples, "several")
    words = content(msg.get_payload()[0])
    assert "Your message to bob@example.org could not be delivered.\n" \
           "The receiving server (mx.example.org) said:\n\n    550 5.1.1 unknown user\n" in words
    assert "Your message to carol@example.net has not been delivered yet." in words
    assert "Your message to dave@cursus.test could not be delivered.\n" \
           "The reason given was:\n\n    mailbox over quota\n" in words
    assert "We will keep trying until Sat, 18 Nov 2023 22:13:20 +0000." in " ".join(words.split())
    assert "not-reported" not in words

    _, msg = parse(samples, "utf8")
    text = msg.get_payload()[0]
    assert text.get_content_charset() == "utf-8"
    assert "Your message to jos\u00e9+x=y@exampl\u00e9.org could not be delivered." \
        in content(text)


def test_line_limits(samples):
    for name in CASES:
        raw = (samples / f"{name}.eml").read_bytes()
        assert b"\n" not in raw.replace(b"\r\n", b""), name
        assert b"\r" not in raw.replace(b"\r\n", b""), name
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998, name
