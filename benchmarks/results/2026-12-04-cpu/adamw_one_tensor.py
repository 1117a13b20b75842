import torch, time, statistics, os
torch._inductor.config.cpp.dynamic_threads = True
n = 1 << 25
p, g, m, v = (torch.randn(n) for _ in range(4)); v.abs_()
sc = torch.tensor([0.1, 0.999, 0.001, 0.5, 1e-8, 1 - 1e-5, 1e-3, 1/0.5**0.5], dtype=torch.float64)
def body(p, g, m, v, s, check, recip):
    m2 = torch.lerp(m, g, s[0].float())
    v2 = v * s[1] + s[2] * g * g
    denom = (v2.sqrt() * s[7] if recip else v2.sqrt() / s[3]) + s[4]
    p2 = p * s[5] - s[6] * m2 / denom
    if check:
        ok = torch.isfinite(g).all()
        m2, v2, p2 = torch.where(ok, m2, m), torch.where(ok, v2, v), torch.where(ok, p2, p)
    m.copy_(m2); v.copy_(v2); p.copy_(p2)
fs = {f"check={c} recip={r}": torch.compile(lambda *a, c=c, r=r: body(*a, c, r), dynamic=True) for c in (1, 0) for r in (0, 1)}
pp = torch.nn.Parameter(p.clone()); pp.grad = g
fused = torch.optim.AdamW([pp], fused=True)
for f in fs.values(): f(p, g, m, v, sc)
fused.step()
t = {k: [] for k in list(fs) + ["fused"]}
for i in range(12):
    for k, f in fs.items():
        t0 = time.perf_counter(); f(p, g, m, v, sc); t[k].append(time.perf_counter() - t0)
    t0 = time.perf_counter(); fused.step(); t["fused"].append(time.perf_counter() - t0)
for k, x in t.items():
    print(f"{k:22s} min {min(x)*1e3:7.2f} ms  median {statistics.median(x)*1e3:7.2f} ms  GB/s(7 passes, min) {7*4*n/min(x)/1e9:6.1f}")
print("load", os.getloadavg()[0])
