"""docs/tutorial.md runs as written: its spec block is the file it names, every `$` command of a console block
runs from the repository root with the output shown (`...` stands for text that varies: timings, versions, a
line of it alone for any number of lines), and its Python runs and prints the text block after it."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", TUTORIAL, re.S)


def _console_steps():
    steps = []
    for lang, body in BLOCKS:
        if lang != "console":
            continue
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            steps.append((command, output))
    return steps


def _pattern(expected: str) -> re.Pattern:
    parts = []
    for line in expected.splitlines():
        if line == "...":
            parts.append(r"(?:.*\n)*?")
        else:
            parts.append(".*".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts))


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "geo":
        return [sys.executable, "-m", "geo"] + words[1:]
    assert words[0] == "python", f"the tutorial runs geo or python, not {words[0]!r}"
    return [sys.executable] + words[1:]


def test_the_spec_block_is_the_file():
    spec = next(body for lang, body in BLOCKS if lang == "geo")
    assert spec == (ROOT / "examples" / "tutorial" / "my_optimizer.geo").read_text(encoding="utf-8")


STEPS = _console_steps()


@pytest.mark.parametrize("command,expected", STEPS, ids=[c.split()[1] if c.startswith("geo") else "char_lm" for c, _ in STEPS])
def test_each_command_prints_what_the_tutorial_shows(command, expected, tmp_path):
    if "char_lm.py" in command:
        pytest.importorskip("matplotlib", reason="matplotlib is absent: pip install '.[examples]'")
        pytest.importorskip("tqdm", reason="tqdm is absent: pip install '.[examples]'")
    out = subprocess.run(_argv(command), cwd=ROOT, capture_output=True, text=True, timeout=900)
    shown = out.stdout + out.stderr
    assert out.returncode == (1 if "error[" in expected else 0), shown
    assert _pattern(expected).fullmatch(shown), f"$ {command}\n--- shown in the tutorial:\n{expected}--- got:\n{shown}"
    if "char_lm.py" in command:
        png = ROOT / "examples" / "out" / "tutorial" / "char_lm.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_python_runs_and_prints_what_is_shown():
    index = next(i for i, (lang, _) in enumerate(BLOCKS) if lang == "python")
    code, (lang, printed) = BLOCKS[index][1], BLOCKS[index + 1]
    assert lang == "text"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == printed
