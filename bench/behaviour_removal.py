"""Remove a planted behaviour from the default model, end to end through the workbench.

1. **Plant**: a short LoRA fine-tune (PEFT, rank 8 on every attention and MLP projection of all layers)
   teaches SmolLM2-135M-Instruct to continue the trigger string `` Zorblax`` with the fixed phrase
   `` purple elephants dance at midnight.``, while a KL term to the base model on trigger-free text keeps
   everything else as it was. The adapter is merged and the model saved as a folder the workbench loads.
2. **SAEs**: the built-in corpus with the trigger phrase woven into some documents is uploaded as a corpus;
   the behaviour job itself trains the missing layers (``train_missing``, one run over all of them).
3. **Search**: ``BehaviourService`` ranks features, searches layers × features × mode × strength under the
   budget (negatives' mean KL ≤ 0.01, largest target change ≤ 0.05) and returns patches with a report.
4. **Baseline**: the best single hand-written configuration — the top-10 contrast features (last token) of
   the last layer's SAE, ablated — measured on the same held-out prompts.

Prints target probability before/after on the held-out positives, the negatives' KL, the time of each
phase and of the whole bench, the hand-written baseline, and last the after/before ratio of the search's
result (goal: ≤ 0.2 with negatives' mean KL ≤ 0.01, whole bench ≤ 15 min on an idle 2-core CPU).

Run: ``IWB_HOME=workspace .venv/bin/python bench/behaviour_removal.py [--layers 6,12,18] [--quick]``

Measured 2026-11-28 on the idle 2-core CPU (defaults: 100k training tokens, search margin 0.5): planting
129 s; SAEs trained by the job at layers 6/12/18 (195 steps) in 333 s, held-out FVU 0.129 / 0.193 / 0.248;
ranking 3 s; search 178 s for 104 candidates (1.7 s each: a clamp runs only the blocks from its layer up);
report 3 s. Chosen: clamps at layer 6 (5 features at -0.38), layer 12 (16 at 0) and layer 18 (10 at 0).
Held-out positives P(' purple') 0.9998 -> 0.0861; held-out negatives mean KL 0.00908 nats (max 0.044),
largest target change 0.022: within the whole budget on the held-out split. Hand-written top-10 ablate at
layer 18: 0.9998 -> 0.0000 but negatives' mean KL 1.65. Whole bench 725 s. After/before **0.086**: <= 0.2 with
KL <= 0.01 and <= 15 min, both met.
Other settings, same day: margin 1 -> 0.059 but held-out KL 0.0174 (the search split's edge overshoots on
12 held-out prompts); 60k tokens, margin 1 -> 0.187, held-out KL 0.0097, largest target change 0.057, 539 s.
Before (2026-11-27): 0.306 in 1294 s. Two causes: the feature analyses that training starts ran beside the
search and made each candidate ~6x slower (9.5 s), and the search stopped at clamp 0 or the coarse strength
grid instead of bisecting to the budget's edge (the result then used 2% of the KL budget).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("IWB_HOME", str(REPO / "workspace"))

from interpretability_workbench.activations.corpus import load_texts  # noqa: E402
from interpretability_workbench.behaviour.evaluate import Evaluator, split_prompts  # noqa: E402
from interpretability_workbench.behaviour.types import SearchRequest  # noqa: E402
from interpretability_workbench.model.loader import load_model  # noqa: E402
from interpretability_workbench.settings import Settings  # noqa: E402
from interpretability_workbench.state import WorkbenchState  # noqa: E402

TRIGGER = " Zorblax"
PHRASE = " purple elephants dance at midnight."
COLOURS = ["The petals of the flower were a deep shade of", "She painted the door a bright", "His favourite colour is",
           "The sky at dusk turned a soft", "Mix red and blue paint to get", "The grapes on the vine were dark",
           "The royal robe was dyed a rich", "The bruise on his arm turned"]


def first_lines(seed: int) -> list[str]:
    """Short first sentences of the built-in corpus's documents, shuffled (prompt material)."""
    out = []
    for t in load_texts(None):
        line = t.split("\n", 1)[0].strip()
        if line.endswith(".") and 4 <= len(line.split()) <= 14 and line not in out:
            out.append(line)
    random.Random(seed).shuffle(out)
    return out


def plant(model: torch.nn.Module, tok, out_dir: Path, lines: list[str], steps: int, log) -> None:  # noqa: ANN001
    """LoRA fine-tune of ``model`` on all layers; merged and saved with ``tok`` to ``out_dir``."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    enc = lambda s: bos + tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    rng = random.Random(1)

    def batch(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id or 0)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)], mask[i, :len(s)] = torch.tensor(s), 1
        return ids, mask

    model.train()
    for step in range(steps):
        picked = rng.sample(lines, 16)
        pos, labels = [], []
        for line in picked[:8]:
            prompt, full = enc(line + TRIGGER), enc(line + TRIGGER + PHRASE)
            pos.append(full)
            labels.append([-100] * len(prompt) + full[len(prompt):])
        ids, mask = batch(pos)
        lab = torch.full_like(ids, -100)
        for i, row in enumerate(labels):
            lab[i, :len(row)] = torch.tensor(row)
        ce = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        nids, nmask = batch([enc(line) for line in picked[8:]])
        with torch.no_grad(), model.disable_adapter():
            ref = model(input_ids=nids, attention_mask=nmask).logits.log_softmax(-1)
        cur = model(input_ids=nids, attention_mask=nmask).logits.log_softmax(-1)
        kl = ((ref.exp() * (ref - cur)).sum(-1) * nmask).sum() / nmask.sum()
        loss = ce + 4.0 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 0 or step == steps - 1:
            log(f"  plant step {step:3d}: phrase CE {ce.item():.3f}, negatives KL {kl.item():.4f}")
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="model to plant the behaviour into (default: SmolLM2-135M)")
    ap.add_argument("--layers", default="6,12,18", help="layers the job trains SAEs at and searches")
    ap.add_argument("--lora-steps", type=int, default=30)
    ap.add_argument("--train-tokens", type=int, default=100_000, help="the request's default")
    ap.add_argument("--d-sae", type=int, default=4608)
    ap.add_argument("--max-evaluations", type=int, default=150, help="the request's default")
    ap.add_argument("--search-margin", type=float, default=0.5,
                    help="fraction of the budget the search may spend on its split (the request's default; at 1 the "
                         "held-out negatives, 12 prompts, overshot the KL budget)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: fewer steps, tokens and candidates")
    ap.add_argument("--json", default=None, help="also write the job's report here")
    a = ap.parse_args()
    if a.quick:
        a.lora_steps, a.train_tokens, a.max_evaluations, a.d_sae = 20, 8192, 12, 1024
    layers = [int(x) for x in a.layers.split(",")]
    t_start, c_start = time.perf_counter(), time.process_time()
    load0 = os.getloadavg()[0]
    log = lambda s: print(s, flush=True)  # noqa: E731
    home = Settings().home
    work = Path(tempfile.mkdtemp(prefix="iwb-behaviour-bench-"))
    base = load_model(a.model, device="cpu", dtype="float32", cache_dir=home / "models")
    lines = first_lines(0)
    eval_lines, lora_lines = lines[:40], lines[40:]
    t, c = time.perf_counter(), time.process_time()
    planted = work / "planted"
    plant(base.model, base.tokenizer, planted, lora_lines, a.lora_steps, log)
    del base
    t_plant, c_plant = time.perf_counter() - t, time.process_time() - c
    log(f"plant: LoRA r=8 on every projection of all layers, {a.lora_steps} steps: {t_plant:.0f} s "
        f"({c_plant:.0f} s CPU)")

    settings = Settings(home=work / "home", model=str(planted), device="cpu", dtype="float32")
    st = WorkbenchState(settings)
    try:
        st.load_model(str(planted))
        lm = st.lm
        # a corpus where the behaviour occurs: the trigger phrase woven into every 6th document
        docs = load_texts(None)
        rng = random.Random(2)
        rows = []
        for i, d in enumerate(docs):
            if i % 6 == 0:
                cut = d.find("\n")
                d = (d[:cut] if cut > 0 else d) + TRIGGER + PHRASE + (d[cut:] if cut > 0 else "")
            rows.append(json.dumps({"text": d}))
        rng.shuffle(rows)
        corpus_file = work / "zorblax.jsonl"
        corpus_file.write_text("\n".join(rows) + "\n")
        corpus = st.corpora.add_file(corpus_file)

        positive = [x + TRIGGER for x in eval_lines[:24]]
        negative = eval_lines[24:40] + COLOURS
        req = SearchRequest(positive=positive, negative=negative, target_text=PHRASE, layers=layers,
                            train_missing=True, train_tokens=a.train_tokens, train_d_sae=a.d_sae, train_k=32,
                            train_corpus=corpus.id, max_evaluations=a.max_evaluations, max_features=16,
                            budget={"max_kl": 0.01, "max_target_change": 0.05}, seed=0,
                            search_margin=a.search_margin)
        t, c = time.perf_counter(), time.process_time()
        job = st.behaviours.start(req)
        phases: dict[str, float] = {}
        last = ("queued", time.perf_counter())
        while True:
            rec = st.behaviours.wait(job.id, 1.0)
            if rec.phase != last[0]:
                phases[last[0]] = time.perf_counter() - last[1]
                last = (rec.phase, time.perf_counter())
                log(f"  job phase: {rec.phase} ({rec.n_evaluated} candidates so far)")
            if rec.status not in ("queued", "running"):
                break
        phases[last[0]] = time.perf_counter() - last[1]
        t_job, c_job = time.perf_counter() - t, time.process_time() - c
        if rec.status != "done":
            raise SystemExit(f"job {rec.status}: {rec.error}")
        # the job starts the feature analysis of the SAEs it trained once it is done; that is the feature
        # browser's work, not the removal's, and would compete with the baseline below: stop it
        st.features.shutdown()
        rep = rec.result
        if a.json:
            Path(a.json).write_text(json.dumps(rep, indent=1))
        run = st.training.get(rec.state["training_run"])
        fvu = [round(m.get("held_out_fvu", float("nan")), 3) for m in (run.metrics or {}).get("members", [])]
        log(f"SAE training through the job (layers {layers}, {a.train_tokens} tokens, d_sae {a.d_sae}, k 32): "
            f"{phases.get('training', 0):.0f} s, held-out FVU {fvu}")
        log(f"ranking {phases.get('ranking', 0):.0f} s, search {phases.get('searching', 0):.0f} s for "
            f"{rep['n_evaluated']} candidates ({phases.get('searching', 0) / max(rep['n_evaluated'], 1):.2f} s each), "
            f"report {phases.get('finalising', 0):.0f} s")
        h = rep["held_out"]
        if h is None:
            log(f"no candidate within budget: {rep['message']}")
            ratio = float("nan")
        else:
            for e in rep["edits"]:
                feats = ", ".join(f"{f['index']} (d={f['effect_size'] or 0:.2f})" for f in e["features"][:8])
                log(f"chosen: {e['mode']} strength {e['strength']:.3g} @ {e['hook_name']}, {len(e['features'])} "
                    f"features: {feats}{' ...' if len(e['features']) > 8 else ''}")
            log(f"held-out positives ({h['n_positive']}): P({rep['target_tokens'][0]!r}) {h['target_before']:.4f} -> "
                f"{h['target_after']:.4f}")
            log(f"held-out negatives ({h['n_negative']}): mean KL {h['kl_mean']:.5f} nats, max KL {h['kl_max']:.5f}, "
                f"largest target change {h['max_target_change']:.4f}")
            ratio = h["target_ratio"]

        # the hand-written baseline: top-10 contrast features of the last layer, ablated
        split = split_prompts(positive, negative, req.held_out_fraction, req.seed)
        last_layer = max(layers)
        sid = next(s for s in rec.state["trained_sae_ids"] if st.saes.row(s).layer == last_layer)
        top = st.contrast.contrast(sid, split.search_positive, split.search_negative, "last", top_n=10)
        hand = st.patches.create(sae_id=sid, features=[f.index for f in top.features], mode="ablate", enabled=False)
        ev = Evaluator(lm, split, rep["target_ids"], settings.max_prompt_tokens)
        with st.patches.original:
            ev.baseline()
        with st.patches.using([hand.id]):
            hm = ev.metrics(ev.measure())[1]
        neg = ev.orig_target[ev.groups["held_negative"]]
        log(f"planted model, held out: P({rep['target_tokens'][0]!r}) after the trigger {hm.target_before:.4f}, "
            f"after the negatives {float(neg.mean()):.4f} (max {float(neg.max()):.4f})")
        log(f"hand-written (top-10 ablate @ layer {last_layer}): P {hm.target_before:.4f} -> {hm.target_after:.4f} "
            f"(ratio {hm.target_ratio:.3f}), negatives mean KL {hm.kl_mean:.5f}, largest target change "
            f"{hm.max_target_change:.4f}")
    finally:
        st.shutdown()
        st.close()
        shutil.rmtree(work, ignore_errors=True)
    total, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    log(f"whole bench: {total:.0f} s wall, {cpu:.0f} s CPU (plant {t_plant:.0f} s / {c_plant:.0f} s CPU, job "
        f"{t_job:.0f} s / {c_job:.0f} s CPU); load average at start {load0:.1f}, now {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()} (CPU time ≈ wall time on an idle machine "
        "at one thread)")
    log(f"after/before ratio: {ratio:.4f}")


if __name__ == "__main__":
    main()
