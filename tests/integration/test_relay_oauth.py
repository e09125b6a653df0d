"""OAuth 2 to a smart host (issue 10, item 5): cursusd gets its access tokens from a
token endpoint itself (refresh_token and client_credentials grants, over verified
HTTPS), sends them with XOAUTH2 or OAUTHBEARER, refreshes them before they expire
and once when the next hop refuses one, stores a rotated refresh token, defers mail
with the reason when no token can be had (refused, endpoint down, too slow), and
never logs a token, a client secret or the AUTH payload. The endpoint and the next
hop are oauthpeers.py's, on 127.0.0.x, with certificates from the test CA."""
import base64
import json
import os
import re
import sqlite3
import time

import pytest

import cursus_testlib as lib
from oauthpeers import OAuthSink, TokenEndpoint, closed_port
from relaypeers import certs  # noqa: F401 (fixture)
from test_metrics import get, scrape

ALICE = "alice@example.test"
SMART = "127.0.0.63"        # the next hop (in the test certificate's names)
ENDPOINT_HOST = "127.0.0.64"
CLIENT_ID = "cursus-test-client"
CLIENT_SECRET = "Client-Secret-5e1f9a"
ACCOUNT = "relay-account@example.test"
SCOPE = "https://mail.example/.default offline_access"


@pytest.fixture
def endpoint(certs):
    ep = TokenEndpoint(ENDPOINT_HOST, *certs["good"], clients={CLIENT_ID: CLIENT_SECRET})
    yield ep
    ep.stop()


@pytest.fixture
def sink(certs, endpoint):
    s = OAuthSink(SMART, *certs["good"], endpoint)
    yield s
    s.stop()


def server(start_server, certs, sink, **opts):
    conf = dict(relay_host="[%s]:%d" % (SMART, sink.port), relay_tls="verify",
                relay_ca=certs["ca"], retry_min=1, retry_max=2)
    conf.update(opts)
    return start_server(**conf)


def add_oauth(srv, url, mechanism="XOAUTH2", grant="refresh_token", secrets_in=None,
              port=None, check=True):
    args = ["relay-auth", "add", "[%s]:%d" % (SMART, port), ACCOUNT, "--oauth", url,
            "--client-id", CLIENT_ID, "--scope", SCOPE, "--mechanism", mechanism,
            "--grant", grant]
    return srv.admin(*args, stdin=secrets_in, check=check)


def stored_refresh_token(srv):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(srv.root, "users.db"), uri=True)
    try:
        return db.execute("SELECT oauth_refresh_token FROM relay_auth").fetchone()[0]
    finally:
        db.close()


def submit(srv, token, rcpt="bob@far.example"):
    lib.submit_as(srv, ALICE, [rcpt], lib.make_body(token))


def delivered(sink, token):
    return [e for e in sink.of("data") if token in e["content"]]


def queue_json(srv):
    return json.loads(srv.admin("queue", "list", "--json").stdout)


def no_secret_in_logs(srv, endpoint, sink, extra=()):
    """Nothing secret in cursusd's log (cursus-auth's lines included): the client
    secret, any refresh or access token the endpoint ever issued, any AUTH payload."""
    log = srv.log
    secrets = [CLIENT_SECRET] + list(endpoint.refresh_tokens) + list(endpoint.tokens) + list(extra)
    for r in endpoint.requests:
        secrets += [v for k, v in r.items() if k in ("refresh_token", "client_secret")]
    for e in sink.of("auth"):
        if e["token"]:
            secrets.append(e["token"])
    for s in secrets:
        assert s not in log, "a secret in the log"
        assert base64.b64encode(s.encode()).decode()[:16] not in log
    assert not re.search(r"> AUTH (XOAUTH2|OAUTHBEARER) (?!<hidden>)", log)


@pytest.mark.parametrize("mechanism,grant", [("XOAUTH2", "refresh_token"),
                                             ("OAUTHBEARER", "refresh_token"),
                                             ("XOAUTH2", "client_credentials"),
                                             ("OAUTHBEARER", "client_credentials")])
def test_delivery_with_each_mechanism_and_grant(start_server, certs, endpoint, sink, token,
                                                mechanism, grant):
    srv = server(start_server, certs, sink, log_debug="yes")
    if grant == "refresh_token":
        rt = endpoint.add_refresh_token(CLIENT_ID)
        secrets_in = "%s\n%s\n" % (CLIENT_SECRET, rt)
    else:
        rt = None
        secrets_in = CLIENT_SECRET + "\n"
    r = add_oauth(srv, endpoint.url, mechanism, grant, secrets_in, port=sink.port)
    assert r.stdout == ("relay credentials for [%s]:%d (sender default) set: user %s, "
                        "OAuth %s, %s grant\n" % (SMART, sink.port, ACCOUNT, mechanism, grant))
    assert CLIENT_SECRET not in r.stdout + r.stderr
    r = srv.admin("relay-auth", "list")
    assert r.stdout == "[%s]:%d default %s oauth %s\n" % (SMART, sink.port, ACCOUNT, mechanism)

    submit(srv, token)
    assert lib.wait_until(lambda: delivered(sink, token), 15), srv.log[-3000:]
    auths = sink.of("auth")
    assert len(auths) == 1 and auths[0]["ok"], auths
    assert auths[0]["mech"] == mechanism and auths[0]["user"] == ACCOUNT
    if mechanism == "OAUTHBEARER":
        assert auths[0]["host"] == SMART and auths[0]["port"] == str(sink.port)
    req = endpoint.requests
    assert len(req) == 1
    assert req[0]["grant_type"] == grant and req[0]["client_id"] == CLIENT_ID
    assert req[0]["client_secret"] == CLIENT_SECRET and req[0]["scope"] == SCOPE
    assert req[0]["_ctype"] == "application/x-www-form-urlencoded"
    assert req[0].get("refresh_token") == rt
    assert srv.wait_queue_empty(10)
    line = [l for l in srv.log.splitlines() if 'rcpt="bob@far.example"' in l][-1]
    assert "result=relayed status=2.0.0" in line and "verified=yes" in line
    assert "oauth event=token-fetched nexthop=[%s]:%d grant=%s" % (SMART, sink.port, grant) \
        in srv.log

    # A second message uses the cached token: no second request to the endpoint.
    submit(srv, token + "-2")
    assert lib.wait_until(lambda: delivered(sink, token + "-2"), 15), srv.log[-3000:]
    assert len(endpoint.requests) == 1
    no_secret_in_logs(srv, endpoint, sink)


def fetches_counted(port, result):
    return get(scrape(port)[0], "cursus_relay_oauth_token_fetches_total", result=result)


def delivered_then_refreshed_once(srv, endpoint, sink, token, stored):
    """OAUTHBEARER with the refresh_token grant: a message delivered, the rotated refresh
    token stored (stored() reads it from the store); then the token refused at the next
    hop and refreshed exactly once, with that stored token, which rotates again. Returns
    the next hop's AUTH events."""
    rt = endpoint.add_refresh_token(CLIENT_ID)
    add_oauth(srv, endpoint.url, "OAUTHBEARER", secrets_in="%s\n%s\n" % (CLIENT_SECRET, rt),
              port=sink.port)
    assert stored() == rt
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(sink, token), 15), srv.log[-3000:]
    rotated = stored()
    assert rotated != rt and rotated in endpoint.refresh_tokens

    # The token dies early at the next hop (revoked, or its clock ran out first).
    endpoint.revoke_all()
    submit(srv, token + "-2")
    assert lib.wait_until(lambda: delivered(sink, token + "-2"), 15), srv.log[-3000:]
    auths = sink.of("auth")
    assert [a["ok"] for a in auths] == [True, False, True], auths
    # Exactly one refresh, with the rotated refresh token cursus stored.
    assert len(endpoint.requests) == 2
    assert endpoint.requests[1]["refresh_token"] == rotated
    assert stored() not in (rt, rotated) and stored() in endpoint.refresh_tokens
    return auths


def test_token_refused_at_the_next_hop_is_refreshed_once(start_server, certs, endpoint, sink,
                                                         token):
    mport = lib.free_port()
    srv = server(start_server, certs, sink, relay_idle_time=0, log_debug="yes",
                 extra_conf="metrics_listen 127.0.0.1:%d" % mport)
    auths = delivered_then_refreshed_once(srv, endpoint, sink, token,
                                          lambda: stored_refresh_token(srv))
    # RFC 7628 3.2.3: the error challenge answered with a single %x01.
    assert auths[1]["error_answer"] == "AQ=="
    assert auths[2]["token"] != auths[1]["token"]
    assert "oauth event=token-rejected nexthop=[%s]:%d: refreshing" % (SMART, sink.port) \
        in srv.log
    assert srv.wait_queue_empty(10)
    assert fetches_counted(mport, "ok") == 2
    no_secret_in_logs(srv, endpoint, sink)


def test_refused_twice_defers_with_the_535(start_server, certs, endpoint, sink, token):
    # Every token is dead on arrival at the next hop: one refresh, then the 535 stands.
    srv = server(start_server, certs, sink, retry_min=3600, retry_max=3600)
    sink.mechs = ("XOAUTH2",)
    rt = endpoint.add_refresh_token(CLIENT_ID)
    add_oauth(srv, endpoint.url, "XOAUTH2", secrets_in="%s\n%s\n" % (CLIENT_SECRET, rt),
              port=sink.port)
    endpoint.lifetime = 0  # issued already expired
    submit(srv, token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    auths = sink.of("auth")
    assert [a["ok"] for a in auths] == [False, False], auths
    assert all(a["error_answer"] == "" for a in auths)  # XOAUTH2: an empty response
    assert len(endpoint.requests) == 2
    r = queue_json(srv)[0]["recipients"][0]
    assert r["state"] == "deferred" and r["status"] == "4.7.8", r
    assert r["reply"] == ("%s[%s]: authentication failed: 535 5.7.8 Authentication "
                          "unsuccessful (token refused: 401)" % (SMART, SMART)), r
    assert delivered(sink, token) == []
    no_secret_in_logs(srv, endpoint, sink)


def test_token_refreshed_before_it_expires(start_server, certs, endpoint, sink, token):
    srv = server(start_server, certs, sink, relay_oauth_refresh_margin="0.5")
    endpoint.lifetime = 2
    add_oauth(srv, endpoint.url, "XOAUTH2", "client_credentials", CLIENT_SECRET + "\n",
              port=sink.port)
    submit(srv, token)
    assert lib.wait_until(lambda: delivered(sink, token), 15), srv.log[-3000:]
    first = time.time()
    # Past the refresh point (2 s - 0.5 s) but the token still valid at the next hop
    # for a while: cursus must not send it.
    assert lib.wait_until(lambda: time.time() > first + 1.6, 5)
    submit(srv, token + "-2")
    assert lib.wait_until(lambda: delivered(sink, token + "-2"), 15), srv.log[-3000:]
    assert len(endpoint.requests) == 2
    assert all(a["ok"] for a in sink.of("auth"))


def test_refused_refresh_defers_with_the_reason(start_server, certs, endpoint, sink, token):
    mport = lib.free_port()
    srv = server(start_server, certs, sink, retry_min=3600, retry_max=3600,
                 extra_conf="metrics_listen 127.0.0.1:%d" % mport)
    rt = endpoint.add_refresh_token(CLIENT_ID)
    add_oauth(srv, endpoint.url, secrets_in="%s\n%s\n" % (CLIENT_SECRET, rt), port=sink.port)
    endpoint.mode = "invalid_grant"
    submit(srv, token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    assert sink.of("connect") == []  # no connection without a token
    r = queue_json(srv)[0]["recipients"][0]
    assert r["state"] == "deferred" and r["status"] == "4.7.0", r
    assert r["reply"] == ("OAuth token endpoint %s refused the refresh_token grant: "
                          "invalid_grant: AADSTS70008: the refresh token has expired"
                          % endpoint.url), r
    assert re.search(r"oauth event=token-refused nexthop=\[%s\]:%d grant=refresh_token url=%s "
                     r"status=400 error=invalid_grant" % (re.escape(SMART), sink.port,
                                                           re.escape(endpoint.url)), srv.log)
    assert re.search(r'rcpt="bob@far.example" .*result=deferred status=4\.7\.0', srv.log)
    # The stored refresh token is kept for the administrator to replace.
    assert stored_refresh_token(srv) == rt
    assert fetches_counted(mport, "refused") == 1 and fetches_counted(mport, "ok") is None
    no_secret_in_logs(srv, endpoint, sink)


def test_endpoint_down_defers(start_server, certs, sink, endpoint, token):
    srv = server(start_server, certs, sink, retry_min=3600, retry_max=3600)
    url = "https://%s:%d/token" % (ENDPOINT_HOST, closed_port(ENDPOINT_HOST))
    add_oauth(srv, url, "XOAUTH2", "client_credentials", CLIENT_SECRET + "\n", port=sink.port)
    submit(srv, token)
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    r = queue_json(srv)[0]["recipients"][0]
    assert r["status"] == "4.7.0", r
    assert r["reply"].startswith("OAuth token endpoint %s failed: " % url), r
    assert "oauth event=token-failed" in srv.log and "result=error" in srv.log
    assert sink.of("connect") == []
    no_secret_in_logs(srv, endpoint, sink)


def test_slow_endpoint_times_out_and_never_hangs(start_server, certs, endpoint, sink, token):
    srv = server(start_server, certs, sink, retry_min=3600, retry_max=3600,
                 relay_oauth_timeout="0.5")
    add_oauth(srv, endpoint.url, "XOAUTH2", "client_credentials", CLIENT_SECRET + "\n",
              port=sink.port)
    endpoint.mode, endpoint.delay = "slow", 5
    t0 = time.monotonic()
    submit(srv, token)
    # The daemon keeps serving while the fetch waits.
    with srv.smtp() as c:
        c.ehlo()
    assert lib.wait_until(lambda: "result=deferred" in srv.log, 15), srv.log[-3000:]
    assert time.monotonic() - t0 < 4.5
    r = queue_json(srv)[0]["recipients"][0]
    assert r["status"] == "4.7.0", r
    assert r["reply"] == "OAuth token endpoint %s timed out: no answer within 500 ms" % endpoint.url
    assert "oauth event=token-failed" in srv.log and "result=timeout" in srv.log


def test_secrets_never_from_argv_and_checked(start_server, certs, endpoint, sink):
    srv = server(start_server, certs, sink)
    # No secret on stdin: refused, nothing stored.
    r = add_oauth(srv, endpoint.url, "XOAUTH2", "client_credentials", "", port=sink.port,
                  check=False)
    assert r.returncode == 1 and "no client secret given" in r.stderr
    # http:// is refused: the secrets go only over TLS.
    r = add_oauth(srv, "http://%s/token" % ENDPOINT_HOST, "XOAUTH2", "client_credentials",
                  CLIENT_SECRET + "\n", port=sink.port, check=False)
    assert r.returncode == 1 and "must be https://" in r.stderr
    assert CLIENT_SECRET not in r.stdout + r.stderr
    r = add_oauth(srv, endpoint.url, "PLAIN", port=sink.port, secrets_in="x\ny\n", check=False)
    assert r.returncode == 2
    r = srv.admin("relay-auth", "add", "[%s]:%d" % (SMART, sink.port), ACCOUNT, "--client-id",
                  CLIENT_ID, stdin="pw\n", check=False)
    assert r.returncode == 2  # --client-id without --oauth
    assert srv.admin("relay-auth", "list").stdout == ""
