"""Runs every C unit test binary (tests/unit/test_*.c) as one pytest test each."""
import glob
import os
import subprocess

import pytest

BUILD = os.environ.get("CURSUS_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))
BINARIES = sorted(glob.glob(os.path.join(BUILD, "tests", "test_*")))


@pytest.mark.parametrize("binary", BINARIES, ids=[os.path.basename(b) for b in BINARIES])
def test_unit(binary):
    r = subprocess.run([binary], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout


def test_unit_binaries_exist():
    assert BINARIES, "no unit test binaries were built"
