"""Choices, and the hypothesis harness that runs a generator and shrinks what fails.

Generators take a `Draw` and ask it only for integers (choices, booleans and floats are built on that one
call). So the same generator code runs under hypothesis (`HypothesisDraw`: every choice is a `data.draw`,
which hypothesis shrinks towards the simplest counterexample) and under a seeded `random.Random`
(`RandomDraw`: no shrinking, but fast enough for 10 000-input campaigns and the explorer). `hypothesis_run`
runs a body on hypothesis examples and hands back the context of the shrunk failing one; a body raises
`Skip` for an example that does not apply. hypothesis is imported lazily: a test dependency, not geo's.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Sequence


class Draw:
    """A source of choices. Generators take a Draw, so the same code runs under hypothesis (`data.draw`,
    which shrinks) and under a seeded `random.Random` (fast, for long campaigns and the explorer)."""

    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def bool(self, p: float = 0.5) -> bool:
        return self.int(0, 999) < int(p * 1000)

    def float(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.int(0, 1000) / 1000


class RandomDraw(Draw):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisDraw(Draw):
    def __init__(self, data):
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        from hypothesis import strategies as st
        return self.data.draw(st.integers(lo, hi))


class Skip(Exception):
    """The drawn example does not apply (e.g. a view the shape does not fit): draw another."""


def hypothesis_run(body: Callable[[Draw, dict], None], examples: int, seed: int) -> tuple[int, dict | None]:
    """Runs `body(draw, ctx)` on `examples` hypothesis examples. Returns (examples run, the context of the shrunk
    failing example — its `error` key holds the exception — or None). `Skip` discards an example."""
    from hypothesis import HealthCheck, Phase, Verbosity, assume, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    count = [0]
    last: dict[str, Any] = {}

    @settings(max_examples=examples, deadline=None, database=None, report_multiple_bugs=False,
              verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
              phases=(Phase.generate, Phase.shrink))
    @fix_seed(seed)
    @given(st.data())
    def test(data):
        ctx: dict[str, Any] = {}
        try:
            body(HypothesisDraw(data), ctx)
        except Skip:
            assume(False)
        except BaseException as err:  # noqa: BLE001 - every escape is a finding
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            ctx["error"] = err
            last.clear()
            last.update(ctx)
            raise
        count[0] += 1

    try:
        test()
    except Unsatisfiable:
        return count[0], None
    except BaseException as err:  # noqa: BLE001
        if isinstance(err, KeyboardInterrupt):
            raise
        if not last:
            last["error"] = err
        return count[0], last
    return count[0], None
