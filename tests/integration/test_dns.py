"""`cursus mx` (the dns module outbound delivery uses) against a real DNS server on
127.0.0.1 (peers/dns_server.py): MX order and shuffle, implicit and null MX, NXDOMAIN,
SERVFAIL, timeouts, the address family policy, dropping this host, unusable hosts.

Each host has at most one address per family: libunbound rotates the records of an
RRset with the clock, so several addresses of one family come in a varying order."""
import subprocess
import time

import pytest

import cursus_testlib as lib
from dnsfixture import dns_server  # noqa: F401  (a pytest fixture)

EX_TEMPFAIL = 75
SHUFFLE_RUNS = 40

# dest.example: three preferences, two MX at 20, each host with one IPv4 and one IPv6.
ZONE = {
    "records": {
        "dest.example": {"MX": [[30, "mx3.dest.example"], [10, "mx1.dest.example"],
                                [20, "mx2.dest.example"]], "TXT": ["v=spf1 -all"]},
        "mx1.dest.example": {"A": ["127.0.0.11"], "AAAA": ["::ffff:127.0.0.11"]},
        "mx2.dest.example": {"A": ["127.0.0.12"], "AAAA": ["::ffff:127.0.0.12"]},
        "mx3.dest.example": {"A": ["127.0.0.13"]},
        "twins.example": {"MX": [[10, "a.twins.example"], [10, "b.twins.example"],
                                 [5, "first.twins.example"]]},
        "a.twins.example": {"A": ["127.0.0.21"]},
        "b.twins.example": {"A": ["127.0.0.22"]},
        "first.twins.example": {"A": ["127.0.0.20"]},
        "plain.example": {"A": ["127.0.0.30"], "TXT": ["no MX here"]},
        "null.example": {"MX": [[0, "."]]},
        "nomail.example": {"TXT": ["no MX, no address"]},
        "broken.example": {"MX": [[10, "mx.broken.example"]]},
        "slow.example": {"MX": [[10, "mx.slow.example"]]},
        "half.example": {"MX": [[10, "mx.half.example"]]},
        "mx.half.example": {"A": ["127.0.0.40"], "AAAA": ["::ffff:127.0.0.40"]},
        "gaps.example": {"MX": [[10, "gone.gaps.example"], [20, "empty.gaps.example"],
                                [30, "alias.gaps.example"]]},
        "empty.gaps.example": {"TXT": ["a host without addresses"]},
        "alias.gaps.example": {"CNAME": "real.gaps.example"},
        "real.gaps.example": {"A": ["127.0.0.50"]},
        "dead.example": {"MX": [[10, "gone.dead.example"], [20, "empty.dead.example"]]},
        "empty.dead.example": {"TXT": ["a host without addresses"]},
        "shaky.example": {"MX": [[10, "sf.shaky.example"], [20, "gone.shaky.example"]]},
        "sf.shaky.example": {"A": ["127.0.0.60"]},
    },
    "servfail": ["broken.example", "sf.shaky.example/A", "sf.shaky.example/AAAA"],
    "timeout": ["slow.example", "mx.half.example/AAAA"],
}


def mx(dns, *args, timeout=30):
    p = subprocess.run([lib.CURSUS, "mx", "--resolver", dns.resolver] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def dns(dns_server):  # noqa: F811
    dns_server.set_zone(ZONE)
    return dns_server


def test_mx_sorted_by_preference(dns):
    assert mx(dns, "dest.example", "--ipv4") == (0, (
        "ok\n"
        "10 mx1.dest.example 127.0.0.11 25\n"
        "20 mx2.dest.example 127.0.0.12 25\n"
        "30 mx3.dest.example 127.0.0.13 25\n"), "")


def test_equal_preferences_are_shuffled(dns):
    first = "ok\n5 first.twins.example 127.0.0.20 25\n"
    ab = first + "10 a.twins.example 127.0.0.21 25\n10 b.twins.example 127.0.0.22 25\n"
    ba = first + "10 b.twins.example 127.0.0.22 25\n10 a.twins.example 127.0.0.21 25\n"
    seen = set()
    for _ in range(SHUFFLE_RUNS):
        rc, out, err = mx(dns, "twins.example")
        assert (rc, err) == (0, "")
        assert out in (ab, ba)
        seen.add(out)
        if len(seen) == 2:
            break
    assert seen == {ab, ba}


def test_implicit_mx(dns):
    assert mx(dns, "plain.example") == (0, "ok\n0 plain.example 127.0.0.30 25\n", "")


def test_null_mx(dns):
    assert mx(dns, "null.example") == (
        1, "nullmx\n", "cursus: mx: null.example accepts no mail (null MX)\n")


def test_nxdomain(dns):
    assert mx(dns, "nowhere.example") == (
        1, "nxdomain\n", "cursus: mx: nowhere.example does not exist (NXDOMAIN)\n")


def test_no_mx_and_no_address_is_nodata(dns):
    assert mx(dns, "nomail.example") == (
        1, "nodata\n", "cursus: mx: nomail.example has no MX and no address\n")


def test_servfail_is_tempfail(dns):
    assert mx(dns, "broken.example") == (
        EX_TEMPFAIL, "tempfail\n", "cursus: mx: SERVFAIL looking up the MX of broken.example\n")


def test_timeout_is_tempfail_within_the_timeout(dns):
    start = time.monotonic()
    res = mx(dns, "slow.example", "--timeout", "1")
    elapsed = time.monotonic() - start
    assert res == (EX_TEMPFAIL, "tempfail\n",
                   "cursus: mx: no answer within 1 s looking up the MX of slow.example\n")
    assert 0.9 <= elapsed < 3


def test_address_timeout_keeps_the_family_that_answered(dns):
    start = time.monotonic()
    res = mx(dns, "half.example", "--timeout", "1")
    assert time.monotonic() - start < 3
    assert res == (0, "ok\n10 mx.half.example 127.0.0.40 25\n",
                   "cursus: mx: no answer within 1 s looking up the IPv6 address of "
                   "mx.half.example\n")


@pytest.mark.parametrize("option,expect", [
    (None, ["10 mx1.dest.example ::ffff:127.0.0.11 25", "10 mx1.dest.example 127.0.0.11 25",
            "20 mx2.dest.example ::ffff:127.0.0.12 25", "20 mx2.dest.example 127.0.0.12 25",
            "30 mx3.dest.example 127.0.0.13 25"]),
    ("--ipv4", ["10 mx1.dest.example 127.0.0.11 25", "20 mx2.dest.example 127.0.0.12 25",
                "30 mx3.dest.example 127.0.0.13 25"]),
    ("--ipv6", ["10 mx1.dest.example ::ffff:127.0.0.11 25",
                "20 mx2.dest.example ::ffff:127.0.0.12 25"]),
    ("--prefer-ipv4", ["10 mx1.dest.example 127.0.0.11 25",
                       "10 mx1.dest.example ::ffff:127.0.0.11 25",
                       "20 mx2.dest.example 127.0.0.12 25",
                       "20 mx2.dest.example ::ffff:127.0.0.12 25",
                       "30 mx3.dest.example 127.0.0.13 25"]),
    ("--prefer-ipv6", ["10 mx1.dest.example ::ffff:127.0.0.11 25",
                       "10 mx1.dest.example 127.0.0.11 25",
                       "20 mx2.dest.example ::ffff:127.0.0.12 25",
                       "20 mx2.dest.example 127.0.0.12 25",
                       "30 mx3.dest.example 127.0.0.13 25"]),
])
def test_address_family_policy(dns, option, expect):
    args = ["dest.example"] + ([option] if option else [])
    assert mx(dns, *args) == (0, "ok\n" + "".join(line + "\n" for line in expect), "")


def test_ipv6_only_without_ipv6_addresses_is_nodata(dns):
    assert mx(dns, "plain.example", "--ipv6") == (
        1, "nodata\n", "cursus: mx: plain.example has no MX and no IPv6 address\n")


def test_self_as_best_mx_is_a_loop(dns):
    assert mx(dns, "dest.example", "--self", "mx1.dest.example") == (
        1, "loop\n",
        "cursus: mx: the best MX of dest.example is this host (mx1.dest.example)\n")


def test_self_as_lower_mx_keeps_the_better_ones(dns):
    assert mx(dns, "dest.example", "--ipv4", "--self", "MX3.Dest.Example.") == (
        0, "ok\n10 mx1.dest.example 127.0.0.11 25\n20 mx2.dest.example 127.0.0.12 25\n", "")
    assert mx(dns, "dest.example", "--ipv4", "--self", "mx2.dest.example") == (
        0, "ok\n10 mx1.dest.example 127.0.0.11 25\n", "")


def test_self_as_implicit_mx_is_a_loop(dns):
    assert mx(dns, "plain.example", "--self", "plain.example") == (
        1, "loop\n", "cursus: mx: plain.example has no MX and is this host\n")


def test_mx_hosts_without_addresses_are_skipped(dns):
    # gone: NXDOMAIN; empty: no A/AAAA; alias: a CNAME to a host with an address.
    assert mx(dns, "gaps.example") == (0, "ok\n30 alias.gaps.example 127.0.0.50 25\n", "")


def test_no_mx_host_with_an_address_is_nodata(dns):
    assert mx(dns, "dead.example") == (
        1, "nodata\n", "cursus: mx: no MX host of dead.example has an address\n")


def test_a_host_that_failed_temporarily_makes_it_tempfail(dns):
    assert mx(dns, "shaky.example") == (
        EX_TEMPFAIL, "tempfail\n",
        "cursus: mx: SERVFAIL looking up the address of sf.shaky.example\n")


def test_port_and_zone_change_while_running(dns):
    assert mx(dns, "plain.example", "--port", "2525") == (
        0, "ok\n0 plain.example 127.0.0.30 2525\n", "")
    zone = dict(ZONE, records=dict(ZONE["records"], **{
        "plain.example": {"MX": [[7, "mx3.dest.example"]]}}))
    dns.set_zone(zone)
    assert mx(dns, "plain.example", "--port", "2525") == (
        0, "ok\n7 mx3.dest.example 127.0.0.13 2525\n", "")


def test_host_lookup(dns):
    assert mx(dns, "--host", "mx1.dest.example", "--prefer-ipv4", "--port", "587") == (
        0, "ok\n0 mx1.dest.example 127.0.0.11 587\n0 mx1.dest.example ::ffff:127.0.0.11 587\n",
        "")
    assert mx(dns, "--host", "nowhere.example") == (
        1, "nxdomain\n", "cursus: mx: nowhere.example does not exist (NXDOMAIN)\n")
    assert mx(dns, "--host", "empty.gaps.example") == (
        1, "nodata\n", "cursus: mx: empty.gaps.example has no address\n")


def test_host_literal_needs_no_query(dns):
    before = len(dns.queries())
    assert mx(dns, "--host", "127.0.0.77") == (0, "ok\n0 127.0.0.77 127.0.0.77 25\n", "")
    assert mx(dns, "--host", "::1", "--ipv4") == (
        1, "nodata\n", "cursus: mx: ::1 is an IPv6 address and only IPv4 is allowed\n")
    assert len(dns.queries()) == before


@pytest.mark.parametrize("args,why", [
    ([], "one DOMAIN expected"),
    (["a.example", "b.example"], "one DOMAIN expected"),
    (["a.example", "--ipv4", "--ipv6"],
     "one of --ipv4, --ipv6, --prefer-ipv4, --prefer-ipv6"),
    (["a.example", "--timeout", "0"], "--timeout takes 1 to 3600 seconds"),
    (["a.example", "--port", "65536"], "--port takes 1 to 65535"),
])
def test_usage_errors(dns, args, why):
    rc, out, err = mx(dns, *args)
    assert (rc, out) == (2, "")
    assert err.startswith("cursus: mx: %s\nusage: cursus mx DOMAIN" % why)


def test_bad_resolver(dns):
    p = subprocess.run([lib.CURSUS, "mx", "--resolver", "not-an-address", "a.example"],
                       capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (
        2, "", "cursus: mx: bad resolver \"not-an-address\": ADDRESS[@PORT] expected\n")
