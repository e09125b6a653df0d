"""Runs each libFuzzer target of tests/fuzz/ briefly: built by `make fuzz-build` with
clang -fsanitize=fuzzer,address,undefined, then 20000 seeded runs over the committed
seed corpus. A crash, a sanitizer report or a broken invariant fails the test. Skipped
when clang or its libFuzzer runtime is missing. Longer runs: `make fuzz` (see
tests/fuzz/README.md)."""
import glob
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FUZZ_BUILD = os.path.join(ROOT, "build-fuzz")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
TARGETS = ["linereader", "command", "address", "params", "smtpc", "sasl", "oauth", "dkim"]
RUNS = 20000


def _fuzzer_missing():
    """Why libFuzzer cannot be used here, or None."""
    clang = shutil.which("clang")
    if clang is None:
        return "clang is not installed (Debian: clang, libclang-rt-14-dev)"
    rt = glob.glob("/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a")
    if not rt:
        r = subprocess.run([clang, "--print-file-name=libclang_rt.fuzzer-x86_64.a"],
                           capture_output=True, text=True)
        if not os.path.isabs(r.stdout.strip()) or not os.path.exists(r.stdout.strip()):
            return "clang's libFuzzer runtime is missing (Debian: libclang-rt-14-dev)"
    return None


def _report(stderr):
    """The sanitizer's or the invariant's report without the shadow-byte legend."""
    lines = stderr.splitlines()
    start = next((i for i, l in enumerate(lines)
                  if "ERROR:" in l or "runtime error:" in l or "invariant broken" in l),
                 max(0, len(lines) - 40))
    keep = [l for l in lines[start:] if not l.startswith("  0x") and "redzone" not in l
            and not l.startswith(("Shadow", "=>0x"))
            and not (l.startswith("  ") and not l.lstrip().startswith("#"))]
    return "\n".join(keep[:60])


@pytest.fixture(scope="module")
def fuzz_build():
    why = _fuzzer_missing()
    if why:
        pytest.skip(why)
    r = subprocess.run(["make", "-s", "-j2", "fuzz-build"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "make fuzz-build failed:\n" + r.stdout + r.stderr
    return FUZZ_BUILD


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz(fuzz_build, target):
    binary = os.path.join(fuzz_build, "fuzz_" + target)
    seeds = os.path.join(CORPUS, target)
    assert os.path.isdir(seeds) and os.listdir(seeds), "no seed corpus for " + target
    # New inputs go to a scratch directory: the committed corpus stays as it is.
    with tempfile.TemporaryDirectory(prefix="cursus-fuzz-") as scratch:
        work = os.path.join(scratch, "corpus")
        os.mkdir(work)
        r = subprocess.run(
            [binary, "-runs=%d" % RUNS, "-seed=1", "-max_total_time=30",
             "-artifact_prefix=" + scratch + "/", work, seeds],
            cwd=scratch, capture_output=True, text=True, timeout=120)
        crashes = sorted(glob.glob(os.path.join(scratch, "crash-*")) +
                         glob.glob(os.path.join(scratch, "leak-*")) +
                         glob.glob(os.path.join(scratch, "timeout-*")))
        inputs = ["%s: %s" % (os.path.basename(c), open(c, "rb").read().hex())
                  for c in crashes]
    tail = _report(r.stderr)
    assert r.returncode == 0, ("fuzz_%s failed (exit %d); input(s) in hex:\n%s\n%s"
                               % (target, r.returncode, "\n".join(inputs), tail))
    assert "ERROR: AddressSanitizer" not in r.stderr, tail
    assert "runtime error:" not in r.stderr, tail
    assert "Done %d runs" % RUNS in r.stderr or "DONE" in r.stderr, tail
