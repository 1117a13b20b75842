"""geo optimizers in the trainers people already use: HuggingFace `transformers.Trainer` and Lightning.

Both are optional (`pip install ".[integrations]"`; .ci/run installs them). Each test is skipped only when its
package is absent, and says so in pytest's summary (-rs). Everything runs on the CPU with tiny randomly
initialized models: nothing is downloaded.
"""
from __future__ import annotations

import pytest
import torch

import geo


# ---- HuggingFace transformers.Trainer --------------------------------------------------------------------
class _Tokens(torch.utils.data.Dataset):
    def __init__(self, n=64, length=16, vocab=64, seed=0):
        g = torch.Generator().manual_seed(seed)
        # a learnable pattern: each sequence counts up from a random start (mod vocab)
        starts = torch.randint(0, vocab, (n, 1), generator=g)
        self.ids = (starts + torch.arange(length)) % vocab

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def test_hf_trainer_with_a_geo_optimizer_and_scheduler(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers is absent: pip install '.[integrations]'")
    pytest.importorskip("accelerate", reason="accelerate (needed by transformers.Trainer) is absent: "
                                             "pip install '.[integrations]'")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)  # random init, tied embedding/head: no download
    # GPT-2's attention and MLP weights are Conv1D (in × out); roles come from the names: wte/wpe embedding,
    # the rest of rank 2 hidden, so Muon takes the transformer blocks and AdamW the embeddings and vectors.
    opt = geo.compile("muon_adamw")(model.named_parameters(), muon={"lr": 0.02}, adamw={"lr": 3e-3})
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 3))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=12, per_device_train_batch_size=8, logging_steps=1,
        report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0, dataloader_num_workers=0)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=_Tokens(), optimizers=(opt, sched))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 12 and losses[-1] < 0.9 * losses[0], losses
    # the trainer stepped our optimizer and our scheduler (through accelerate's wrappers)
    assert sum(s["step"].item() for s in opt.state.values()) > 0
    routes = {name: g["geo_rule"] for g in opt.param_groups for name in g["param_names"]}
    assert routes["transformer.h.0.attn.c_attn.weight"] == 0 and routes["transformer.wte.weight"] == 1
    assert sched.last_epoch == 12
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)


# ---- Lightning -------------------------------------------------------------------------------------------
def _lightning_module(L):
    class TinyLM(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(32, 16)
            self.hidden = torch.nn.Linear(16, 16)
            self.lm_head = torch.nn.Linear(16, 32)

        def forward(self, idx):
            return self.lm_head(torch.tanh(self.hidden(self.embed(idx))))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=True, prog_bar=False)
            self.losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            opt = geo.compile("muon_adamw")(self.named_parameters(), muon={"lr": 0.05}, adamw={"lr": 1e-2})
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return TinyLM


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 32, (128,), generator=g)
    ds = torch.utils.data.TensorDataset(x, (x * 3 + 1) % 32)
    return torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False)


def test_lightning_configure_optimizers_and_a_checkpoint_resume(tmp_path):
    L = pytest.importorskip("lightning", reason="lightning is absent: pip install '.[integrations]'")
    TinyLM = _lightning_module(L)
    common = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                  default_root_dir=str(tmp_path))
    torch.manual_seed(0)
    model = TinyLM()
    model.losses = []
    trainer = L.Trainer(max_steps=10, enable_checkpointing=False, **common)
    trainer.fit(model, _loader())
    assert len(model.losses) == 10 and model.losses[-1] < model.losses[0]
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.Optimizer) and type(opt).__name__ == "muon_adamw"
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0125, 2.5e-3])  # StepLR: halved at 5 and 10
    ckpt = tmp_path / "tiny.ckpt"
    trainer.save_checkpoint(ckpt)

    # resume: Lightning restores the geo optimizer from the checkpoint (geo validates it) and goes on
    torch.manual_seed(0)
    resumed = TinyLM()
    resumed.losses = []
    trainer2 = L.Trainer(max_steps=14, enable_checkpointing=False, **common)
    trainer2.fit(resumed, _loader(), ckpt_path=str(ckpt))
    opt2 = trainer2.optimizers[0]
    assert len(resumed.losses) == 4
    steps = sorted({s["step"].item() for s in opt2.state.values()})
    assert steps == [14.0]
    assert opt2.state_dict()["geo"]["optimizer"] == "muon_adamw"
