"""The up-front check of a run's budget against its data: a counted corpus (or a trace) shorter than the
training tokens asked for is refused unless ``epochs`` allows the passes it needs. No Lightning here: the
service checks before a run is queued."""
from __future__ import annotations

import math

from ..activations.sources import TokenCount, contexts_available
from ..errors import Invalid
from .config import TrainingConfig


def check_budget(cfg: TrainingConfig, count: TokenCount | None, tokenizer: object,
                 trace_rows: int | None = None) -> str | None:
    """Refuse (422) a run whose counted data cannot hold its budget in the passes ``epochs`` allows; return a
    note when the data will be repeated (None when it fits in one pass, or is not counted yet)."""
    need = cfg.train_rows
    per_ctx = cfg.context_size - 1
    if trace_rows is not None:
        per_pass, what = trace_rows, f"the trace holds {trace_rows} activations"
    elif count is not None:
        contexts = contexts_available(count, cfg.context_size, tokenizer) - cfg.held_out_contexts
        if contexts < 1:
            raise Invalid(f"the corpus holds {count.tokens} tokens, about {contexts + cfg.held_out_contexts} "
                          f"contexts of {cfg.context_size}: too few for the {cfg.held_out_contexts} held-out contexts "
                          "and any training; lower eval_tokens, use shorter contexts or a larger corpus")
        per_pass = contexts * per_ctx
        what = (f"the corpus holds {count.tokens} tokens: about {per_pass} training activations after the "
                f"held-out slice ({cfg.held_out_contexts} contexts)")
    else:
        return None
    if need <= per_pass:
        return None
    passes = math.ceil(need / per_pass)
    if cfg.epochs is not None and passes > cfg.epochs:
        fit = per_pass * cfg.epochs // cfg.batch_size * cfg.batch_size
        lower = f"lower total_tokens to {fit} or less" if fit >= cfg.batch_size else "lower batch_size"
        raise Invalid(f"{what}, and the run asks for {need} in at most {cfg.epochs} pass(es): set epochs to "
                      f"{passes} or more (or null) to repeat the data, {lower}, or use a larger corpus")
    return f"{what}; the run asks for {need}, so it reads the data about {need / per_pass:.2f} times"
