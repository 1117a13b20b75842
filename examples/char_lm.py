"""Train a small character-level transformer with six optimizers and compare them: a loss-curve plot and a table.

    pip install ".[examples]"                 # tqdm and matplotlib
    python examples/char_lm.py --short        # ~2 minutes on a laptop CPU: 150 steps each
    python examples/char_lm.py                # 600 steps each, ~8 minutes
    python examples/char_lm.py --spec my.geo  # add your own spec (its last optimizer) to the comparison

The runs, each on the same model, data order and seed:
    adamw          stdlib/adamw.geo (torch.optim.AdamW, bit for bit)
    muon_adamw     stdlib/muon_adamw.geo: Muon for hidden matrices, AdamW for the rest
    horst          stdlib/horst.geo: AdamW composed with a hyperbolic mirror step (our reconstruction of HORST,
                   whose paper has published only its abstract)
    auon_adamw     stdlib/auon.geo's step for hidden matrices, AdamW for the rest (AuON's own recipe)
    sso_adamw      stdlib/spectral_sphere.geo (SSO) for hidden matrices, AdamW for the rest
    my_optimizer   examples/tutorial/my_optimizer.geo, the spec the tutorial (docs/tutorial.md) writes
The last three are composed here from stdlib specs in a few lines of .geo each (ROUTES below).

The text: Python's own reference documentation, `pydoc_data.topics`, which ships with every CPython (PSF
License; nothing is downloaded); `--text FILE` trains on any UTF-8 file instead. Every 10th block of 2048
characters validates, the rest trains.

Output (in --out, default examples/out/): char_lm.png (training loss, smoothed, and validation loss per
optimizer), char_lm.md (the table), and the table on stdout: final training and validation loss, time per
training step (forward, backward and optimizer) and of the optimizer step alone, and the optimizer's state in
bytes. Learning rates were chosen by a short sweep on this model (see LR); they are not tuned to the last digit.
The training loss is an exponential moving average (0.9) of the batch losses, so it lags a little behind.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import geo

try:
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - exercised by hand
    tqdm = None

HERE = Path(__file__).resolve().parent
TUTORIAL_SPEC = HERE / "tutorial" / "my_optimizer.geo"

# X for the hidden matrices, AdamW (the Muon reference recipe's settings) for embeddings, head and vectors.
ROUTES = {
    "auon_adamw": """
use auon, adamw
optimizer auon_adamw:
    for hidden matrix W = auon
    for tensor p = adamw(betas = (0.9, 0.95), eps = 1e-10, weight_decay = 0.0)
""",
    "sso_adamw": """
use spectral_sphere, adamw
optimizer sso_adamw:
    for hidden matrix W = spectral_sphere
    for tensor p = adamw(betas = (0.9, 0.95), eps = 1e-10, weight_decay = 0.0)
""",
}

# Learning rates per run and route, the best of a sweep at 150 steps (val loss; 1 thread; see the README's
# table): AdamW-type routes 1e-2 (of 1e-3, 3e-3, 1e-2, 3e-2), the spectral steps 0.05 (of 0.02, 0.05, 0.1),
# AuON 1.0 (of 0.1, 0.3, 1, 3: its code form is nearly Nesterov SGD, algorithms.md §3.3, and wants a large lr).
# Route keywords as the constructor takes them: `Opt(params, muon={"lr": ...}, adamw={"lr": ...})`.
LR: dict[str, dict] = {
    "adamw": {"lr": 1e-2, "weight_decay": 0.0},
    "muon_adamw": {"muon": {"lr": 0.05}, "adamw": {"lr": 1e-2}},
    "horst": {"lr": 1e-2, "weight_decay": 0.0},
    "auon_adamw": {"auon": {"lr": 1.0}, "adamw": {"lr": 1e-2}},
    "sso_adamw": {"spectral_sphere": {"lr": 0.05}, "adamw": {"lr": 1e-2}},
    "my_optimizer": {"spectral_lion": {"lr": 0.05}, "adamw": {"lr": 1e-2}},
}
RUNS = tuple(LR)


# ---- data ------------------------------------------------------------------------------------------------
def load_text(path: str | None) -> tuple[str, str]:
    """The corpus and where it comes from."""
    if path:
        return Path(path).read_text(encoding="utf-8"), path
    import pydoc_data.topics as topics
    text = "".join(topics.topics[key] for key in sorted(topics.topics))
    return text, f"pydoc_data.topics (Python {sys.version.split()[0]}'s reference documentation, PSF License)"


@dataclass
class Corpus:
    train: torch.Tensor
    val: torch.Tensor
    vocab: list[str]

    @classmethod
    def of(cls, text: str) -> "Corpus":
        vocab = sorted(set(text))
        index = {c: i for i, c in enumerate(vocab)}
        ids = torch.tensor([index[c] for c in text], dtype=torch.long)
        # every 10th block of 2048 characters validates: both splits sample the whole text (the last 10 % of
        # the topics alone read differently from the rest)
        blocks = list(ids.split(2048))
        val = [b for i, b in enumerate(blocks) if i % 10 == 9]
        train = [b for i, b in enumerate(blocks) if i % 10 != 9]
        return cls(torch.cat(train), torch.cat(val), vocab)

    def batch(self, split: str, size: int, ctx: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.train if split == "train" else self.val
        start = torch.randint(0, len(data) - ctx - 1, (size,), generator=gen)
        x = torch.stack([data[s:s + ctx] for s in start.tolist()])
        y = torch.stack([data[s + 1:s + ctx + 1] for s in start.tolist()])
        return x, y


# ---- model: a GPT in miniature (pre-norm blocks, causal attention, no weight tying) ----------------------
class Block(torch.nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln_2 = torch.nn.LayerNorm(d)
        self.fc = torch.nn.Linear(d, 4 * d)
        self.fc_out = torch.nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=-1)
        q, k, v = (z.view(B, T, self.heads, C // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class CharLM(torch.nn.Module):
    """Parameter names give geo the roles: wte/wpe → embedding, lm_head → head, the rest of rank 2 → hidden."""

    def __init__(self, vocab: int, d: int = 64, layers: int = 2, heads: int = 4, ctx: int = 64):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, d)
        self.wpe = torch.nn.Embedding(ctx, d)
        self.blocks = torch.nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(d)
        self.lm_head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


# ---- one run ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    steps: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    step_ms: float = 0.0
    opt_ms: float = 0.0
    state_bytes: int = 0
    compile_ms: float = 0.0


def optimizer_class(name: str, extra_specs: dict[str, Path]):
    if name in extra_specs:
        return geo.compile(extra_specs[name])
    if name == "my_optimizer":
        return geo.compile(TUTORIAL_SPEC)
    if name in ROUTES:
        return geo.compile(ROUTES[name], name=name)
    return geo.compile(name)


def state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))


def evaluate(model: CharLM, corpus: Corpus, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    with torch.no_grad():
        losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in batches]
    model.train()
    return sum(losses) / len(losses)


def train(name: str, corpus: Corpus, args, extra_specs: dict[str, Path]) -> Result:
    start = time.perf_counter()
    Opt = optimizer_class(name, extra_specs)
    compile_ms = 1e3 * (time.perf_counter() - start)
    torch.manual_seed(args.seed)
    model = CharLM(len(corpus.vocab), d=args.width, layers=args.layers, ctx=args.ctx)
    opt = Opt(model.named_parameters(), **LR.get(name, {}))
    warmup = max(1, args.steps // 20)  # a short linear warmup; one scheduler scales every route's lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    gen = torch.Generator().manual_seed(args.seed)      # the same batches for every optimizer
    val_gen = torch.Generator().manual_seed(10_000 + args.seed)
    val_batches = [corpus.batch("val", args.batch, args.ctx, val_gen) for _ in range(args.val_batches)]
    result = Result(name, compile_ms=compile_ms)
    step_time = opt_time = 0.0
    bar = tqdm(range(1, args.steps + 1), desc=f"{name:13s}", unit="step", leave=True, dynamic_ncols=True,
               disable=args.no_progress)
    smooth = None
    for step in bar:
        x, y = corpus.batch("train", args.batch, args.ctx, gen)
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        sched.step()
        if step > 5:  # the first steps compile programs and allocate state
            step_time += t2 - t0
            opt_time += t2 - t1
        value = loss.item()
        if not math.isfinite(value):
            bar.close()
            print(f"{name}: the loss is {value} at step {step}; stopping this run", file=sys.stderr)
            break
        smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
        result.steps.append(step)
        result.train.append(smooth)
        if step % args.eval_every == 0 or step == args.steps:
            result.val_steps.append(step)
            result.val.append(evaluate(model, corpus, val_batches))
            bar.set_postfix(loss=f"{smooth:.3f}", val=f"{result.val[-1]:.3f}")
    timed = max(1, len(result.steps) - 5)
    result.step_ms = 1e3 * step_time / timed
    result.opt_ms = 1e3 * opt_time / timed
    result.state_bytes = state_bytes(opt)
    return result


# ---- report ----------------------------------------------------------------------------------------------
def table(results: list[Result]) -> str:
    rows = ["| optimizer | final train loss | final val loss | ms / step | ms / optimizer step | state bytes |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        train_loss = f"{r.train[-1]:.3f}" if r.train else "—"
        val_loss = f"{r.val[-1]:.3f}" if r.val else "—"
        rows.append(f"| {r.name} | {train_loss} | {val_loss} | {r.step_ms:.1f} | {r.opt_ms:.1f} | "
                    f"{r.state_bytes:,} |")
    return "\n".join(rows)


def plot(results: list[Result], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for i, r in enumerate(results):
        color = f"C{i}"
        ax.plot(r.steps, r.train, color=color, lw=1.2, alpha=0.8, label=r.name)
        ax.plot(r.val_steps, r.val, color=color, lw=0, marker="o", ms=4)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy, nats / character\n(lines: training, smoothed; dots: validation)")
    ax.set_title(title, fontsize=10)
    finals = [v for r in results for v in r.val[-1:]]
    if finals:
        ax.set_ylim(min(finals) - 0.3, max(max(r.train[min(len(r.train) - 1, 10)] for r in results if r.train),
                                           min(finals) + 1.5))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="150 steps per optimizer (the README's command)")
    p.add_argument("--steps", type=int, default=None, help="training steps per optimizer (default 600)")
    p.add_argument("--only", default=None, help=f"comma-separated runs (default: all of {', '.join(RUNS)})")
    p.add_argument("--spec", action="append", default=[], metavar="FILE",
                   help="also train with this .geo file's last optimizer (repeatable)")
    p.add_argument("--text", default=None, help="train on this UTF-8 text file instead of pydoc_data.topics")
    p.add_argument("--out", default=str(HERE / "out"), help="where char_lm.png and char_lm.md go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ctx", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--val-batches", type=int, default=8)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the matrices are small, and step times stay steady)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    args = p.parse_args(argv)
    args.steps = args.steps or (150 if args.short else 600)
    args.eval_every = args.eval_every or max(1, args.steps // 10)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if tqdm is None:
        print("this example needs tqdm and matplotlib: pip install \".[examples]\"", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("this example needs matplotlib: pip install \".[examples]\"", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    extra = {}
    for spec in args.spec:
        cls = geo.compile(Path(spec))  # a broken spec stops here with geo's diagnostic
        extra[cls.__name__ if cls.__name__ not in LR else f"{cls.__name__}*"] = Path(spec)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(RUNS)
    names += [n for n in extra if n not in names]
    unknown = [n for n in names if n not in LR and n not in extra]
    if unknown:
        print(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)} or pass --spec FILE",
              file=sys.stderr)
        return 2
    text, source = load_text(args.text)
    corpus = Corpus.of(text)
    print(f"geo {geo.__version__}, torch {torch.__version__}; text: {source}, {len(text):,} characters, "
          f"{len(corpus.vocab)} distinct")
    print(f"model: {args.layers} blocks, width {args.width}, context {args.ctx}, batch {args.batch}; "
          f"{args.steps} steps per optimizer\n")
    results = []
    for name in names:
        results.append(train(name, corpus, args, extra))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = table(results)
    title = (f"char-level transformer on {Path(args.text).name if args.text else 'pydoc_data.topics'}: "
             f"{args.steps} steps, {sum(p.numel() for p in CharLM(len(corpus.vocab), args.width, args.layers, ctx=args.ctx).parameters()):,} parameters")
    plot(results, out / "char_lm.png", title)
    (out / "char_lm.md").write_text(f"{title}\n\n{md}\n", encoding="utf-8")
    print(f"\n{md}\n\nwrote {out / 'char_lm.png'} and {out / 'char_lm.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
