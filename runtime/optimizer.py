"""`GeoOptimizer`: a compiled spec as a real `torch.optim.Optimizer`.

Pure init/update inside (the backends' `init` and `step_group`), the torch API outside: param groups with
per-group hyperparameters, `step(closure)`, `zero_grad`, step hooks, `state_dict`/`load_state_dict`, LR
schedulers (they change `group["lr"]`, a runtime hyperparameter: nothing recompiles).

Each parameter is bound to the first rule of the spec that selects it, when the optimizer is built; a
parameter that no rule selects, or whose shape does not fit its rule's view, is a diagnostic naming the
parameter and its shape. The user's param groups are split by rule, so a routed spec (matrices → Muon,
the rest → AdamW) is one optimizer with one `state_dict` and one scheduler surface: every group carries the
hyperparameters of its own rule, and `group["geo_rule"]` names the rule.

The compiled programs are cached in `compiled.py`, hyperparameter values are checked in `hypers.py`, and
checkpoints validated in `checkpoint.py`; this module is the optimizer's life cycle: binding, the step.
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..compiler import backends
from ..compiler.backends.epilogue import storage_id
from ..compiler.binding import (RANK_ROLES, ParamInfo, RoleChoice, RoutingWarning, bind_rule, choose_roles,
                                looks_transposed, misfit, parse_role, show_shape)
from ..compiler.ops.randomness import RandomKey
from ..compiler.spec import ACROSS
from ..dsl.diagnostics import Diagnostic, GeoError, Label
from . import across, checkpoint, data_parallel, distributed, torch_optim
from .checkpoint import STEP_KEY, param_name
from .compiled import BACKENDS, CompiledSpec
from .hypers import group_values, runtime_values, static_values, validate_kwargs

NONFINITE = ("skip", "raise", "propagate")


_NOT_TRACED = ("geo's step runs as compiled already (multi-tensor torch calls or Triton kernels, hyperparameter "
               "arithmetic in double precision on the host, bit-exact with torch.optim's eager step); torch.compile "
               "traces the closure and calls the step as it is (docs/design.md, 'torch.compile')")


def _not_traced(fn):
    """torch.compiler.disable with the reason a `fullgraph=True` compile reports (the keyword is torch ≥ 2.8's)."""
    try:
        return torch.compiler.disable(fn, reason=_NOT_TRACED)
    except TypeError:
        return torch.compiler.disable(fn)


class GeoOptimizer(torch.optim.Optimizer):
    _geo: ClassVar[CompiledSpec]

    def __init__(self, params, *, roles: dict[Any, str] | None = None, backend: str | None = None,
                 nonfinite: str = "skip", seed: int | None = None, **hypers: Any):
        """params: tensors, (name, tensor) pairs (`model.named_parameters()`: names give roles) or param groups.
        roles: {tensor or name: role} overriding the roles inferred from names and positions (compiler/binding.py
        says how they are chosen; `geo.roles(model)` reads them off the model's modules); a role may end in
        `.T` for a weight stored transposed, (in, out) as HF GPT-2's Conv1D: rules then see its transpose.
        Parameters routed on a guess (no names, where the spec's rules tell roles apart; a name and shape
        that look like Conv1D storage) are reported once, as a `RoutingWarning`.
        backend: "auto", "torch", "inductor", "triton" or "reference" (default: the one given to geo.compile).
        nonfinite: what a step does with a gradient holding NaN or ±Inf — "skip" (default: that tensor's
        step is skipped entirely, its parameter and state untouched, and counted in `nonfinite_skips`; the
        inductor backend checks inside its kernels, the others in one pass before the step),
        "raise" (FloatingPointError naming the parameter, nothing of this step applied to it), or
        "propagate" (no check, as torch.optim: NaN flows into the parameter and state).
        **hypers: hyperparameters for every rule that has them; `ROUTE={...}` for one route only; and
        torch.optim's flags (runtime/torch_optim.py): `maximize=True` ascends (the gradient negated, as
        torch.optim does), `foreach` is accepted, `fused=True` selects the Triton backend.

        `defaults` holds the hyperparameters every rule has and the flags, and so every param group has them,
        as torch's tools expect (OneCycleLR, CyclicLR).
        seed: the seed of the optimizer's random draws (`uniform`, `subset`, ...; default: torch's initial seed,
        so `torch.manual_seed` decides it); saved in the state dict, so a resumed run draws as the uninterrupted one."""
        spec = self._geo
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        flags, hypers = torch_optim.split_flags(spec.info, hypers)
        self._geo_backend = torch_optim.backend_for(spec.info.name, backend or spec.backend, flags)
        if nonfinite not in NONFINITE:
            raise ValueError(f"unknown nonfinite policy {nonfinite!r}; choose one of {', '.join(NONFINITE)}")
        self.nonfinite = nonfinite
        self.nonfinite_skips: dict[str | int, int] = {}  # by parameter name, or by index as in state_dict()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self._geo_seed = int(seed) if seed is not None else torch.initial_seed()
        self._geo_roles = _role_table(roles)
        # what ZeRO copies into each of its groups from its keywords, the constructor's own (runtime/data_parallel.py)
        self._geo_ctor = {"roles": roles, "backend": backend, "nonfinite": nonfinite, "seed": seed}
        self._geo_streams: dict[torch.Tensor, str] = {}  # random streams decided by `route` over a whole list
        self._geo_kwargs = validate_kwargs(spec.info, hypers)
        self._geo_binding: dict[torch.Tensor, tuple[int, int | None, tuple[int, ...]]] = {}
        self._geo_transposed: set[torch.Tensor] = set()  # stored (in, out): the rules see p.T
        self._geo_unnamed = 0
        self._geo_fits: set[tuple[int, tuple[int, ...]]] = set()  # (program, shape) pairs already checked
        params = _param_groups(params)
        # Roles are chosen over every parameter given at once: "the model's last layer" is a fact of the whole list.
        self._geo_choices = self._choose([p for g in params if isinstance(g, dict) for p in g["params"]])
        self._geo_notes: list[tuple] = []
        self._geo_params: dict[torch.Tensor, ParamInfo] = {}  # name, shape and role of each parameter
        self._geo_across_state: dict[str, torch.Tensor] = {}  # the `across` block's states (runtime/across.py)
        self._geo_across_step = 0
        super().__init__(params, defaults=torch_optim.defaults(spec.info, flags))
        self._geo_choices = {}
        if data_parallel.called_by_zero(sys._getframe(1)):  # ZeRO's local optimizer: its groups must match ZeRO's
            data_parallel.refuse_under_zero(self, params if isinstance(params, list) else [])
        self._warn_routing(stacklevel=2)
        data_parallel.warn_unseeded(self, seed, stacklevel=2)

    # -- construction
    @classmethod
    def route(cls, params, *, roles: dict[Any, str] | None = None, **hypers: Any) -> list[dict[str, Any]]:
        """Param groups for `torch.distributed.optim.ZeroRedundancyOptimizer(Opt.route(params), optimizer_class=Opt,
        lr=...)`: split by rule, as this optimizer splits them, with roles, names and random streams decided over
        the whole list and remembered, so that each rank's local optimizer steps its share exactly as this one
        would (runtime/data_parallel.py). `hypers` only check that every parameter fits its rule."""
        given = _param_groups(params)
        if isinstance(given, torch.Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got torch.Tensor")
        return data_parallel.route(cls, given, roles, hypers)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        spec = self._geo
        param_group = self._own_keys(param_group)
        rule_given = param_group.get("geo_rule")
        if rule_given is not None and (isinstance(rule_given, bool) or not isinstance(rule_given, int)
                                       or not 0 <= rule_given < len(spec.rules)):
            raise ValueError(f"{spec.info.name}: a param group has `geo_rule` {rule_given!r}, not a rule of this "
                             "optimizer")
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        named = [isinstance(p, tuple) for p in params]
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        names = [p[0] if isinstance(p, tuple) else None for p in params]
        if any(named) and not all(named):
            raise ValueError("all optimizer params should be with/without names")
        diagnostics: list[Diagnostic] = []
        split: dict[int, list[int]] = {}
        for p in tensors:
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
        later = not self._geo_choices  # a group added after construction: its roles are chosen among its own
        choices = self._geo_choices
        if later or any(id(p) not in choices for p in tensors):
            choices = self._choose(params)
        routed = self.__class__.__dict__.get("_geo_routed", {})
        for i, p in enumerate(tensors):
            choice, known = choices[id(p)], None
            if names[i] is None and not choice.given:
                known = routed.get(p)  # decided by `route` over the whole list (runtime/data_parallel.py)
            if known is not None:
                choice = known.choice
                self._geo_streams[p] = known.stream
            name = names[i] if names[i] is not None else known.name if known is not None and known.name else \
                self._unnamed()
            binding = self._bind(p, name, choice, names[i] is not None, diagnostics)
            if binding is not None:
                if rule_given is not None and binding[0] != rule_given:
                    raise ValueError(f"{spec.info.name}: parameter {name} of shape {show_shape(tuple(p.shape))} is "
                                     f"routed to rule {binding[0]} ({spec.rules[binding[0]].route}), but its param "
                                     f"group says geo_rule={rule_given}")
                self._geo_binding[p] = binding
                split.setdefault(binding[0], []).append(i)
        if diagnostics:
            raise GeoError(diagnostics)
        if not tensors:  # an empty group stays a group (ZeRO gives a rank that owns none of a group's parameters one)
            split[rule_given if rule_given is not None else 0] = []
        flags, user = torch_optim.split_flags(spec.info, {k: v for k, v in param_group.items()
                                                               if k not in ("params", "param_names", "geo_rule")})
        torch_optim.check_group_flags(spec.info.name, flags, self._geo_backend)
        groups = []
        for rule_index, members in sorted(split.items()):
            rule = spec.rules[rule_index]
            group = {"params": [tensors[i] for i in members]}
            if any(named):
                group["param_names"] = [names[i] for i in members]
            group.update(group_values(spec.info, rule, self._geo_kwargs, user))
            group.update(flags)  # the flags it does not set come from `defaults`, in torch's add_param_group
            group["geo_rule"] = rule_index
            groups.append(group)
        for group in groups:  # every shape requirement of the compiled rules, before any group is added
            diagnostics += self._misfits(group)
        if diagnostics:
            raise GeoError(diagnostics)
        if later and data_parallel.called_by_zero(sys._getframe(1)):
            data_parallel.refuse_under_zero(self, [param_group])
        for group in groups:
            super().add_param_group(group)
        if later:
            self._warn_routing(stacklevel=2)

    def _own_keys(self, param_group: dict[str, Any]) -> dict[str, Any]:
        """The group without the constructor's keywords that ZeroRedundancyOptimizer copies into each of its groups
        (its `defaults` are the local optimizer's keywords): where equal to the constructor's, they are dropped;
        else they are a per-group setting that does not exist, and refused."""
        extra = [k for k in data_parallel.CONSTRUCTOR_KEYS if k in param_group]
        if not extra:
            return param_group
        mine = {**self._geo_ctor, "nonfinite": self.nonfinite}
        for k in extra:
            if param_group[k] is not mine.get(k) and param_group[k] != mine.get(k):
                raise ValueError(f"{self._geo.info.name}: `{k}` is set for the whole optimizer (a constructor "
                                 f"keyword), not per param group; got {k}={param_group[k]!r} in a group")
        return {k: v for k, v in param_group.items() if k not in extra}

    def _choose(self, params: list[Any]) -> dict[int, RoleChoice]:
        """The role of each tensor of `params` (tensors or (name, tensor) pairs), by id: compiler/binding.py's rules
        over the whole list, `roles=` first."""
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        names = [p[0] if isinstance(p, tuple) else None for p in params]
        pairs, given, ids = [], [], []
        for name, p in zip(names, tensors):
            if isinstance(p, torch.Tensor):
                pairs.append((name, tuple(p.shape)))
                given.append(self._geo_roles.get(id(p)) or (self._geo_roles.get(name) if name is not None else None))
                ids.append(id(p))
        return dict(zip(ids, choose_roles(pairs, given)))

    def _geo_shape(self, p: torch.Tensor) -> tuple[int, ...]:
        """The shape the rules see: the stored one, or its transpose for a weight stored (in, out)."""
        return tuple(reversed(p.shape)) if p in self._geo_transposed else tuple(p.shape)

    def _misfits(self, group: dict[str, Any]) -> list[Diagnostic]:
        """Parameters whose shape breaks a requirement of their rule's program (`W @ W` needs a square W)."""
        spec = self._geo
        rule = spec.rules[group["geo_rule"]]
        statics = rule.statics(group)
        out = []
        for p in group["params"]:
            _, rank, active = self._geo_binding[p]
            program = spec.program(rule, statics, rank, active, shape=self._geo_shape(p))
            key = (id(program), self._geo_shape(p))
            if key in self._geo_fits:
                continue
            problem = misfit(program, rule, self._geo_shape(p), param_name(group, p))
            if problem is None and any(n.startswith(ACROSS + ".") for n in program.inputs) \
                    and not across.covers(self, p):
                problem = across.uncovered(self, rule, p, param_name(group, p))
            if problem is not None:
                out.append(problem)
            else:
                self._geo_fits.add(key)
        return out

    def _unnamed(self) -> str:
        self._geo_unnamed += 1
        return f"param{self._geo_unnamed - 1}"

    def _bind(self, p: torch.Tensor, name: str, choice: RoleChoice, named: bool, diagnostics: list[Diagnostic]):
        if not p.is_floating_point():  # complex: geo's geometry is real (msign, norms, signs); ints: no gradient
            diagnostics.append(Diagnostic(
                "GEO0403", f"parameter `{name}` has dtype {str(p.dtype).removeprefix('torch.')}; `{self._geo.info.name}` "
                f"optimizes real floating-point parameters", Label(self._geo.info.span.head(), "this optimizer"),
                notes=["the operators (msign, norms, sign, mirror maps) are defined on real tensors"],
                help="optimize a complex parameter as its real view (`torch.view_as_real(p)` as a separate "
                     "real parameter), or leave it to another optimizer"))
            return None
        shape = tuple(p.shape)
        if choice.transposed:
            if p.dim() != 2:
                raise ValueError(f"roles: `{choice.role}.T` is for a matrix stored transposed; `{name}` has shape "
                                 f"{show_shape(shape)}")
            self._geo_transposed.add(p)
            shape = shape[::-1]
        self._geo_params[p] = ParamInfo(name, shape, choice.role)
        binding = bind_rule(self._geo.info, self._geo_params[p])
        if isinstance(binding, Diagnostic):
            diagnostics.append(binding)
            return None
        rule = self._geo.rules[binding[0]]
        if choice.by_rank and _routes_by_role(self._geo.info, len(shape)):
            self._geo_notes.append(("rank", shape, choice.role, rule))
        if named and not choice.given and (rule.rank() == 2 or rule.view):
            why = looks_transposed(name, shape)
            if why:
                self._geo_notes.append(("transposed", name, shape, why, rule, choice.role))
        return binding

    def _warn_routing(self, stacklevel: int) -> None:
        """One RoutingWarning for the parameters just bound on a guess (`_geo_notes`), naming them and the fix."""
        notes, self._geo_notes = self._geo_notes, []
        opt = self._geo.info.name
        parts = []
        by_rank = [n for n in notes if n[0] == "rank"]
        if by_rank:
            routes: dict[tuple[str, int], list[str]] = {}
            for _, shape, role, rule in by_rank:
                routes.setdefault((role, rule.index), []).append(show_shape(shape))
            listed = "; ".join(
                f"{', '.join(shapes[:6])}{f' and {len(shapes) - 6} more' if len(shapes) > 6 else ''} as {role} → "
                f"rule {index} `{self._geo.rules[index].text}` ({self._geo.rules[index].route})"
                for (role, index), shapes in routes.items())
            have = "1 parameter has no name" if len(by_rank) == 1 else f"{len(by_rank)} parameters have no names"
            parts.append(f"{opt}: {have}, so their roles come from their rank alone "
                         f"({listed}), and this spec routes by role: an embedding or output layer among them is "
                         "routed as a hidden layer. Pass `model.named_parameters()` (names give roles), or "
                         "roles={param: role} (e.g. roles=geo.roles(model), read off the model's modules).")
        stored = [n for n in notes if n[0] == "transposed"]
        if stored:
            listed = "; ".join(f"`{name}` {show_shape(shape)}, {why}, → rule {rule.index} ({rule.route})"
                               for _, name, shape, why, rule, _ in stored[:3])
            more = f"; and {len(stored) - 3} more" if len(stored) > 3 else ""
            _, name, _, _, _, role = stored[0]
            parts.append(f"{opt}: {len(stored)} parameters look like HF GPT-2's Conv1D storage, (in, out) where "
                         f"nn.Linear keeps (out, in) ({listed}{more}). Their rules see them as stored: shape-dependent "
                         "scales (Muon's √max(1, rows/cols)), per-row statistics and `split`/`heads` views read the "
                         "wrong axis (msign itself is transpose-equivariant). Pass roles=geo.roles(model) (it reads "
                         f"Conv1D modules) or roles={{\"{name}\": \"{role}.T\", ...}} to have them seen as (out, in).")
        if parts:
            warnings.warn("\n".join(parts), RoutingWarning, stacklevel=stacklevel + 1)

    # -- the step
    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient; `closure` (re-evaluating the loss) as torch.optim.

        Atomic for every failure geo can foresee: first, without writing anything, it checks every group's
        hyperparameters (numbers in range, valid statics), compiles every program the step needs, checks shapes and
        (nonfinite="raise") gradients, and builds the initial state of parameters seen for the first time; only then
        does it update any parameter. A step that raises in that first part leaves parameters, states, step counts
        and `nonfinite_skips` as they were, so a retry is not applied twice. (A failure inside a kernel after that
        — out of memory, say — can leave the groups before it updated: undoing them would cost a copy of every
        parameter and state at every step. Their step counts are then advanced with them, so each parameter stays
        consistent with its state.) A parameter listed twice in a group is stepped twice, one after the other, as
        torch.optim's loop does (torch warns about such a group when it is added).

        Under `torch.compile` (of this method or of a training step that calls it) the closure is traced and
        geo's own step is not: it runs as compiled already (multi-tensor torch calls, or Triton kernels), with
        its hyperparameter arithmetic in double precision on the host, as torch.optim's eager step does. Traced,
        it breaks into dozens of graphs (its host reads: the step count, the non-finite check, buffer identities),
        recompiles as the step count changes (AdamW on a 3-layer MLP: 28 graphs, 27 breaks, 141 s for 5 steps
        against 0.28 s eager) and loses bit-exactness; so it is `torch.compiler.disable`d, and
        `torch.compile(opt.step, fullgraph=True)` is refused with that reason (docs/design.md)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._geo_step()
        return loss

    @_not_traced
    def _geo_step(self) -> None:
        if distributed.is_sharded(self):  # DTensor parameters (FSDP2): runtime/distributed.py
            skipped = distributed.step(self)
        else:
            work, skipped, across_step = self._prepare()
            skipped += self._apply(work, across_step)
        for key in skipped:
            self.nonfinite_skips[key] = self.nonfinite_skips.get(key, 0) + 1

    def _prepare(self) -> tuple[list[_Work], list[str | int], Any]:
        """Everything a step needs, checked, and nothing written: one `_Work` per (group, parameter) to step,
        in order, the keys (`_param_key`) of parameters whose non-finite gradient makes this step skip them, and
        the `across` block's step (runtime/across.py), or None."""
        spec = self._geo
        opt = spec.info.name
        groups = self._rule_groups()
        todo = []  # (group, parameters with a gradient to apply)
        for group, *_ in groups:
            ps = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{opt} does not support sparse gradients")
                if p.numel():  # a 0×n matrix has nothing to update (and no singular values to orthogonalize)
                    ps.append(p)
            todo.append((group, ps))
        skipped: list[str] = []
        backend_of = {id(p): backends.resolve(self._geo_backend, p.is_cuda, p.numel()) for _, ps in todo for p in ps}
        # A backend that checks gradients inside its own kernels (`checks_finite`: inductor) does "skip" there;
        # the others, and "raise" (which must stop before anything changes), get one pass over their gradients here.
        in_kernel = {i for i, name in backend_of.items()
                     if self.nonfinite == "skip" and getattr(backends.backend(name), "checks_finite", False)}
        if self.nonfinite != "propagate":
            checked = self._finite_only([(g, [p for p in ps if id(p) not in in_kernel]) for g, ps in todo],
                                        skipped)  # "raise" raises here, before any parameter changes
            keep = {id(p) for _, kept in checked for p in kept} | in_kernel
            todo = [(g, [p for p in ps if id(p) in keep]) for g, ps in todo]
        # optimizer-level values for this step (the `across` block): computed here, committed by `_apply`
        across_step = across.run(self) if spec.info.across is not None else None
        decided = across_step.decided if across_step is not None else {}
        work: list[_Work] = []
        for (group, rule, statics, hypers), (_, ps) in zip(groups, todo):
            listed: dict[torch.Tensor, int] = {}
            for p in ps:
                listed[p] = listed.get(p, 0) + 1
            for p, times in listed.items():
                _, rank, active = self._geo_binding[p]
                backend = backend_of[id(p)]
                shape = self._geo_shape(p)
                runner = spec.runner(rule, statics, rank, active, backend, shape=shape)
                state = self.state.get(p)
                fresh = None
                if not state:
                    state = fresh = self._fresh_state(p, rule, runner, hypers, (p, p.grad))
                w = _Work(group, rule, statics, hypers, p, p in self._geo_transposed, backend, shape, runner, state,
                          fresh is not None, float(state[STEP_KEY]), times, decided.get(id(p), {}),
                          check=id(p) in in_kernel)
                self._specialize(w, 0)  # the first round's `when` blocks and inputs: compiled before anything changes
                work.append(w)
        return work, skipped, across_step

    def _rule_groups(self) -> list[tuple[dict[str, Any], Any, dict[str, Any], dict[str, Any]]]:
        """(group, rule, static values, runtime values) of every param group, checked: its `geo_rule` names a rule,
        and its parameters still fit the programs its static values make (a changed static: GeoError)."""
        spec = self._geo
        opt = spec.info.name
        groups = []
        for i, group in enumerate(self.param_groups):
            index = group.get("geo_rule")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(spec.rules):
                raise ValueError(f"{opt}: param group {i} has `geo_rule` {index!r}, not a rule of this optimizer")
            rule = spec.rules[index]
            groups.append((group, rule, static_values(opt, rule, group), runtime_values(opt, rule, group)))
        misfits = [d for group, *_ in groups for d in self._misfits(group)]
        if misfits:
            raise GeoError(misfits)
        return groups

    def _specialize(self, w: _Work, round_: int) -> None:
        """The program a parameter runs at step t0 + round + 1: its `when` blocks that fire then (their own
        specialization) and its inputs (random key, `across` values)."""
        spec, t = self._geo, w.t0 + round_ + 1
        _, rank, active = self._geo_binding[w.p]
        full = spec.runner(w.rule, w.statics, rank, active, w.backend, shape=w.shape)
        w.inputs = self._inputs(full.program, w.group, w.p, t, w.decided)
        if full.program.guards:
            base = w.p.T if w.transposed else w.p
            grad = w.p.grad.T if w.transposed else w.p.grad
            view = w.rule.view.forward(base, w.rule.view_args) if w.rule.view is not None else base
            grad = w.rule.view.forward(grad, w.rule.view_args) if w.rule.view is not None else grad
            firing = spec.firing(full.program, view, grad, w.hypers, t, w.inputs)
            w.runner = full if firing is None else spec.runner(w.rule, w.statics, rank, active, w.backend, firing,
                                                               w.shape)

    def _apply(self, work: list[_Work], across_step: Any = None) -> list[str | int]:
        """Runs the prepared steps, one call per (group, program) and round: round r steps the parameters listed
        more than r times in their group. A parameter's step count is written once its step has run; a new
        parameter's initial state enters `self.state` just before, and leaves again if the step fails first.
        Returns the keys of the parameters a backend skipped in its own kernels (a non-finite gradient)."""
        if across_step is not None:
            across_step.commit(self)
        entered: list[_Work] = []
        flagged: list[tuple[_Work, int, torch.Tensor]] = []
        try:
            for round_ in range(max((w.times for w in work), default=0)):
                batches: dict[tuple[int, int], list[_Work]] = {}  # one call per (group, program)
                for w in work:
                    if w.times > round_:
                        if round_:
                            self._specialize(w, round_)
                        batches.setdefault((id(w.group), id(w.runner)), []).append(w)
                for batch in batches.values():
                    rule, runner = batch[0].rule, batch[0].runner
                    for w in batch:
                        if w.fresh and round_ == 0:
                            self.state[w.p] = w.state
                            entered.append(w)
                    bases = [w.p.T if w.transposed else w.p for w in batch]  # views, no copies
                    views = [rule.view.forward(b, rule.view_args) if rule.view is not None else b for b in bases]
                    grads = [w.p.grad.T if w.transposed else w.p.grad for w in batch]
                    if rule.view is not None:
                        grads = [rule.view.forward(g, rule.view_args) for g in grads]
                    if batch[0].group.get("maximize"):  # ascent: torch.optim's `grad = -grad` (exact), on a copy
                        grads = list(torch._foreach_neg(grads))
                    ts = [w.t0 + round_ + 1 for w in batch]
                    extra = {"check": True} if batch[0].check else {}  # one runner: one backend
                    if any(w.inputs for w in batch):  # a random key or `across` values
                        extra["inputs"] = [w.inputs for w in batch]
                    flags = runner.step_group(views, grads, [w.state for w in batch], batch[0].hypers, ts, **extra)
                    if batch[0].check:
                        flagged += [(w, round_, flag) for w, flag in zip(batch, flags)]
                    for w, base, v in zip(batch, bases, views):
                        if v is not w.p and storage_id(v) != storage_id(w.p):  # a view that had to copy
                            base.copy_(v.reshape(base.shape))
                        _set_step(w.state, w.t0 + round_ + 1)
                        w.ran = True
        except BaseException:
            for w in entered:
                if not w.ran:  # its initial state never took part in a step: the parameter is as it was
                    self.state.pop(w.p, None)
            raise
        return self._skipped_in_kernels(flagged)

    def _skipped_in_kernels(self, flagged: list[tuple[_Work, int, torch.Tensor]]) -> list[str | int]:
        """The parameters a backend skipped in its own kernels (its flag False: a non-finite gradient; parameter
        and states were left as they were), read with one host sync per device: their step count goes back to
        what it was before that round, and a state made for this step leaves again, as with the check above."""
        by_device: dict[Any, list[tuple[_Work, int, torch.Tensor]]] = {}
        for item in flagged:
            by_device.setdefault(item[2].device, []).append(item)
        skipped: dict[int, _Work] = {}
        for items in by_device.values():
            stepped = torch.stack([flag.reshape(()) for *_, flag in items]).tolist()
            for (w, round_, _), good in zip(items, stepped):
                if good:
                    continue
                if w.fresh and round_ == 0:
                    self.state.pop(w.p, None)
                elif w.p in self.state:
                    _set_step(w.state, w.t0 + round_)
                skipped.setdefault(id(w), w)
        return [self._param_key(w.group, w.p) for w in skipped.values()]

    def _inputs(self, program, group: dict[str, Any], p: torch.Tensor, t: float,
                decided: dict[str, float]) -> dict[str, Any]:
        """What a program's `input` nodes read for this parameter at step t: its random key (`rng`) and the values
        the `across` block decided for it (`across.NAME`)."""
        if not program.inputs:
            return {}
        out: dict[str, Any] = dict(decided)
        if "rng" in program.inputs:
            out["rng"] = RandomKey(self._geo_seed, self._stream(group, p), int(t))
        return out

    def _stream(self, group: dict[str, Any], p: torch.Tensor) -> str:
        """The random stream of a parameter: its name, or `#i`, its place among the optimizer's parameters (or the one
        `route` decided over the whole list)."""
        if p in self._geo_streams:
            return self._geo_streams[p]
        if "param_names" in group:
            return str(group["param_names"][next(i for i, q in enumerate(group["params"]) if q is p)])
        index = next(i for i, q in enumerate(q for g in self.param_groups for q in g["params"]) if q is p)
        return f"#{index}"

    def _finite_only(self, todo: list[tuple[dict, list]], skipped: list[str]) -> list[tuple[dict, list]]:
        """Drops the parameters whose gradient holds NaN or ±Inf, naming them in `skipped` (the step counts them
        once it has run), or raises for "raise".

        One reduction per gradient, read once with no temporaries, and one host sync for all of them: a NaN or
        Inf anywhere makes the result NaN or Inf. On CUDA a multi-tensor 2-norm per dtype (one launch for all); on
        the CPU a plain sum per tensor (vectorized: half the time of `_foreach_norm`'s, 22 vs 45 ms for GPT-2
        small), accumulated in fp32 for 16-bit gradients. Finite values can overflow either (|g| ~ 1e20 squared
        in fp32, a sum beyond 3e38), so a non-finite result is checked again exactly, element by element, for
        that tensor alone."""
        spec = self._geo
        grads = [p.grad for _, ps in todo for p in ps]
        finite: dict[int, bool] = {}
        by_kind: dict[tuple, list[torch.Tensor]] = {}
        for g in grads:
            by_kind.setdefault((g.device, g.dtype), []).append(g)
        flags = []
        for (device, dtype), same in by_kind.items():
            if device.type == "cpu":
                wide = torch.float32 if dtype in (torch.float16, torch.bfloat16) else None
                reduced = [g.sum(dtype=wide) for g in same]
            else:
                reduced = [n.reshape(()) for n in torch._foreach_norm(same, 2)]
            flags.append((same, torch.stack(reduced).isfinite().cpu()))
        for same, ok in flags:
            for g, good in zip(same, ok.tolist()):
                finite[id(g)] = good or bool(torch.isfinite(g).all())
        out = []
        for group, ps in todo:
            kept = []
            for p in ps:
                if finite[id(p.grad)]:
                    kept.append(p)
                    continue
                if self.nonfinite == "raise":
                    raise FloatingPointError(f"{spec.info.name}: the gradient of parameter {param_name(group, p)} "
                                             "is not finite")
                skipped.append(self._param_key(group, p))
            out.append((group, kept))
        return out

    def _param_key(self, group: dict[str, Any], p: torch.Tensor) -> str | int:
        """How `nonfinite_skips` names a parameter: its name when the optimizer has names, else its index in
        `state_dict()["state"]` (groups in order, parameters in order); for a tensor `route` saw, what the optimizer
        it routed for would say (ZeRO's local optimizers then name a skip as the single-process one does)."""
        stream = self._geo_streams.get(p)
        if stream is not None:
            return int(stream[1:]) if stream.startswith("#") else stream
        index = next(i for i, q in enumerate(group["params"]) if q is p)
        if "param_names" in group:
            return group["param_names"][index]
        before = next(i for i, g in enumerate(self.param_groups) if g is group)
        return sum(len(g["params"]) for g in self.param_groups[:before]) + index

    def init_state(self) -> None:
        """Creates the initial state of every parameter that has none, without stepping: for DTensor parameters,
        the sharded states `torch.distributed.checkpoint` loads into (runtime/distributed.py); elsewhere, the
        states the first step would make."""
        if distributed.is_sharded(self):
            distributed.step(self, init_only=True)
            return
        for group, rule, statics, hypers in self._rule_groups():
            for p in group["params"]:
                if self.state.get(p) or not p.numel():
                    continue
                _, rank, active = self._geo_binding[p]
                backend = backends.resolve(self._geo_backend, p.is_cuda, p.numel())
                runner = self._geo.runner(rule, statics, rank, active, backend, shape=self._geo_shape(p))
                self.state[p] = self._fresh_state(p, rule, runner, hypers, (p,))

    def _fresh_state(self, p: torch.Tensor, rule, runner, hypers: dict[str, Any],
                     apart: tuple[Any, ...]) -> dict[str, Any]:
        return fresh_state(p.T if p in self._geo_transposed else p, rule, runner, hypers, apart)

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["geo"] = checkpoint.identity(self._geo.info)
        if self._geo.info.uses_global:
            sd[checkpoint.GLOBAL_KEY] = checkpoint.global_state(self)
        return sd

    def load_state_dict(self, state_dict: dict[str, Any], *, allow_spec_change: bool = False) -> None:
        """Loads a checkpoint of this optimizer; everything is validated before anything changes.

        A checkpoint of another spec (or of another version of this spec, unless `allow_spec_change=True`)
        or with missing or mismatched entries raises CheckpointError naming what differs. The stdlib's adamw,
        sgd and muon also load the state dicts of torch.optim.AdamW, SGD and Muon (state names and hyperparameters
        mapped; the trajectory continues bit for bit).
        """
        if isinstance(state_dict, dict) and "geo" not in state_dict and torch_optim.twin_of(self) is not None:
            # a torch.optim.AdamW/SGD/Muon state dict (or a clear error saying it is neither that nor geo's)
            state_dict = torch_optim.from_torch(self, state_dict)
        checkpoint.validate(self, state_dict, allow_spec_change)
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in ("geo", checkpoint.GLOBAL_KEY)})
        checkpoint.restore_dtypes(self, state_dict)
        if self._geo.info.uses_global:
            checkpoint.restore_global(self, state_dict[checkpoint.GLOBAL_KEY])

    def torch_state_dict(self) -> dict[str, Any]:
        """This optimizer's state as its torch.optim twin writes it, for `torch.optim.AdamW(...).load_state_dict`
        (the stdlib's adamw, sgd and muon: torch.optim.AdamW, SGD and Muon); ValueError for other specs."""
        return torch_optim.to_torch(self)

    # -- pickling (`copy.deepcopy`, launchers that pickle the optimizer)
    def __getstate__(self) -> dict[str, Any]:
        """torch's own (defaults, state, param_groups) and geo's: the backend, the nonfinite policy and counts, the
        constructor's keywords and roles (names only: a tensor's id means nothing in another process), and each
        parameter's binding. The compiled programs are not pickled; they are compiled again when first needed."""
        state = super().__getstate__()
        state.update({k: v for k, v in self.__dict__.items()
                      if k in _PICKLED and k != "_geo_roles"})
        state["_geo_roles"] = {k: v for k, v in self._geo_roles.items() if isinstance(k, str)}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        for key, empty in (("_geo_fits", set), ("_geo_choices", dict), ("_geo_notes", list), ("_geo_transposed", set),
                           ("_geo_streams", dict), ("_geo_ctor", dict)):
            state.setdefault(key, empty())
        super().__setstate__(state)

    def __reduce_ex__(self, protocol):
        """The class is made by `geo.compile`, not importable: it is rebuilt from the spec's text (runtime/api.py)."""
        from .api import restore
        return restore, (self._geo.ref(), self._geo.token), self.__getstate__()


# ---- helpers -------------------------------------------------------------------------------------------
_PICKLED = ("_geo_backend", "nonfinite", "nonfinite_skips", "_geo_roles", "_geo_kwargs", "_geo_binding",
            "_geo_transposed", "_geo_unnamed", "_geo_seed", "_geo_params", "_geo_across_state", "_geo_across_step",
            "_geo_streams")


@dataclass(eq=False)
class _Work:
    """One parameter of one group to step, as `_prepare` found it: its program's runner, its state (a new one,
    not yet in `self.state`, when `fresh`), its step count before this step, and how often its group lists it."""

    group: dict[str, Any]
    rule: Any
    statics: dict[str, Any]
    hypers: dict[str, Any]
    p: torch.Tensor
    transposed: bool  # stored (in, out): the rule sees p.T
    backend: str
    shape: tuple[int, ...]  # as the rule sees it
    runner: Any
    state: dict[str, Any]
    fresh: bool
    t0: float
    times: int
    decided: dict[str, float]  # the `across` block's values for this parameter
    check: bool = False  # its backend checks the gradient in its kernels (and may skip it)
    inputs: dict[str, Any] = field(default_factory=dict)  # what the program's `input` nodes read this round
    ran: bool = False


def fresh_state(base: torch.Tensor, rule, runner, hypers: dict[str, Any], apart: tuple[Any, ...]) -> dict[str, Any]:
    """A parameter's state before its first step: the step count 0 and its rule's initial states, computed on the
    view the rule sees of `base` (the parameter as the rules take it: transposed where stored (in, out)), sharing
    no buffer with the tensors in `apart`."""
    view = rule.view.forward(base, rule.view_args) if rule.view is not None else base
    fresh = {STEP_KEY: torch.tensor(0.0, dtype=torch.float32)}
    fresh.update(_unaliased(runner.init(view, hypers), apart))
    return fresh


def _set_step(state: dict[str, Any], t: float) -> None:
    """The step count after a step, in place where it is a tensor (as torch.optim's `step_t += 1`)."""
    step = state.get(STEP_KEY)
    if isinstance(step, torch.Tensor):
        step.fill_(t)
    else:
        state[STEP_KEY] = torch.tensor(t, dtype=torch.float32)


def _unaliased(state: dict[str, Any], inputs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Initial states as separate buffers: two slots initialized from one value (`zeros_like(W)`), or a slot
    initialized to the parameter itself, would otherwise share memory, and a backend that updates state in place
    would change both."""
    taken = {storage_id(t) for t in inputs if t is not None}
    out = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            if storage_id(value) in taken:
                value = value.clone()
            taken.add(storage_id(value))
        out[name] = value
    return out


def _role_table(roles: dict[Any, str] | None) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for key, role in (roles or {}).items():
        parse_role(role)  # ValueError for an unknown one
        out[id(key) if isinstance(key, torch.Tensor) else key] = role
    return out


def _param_groups(params: Any) -> Any:
    """torch.optim's `params` as a list of group dicts with their parameters listed (an iterator is read once
    here); anything torch would refuse is passed on as it is, for torch's own error."""
    if isinstance(params, torch.Tensor):
        return params
    params = list(params)
    if params and not isinstance(params[0], dict):
        params = [{"params": params}]
    out = []
    for g in params:
        if isinstance(g, dict) and isinstance(g.get("params"), torch.Tensor):
            g = {**g, "params": [g["params"]]}
        elif isinstance(g, dict) and "params" in g and not isinstance(g["params"], set):  # a set: torch's error
            g = {**g, "params": list(g["params"])}
        out.append(g)
    return out


def _routes_by_role(info, rank: int) -> bool:
    """Whether the optimizer's selectors (its rules' and their steps') tell apart parameters of this rank by what
    a name would say: a role a parameter of this rank can have, or a `name "glob"` pattern."""
    terms = [t for r in info.rules for t in r.binder.selector]
    terms += [t for r in info.rules for step in r.chain for t in step.binder.selector]
    roles = set(RANK_ROLES[min(rank, 4)])
    return any(t.pattern is not None or t.word in roles for t in terms)
