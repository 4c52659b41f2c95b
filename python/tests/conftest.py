"""Shared fixtures: the module from this source tree, the CLI to compare
with ($MOEDIT_BIN, default build/moedit), and one thread on both sides so
results are compared bit for bit on a busy machine."""
import json
import os
import resource
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

    def run(*args, expect=0, files_below=None):
        """files_below: every file the command writes held under that many
        bytes, as on a disk filling up (the CLI ignores SIGXFSZ: the write
        fails)."""
        def hold_files():
            resource.setrlimit(resource.RLIMIT_FSIZE, (files_below, files_below))
        p = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                           preexec_fn=hold_files if files_below else None)
        assert p.returncode == expect, p.stderr
        return p
    return run


@pytest.fixture(scope="session")
def moe():
    return moedit.Model("fmnist-moe")


@pytest.fixture(scope="session")
def switch():
    return moedit.Model("fmnist-switch")


@pytest.fixture(scope="session")
def inception_path(tmp_path_factory):
    """pytorch-fid's Inception with the counter-based weights (seed 0) of
    tools/inception_counter_weights.py: random_state_dict of the names and
    shapes in tests/fixtures/fid/manifest.txt, as a safetensors file."""
    sys.path.insert(0, os.path.join(SRC, "tools"))
    from inception_counter_weights import counter_values   # NumPy only, no torch
    header, blobs, offset = {}, [], 0
    with open(os.path.join(SRC, "tests", "fixtures", "fid", "manifest.txt")) as f:
        for line in f:
            name, *dims = line.split()
            shape = [int(d) for d in dims]
            v = counter_values(name, shape, 0).astype("<f4").tobytes()
            header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(v)]}
            blobs.append(v)
            offset += len(v)
    path = tmp_path_factory.mktemp("inception") / "inception.safetensors"
    head = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head + b"".join(blobs))
    return str(path)


@pytest.fixture(scope="session")
def inception(inception_path):
    net = moedit.Inception(inception_path)
    yield net
    net.close()
