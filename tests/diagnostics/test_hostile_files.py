"""Hostile files and text: what geo reads is bounded, never blocks, and `use` reads only specs beside the spec.

Each case here made geo hang, exhaust memory, crash with an internal error (exit 3) or print a file that is
not a spec before the fix it came with (issue 16): `/dev/zero` (MemoryError), `/dev/urandom` (grew without
bound), a FIFO (blocked forever), a 1 MB string literal (345 MB), `use` of a link to /etc/passwd (printed it),
a file name that is not UTF-8 (UnicodeEncodeError).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import pytest

import geo
from geo.cli import main
from geo.compiler.pipeline import front
from geo.dsl.diagnostics import GeoError
from geo.dsl.loader import read_file
from geo.dsl.parser import parse
from geo.dsl.source import MAX_SPEC_BYTES, SourceFile

SPEC = "optimizer o(lr = 0.1):\n    for tensor W:\n        W = W - lr * grad\n"
SECRET = "root:x:0:0:root:/root:/bin/bash  (not a spec: never to be shown)\n"


def codes(err: GeoError) -> list[str]:
    return [d.code for d in err.diagnostics]


def _geo(*args: str | bytes, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "geo", *args], capture_output=True, timeout=timeout, env=env)


@pytest.mark.skipif(not os.path.exists("/dev/zero") or not hasattr(os, "mkfifo"), reason="needs POSIX devices")
def test_devices_and_fifos_are_refused_before_a_byte_is_read(tmp_path):
    """`geo check /dev/zero /dev/urandom FIFO` returns at once with three GEO0601s (a subprocess with a timeout:
    before the fix the first ran out of memory and the FIFO blocked forever)."""
    fifo = tmp_path / "pipe.geo"
    os.mkfifo(fifo)
    done = _geo("check", "/dev/zero", "/dev/urandom", str(fifo), timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.count("error[GEO0601]") == 3
    assert "a character device, not a regular file" in err and "a FIFO, not a regular file" in err


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    big = tmp_path / "big.geo"
    big.write_bytes(b"#" * MAX_SPEC_BYTES + b"\n")
    with pytest.raises(GeoError) as info:
        read_file(str(big))
    assert codes(info.value) == ["GEO0601"] and "at most 1,048,576 bytes" in str(info.value)
    with pytest.raises(GeoError) as info:  # spec text given inline is bounded the same way
        geo.compile(SPEC + "#" * MAX_SPEC_BYTES)
    assert codes(info.value) == ["GEO0601"]
    big.write_bytes(SPEC.encode() + b"#" * (MAX_SPEC_BYTES - len(SPEC) - 1) + b"\n")  # exactly the limit: read
    assert read_file(str(big)).text.startswith("optimizer o")


@pytest.mark.parametrize("what, text", [
    ("string", 'optimizer o(lr = 0.1, static s = "' + "a" * 1_000_000 + '"):\n    for tensor W:\n        W = W\n'),
    ("escapes", 'optimizer o(lr = 0.1, static s = "' + "\\n" * 500_000 + '"):\n    for tensor W:\n        W = W\n'),
    ("docstring", '"""' + "a\n" * 500_000 + '"""\n' + SPEC),
    ("quotes in a docstring", '"""' + '"a' * 500_000 + '"""\n' + SPEC),
    ("comment", "#" + "a" * 1_000_000 + "\n" + SPEC),
])
def test_a_megabyte_literal_costs_what_a_comment_does(what, text):
    """Lexing a 1 MB string literal took 345 MB (the regex engine kept a frame per character); now any literal
    costs a few MB, as a comment does."""
    parse(SourceFile("warm.geo", SPEC))
    tracemalloc.start()
    try:
        parse(SourceFile("big.geo", text))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20, f"{what}: {peak >> 20} MB"


def test_use_follows_no_link_out_of_its_folder(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "passwd").write_text(SECRET)
    (outside / "spec.geo").write_text(SPEC)
    here = tmp_path / "here"
    here.mkdir()
    (here / "passwd.geo").symlink_to(outside / "passwd")
    (here / "other.geo").symlink_to(outside / "spec.geo")  # a spec, but outside the folder: refused too
    (here / "real.geo").write_text("step plain(W; lr = 0.1):\n    W = W - lr * grad\n")
    (here / "alias.geo").symlink_to(here / "real.geo")     # a link to a spec beside it: followed
    for name in ("passwd", "other"):
        main_geo = here / "main.geo"
        main_geo.write_text(f"use {name}\n\n" + SPEC)
        with pytest.raises(GeoError) as info:
            geo.compile(main_geo)
        assert codes(info.value) == ["GEO0601"], name
        shown = str(info.value)
        assert "symbolic link to a file outside its folder" in shown and "root:x" not in shown and "(not a spec" \
            not in shown, shown
    (here / "main.geo").write_text("use alias\n\noptimizer o = plain\n")
    assert geo.compile(here / "main.geo")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_use_reads_only_regular_files(tmp_path):
    os.mkfifo(tmp_path / "pipe.geo")
    (tmp_path / "folder.geo").mkdir()
    for name, why in (("pipe", "not a regular file"), ("folder", "it is a directory")):
        (tmp_path / "main.geo").write_text(f"use {name}\n\n" + SPEC)
        with pytest.raises(GeoError) as info:
            geo.compile(tmp_path / "main.geo")  # never opens the FIFO: nothing blocks
        assert codes(info.value) == ["GEO0601"] and why in str(info.value)


def test_a_file_name_that_is_not_utf8(tmp_path):
    """A name with a byte that is not UTF-8 reaches Python as a lone surrogate: `geo check` printed it with
    UnicodeEncodeError (exit 3); now it is shown as `\\udcff`."""
    if sys.platform == "darwin":
        pytest.skip("macOS file names are UTF-8 by construction")
    good, bad = os.fsencode(tmp_path) + b"/\xff.geo", os.fsencode(tmp_path) + b"/\xfe.geo"
    with open(good, "wb") as f:
        f.write(SPEC.encode())
    with open(bad, "wb") as f:
        f.write(SPEC.replace("grad", "gradd").encode())
    ok = _geo("check", good)
    assert ok.returncode == 0 and b"\\udcff.geo: ok" in ok.stdout, ok.stderr
    failed = _geo("check", bad)
    assert failed.returncode == 1 and b"\\udcfe.geo:3:" in failed.stderr, failed.stderr
    # through the API: the diagnostic renders to text any stream can print
    with pytest.raises(GeoError) as info:
        front(read_file(os.fsdecode(bad)))
    str(info.value).encode("utf-8")


def test_surrogates_given_through_the_api():
    """Names with lone surrogates given to the API are errors with messages, never crashes: as spec text (GEO0002),
    as a file name, an optimizer name, a hyperparameter keyword, a parameter name."""
    import torch
    with pytest.raises(GeoError) as info:
        geo.compile(SPEC.replace("o(", "o\udcff("))
    assert codes(info.value) == ["GEO0002"]
    with pytest.raises(GeoError) as info:
        geo.compile("/nowhere/\ud800.geo")
    assert codes(info.value) == ["GEO0601"]
    str(info.value).encode("utf-8")
    with pytest.raises(GeoError) as info:
        geo.compile(SPEC, name="o\udcff")
    str(info.value).encode("utf-8")
    opt = geo.compile(SPEC)
    with pytest.raises(TypeError):
        opt([torch.zeros(2, requires_grad=True)], **{"l\udcffr": 0.1})
    rule = geo.compile("optimizer o(lr = 0.1):\n    for matrix W:\n        W = W - lr * grad\n")
    with pytest.raises(GeoError) as info:
        rule([("bias\udcff", torch.zeros(2, requires_grad=True))])
    assert codes(info.value) == ["GEO0401"]
    str(info.value).encode("utf-8")


def test_the_cli_never_exits_3_on_hostile_arguments(tmp_path, capsys):
    path = tmp_path / "s.geo"
    path.write_text(SPEC)
    for args in (["check", str(tmp_path / "x\udcff.geo")], ["compile", str(path), "--static", "n\udcff=1"],
                 ["check", "/dev/null"], ["check", str(tmp_path)]):
        assert main(args) in (0, 1, 2), args
    capsys.readouterr()
