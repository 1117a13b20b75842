"""Drop-Muon: Muon that updates only a random subset of layers each step (non-Euclidean randomized progressive
training), the other layers' weights and momenta untouched, as if their gradients had not been computed.

Gruntkowska, Maziane, Qu, Richtárik, "Drop-Muon: Update Less, Converge Faster" (arXiv 2510.02239). From the
paper's abstract and its public reviews (we have not seen the paper's pseudo-code or released code): each step
samples a subset of layers from a distribution D and updates only those; the analysed and recommended D is
randomized progressive training (RPT): a cutoff s is sampled and layers s, …, L are updated — the ones backprop
reaches first, so the backward pass could stop at s.

    across matrix layers:                 L layers, in the optimizer's parameter order (input to output)
        s ~ uniform{0, …, L − 1};  update = [layer ≥ s]                     sampling = "cutoff" (RPT)
        or: a uniformly random subset of round(keep·L) layers               sampling = "subset"
        or: each layer independently with probability keep                 sampling = "bernoulli"
    for a layer with update = 1: Muon's step (muon.geo: EMA momentum, Nesterov, Newton–Schulz, keller, bf16)

The draws come from the optimizer's generator (`seed=`), saved in the state dict: a resumed run samples the same
layers as the uninterrupted one. Departures: the cutoff is uniform (the paper also studies other distributions of
s); Muon's step size is the same for every layer (the paper's theory uses layer-wise step sizes from layer-wise
smoothness constants); gradients are still computed for every layer — the user's backward pass decides that —
so only the optimizer's work is saved here, not backprop's.
"""

optimizer drop_muon(lr = 0.02 in [0, inf), momentum = 0.95 in [0, 1], weight_decay = 0.0 in [0, inf),
                    eps = 1e-7 in [0, inf), keep = 0.5 in [0, 1],
                    static sampling = one_of("cutoff", "subset", "bernoulli"), static nesterov = true,
                    static ns_steps = 5, static ns_dtype = "bf16"):
    across matrix layers:
        let update = layers >= sum(subset(layers, 1) * layers)
        if sampling == "subset":
            update = subset(layers, floor(keep * numel(layers) + 0.5))
        elif sampling == "bernoulli":
            update = bernoulli(layers, keep)
    for matrix W:
        state buf = zeros_like(W)
        when update > 0:
            buf = lerp(buf, grad, 1 - momentum)
            let u = lerp(grad, buf, momentum) if nesterov else buf
            let o = msign(u, steps = ns_steps, dtype = ns_dtype, eps = eps)
            W = W * (1 - lr * weight_decay) - lr * sqrt(max(1, rows(W) / cols(W))) * o
