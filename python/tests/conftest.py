"""Shared fixtures: the module from this source tree, the CLI to compare
with ($MOEDIT_BIN, default build/moedit), and one thread on both sides so
results are compared bit for bit on a busy machine."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "python"))

import moedit  # noqa: E402

BIN = os.environ.get("MOEDIT_BIN", os.path.join(SRC, "build", "moedit"))


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    moedit.set_threads(1)


@pytest.fixture(scope="session")
def cli():
    if not os.access(BIN, os.X_OK):
        pytest.fail("%s not built (set MOEDIT_BIN)" % BIN)

    def run(*args, expect=0):
        p = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True)
        assert p.returncode == expect, p.stderr
        return p
    return run


@pytest.fixture(scope="session")
def moe():
    return moedit.Model("fmnist-moe")


@pytest.fixture(scope="session")
def switch():
    return moedit.Model("fmnist-switch")
