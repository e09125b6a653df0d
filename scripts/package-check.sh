#!/bin/bash
# The Debian package on a fresh Debian 12 machine. The committed tree (git archive HEAD)
# is built into cursus_*.deb with `dpkg-buildpackage -b -us -uc` on this machine; a fresh
# minimal root (scripts/freshroot.sh, the cache of scripts/fresh-check.sh) installs it
# with apt, which fetches its dependencies from Debian's archive. Then, in the root:
#   - the service user, the unit (enabled), the programs, sendmail links, man pages, the
#     configuration and /var/lib/cursus are there, with the owners the package promises;
#   - a user is added with the installed `cursus` and its default configuration;
#   - cursusd runs as cursusd.service would (a chroot has no systemd): the unit's
#     ExecStartPre and ExecStart, inside its CapabilityBoundingSet and NoNewPrivileges
#     (setpriv), with a NOTIFY_SOCKET read by this script, in a network namespace of its
#     own (so ports 25, 587 and 465 are free); READY=1 must arrive, it must have dropped
#     to the service user, a message sent with swaks to port 25 must land in the user's
#     Maildir, the submission ports must greet (465 through TLS, IPv6 too), SIGHUP
#     (ExecReload) must give RELOADING=1 then READY=1, SIGTERM STOPPING=1 and status 0;
#   - `apt-get purge` removes the package, the service user and group, /var/lib/cursus
#     and /etc/cursus.
#
# As root, with network to the Debian archive; `.ci/run` calls it after fresh-check.sh.
# Environment: as scripts/fresh-check.sh (CURSUS_FRESH_CACHE, CURSUS_FRESH_MIRROR,
# CURSUS_FRESH_MAX_AGE).
set -euo pipefail

self=$(readlink -f "$0")
tag=package-check
root_cwd=/
# shellcheck source=scripts/freshroot.sh
. "$(dirname "$self")/freshroot.sh"
notify_wait=60          # seconds for each notification from cursusd

# ---- Inside a private mount namespace (see main). ----

unit_value() {   # the value of a [Service] setting of the installed unit
	sed -n "s/^$1=//p" "$root/lib/systemd/system/cursusd.service" | tail -n 1
}

# The notifications received so far, one per line (a message's fields joined by spaces).
notify_log=""
wait_notify() {   # the nth notification must hold the field $2
	local n=$1 want=$2 i
	for ((i = 0; i < notify_wait * 4; i++)); do
		if [ "$(wc -l <"$notify_log")" -ge "$n" ]; then
			sed -n "${n}p" "$notify_log" | grep -qw -- "$want" && return 0
			die "notification $n is '$(sed -n "${n}p" "$notify_log")', expected $want"
		fi
		sleep 0.25
	done
	die "no notification $n ($want) from cursusd in ${notify_wait}s; log:
$(tail -n 20 "$work/cursusd.log")"
}

# systemd's end of sd_notify: a datagram socket in the root; each message is one line.
notify_listen() {
	python3 - "$1" "$2" <<'PY' &
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)           # cursusd may send after dropping to its user
open(out + ".ready", "w").close()
s.settimeout(600)
with open(out, "a") as f:
    while True:
        msg = s.recv(4096).decode()
        f.write(" ".join(msg.split("\n")) + "\n")
        f.flush()
        if "STOPPING=1" in msg.split("\n"):
            break
PY
	notify_pid=$!
	local i
	for ((i = 0; i < 40; i++)); do
		[ -e "$2.ready" ] && return 0
		sleep 0.25
	done
	die "the notify socket did not come up"
}

in_net() { nsenter --net="/proc/$daemon_pid/ns/net" "$@"; }

# Names as the root knows them, not as this machine does.
root_getent() { chroot "$root" getent "$@"; }
owner() { chroot "$root" stat -c %U:%G:%a "$1"; }

check_installed() {
	local uid
	root_getent passwd cursus >/dev/null || die "no user cursus after the installation"
	root_getent group cursus >/dev/null || die "no group cursus after the installation"
	uid=$(root_getent passwd cursus | cut -d: -f3)
	[ "$uid" -lt 1000 ] || die "cursus is not a system user (uid $uid)"
	[ "$(root_getent passwd cursus | cut -d: -f7)" = /usr/sbin/nologin ] || die "cursus has a login shell"
	local f
	for f in /usr/sbin/cursusd /usr/sbin/cursus /lib/systemd/system/cursusd.service \
		/etc/cursus/cursus.conf /usr/share/man/man8/cursusd.8.gz /usr/share/man/man8/cursus.8.gz \
		/usr/share/man/man5/cursus.conf.5.gz /usr/share/doc/cursus/copyright; do
		[ -e "$root$f" ] || die "$f is not installed"
	done
	[ "$(readlink "$root/usr/sbin/sendmail")" = cursus ] || die "/usr/sbin/sendmail is not a link to cursus"
	[ "$(readlink "$root/usr/bin/mailq")" = ../sbin/cursus ] || die "/usr/bin/mailq is not a link to cursus"
	[ "$(readlink "$root/usr/bin/newaliases")" = ../sbin/cursus ] || die "/usr/bin/newaliases is not a link to cursus"
	[ -L "$root/etc/systemd/system/multi-user.target.wants/cursusd.service" ] ||
		die "cursusd.service is not enabled"
	[ "$(owner /var/lib/cursus)" = root:root:755 ] || die "/var/lib/cursus: $(owner /var/lib/cursus)"
	[ "$(owner /etc/cursus/cursus.conf)" = root:root:644 ] ||
		die "/etc/cursus/cursus.conf: $(owner /etc/cursus/cursus.conf)"
	# A fresh installation has exactly the two things the administrator must still do:
	# a postmaster and a real certificate (exit 1, nothing else found).
	findings=$(in_root "cursus check --json; echo exit=\$?" | python3 -c '
import json, sys
text = sys.stdin.read()
doc, code = text.rsplit("exit=", 1)
ids = sorted({f["id"] for f in json.loads(doc)["findings"]})
print(code.strip(), " ".join(ids))')
	[ "$findings" = "1 postmaster-missing tls-cert-self-signed" ] ||
		die "cursus check on the installed configuration: $findings"
	say "installed: user cursus (uid $uid), programs, links, man pages, unit enabled"
}

# cursusd as cursusd.service starts it: ExecStartPre, then ExecStart inside the unit's
# capability bounding set and no_new_privs, with NOTIFY_SOCKET, in a new network namespace.
start_as_unit() {
	local pre start caps nnp
	pre=$(unit_value ExecStartPre)
	start=$(unit_value ExecStart)
	caps=$(unit_value CapabilityBoundingSet | tr '[:upper:]' '[:lower:]' | sed 's/cap_/+/g; s/ /,/g')
	nnp=$(unit_value NoNewPrivileges)
	[ "$(unit_value Type)" = notify ] || die "the unit is not Type=notify"
	[ "$nnp" = yes ] || die "the unit does not set NoNewPrivileges=yes"
	in_root "$pre" >/dev/null || die "ExecStartPre ($pre) failed"
	notify_log="$work/notify.log"
	: >"$notify_log"
	notify_listen "$root/run/cursus-notify" "$notify_log"
	say "ExecStart=$start (bounding set ${caps//+/}, no_new_privs)"
	# unshare, sh, chroot, env and setpriv each exec the next: $! is cursusd's pid. The
	# unit's command line is split into words as systemd does (no quoting in it).
	# shellcheck disable=SC2016,SC2086
	unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
		chroot "$root" /usr/bin/env -i LANG=C.UTF-8 NOTIFY_SOCKET=/run/cursus-notify \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		setpriv --bounding-set "-all,$caps" --inh-caps -all --no-new-privs $start \
		>"$work/cursusd.log" 2>&1 &
	daemon_pid=$!
	wait_notify 1 READY=1
	kill -0 "$daemon_pid" 2>/dev/null || die "cursusd is gone after READY=1"
	local uid
	uid=$(root_getent passwd cursus | cut -d: -f3)
	grep -q "^Uid:	$uid	$uid	$uid	$uid$" "/proc/$daemon_pid/status" ||
		die "cursusd does not run as cursus: $(grep ^Uid "/proc/$daemon_pid/status")"
	grep -q "^NoNewPrivs:	1$" "/proc/$daemon_pid/status" || die "cursusd runs without no_new_privs"
	say "cursusd is ready (READY=1) and runs as cursus (uid $uid)"
}

send_and_deliver() {
	local token maildir i f
	token="package-check-$$-$RANDOM"
	in_net swaks --server 127.0.0.1 --port 25 --tls --from root@localhost --to alice@localhost \
		--header "Subject: $token" --body "$token" --timeout 30 >"$work/swaks.log" 2>&1 ||
		{ cat "$work/swaks.log" >&2; die "swaks could not send to port 25"; }
	grep -Eq '^<[~-] +250 2\.0\.0 .*queued' "$work/swaks.log" ||
		{ cat "$work/swaks.log" >&2; die "the message was not accepted"; }
	maildir="$root/var/lib/cursus/mail/localhost/alice/new"
	for ((i = 0; i < 120; i++)); do
		grep -qs "$token" "$maildir"/* && break
		sleep 0.25
	done
	grep -qs "$token" "$maildir"/* || die "the message did not reach $maildir; log:
$(tail -n 20 "$work/cursusd.log")"
	f=$(grep -ls "$token" "$maildir"/* | head -n 1)
	[ "$(owner "${f#"$root"}")" = cursus:cursus:600 ] ||
		die "the delivered message is $(owner "${f#"$root"}"), not cursus's"
	say "a message sent with swaks to port 25 was delivered to alice@localhost's Maildir"
	in_net python3 - >"$work/tls.log" 2>&1 <<'PY' || { cat "$work/tls.log" >&2; die "the submission ports do not answer through TLS"; }
# Submission on [::1]:587 with STARTTLS, submissions on 127.0.0.1:465 with implicit TLS:
# a cursus greeting, then EHLO answered inside TLS.
import socket, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE      # the self-signed certificate of the first start
for host, port, implicit in (("::1", 587, False), ("127.0.0.1", 465, True)):
    s = socket.create_connection((host, port), timeout=30)
    if implicit:
        s = ctx.wrap_socket(s)
    f = s.makefile("rwb")
    def reply():
        lines = [f.readline(4096)]
        while lines[-1][3:4] == b"-":
            lines.append(f.readline(4096))
        return lines
    greeting = reply()[0]
    assert greeting.startswith(b"220 ") and b"ESMTP cursus" in greeting, greeting
    if not implicit:
        f.write(b"EHLO package-check\r\n"); f.flush()
        assert any(l[4:] == b"STARTTLS\r\n" for l in reply())
        f.write(b"STARTTLS\r\n"); f.flush()
        assert reply()[0].startswith(b"220 ")
        s = ctx.wrap_socket(s)
        f = s.makefile("rwb")
    f.write(b"EHLO package-check\r\n"); f.flush()
    ehlo = reply()
    assert ehlo[0].startswith(b"250") and any(l.startswith(b"250-AUTH ") or l.startswith(b"250 AUTH ") for l in ehlo), ehlo
    f.write(b"QUIT\r\n"); f.flush()
    print(host, port, "ok", s.version())
PY
	say "587 (STARTTLS, IPv6) and 465 (implicit TLS) answer, with AUTH inside TLS"
}

reload_and_stop() {
	local rc=0
	kill -HUP "$daemon_pid"      # ExecReload
	wait_notify 2 RELOADING=1
	wait_notify 3 READY=1
	kill -TERM "$daemon_pid"
	wait_notify 4 STOPPING=1
	wait "$daemon_pid" || rc=$?
	[ "$rc" = 0 ] || die "cursusd exited with status $rc on SIGTERM"
	wait "$notify_pid" 2>/dev/null || true
	say "SIGHUP: RELOADING=1 then READY=1; SIGTERM: STOPPING=1, status 0"
}

check_purged() {
	local f
	in_root "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq cursus" >"$work/purge.log" 2>&1 ||
		{ cat "$work/purge.log" >&2; die "apt-get purge cursus failed"; }
	! root_getent passwd cursus >/dev/null || die "the user cursus survived the purge"
	! root_getent group cursus >/dev/null || die "the group cursus survived the purge"
	for f in /var/lib/cursus /etc/cursus /usr/sbin/cursusd /usr/sbin/sendmail \
		/lib/systemd/system/cursusd.service /etc/systemd/system/multi-user.target.wants/cursusd.service; do
		if [ -e "$root$f" ] || [ -L "$root$f" ]; then die "$f survived the purge"; fi
	done
	say "purged: no package, user, group, state or configuration left"
}

inside() {
	root=$(readlink -f "$1")
	work=$2
	local deb=$3 t0=$SECONDS
	exit_traps inner_cleanup
	mount_root
	say "apt-get install ./$deb (dependencies from the archive)"
	in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /root/$deb" \
		>"$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; die "apt-get install failed"; }
	say "installed in $((SECONDS - t0))s"
	check_installed
	in_root "printf 'package-check secret\n' | cursus user add alice@localhost" >/dev/null ||
		die "cursus user add (default configuration) failed"
	start_as_unit
	send_and_deliver
	reload_and_stop
	check_purged
}

# ---- The host side. ----

main() {
	[ "$(id -u)" = 0 ] || die "run as root (it makes a chroot)"
	cd "$(dirname "$self")/.."
	need git git
	need dpkg-buildpackage dpkg-dev
	need dh debhelper
	need swaks swaks
	local top cache t0 rev deb
	top=$(git rev-parse --show-toplevel 2>/dev/null) || die "not a git checkout: it tests the committed tree"
	cd "$top"
	[ -z "$(git status --porcelain)" ] || say "note: uncommitted changes are not part of the check"
	exit_traps outer_cleanup
	t0=$SECONDS
	cache=$(cached_root) || exit 1

	work=$(mktemp -d /var/tmp/cursus-package.XXXXXX)
	work=$(readlink -f "$work")
	rev=$(git rev-parse --short HEAD)
	mkdir "$work/src"
	git archive --format=tar --prefix=cursus/ HEAD | tar -x -C "$work/src"
	say "dpkg-buildpackage -b -us -uc ($rev)"
	(cd "$work/src/cursus" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; die "dpkg-buildpackage failed"; }
	deb=$(cd "$work/src" && ls cursus_*.deb)
	say "built $deb in $((SECONDS - t0))s"

	root="$work/root"
	fresh_root "$cache" "$root"
	cp "$work/src/$deb" "$root/root/"
	run_inside "$root" "$work" "$deb"
	say "passed in $((SECONDS - t0))s: $deb built, installed, run as its unit, purged on a fresh Debian $suite ($rev)"
}

if [ "${1:-}" = "--inside" ]; then
	shift
	inside "$@"
else
	main "$@"
fi
