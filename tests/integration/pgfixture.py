"""A real PostgreSQL 15 (Debian's postgresql-15) for the tests: initdb and pg_ctl run as
the unprivileged postgres user (PostgreSQL refuses root) in a temporary directory under
/tmp, listening on 127.0.0.1 and a free port only, password (SCRAM) authentication.
Every start waits on pg_ctl -w (a deadline); stop is pg_ctl -m fast; the directory goes
at the end. The tests' own tree may be unreadable to postgres (/root is 0700): nothing
here needs it."""
import os
import pwd
import shutil
import subprocess
import tempfile

import cursus_testlib as lib

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "postgres"
DB_USER = "cursus"
DB_PASSWORD = "pg-Secret-7f3a"


def available():
    """Why PostgreSQL cannot be used here, or None."""
    if not os.path.exists(os.path.join(PG_BIN, "initdb")):
        return "postgresql-15 is not installed (scripts/deps.sh)"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return "no postgres user"
    if os.geteuid() != 0:
        return "running initdb as the postgres user needs root"
    return None


class PgServer:
    __test__ = False

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cursus-pg-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "pg.log")
        self.port = lib.free_port()
        pw = pwd.getpwnam(PG_USER)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(DB_PASSWORD + "\n")
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._as_pg([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", DB_USER,
                     "--pwfile", pwfile, "-A", "scram-sha-256", "--no-sync", "-E", "UTF8"])
        os.unlink(pwfile)

    def _as_pg(self, cmd, timeout=60):
        r = subprocess.run(["runuser", "-u", PG_USER, "--"] + cmd, capture_output=True,
                           text=True, timeout=timeout, cwd=self.dir)
        assert r.returncode == 0, "%s: %s%s" % (" ".join(cmd), r.stdout, r.stderr)
        return r

    def start(self):
        self._as_pg([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                     "-t", "30", "-o",
                     "-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off "
                     "-c max_connections=60" % (self.port, self.dir), "start"])

    def stop(self):
        self._as_pg([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                     "-t", "30", "stop"])

    def running(self):
        return subprocess.run(["runuser", "-u", PG_USER, "--", os.path.join(PG_BIN, "pg_ctl"),
                               "-D", self.data, "status"], capture_output=True,
                              timeout=30).returncode == 0

    def pids(self):
        """The postmaster and its children (the server's every process)."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            master = int(f.readline())
        pids = [master]
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(p))
        return pids

    def freeze(self, stop=True):
        """SIGSTOP (or SIGCONT) to every process of the server: a database that accepts
        connections in the kernel but never answers."""
        import signal
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGSTOP if stop else signal.SIGCONT)
            except ProcessLookupError:
                pass

    def conninfo(self, dbname="postgres", password=True):
        s = "host=127.0.0.1 port=%d dbname=%s user=%s connect_timeout=5" % (
            self.port, dbname, DB_USER)
        return s + (" password=%s" % DB_PASSWORD if password else "")

    def env(self):
        """The environment for a client without the password in its arguments."""
        e = dict(os.environ)
        e["PGPASSWORD"] = DB_PASSWORD
        return e

    def psql(self, sql, dbname="postgres"):
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v",
                            "ON_ERROR_STOP=1", "-d", self.conninfo(dbname, password=False),
                            "-c", sql], capture_output=True, text=True, timeout=60,
                           env=self.env())
        assert r.returncode == 0, "psql %s: %s" % (sql, r.stderr)
        return r.stdout

    def destroy(self):
        try:
            if self.running():
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
