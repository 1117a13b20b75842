"""The examples run (short versions) and write what they promise: the plot and the table.

They need the `examples` extra (tqdm, matplotlib; .ci/run installs it): skipped only when it is absent."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is absent: pip install '.[examples]'")
pytest.importorskip("tqdm", reason="tqdm is absent: pip install '.[examples]'")

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_char_lm_compares_six_optimizers_and_a_user_spec(tmp_path, capsys):
    """Every run of the comparison, plus a spec given with --spec, on a tiny model for a few steps."""
    char_lm = _load("char_lm")
    user = tmp_path / "lion_routed.geo"
    user.write_text("use lion, adamw\noptimizer lion_routed:\n    for hidden matrix W = lion(lr = 3e-4)\n"
                    "    for tensor p = adamw\n")
    rc = char_lm.main(["--steps", "6", "--width", "16", "--ctx", "16", "--batch", "4", "--val-batches", "1",
                       "--eval-every", "3", "--no-progress", "--out", str(tmp_path), "--spec", str(user)])
    assert rc == 0
    assert (tmp_path / "char_lm.png").read_bytes()[:8] == PNG
    table = (tmp_path / "char_lm.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| optimizer")]
    assert [r.split("|")[1].strip() for r in rows] == list(char_lm.RUNS) + ["lion_routed"]
    for row in rows:
        cells = [c.strip() for c in row.split("|")[2:-1]]
        train, val, step_ms, opt_ms, state = cells
        assert float(train) > 0 and float(val) > 0 and float(step_ms) > 0 and float(opt_ms) >= 0
        assert int(state.replace(",", "")) > 0
    printed = capsys.readouterr().out
    assert "pydoc_data.topics" in printed and "| adamw |" in printed


def test_char_lm_says_what_is_wrong_with_bad_arguments(tmp_path, capsys):
    char_lm = _load("char_lm")
    assert char_lm.main(["--only", "adamw,nadam", "--out", str(tmp_path)]) == 2
    assert "unknown run(s) nadam" in capsys.readouterr().err


def test_state_bytes_are_what_the_optimizers_keep():
    """The table's state column: AdamW keeps two moments per parameter; muon_adamw one buffer per hidden matrix."""
    import torch

    import geo
    char_lm = _load("char_lm")
    model = char_lm.CharLM(vocab=10, d=8, layers=1, heads=2, ctx=8)
    n = sum(p.numel() for p in model.parameters())
    hidden = sum(p.numel() for name, p in model.named_parameters()
                 if p.dim() == 2 and not name.startswith(("wte", "wpe", "lm_head")))
    for name, want in (("adamw", 2 * 4 * n), ("muon_adamw", 4 * hidden + 2 * 4 * (n - hidden))):
        opt = geo.compile(name)(model.named_parameters())
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        steps = 4 * len(opt.state)  # the float32 step counter of each parameter
        assert char_lm.state_bytes(opt) == want + steps, name


def test_horst_sparsity_writes_histograms_and_the_table(tmp_path, capsys):
    example = _load("horst_sparsity")
    assert example.main(["--steps", "40", "--no-progress", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "horst_sparsity.png").read_bytes()[:8] == PNG
    table = (tmp_path / "horst_sparsity.md").read_text()
    assert table.count("| underdetermined |") == 5 and table.count("| overdetermined |") == 5
