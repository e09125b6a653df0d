#!/bin/bash
# The README's two commands on a fresh Debian 12 machine. A minimal root is made with
# debootstrap (--variant=minbase: no make, no compiler, no python), cached between runs and
# restored clean for every run so nothing from an earlier run leaks in. The committed tree
# (git archive HEAD: an uncommitted file cannot make it pass) is copied in, and inside it, as
# root, the README's test command runs to the end and its run command must bring cursusd up
# on the development ports; then it is stopped. A package that a test needs and
# scripts/deps.sh does not install fails here, not on a new user's machine.
#
# As root, with network to the Debian archive; `.ci/run` calls it.
# Environment: CURSUS_FRESH_CACHE (default /var/cache/cursus-fresh), CURSUS_FRESH_MIRROR
# (default the first URIs of /etc/apt/sources.list.d/debian.sources), CURSUS_FRESH_MAX_AGE
# (days before the cached root is made again, default 30).
set -euo pipefail

self=$(readlink -f "$0")
tag=fresh-check
root_cwd=/root/cursus
# shellcheck source=scripts/freshroot.sh
. "$(dirname "$self")/freshroot.sh"
run_ports="2525 2587 2465"        # etc/cursus-dev.conf
run_wait=120                      # seconds for `make run` to answer (nothing left to build)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True once every development listener greets as cursus (465 through TLS); run in the
# root, with its python3 and certificates, after the test command installed them.
run_answers() {
	in_root "python3 - $run_ports" <<'EOF' >/dev/null 2>&1
import socket, ssl, sys
for port in map(int, sys.argv[1:]):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if port == 2465:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    line = s.makefile("rb").readline(512)
    s.close()
    if not (line.startswith(b"220 ") and b"ESMTP cursus" in line):
        sys.exit(1)
EOF
}

check_run() {
	local cmd=$1 log=$2 pid i t0
	for i in $run_ports; do
		port_open "$i" && die "something already listens on 127.0.0.1:$i: the run check needs the development ports"
	done
	t0=$SECONDS
	in_root "$cmd" >"$log" 2>&1 &
	pid=$!
	for ((i = 0; ; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$log" >&2
			die "'$cmd' ended before cursusd answered"
		fi
		run_answers && break
		if ((SECONDS - t0 >= run_wait)); then
			tail -n 30 "$log" >&2
			die "cursusd did not answer on $run_ports within ${run_wait}s"
		fi
		sleep 0.5
	done
	say "'$cmd': cursusd answered on $run_ports after $((SECONDS - t0))s; stopping it"
	stop_root_processes || die "cursusd did not stop"
	wait "$pid" 2>/dev/null || true
}

inside() {
	root=$(readlink -f "$1")
	local test_cmd=$2 run_cmd=$3 t0
	exit_traps inner_cleanup
	mount_root

	t0=$SECONDS
	say "running '$test_cmd'"
	# In the background and waited for, so that SIGTERM is handled at once, not at its end.
	in_root "$test_cmd" &
	wait "$!" || die "'$test_cmd' failed on a fresh Debian $suite"
	say "'$test_cmd' passed in $((SECONDS - t0))s"
	check_run "$run_cmd" "$root/root/make-run.log"
}

# ---- The host side: cache, fresh root, tree, then the namespace above. ----

# The command of the README's "two commands" block (stdin) that ends with `make $1`, its
# comment cut.
readme_command() {
	awk -v t="make $1" '
		/^## The two commands/ { sec = 1; next }
		sec && /^## / { exit }
		sec && /^```/ { blk = !blk; next }
		sec && blk {
			c = $0; sub(/[ \t]*#.*$/, "", c)
			if (length(c) >= length(t) && substr(c, length(c) - length(t) + 1) == t) { print c; exit }
		}'
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (it makes a chroot)"
	cd "$(dirname "$self")/.."
	need git git
	local top test_cmd run_cmd cache t0 rev
	top=$(git rev-parse --show-toplevel 2>/dev/null) || die "not a git checkout: it tests the committed tree"
	cd "$top"
	# The committed README, as the tree in the root is the committed one.
	test_cmd=$(git show HEAD:README.md | readme_command check)
	run_cmd=$(git show HEAD:README.md | readme_command run)
	[ -n "$test_cmd" ] || die "README.md's \"two commands\" block has no command ending in 'make check'"
	[ -n "$run_cmd" ] || die "README.md's \"two commands\" block has no command ending in 'make run'"
	[ -z "$(git status --porcelain)" ] || say "note: uncommitted changes are not part of the check"

	exit_traps outer_cleanup
	t0=$SECONDS
	cache=$(cached_root) || exit 1

	work=$(mktemp -d /var/tmp/cursus-fresh.XXXXXX)
	root=$(readlink -f "$work")/root
	fresh_root "$cache" "$root"
	mkdir "$root/root/cursus"
	rev=$(git rev-parse --short HEAD)
	git archive --format=tar HEAD | tar -x -C "$root/root/cursus"
	say "fresh $suite root with $rev in $work ($((SECONDS - t0))s)"

	run_inside "$root" "$test_cmd" "$run_cmd"
	say "passed in $((SECONDS - t0))s: '$test_cmd' and '$run_cmd' on a fresh Debian $suite ($rev)"
}

if [ "${1:-}" = "--inside" ]; then
	shift
	inside "$@"
else
	main "$@"
fi
