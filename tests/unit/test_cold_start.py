"""Onboarding cost (issue 15): the command line's front end starts without torch, and every stdlib optimizer is
reachable by its own name.

Importing torch takes 2–7 s on a loaded machine; `geo --help`, `geo check`, `geo compile --emit ir|opt|plan` and
`geo doc` need none of it (compiler/ops/_lazy.py). Checked in a fresh interpreter: in this one, other tests have
imported torch long ago.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import geo
from geo.compiler.pipeline import front
from geo.dsl.loader import STDLIB, read_file

ROOT = Path(__file__).resolve().parents[2]

COLD = """
import sys
from geo.cli import main
codes = []
for argv in {argvs!r}:
    try:
        codes.append(main(argv))
    except SystemExit as done:  # --help
        codes.append(done.code)
print("CODES", codes, "TORCH", "torch" in sys.modules, "NUMPY", "numpy" in sys.modules)
"""


def _cold(argvs: list[list[str]]) -> str:
    proc = subprocess.run([sys.executable, "-c", COLD.format(argvs=argvs)], capture_output=True, text=True,
                          cwd=ROOT.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_help_check_emit_and_doc_do_not_import_torch():
    specs = sorted(str(p) for p in STDLIB.glob("*.geo"))
    argvs = [["--help"], ["check", *specs], ["compile", "muon_adamw", "--emit", "plan"], ["doc"], ["doc", "msign"],
             ["doc", "--stdlib"], ["check", str(ROOT / "tests" / "diagnostics" / "unknown_view.geo")]]
    assert _cold(argvs) == "CODES [0, 0, 0, 0, 0, 0, 1] TORCH False NUMPY False"


def test_the_runtime_still_loads_torch_when_asked():
    """`geo explain` compiles an optimizer: it needs torch, and gets it through the lazy `geo.compile`."""
    assert _cold([["explain", "adamw", "--param", "w=4x4"]]).startswith("CODES [0] TORCH True")


def _stdlib_optimizers() -> list[str]:
    """Every optimizer the stdlib's files define themselves (not those they `use`), from the checker: an oracle
    independent of the loader's index."""
    out = []
    for path in sorted(STDLIB.glob("*.geo")):
        source = read_file(str(path), display=f"stdlib/{path.name}")
        _, checked = front(source)
        out += [n for n in checked.root_optimizers if n not in out]
    return out


def test_every_stdlib_optimizer_is_reachable_by_its_own_name(capsys):
    names = _stdlib_optimizers()
    assert {"muon_conv", "horst_r3", "auon_paper", "hybrid_auon_paper", "muon_polar_express"} <= set(names)
    for name in names:
        assert geo.compile(name).__name__ == name
    from geo.cli import main
    assert main(["doc", "--stdlib"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert sorted(listed) == sorted(names)  # each exactly once
    assert main(["compile", "horst_r3", "--emit", "ir"]) == 0
    assert "horst_r3[0]" in capsys.readouterr().out


def test_a_misspelt_optimizer_name_suggests_the_right_one():
    with pytest.raises(geo.GeoError) as err:
        geo.compile("muon_cnov")
    assert "did you mean `muon_conv`?" in err.value.render()
