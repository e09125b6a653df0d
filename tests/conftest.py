"""Shared by every test: where the binaries under test are ($CURSUS_BUILD, set by
`make check` and `make check-sanitize`), and the integration helpers on sys.path."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
os.environ.setdefault("CURSUS_BUILD", os.path.abspath(os.path.join(HERE, "..", "build")))
