"""The `geo` command line: exit status 0 on success, 1 on a user error (diagnostics on stderr), 2 on a usage
error; never a Python traceback for bad input, whatever the bytes of the file."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geo.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = """\
optimizer plain(lr = 0.1):
    for tensor W:
        W = W - lr * grad
"""


def run(*args: str) -> tuple[int, str, str]:
    """Runs `geo ARGS` in this process; argparse's exits count as the status they carry."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def no_traceback(rc: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    assert "internal error" not in err, err
    assert rc in (0, 1, 2), (rc, err)


@pytest.fixture
def spec(tmp_path):
    def write(content: str | bytes, name: str = "spec.geo") -> str:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)
    return write


# ---- 0: success ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["check", "muon"], ["check", "stdlib/sgd.geo"], ["check", "muon", "adamw", "sgd"],
    ["compile", "muon", "--emit", "ir"], ["compile", "sgd", "--emit", "torch", "--rank", "2"],
    ["compile", "muon", "--static", "nesterov=false", "--static", "ns_steps=3"],
    ["compile", "muon_adamw", "--emit", "ast"], ["doc"], ["doc", "msign"],
])
def test_success(args, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, out, err = run(*args)
    assert (rc, err) == (0, "")
    assert out


def test_check_reports_each_file(spec):
    rc, out, err = run("check", spec(SPEC))
    assert rc == 0 and out.endswith("spec.geo: ok (plain)\n") and err == ""


def test_static_override_selects_the_code():
    _, nesterov, _ = run("compile", "muon", "--emit", "ir")
    rc, plain, _ = run("compile", "muon", "--emit", "ir", "--static", "nesterov=false")
    assert rc == 0 and "nesterov=false" in plain and plain != nesterov


# ---- 1: the user's spec (or file) is wrong -------------------------------------------------------------
def test_spec_error(spec):
    rc, out, err = run("check", spec(SPEC.replace("grad", "gard")))
    assert rc == 1 and out == ""
    assert err.startswith("error[GEO0101]: unknown name `gard`\n")
    assert "help: did you mean `grad`?" in err
    assert err.endswith("error: could not compile due to 1 previous error\n")


def test_one_bad_file_fails_the_run_but_all_are_checked(spec):
    good, bad = spec(SPEC, "good.geo"), spec(SPEC.replace("lr *", "lr +*"), "bad.geo")
    rc, out, err = run("check", bad, good)
    assert rc == 1
    assert "good.geo: ok (plain)" in out and "error[GEO0001]" in err and "bad.geo:3:" in err


@pytest.mark.parametrize("args, code", [
    (["compile", "muon", "--name", "nosuch"], "GEO0115"),
    (["compile", "muon", "--static", "ns_steps=-1"], "GEO0206"),
    (["check", "muonn"], "GEO0501"),
    (["compile", "nosuch/dir/spec.geo"], "GEO0601"),
])
def test_user_errors(args, code):
    rc, out, err = run(*args)
    assert rc == 1 and out == "" and err.startswith(f"error[{code}]")
    no_traceback(rc, out, err)


def test_doc_of_an_unknown_operator():
    rc, out, err = run("doc", "msing")
    assert rc == 1 and "did you mean `msign`?" in err


def test_compile_a_spec_without_optimizer(spec):
    path = spec("def half(x):\n    return 0.5 * x\n")
    assert run("check", path)[0] == 0
    rc, _, err = run("compile", path)
    assert rc == 1 and "error[GEO0115]: the spec defines no optimizer" in err


# ---- 2: the command line itself is wrong ---------------------------------------------------------------
@pytest.mark.parametrize("args", [
    [], ["check"], ["frobnicate"], ["compile"], ["compile", "muon", "--emit", "triton2"],
    ["compile", "muon", "--rank", "7"], ["compile", "muon", "--rank", "two"], ["check", "muon", "--bogus"],
    ["compile", "muon", "--static", "nesterov"], ["compile", "muon", "--static", "nosuch=1"],
    ["compile", "muon", "--static", "lr=0.1"],
])
def test_usage_errors(args):
    rc, out, err = run(*args)
    assert rc == 2, (rc, err)
    assert out == "" and err
    no_traceback(rc, out, err)


# ---- bad input never gives a traceback -----------------------------------------------------------------
BAD_FILES = {
    "empty": b"",
    "only_comments": b"# nothing here\n\n   # indented comment\n",
    "no_trailing_newline": SPEC.rstrip("\n").encode(),
    "crlf": SPEC.replace("\n", "\r\n").encode(),
    "bom": b"\xef\xbb\xbf" + SPEC.encode(),
    "tabs": SPEC.replace("    ", "\t").encode(),
    "latin1": "# café\n".encode("latin-1") + SPEC.encode(),
    "utf16": SPEC.encode("utf-16"),
    "nul": SPEC.encode().replace(b"lr *", b"lr \x00*"),
    "binary": bytes(range(256)) * 4,
    "random_utf8": "ἀλφα ∘ β ∘ ∇ψ 🙂 \u200b \ufeff".encode(),
    "unterminated_docstring": b'"""never closed\noptimizer x = y\n',
    "deep_parens": b"optimizer x(lr = " + b"(" * 3000 + b"1" + b")" * 3000 + b"):\n    for tensor W:\n        W = W\n",
    "deep_unary": b"optimizer x(lr = " + b"-" * 3000 + b"1):\n    for tensor W:\n        W = W\n",
    "deep_blocks": b"optimizer x(lr = 1):\n    for tensor W:\n" + b"".join(
        b"    " * (i + 2) + b"if true:\n" for i in range(150)) + b"    " * 152 + b"W = W\n",
    "huge_number": b"optimizer x(lr = " + b"9" * 5000 + b", static k = 2 ^ 2 ^ 2 ^ 2 ^ 2 ^ 2):\n    for tensor W:\n"
                   b"        W = W\n",
    "huge_unroll": SPEC.replace("        W = W - lr * grad", "        repeat 1000:\n            repeat 1000:\n"
                                "                W = W - lr * grad").encode(),
    "long_line": ("optimizer x(lr = 1):\n    for tensor W:\n        W = W" + " " * 100_000 + "?\n").encode(),
    "wide_sum": ("optimizer x(lr = 1):\n    for tensor W:\n        W = W" + " + W" * 2000 + "\n").encode(),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["check", "compile"])
def test_bad_bytes(name, command, spec):
    path = spec(BAD_FILES[name], f"{name}.geo")
    rc, out, err = run(command, path)
    no_traceback(rc, out, err)
    if rc == 1:
        assert err.startswith("error[GEO")


@pytest.mark.parametrize("name, rc", [("empty", 0), ("crlf", 0), ("bom", 0), ("tabs", 0), ("no_trailing_newline", 0),
                                      ("latin1", 1), ("utf16", 1), ("nul", 1), ("binary", 1)])
def test_bad_bytes_verdict(name, rc, spec):
    assert run("check", spec(BAD_FILES[name], f"{name}.geo"))[0] == rc


def test_nul_is_shown_as_a_code_point(spec):
    _, _, err = run("check", spec(BAD_FILES["nul"]))
    assert "error[GEO0002]: unexpected character U+0000" in err


def test_a_directory_instead_of_a_file(tmp_path):
    rc, out, err = run("check", str(tmp_path))
    assert rc == 1 and "it is a directory" in err
    rc, out, err = run("compile", str(tmp_path))
    assert rc == 1 and "it is a directory" in err


def test_a_missing_file(tmp_path):
    rc, out, err = run("check", str(tmp_path / "absent.geo"))
    assert rc == 1 and "error[GEO0601]: cannot read" in err and "no such file" in err


def test_a_file_argument_is_never_spec_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = run("check", "my-spec")  # not a stdlib name: a path, which does not exist
    assert rc == 1 and "cannot read `my-spec`" in err


def test_an_unreadable_file(spec, monkeypatch):
    path = spec(SPEC)
    os.chmod(path, 0)
    if os.name != "posix" or os.geteuid() == 0:
        # root reads a file of mode 0 (and CI runs as root): the OS's refusal is simulated for this path alone
        real = os.open

        def refuse(name, *args, **kwargs):
            if str(name) == str(path):
                raise PermissionError(13, "Permission denied", str(name))
            return real(name, *args, **kwargs)
        monkeypatch.setattr(os, "open", refuse)
    rc, _, err = run("check", path)
    assert rc == 1 and "permission denied" in err


def test_the_installed_command(tmp_path):
    """`python -m geo`: the exit statuses survive the process boundary, and no traceback escapes."""
    garbage = tmp_path / "garbage.geo"
    garbage.write_bytes(bytes(range(256)))
    for args, status in [(["check", str(garbage)], 1), (["compile"], 2)]:
        proc = subprocess.run([sys.executable, "-m", "geo", *args], capture_output=True, text=True, cwd=ROOT.parent,
                              timeout=120)
        assert proc.returncode == status, proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr


# ---- 3: a bug in geo -----------------------------------------------------------------------------------
def test_a_bug_in_geo_is_an_internal_error(monkeypatch):
    """An unexpected exception is reported as geo's fault, with status 3 and no traceback (GEO_DEBUG shows it)."""
    from geo.compiler import pipeline

    def broken(source):
        raise KeyError("boom")

    monkeypatch.setattr(pipeline, "front", broken)
    monkeypatch.delenv("GEO_DEBUG", raising=False)
    rc, out, err = run("check", "muon")
    assert rc == 3 and "Traceback" not in err
    assert err.startswith("internal error: KeyError: 'boom'") and "this is a bug in geo" in err
    monkeypatch.setenv("GEO_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["check", "muon"])


def test_a_static_value_of_the_wrong_type_is_a_usage_error():
    """`--static` takes what the constructor takes: `nesterov=maybe` is not a bool."""
    rc, _, err = run("compile", "muon", "--static", "nesterov=maybe")
    assert rc == 2 and "takes a bool, got 'maybe'" in err
    rc, _, err = run("compile", "muon", "--static", "ns_steps=many")
    assert rc == 2 and "takes an int, got 'many'" in err
    assert run("compile", "muon", "--static", "ns_steps=3")[0] == 0
