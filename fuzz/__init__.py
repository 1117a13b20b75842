"""`geo fuzz`: hypothesis-driven fuzzing of specs, operator and step compositions, and of geo's front end.

A package apart from the production runtime: it imports the dsl, the compiler and the runtime, and nothing
of geo imports it but the command line (`geo fuzz`). Four engines (docs/fuzzing.md is the user's guide):

1. **Spec fuzzing** (`spec.fuzz_spec`). For every rule of every optimizer a spec defines, hypothesis draws
   parameters the rule selects (shapes 1×n, n×1, tall, wide, odd, batched stacks, conv kernels; fp32, bf16,
   fp64) and a sequence of gradients (gaussian at three scales, zeros, tiny ~1e-30, huge ~1e30, rank-1,
   ill-conditioned, NaN, Inf), and checks the properties of `properties.PROPERTIES`: the backend agrees with
   the reference, no NaN comes out of finite inputs, non-finite gradients follow the `nonfinite` policy, a
   state dict round-trips and resuming from it equals an uninterrupted run bit for bit, per-group
   hyperparameters are respected, a seeded run is deterministic, and the laws of every operator the spec uses
   hold. A failure is shrunk by hypothesis and rendered by `report.Failure.render` with a `.geo` and a Python
   reproduction.
2. **Compositions**. `orders` composes a spec's steps in random orders (H ∘ A and A ∘ H); `expressions`
   builds random well-typed expressions over the operator registry, typed by the operators' own type rules
   and fed from their declared domains (`OpDef.domain`); both are fuzzed like specs
   (`expressions.fuzz_operators`).
3. **The composition explorer** (`explorer.explore`): do the given steps or operators commute on sampled
   inputs, and how large is the difference?
4. **Front-end robustness** (`robustness.robustness_campaign`, its inputs from `specgen`): grammar-aware
   generated and byte-mutated spec text runs through the whole pipeline; nothing but geo's diagnostics may
   come out, every span inside its file.

Under them: `tensors` (adversarial inputs as reproducible recipes; bit-for-bit comparison), `draw` (one
generator code for hypothesis and a seeded random.Random; the hypothesis harness), `cases` (the optimizers
under test, the parameters each rule reaches, drawn examples and running them) and `report` (failures and
their reproductions). `cli` is the `geo fuzz` subcommand. hypothesis is imported lazily (a test dependency);
`tensors.make_tensor` is what reports' Python snippets call.
"""
