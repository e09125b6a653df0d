#!/bin/sh
# Installs the Debian 12 packages cursus needs to build, run and test, make and the compiler
# included: the README runs it with sh before make, since a fresh Debian has no make; `make run`
# and `make check` call it again. Nothing but a minimal Debian (dpkg, apt, debconf) is assumed:
# scripts/fresh-check.sh proves it on a debootstrap --variant=minbase root.
set -e
PKGS="build-essential pkg-config libevent-dev libssl-dev libgsasl-dev libsqlite3-dev
libcrypt-dev libunbound-dev nettle-dev openssl sqlite3 python3 python3-pytest python3-aiosmtpd
swaks libnet-ssleay-perl curl msmtp gsasl python3-cryptography clang libclang-rt-14-dev
python3-dnslib python3-dkim postfix sasl2-bin libsasl2-modules iproute2
dovecot-core dovecot-lmtpd dovecot-imapd dovecot-sqlite fail2ban debhelper dpkg-dev fakeroot
libsystemd-dev systemd prometheus groff-base man-db procps libcurl4-openssl-dev
nsd ldnsutils libpq-dev postgresql-15 zlib1g-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# postfix is here for its test tools (smtp-sink) and for a Postfix smart host that a
# test runs under its temporary directory (with Cyrus SASL: libsasl2-modules, and
# saslpasswd2 from sasl2-bin): no mail system of its own.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# groff-base and man-db render the man pages in their test, procps has the /bin/kill of
# the unit's ExecReload (systemd-analyze verify checks that it exists).
# nsd and ldnsutils serve and sign the DNSSEC test zone of the DANE tests (nsd's own
# service stays stopped, as below).
# Dovecot, fail2ban and Prometheus are here for the tests, which start their own instances
# under temporary directories: the packages' services must not start on install.
# policy-rc.d (a Debian interface) tells invoke-rc.d to leave them stopped.
rcd=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	rcd=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null || { [ -n "$rcd" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
[ -n "$rcd" ] && rm -f /usr/sbin/policy-rc.d
true
