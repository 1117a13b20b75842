"""The torch backend: the IR lowered to straight-line Python source over torch, compiled once per program.

Same semantics as the reference interpreter, without its per-node dispatch. The generated source names
values `v0, v1, …`, reads every constant, state name and hyperparameter name from a table `K`, and calls
operators through a table `F`: no text of the spec (names, strings, file names) is ever pasted into it, so
a `.geo` file cannot inject code. It runs with no builtins but `float`.
"""
from __future__ import annotations

from typing import Any

from ..ir import Program, reachable
from ..ops import registry
from ..types import Scalar, Tensor
from .reference import store

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


class _Emitter:
    def __init__(self) -> None:
        self.K: list[Any] = []
        self.F: list[Any] = []
        self.lines: list[str] = []

    def k(self, value: Any) -> str:
        self.K.append(value)
        return f"K[{len(self.K) - 1}]"

    def f(self, fn: Any) -> str:
        self.F.append(fn)
        return f"F[{len(self.F) - 1}]"

    def nodes(self, nodes, indent: str = "    ") -> None:
        for n in nodes:
            v = f"v{n.id}"
            if n.op in ("param", "grad", "t"):
                rhs = n.op
            elif n.op == "hyper":
                index = n.attr("index")
                rhs = f"float(hypers[{self.k(n.attr('name'))}]" + (f"[{int(index)}])" if index is not None else ")")
            elif n.op == "state":
                rhs = f"state[{self.k(n.attr('name'))}]"
            elif n.op == "const":
                rhs = self.k(n.value)
            elif n.op in _INFIX and isinstance(n.type, Scalar) and n.op in ("div", "pow"):
                # host floats: 1/0 and 10.0**400 raise in Python; the registry gives IEEE inf/nan, as a tensor would
                a, b = n.args
                opdef = registry.get(n.op)
                rhs = f"{self.f(lambda x, y, _o=opdef, _r=n.type: _o.apply([x, y], {}, _r))}(v{a.id}, v{b.id})"
            elif n.op in _INFIX and (isinstance(n.type, (Tensor, Scalar))):
                a, b = n.args
                rhs = f"v{a.id} {_INFIX[n.op]} v{b.id}" if n.op != "pow" or isinstance(n.type, Scalar) \
                    else f"{self.f(registry.get('pow').reference)}(v{a.id}, v{b.id})"
            elif n.op == "neg":
                rhs = f"-v{n.args[0].id}"
            else:
                opdef, attrs, result = registry.get(n.op), dict(n.attrs), n.type
                fn = self.f(lambda *vals, _o=opdef, _a=attrs, _r=result: _o.apply(list(vals), _a, _r))
                rhs = f"{fn}({', '.join(f'v{a.id}' for a in n.args)})"
            line, col = n.span.source.line_col(n.span.start) if n.span.source.text else (0, 0)
            where = f"  # {n.op} @{line}:{col}" if line else f"  # {n.op}"
            self.lines.append(f"{indent}{v} = {rhs}{where}")


def generate(program: Program) -> tuple[str, list[Any], list[Any]]:
    """Returns (source, K, F) for `init(param, hypers, K, F, store)` and `step(param, grad, state, hypers, t,
    K, F, store)`."""
    e = _Emitter()
    e.lines.append("def init(param, hypers, K, F, store):")
    e.nodes(reachable([s.init for s in program.states]))
    inits = ", ".join(f"{e.k(s.name)}: store(v{s.init.id}, v{s.init.id} if {e.k(isinstance(s.type, Tensor))} "
                      f"else 0.0, {e.k(s.dtype)})" for s in program.states)
    e.lines.append(f"    return {{{inits}}}")
    e.lines.append("")
    e.lines.append("def step(param, grad, state, hypers, t, K, F, store):")
    e.nodes(program.step_nodes())
    writes = ", ".join(f"{e.k(name)}: store(v{node.id}, state[{e.k(name)}], {e.k(_slot(program, name).dtype)})"
                       for name, node in program.outputs.items() if name != "param")
    e.lines.append(f"    return store(v{program.outputs['param'].id}, param, None), {{{writes}}}")
    return "\n".join(e.lines) + "\n", e.K, e.F


def _slot(program: Program, name: str):
    return next(s for s in program.states if s.name == name)


class TorchStep:
    name = "torch"

    def __init__(self, program: Program):
        self.program = program
        self.source, self.K, self.F = generate(program)
        namespace: dict[str, Any] = {"__builtins__": {"float": float}}
        exec(compile(self.source, f"<geo {program.optimizer}[{program.rule_index}]>", "exec"), namespace)
        self._init, self._step = namespace["init"], namespace["step"]

    def init(self, param, hypers):
        return self._init(param, hypers, self.K, self.F, store)

    def step(self, param, grad, state, hypers, t):
        return self._step(param, grad, state, hypers, t, self.K, self.F, store)
