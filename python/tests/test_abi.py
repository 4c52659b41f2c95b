"""moedit/_lib.py's ctypes mirrors against include/moedit.h, field by field:
the import only compares struct sizes, which a swap of two fields of the
same size (or a type change that keeps the padding) would pass silently."""
import ctypes
import os
import shutil
import subprocess

import pytest

from moedit import _lib

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# C member (as offsetof names it) for each mirror field where the names differ
RENAMED = {("moedit_load_options", "device_kind"): "device.kind",
           ("moedit_load_options", "device_index"): "device.index"}


def test_struct_fields_match_the_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "moedit.h"', "int main(void) {"]
    want = {}
    for cname, cls in _lib._STRUCTS.items():
        for field, ctype in cls._fields_:
            member = RENAMED.get((cname, field), field)
            lines.append('printf("%%s.%%s %%zu %%zu\\n", "%s", "%s", offsetof(%s, %s), sizeof(((%s *)0)->%s));'
                         % (cname, field, cname, member, cname, member))
            want["%s.%s" % (cname, field)] = (getattr(cls, field).offset, ctypes.sizeof(ctype))
    lines.append("return 0; }")
    (tmp_path / "abi.c").write_text("\n".join(lines))
    subprocess.run([cc, "-std=c11", "-I", os.path.join(SRC, "include"), "-o", str(tmp_path / "abi"),
                    str(tmp_path / "abi.c")], check=True)
    got = {}
    for line in subprocess.run([str(tmp_path / "abi")], capture_output=True, text=True, check=True).stdout.split("\n"):
        if line:
            name, off, size = line.split()
            got[name] = (int(off), int(size))
    assert got == want
