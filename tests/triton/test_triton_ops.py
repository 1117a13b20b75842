"""Every elementwise operator's Triton lowering, against its torch reference (fp32 and fp64), and every kernel
of the stdlib compiled for a real GPU target (sm_90, through ptxas) — which the interpreter does not do."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from geo.compiler.backends.reference import ReferenceStep
from geo.compiler.backends.triton.step import TritonStep
from geo.compiler.ops import registry
from geo.compiler.pipeline import front, specialize
from geo.dsl.source import SourceFile

EVERY_OP = '''
optimizer every_op(lr = 0.01, beta = 0.9):
    for tensor W:
        state m = zeros_like(W)
        let a = abs(grad) + 0.5
        let e = exp(-a) + log(a) + sqrt(a) + rsqrt(a) + sinh(grad) + cosh(grad) + tanh(grad) + asinh(grad) + expm1(-a) + a ^ 1.5 + square(grad) + a ^ W
        let c = (grad < 0) + (grad <= 0) + (grad > 0) + (grad >= 0) + (grad == 0) + (grad != 0)
        let l = max(grad, 0.1) + min(grad, -0.1) + clamp(grad, -0.2, 0.2) + where(grad > 0, a, -a) + sign(grad) - grad / a + mod(grad * 0.5, 0.7) + floor(grad * 3)
        let b = ((grad > 0) and (W > 0)) + ((grad > 0) or (W > 0)) + (not (grad > 0))
        m = ema(m, e + c + l + b, beta)
        let n = nesterov(grad, m, beta)
        W = W - lr * heavy_ball(n, grad, beta) / bias_correction(a * 0.5, t) + lerp(W, grad, 0.7) * 0.001
'''


def _program(optimize: bool):
    _, checked = front(SourceFile("<every_op>", EVERY_OP))
    rule = checked.optimizers["every_op"].rules[0]
    statics = rule.statics()
    return specialize(checked, rule, statics, 2, optimize=optimize)


def test_every_elementwise_operator_has_a_triton_lowering():
    missing = [o.name for o in registry.all_ops() if o.kind == registry.ELEMENTWISE and o.triton is None]
    assert not missing


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "as written"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_operator_agrees_with_its_reference(dtype, optimize):
    """Optimized, the sugar (ema, nesterov, heavy_ball, bias_correction) is rewritten to lerp and arithmetic; as
    written, its own lowerings run. fp64 parameters compute in fp64."""
    program = _program(optimize)
    used = {n.op for n in program.step_nodes()}
    ops = {o.name for o in registry.all_ops() if o.kind == registry.ELEMENTWISE}
    if not optimize:
        assert ops - {"axpy", "addcmul", "addcdiv"} <= used  # the contract pass makes those three
    else:
        assert "addcdiv" in used  # W - (lr·hb)/bc
    hypers = {"lr": 0.01, "beta": 0.9}
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (1, 9), (9, 1), (7, 5)]
    params = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]
    runs = []
    for runner in (TritonStep(program), ReferenceStep(program)):
        ps = [p.clone() for p in params]
        states = [{k: v.clone() for k, v in runner.init(p, hypers).items()} for p in ps]
        g = torch.Generator().manual_seed(1)
        for t in (1.0, 2.0):
            grads = [torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype) for p in ps]
            runner.step_group(ps, grads, states, hypers, [t] * len(ps))
        runs.append((ps, states))
    (got, s_got), (want, s_want) = runs
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b, sa, sb in zip(got, want, s_got, s_want):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, **tol)
        torch.testing.assert_close(sa["m"], sb["m"], **tol)


COMPILE = textwrap.dedent('''
    import dataclasses, importlib.util, os, sys, tempfile
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from geo.compiler.backends.triton.codegen import default_launch, kernel_source, module_source
    from geo.compiler.pipeline import front, specialize
    from geo.compiler.plan import plan
    from geo.dsl.loader import source_for, stdlib_names
    from geo.dsl.source import SourceFile

    def programs():
        for spec in stdlib_names():
            _, checked = front(source_for(spec))
            yield from ((checked, r) for info in checked.optimizers.values() for r in info.rules)
        _, checked = front(SourceFile("<every_op>", sys.stdin.read()))
        yield from ((checked, r) for r in checked.optimizers["every_op"].rules)

    folder, count = tempfile.mkdtemp(), 0
    for checked, rule in programs():
        statics = rule.statics()
        program = specialize(checked, rule, statics, rule.rank() if rule.rank() is not None else 2)
        p = plan(program)
        for k in p.kernels():
            fp32 = default_launch(program, p, k)
            bf16 = dataclasses.replace(fp32, param="bf16", inputs=tuple(("bf16", a) for _, a in fp32.inputs),
                                       outputs=tuple(tuple("bf16" for _ in d) for d in fp32.outputs))
            fp64 = dataclasses.replace(fp32, compute="fp64", param="fp64",
                                       inputs=tuple(("fp64", a) for _, a in fp32.inputs),
                                       outputs=tuple(tuple("fp64" for _ in d) for d in fp32.outputs))
            for launch in (fp32, bf16, fp64):
                count += 1
                path = os.path.join(folder, f"m{count}.py")
                with open(path, "w") as f:
                    f.write(module_source([kernel_source(program, k, launch)]))
                spec = importlib.util.spec_from_file_location(f"m{count}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                fn = getattr(module, f"k{k.index}")
                src = ASTSource(fn, signature={"META": "*i64", "BLOCKS": "*i32", "BLOCK": "constexpr"},
                                constexprs={"BLOCK": 1024})
                compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32))
                assert compiled.asm["cubin"], (rule.text, k.index, launch)
    print("compiled", count)
''')


@pytest.mark.slow
def test_every_kernel_compiles_for_a_gpu():
    """Triton's real compiler (not the interpreter) on every stdlib kernel and every operator, in fp32, bf16 and
    fp64, for sm_90 with the libdevice functions: no GPU is needed to compile."""
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = os.path.join(os.environ.get("GEO_CACHE_DIR", "/tmp"), "triton-binaries")
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    done = subprocess.run([sys.executable, "-c", COMPILE], input=EVERY_OP, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert int(done.stdout.split()[-1]) > 200, done.stdout[-2000:]
