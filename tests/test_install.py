"""`make install` into a DESTDIR: the installed layout (programs in sbin, sendmail in
sbin and mailq/newaliases in bin as links to cursus, man pages, the unit rewritten for
PREFIX, the production configuration, the state directory), the installed programs
reading /etc/cursus/cursus.conf without -c, and an edited configuration kept by a
second install."""
import os
import subprocess

TREE = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ["CURSUS_BUILD"]


def make_install(destdir, *extra):
    # The installed programs are built in $(BUILD)/installed-etc, once; later runs only
    # copy. Not with the flags of a `make check` this runs under (its jobserver is gone).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-s", "-C", TREE, "BUILD=" + BUILD, "DESTDIR=" + str(destdir),
                        *extra, "install"], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_layout_and_defaults(tmp_path):
    d = tmp_path / "root"
    make_install(d, "PREFIX=/usr")
    for prog in ("usr/sbin/cursusd", "usr/sbin/cursus"):
        assert os.access(d / prog, os.X_OK), prog
    assert os.readlink(d / "usr/sbin/sendmail") == "cursus"
    assert os.readlink(d / "usr/bin/mailq") == "../sbin/cursus"
    assert os.readlink(d / "usr/bin/newaliases") == "../sbin/cursus"
    for page in ("man8/cursusd.8", "man8/cursus.8", "man5/cursus.conf.5"):
        assert (d / "usr/share/man" / page).is_file(), page
    assert (d / "var/lib/cursus").is_dir()
    assert (d / "usr/share/doc/cursus/cursus.conf.example").is_file()
    unit = (d / "usr/lib/systemd/system/cursusd.service").read_text()
    assert "\nExecStart=/usr/sbin/cursusd -d -c /etc/cursus/cursus.conf\n" in unit
    assert "\nReadWritePaths=/var/lib/cursus\n" in unit
    conf = d / "etc/cursus/cursus.conf"
    r = subprocess.run([str(d / "usr/sbin/cursusd"), "-n", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "%s: configuration OK\n" % conf, r.stdout + r.stderr
    # Without -c (and $CURSUS_CONFIG) the installed programs read /etc/cursus/cursus.conf.
    env = {k: v for k, v in os.environ.items() if k != "CURSUS_CONFIG"}
    r = subprocess.run([str(d / "usr/sbin/cursusd"), "--help"], capture_output=True, text=True,
                       timeout=30, env=env)
    assert "(default /etc/cursus/cursus.conf)" in r.stderr, r.stderr
    r = subprocess.run([str(d / "usr/sbin/cursus"), "help"], capture_output=True, text=True,
                       timeout=30, env=env)
    assert "else /etc/cursus/cursus.conf." in r.stdout + r.stderr


def test_second_install_keeps_the_configuration(tmp_path):
    d = tmp_path / "root"
    make_install(d)
    conf = d / "etc/cursus/cursus.conf"
    conf.write_text(conf.read_text() + "# edited by the administrator\n")
    make_install(d)
    assert conf.read_text().endswith("# edited by the administrator\n")


def test_unit_follows_prefix(tmp_path):
    d = tmp_path / "root"
    make_install(d, "PREFIX=/opt/cursus", "LOCALSTATEDIR=/srv")
    unit = (d / "opt/cursus/lib/systemd/system/cursusd.service").read_text()
    assert "\nExecStart=/opt/cursus/sbin/cursusd -d -c /etc/cursus/cursus.conf\n" in unit
    assert "\nReadWritePaths=/srv/lib/cursus\n" in unit
    assert "state_dir /srv/lib/cursus\n" in (d / "etc/cursus/cursus.conf").read_text()
    assert (d / "srv/lib/cursus").is_dir()
