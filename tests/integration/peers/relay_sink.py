"""An aiosmtpd next hop for the relay tests: records each connection, EHLO, AUTH
attempt, MAIL and RCPT (with their parameters and whether TLS was up) and message
as JSON lines in --log (each with the client's address and port, "peer", so that a
test can tell connections apart), and prints READY once listening. The AUTH
credentials it accepts come from the environment, never argv: relayuser with
SINK_PASSWORD, and any "user:password" line of SINK_USERS.

  relay_sink.py --host 127.0.0.x --port N --log FILE [--cert C --key K] [--auth]
                [--auth-fail] [--no-8bit] [--size N] [--reject-rcpt ADDR]
                [--mail-reply TEXT] [--dot-reply TEXT] [--dot-delay SECONDS] [--dsn]
                [--requiretls]

--dot-delay holds the reply to the final dot (after recording the message, so a
client killed meanwhile has handed it over without hearing the answer); --dsn
advertises DSN (RFC 3461) and accepts its MAIL and RCPT parameters, recorded raw;
--requiretls advertises REQUIRETLS (RFC 8689) after STARTTLS only, and takes the MAIL
parameter (recorded raw, as every MAIL is).
"""
import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

args = None
log_file = None


def record(**ev):
    ev["t"] = time.time()
    log_file.write(json.dumps(ev) + "\n")
    log_file.flush()


def peer(session):
    return "%s:%s" % tuple(session.peer[:2]) if session.peer else None


DSN_MAIL = ("RET=", "ENVID=")
DSN_RCPT = ("NOTIFY=", "ORCPT=")


def without(arg, prefixes):
    """arg without the parameters aiosmtpd 1.4 does not know (it refuses them)."""
    if not arg:
        return arg
    return " ".join(w for w in arg.split(" ") if not w.upper().startswith(prefixes))


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        record(ev="ehlo", tls=session.ssl is not None, peer=peer(session))
        if args.no_8bit:
            responses = [r for r in responses if "8BITMIME" not in r]
        if args.dsn:
            responses = responses[:-1] + ["250-DSN"] + responses[-1:]
        if args.requiretls and session.ssl is not None:
            responses = responses[:-1] + ["250-REQUIRETLS"] + responses[-1:]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        record(ev="mail", addr=address, opts=mail_options, tls=session.ssl is not None)
        if args.mail_reply:
            return args.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        record(ev="rcpt", addr=address, opts=rcpt_options)
        if address in args.reject_rcpt:
            return "550 5.1.1 <%s>: no such user" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        record(ev="data", mail_from=envelope.mail_from, rcpts=envelope.rcpt_tos,
               content=envelope.original_content.decode("utf-8", "replace"),
               tls=session.ssl is not None, peer=peer(session))
        if args.dot_delay:
            await asyncio.sleep(args.dot_delay)
            record(ev="dot_reply", peer=peer(session))
        return args.dot_reply or "250 2.0.0 queued as 1"


def accounts():
    acc = {b"relayuser": os.environ.get("SINK_PASSWORD", "").encode()}
    for line in os.environ.get("SINK_USERS", "").splitlines():
        if ":" in line:
            user, pw = line.split(":", 1)
            acc[user.encode()] = pw.encode()
    return acc


def authenticator(server, session, envelope, mechanism, auth_data):
    acc = accounts()
    ok = (not args.auth_fail and auth_data.login in acc
          and auth_data.password == acc[auth_data.login])
    record(ev="auth", mech=mechanism, tls=session.ssl is not None, ok=ok,
           user=auth_data.login.decode("utf-8", "replace"), peer=peer(session))
    return AuthResult(success=ok, handled=False)


class RecordingSMTP(SMTP):
    def connection_made(self, transport):
        pn = transport.get_extra_info("peername")
        record(ev="connect", peer="%s:%s" % tuple(pn[:2]) if pn else None)
        super().connection_made(transport)

    async def smtp_MAIL(self, arg):
        # aiosmtpd 1.4 knows no AUTH= (RFC 4954 5) and takes SIZE= itself: the raw
        # parameters are recorded here, and AUTH= kept out of its way.
        record(ev="mail_raw", arg=arg, peer=peer(self.session))
        arg = without(arg, ("AUTH=",) + (DSN_MAIL if args.dsn else ())
                      + (("REQUIRETLS",) if args.requiretls else ()))
        return await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        record(ev="rcpt_raw", arg=arg, peer=peer(self.session))
        if args.dsn:
            arg = without(arg, DSN_RCPT)
        return await super().smtp_RCPT(arg)


class SinkController(Controller):
    def factory(self):
        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


def main():
    global args, log_file
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth", action="store_true")
    p.add_argument("--auth-fail", action="store_true")
    p.add_argument("--no-8bit", action="store_true")
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--reject-rcpt", action="append", default=[])
    p.add_argument("--mail-reply")
    p.add_argument("--dot-reply")
    p.add_argument("--dot-delay", type=float, default=0)
    p.add_argument("--dsn", action="store_true")
    p.add_argument("--requiretls", action="store_true")
    args = p.parse_args()
    log_file = open(args.log, "a")
    kw = dict(hostname=args.host, port=args.port, ready_timeout=10,
              server_hostname="sink.example", data_size_limit=args.size or None,
              enable_SMTPUTF8=True, auth_require_tls=False)
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        kw["tls_context"] = ctx
    if args.auth:
        kw["authenticator"] = authenticator
        kw["auth_exclude_mechanism"] = ["CRAM-MD5"]
    ctl = SinkController(Handler(), **kw)
    ctl.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin (or kills us)
    finally:
        ctl.stop()
        time.sleep(0)


if __name__ == "__main__":
    main()
