# shellcheck shell=bash
# Shared by scripts/fresh-check.sh and scripts/package-check.sh (sourced, not run): a
# fresh minimal Debian root made from a cached debootstrap tarball, the mounts a
# program needs inside it (in a private mount namespace), commands run in it, and the
# cleanup that leaves no process and no mount behind.
# The sourcing script sets `tag` (its name in messages) and `root` (the fresh root) and,
# for in_root, `root_cwd` (the directory commands start in).
# shellcheck disable=SC2154  # tag and root come from the sourcing script

suite=bookworm

# $1 (inner_cleanup or outer_cleanup) runs at every exit; INT and TERM exit through it.
exit_traps() {
	# shellcheck disable=SC2064  # the handler's name, known now
	trap "$1" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

say() { printf '%s: %s\n' "$tag" "$*"; }
die() { printf '%s: FAIL: %s\n' "$tag" "$*" >&2; exit 1; }

# ---- Inside a private mount namespace: mounts, commands and cleanup. ----

mounted=()
mnt() {
	mount "$@"
	mounted+=("${!#}")
}

# /proc, /dev, /dev/pts, /sys and a tmpfs /tmp in the root, unmounted by inner_cleanup.
mount_root() {
	mkdir -p "$root/proc" "$root/dev/pts" "$root/sys" "$root/tmp"
	mnt -t proc proc "$root/proc"
	mnt --bind /dev "$root/dev"
	mnt --bind /dev/pts "$root/dev/pts"
	mnt -t sysfs sysfs "$root/sys"
	mnt -t tmpfs -o mode=1777 tmpfs "$root/tmp"
}

# Every process whose root is the fresh root was started by this run: a daemon left behind
# by a test would keep the mounts busy.
root_pids() {
	local p r
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		[ "$r" = "$root" ] && printf '%s\n' "${p#/proc/}"
	done
	return 0
}

stop_root_processes() {
	local sig i pids
	for sig in TERM KILL; do
		pids=$(root_pids)
		[ -z "$pids" ] && return 0
		# shellcheck disable=SC2086
		kill -s "$sig" $pids 2>/dev/null || true
		for ((i = 0; i < 40; i++)); do
			[ -z "$(root_pids)" ] && return 0
			sleep 0.25
		done
	done
	[ -z "$(root_pids)" ]
}

inner_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	stop_root_processes || { say "processes in the root survived SIGKILL"; rc=1; }
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		if ! umount "${mounted[i]}"; then
			say "umount ${mounted[i]} failed; detaching it"
			umount -l "${mounted[i]}" || true
			rc=1
		fi
	done
	exit "$rc"
}

# A command as root in the fresh root, in root_cwd, with a login-like clean environment.
in_root() {
	chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/sh -c "cd ${root_cwd:-/} && $1"
}

# ---- The host side: the cached root, a fresh copy of it, and its removal. ----

# `work` is the run's directory (removed at exit), `inner` the process running in the
# private mount namespace (stopped at exit); the caller traps EXIT with outer_cleanup.
work=""
inner=""
outer_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$inner" ] && kill -0 "$inner" 2>/dev/null; then
		kill -TERM "$inner" 2>/dev/null || true
		wait "$inner" 2>/dev/null || true
	fi
	# The mounts lived only in the namespace, which is gone once its process has ended:
	# nothing is mounted under $work here, and --one-file-system keeps it that way.
	[ -n "$work" ] && rm -rf --one-file-system "$work"
	exit "$rc"
}

default_mirror() {
	local m
	m=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' \
		/etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

need() {   # command, Debian package
	command -v "$1" >/dev/null && return 0
	say "installing $2"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# The sourcing script ($self) again with --inside and the arguments, in a private mount
# namespace, waited for in the background so that SIGTERM is handled at once.
run_inside() {
	unshare --mount --propagation private -- bash "$self" --inside "$@" &
	inner=$!
	wait "$inner"
	inner=""
}

# The minbase root for $suite, made once and kept as a tarball in CURSUS_FRESH_CACHE
# (default /var/cache/cursus-fresh); rebuilt when older than CURSUS_FRESH_MAX_AGE days
# (default 30). Prints the tarball's path. debootstrap mounts /proc and /sys in its
# target: in a namespace of its own, whatever it leaves mounted goes with it.
cached_root() {
	local cache_dir max_age mirror arch cache tmp t0
	cache_dir=${CURSUS_FRESH_CACHE:-/var/cache/cursus-fresh}
	max_age=${CURSUS_FRESH_MAX_AGE:-30}
	mirror=${CURSUS_FRESH_MIRROR:-$(default_mirror)}
	arch=$(dpkg --print-architecture)
	mkdir -p "$cache_dir"
	cache="$cache_dir/debian-$suite-minbase-$arch.tar.gz"
	exec 9>"$cache_dir/.lock"
	flock 9
	if [ -s "$cache" ] && [ -z "$(find "$cache" -mtime +"$max_age")" ]; then
		exec 9>&-
		printf '%s\n' "$cache"
		return 0
	fi
	need debootstrap debootstrap >&2
	tmp=$(mktemp -d "$cache_dir/build.XXXXXX")
	say "debootstrap --variant=minbase $suite from $mirror (cached in $cache)" >&2
	t0=$SECONDS
	if ! unshare --mount --propagation private \
		debootstrap --variant=minbase "$suite" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
		tail -n 30 "$tmp/debootstrap.log" >&2
		rm -rf --one-file-system "$tmp"
		die "debootstrap failed"
	fi
	tar -C "$tmp/root" --numeric-owner --exclude='./var/cache/apt/archives/*.deb' \
		-czpf "$tmp/root.tar.gz" .
	mv "$tmp/root.tar.gz" "$cache"
	rm -rf --one-file-system "$tmp"
	exec 9>&-
	say "debootstrap took $((SECONDS - t0))s" >&2
	printf '%s\n' "$cache"
}

# A fresh root from the cached tarball at $1 (made by cached_root) in the directory $2:
# this machine's resolver and apt sources (updates and security included, as an
# installed system has, unless CURSUS_FRESH_MIRROR names another mirror), and a
# policy-rc.d that keeps package scripts from starting services (a chroot has no init).
fresh_root() {
	local cache=$1 dir=$2
	mkdir "$dir"
	tar -C "$dir" --numeric-owner -xzpf "$cache"
	cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
	if [ -z "${CURSUS_FRESH_MIRROR:-}" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$dir/etc/apt/sources.list.d/"
		rm -f "$dir/etc/apt/sources.list"
	fi
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"
}
