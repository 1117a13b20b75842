"""`pip install .` (not editable) gives one `geo` namespace with its stdlib and grammar as package data."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plain_install_imports_from_another_directory(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    installed = target / "geo"
    assert (installed / "stdlib" / "muon.geo").is_file() and (installed / "dsl" / "grammar.lark").is_file()
    assert (installed / "dsl" / "grammar_tables.json").is_file()
    assert not (target / "dsl").exists() and not (target / "compiler").exists()  # no generic top-level modules
    code = ("import geo, torch; M = geo.compile('muon'); w = torch.nn.Parameter(torch.randn(4, 3)); "
            "o = M([w]); w.grad = torch.randn(4, 3); o.step(); print(geo.__file__); "
            "from geo.dsl import parser; assert parser._load_tables(parser.GRAMMAR.read_text()) is not None")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.stdout.strip().startswith(str(installed))
