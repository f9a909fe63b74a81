"""Token contexts -> activations: streaming batches, a shuffled buffer, and sharded Parquet traces."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import Tensor

from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel

MANIFEST_NAME = "manifest.json"


@torch.no_grad()
def iter_activations(
    lm: LoadedModel,
    contexts: Tensor,
    hook_names: list[str],
    *,
    batch_size: int = 16,
    exclude_first: bool = True,
    max_tokens: int | None = None,
) -> Iterator[dict[str, Tensor]]:
    """Yield ``{hook: [n_tokens d_model]}`` per batch of contexts, in float32 on the model's device.

    One forward per batch serves every hook, and it stops after the deepest hook needed.
    Position 0 (the attention sink, ~10x the median norm) is dropped when ``exclude_first``.
    """
    start = 1 if exclude_first else 0
    seen = 0
    for i in range(0, contexts.shape[0], batch_size):
        ids = contexts[i: i + batch_size].to(lm.device)
        res = run_with_cache(lm.model, ids, hook_names, stop_at_layer=True)
        out = {h: a[:, start:].reshape(-1, a.shape[-1]).float() for h, a in res.cache.items()}
        n = next(iter(out.values())).shape[0]
        if max_tokens is not None and seen + n > max_tokens:
            keep = max_tokens - seen
            out = {h: a[:keep] for h, a in out.items()}
            n = keep
        seen += n
        if n:
            yield out
        if max_tokens is not None and seen >= max_tokens:
            return


class ShuffleBuffer:
    """Mix activations from many contexts: fill a buffer, shuffle, emit half, refill (SAELens-style).

    ``source`` yields ``[n d]`` tensors; iteration yields ``[batch_size d]`` training batches.
    """

    def __init__(self, source: Iterable[Tensor], buffer_tokens: int = 65536, batch_size: int = 4096, seed: int = 0):
        if batch_size <= 0 or buffer_tokens < batch_size:
            raise ValueError("need 0 < batch_size <= buffer_tokens")
        self.source, self.buffer_tokens, self.batch_size = source, buffer_tokens, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[Tensor]:
        buf: list[Tensor] = []
        size = 0
        it = iter(self.source)
        exhausted = False
        while True:
            while not exhausted and size < self.buffer_tokens:
                try:
                    chunk = next(it)
                except StopIteration:
                    exhausted = True
                    break
                buf.append(chunk)
                size += chunk.shape[0]
            if size == 0:
                return
            data = torch.cat(buf)
            data = data[torch.randperm(data.shape[0], generator=self.gen).to(data.device)]
            emit = data.shape[0] if exhausted else max(self.batch_size, data.shape[0] // 2)
            emit -= emit % self.batch_size if not exhausted else 0
            for j in range(0, emit, self.batch_size):
                yield data[j: j + self.batch_size]
            rest = data[emit:]
            buf, size = ([rest] if rest.shape[0] else []), rest.shape[0]
            if exhausted and size == 0:
                return


@dataclass
class TraceManifest:
    """What a recorded trace folder holds."""

    model_id: str
    revision: str | None
    hook_name: str
    d_model: int
    dtype: str
    context_size: int
    exclude_first: bool
    n_tokens: int = 0
    shards: list[dict] = field(default_factory=list)
    """One entry a shard: {file, n_tokens}."""
    corpus: str | None = None
    held_out_contexts: int = 0
    """Contexts at the start of the corpus left out of the trace (the held-out slice a run evaluates on)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TraceManifest":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _write_shard(path: Path, acts: Tensor, token_ids: Tensor, positions: Tensor, dtype: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    np_dtype = np.float16 if dtype == "float16" else np.float32
    flat = acts.detach().to("cpu", torch.float32).numpy().astype(np_dtype).reshape(-1)
    d = acts.shape[1]
    arr = pa.FixedSizeListArray.from_arrays(pa.array(flat), d)
    table = pa.table({"activation": arr, "token_id": pa.array(token_ids.numpy()), "position": pa.array(positions.numpy())})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_trace(
    lm: LoadedModel,
    contexts: Tensor,
    hook_name: str,
    out_dir: str | Path,
    *,
    n_tokens: int | None = None,
    batch_size: int = 16,
    shard_tokens: int = 65536,
    dtype: str = "float32",
    exclude_first: bool = True,
    corpus: str | None = None,
    held_out_contexts: int = 0,
    progress: "callable | None" = None,
) -> TraceManifest:
    """Stream activations at ``hook_name`` into sharded Parquet files plus ``manifest.json``.

    Memory stays bounded by one shard: activations are never all held at once.
    """
    if dtype not in ("float32", "float16"):
        raise ValueError("dtype must be float32 or float16")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    man = TraceManifest(lm.model_id, lm.revision, hook_name, lm.d_model, dtype, int(contexts.shape[1]),
                        exclude_first, corpus=corpus, held_out_contexts=held_out_contexts)
    start = 1 if exclude_first else 0
    pending: list[tuple[Tensor, Tensor, Tensor]] = []
    pending_n = 0
    limit = n_tokens if n_tokens is not None else math.inf

    def flush() -> None:
        nonlocal pending, pending_n
        if not pending_n:
            return
        a = torch.cat([p[0] for p in pending])
        t = torch.cat([p[1] for p in pending])
        pos = torch.cat([p[2] for p in pending])
        name = f"shard-{len(man.shards):05d}.parquet"
        _write_shard(out / name, a, t, pos, dtype)
        man.shards.append({"file": name, "n_tokens": int(a.shape[0])})
        man.n_tokens += int(a.shape[0])
        pending, pending_n = [], 0

    taken = 0
    for i in range(0, contexts.shape[0], batch_size):
        if taken >= limit:
            break
        ctx = contexts[i: i + batch_size]
        res = run_with_cache(lm.model, ctx.to(lm.device), [hook_name])
        a = res.cache[hook_name][:, start:].reshape(-1, lm.d_model).cpu()
        tok = ctx[:, start:].reshape(-1)
        pos = torch.arange(start, ctx.shape[1]).repeat(ctx.shape[0])
        if taken + a.shape[0] > limit:
            k = int(limit - taken)
            a, tok, pos = a[:k], tok[:k], pos[:k]
        taken += a.shape[0]
        pending.append((a, tok, pos))
        pending_n += a.shape[0]
        if pending_n >= shard_tokens:
            flush()
        if progress:
            progress(taken)
    flush()
    if man.n_tokens == 0:
        raise ValueError("no tokens recorded: the corpus produced no contexts")
    tmp = out / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(man.to_dict(), indent=2))
    os.replace(tmp, out / MANIFEST_NAME)
    return man


def read_manifest(trace_dir: str | Path) -> TraceManifest:
    p = Path(trace_dir) / MANIFEST_NAME
    if not p.is_file():
        raise FileNotFoundError(f"{trace_dir} is not a trace folder (no {MANIFEST_NAME})")
    return TraceManifest.from_dict(json.loads(p.read_text()))


def read_trace(trace_dir: str | Path, *, chunk_tokens: int = 65536) -> Iterator[Tensor]:
    """Yield ``[n d_model]`` float32 tensors from a trace folder, one Parquet row group at a time."""
    import numpy as np
    import pyarrow.parquet as pq

    man = read_manifest(trace_dir)
    for shard in man.shards:
        pf = pq.ParquetFile(Path(trace_dir) / shard["file"])
        for batch in pf.iter_batches(batch_size=chunk_tokens, columns=["activation"]):
            col = batch.column(0)
            flat = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            yield torch.from_numpy(flat.reshape(-1, man.d_model).copy())


def read_trace_rows(trace_dir: str | Path, start: int, n: int, *, manifest: TraceManifest | None = None) -> Tensor:
    """Rows ``[start, start + n)`` of a trace ``[m d_model]`` float32 (m < n only past its end), reading only
    the row groups that hold them."""
    import numpy as np
    import pyarrow.parquet as pq

    man = manifest or read_manifest(trace_dir)
    out: list[Tensor] = []
    base, end = 0, start + n
    for shard in man.shards:
        size = int(shard["n_tokens"])
        if base + size <= start:
            base += size
            continue
        if base >= end:
            break
        pf = pq.ParquetFile(Path(trace_dir) / shard["file"])
        rg_base = base
        for g in range(pf.metadata.num_row_groups):
            g_rows = pf.metadata.row_group(g).num_rows
            lo, hi = max(start, rg_base), min(end, rg_base + g_rows)
            if lo < hi:
                col = pf.read_row_group(g, columns=["activation"]).column(0).combine_chunks()
                flat = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
                rows = flat.reshape(-1, man.d_model)[lo - rg_base: hi - rg_base]
                out.append(torch.from_numpy(rows.copy()))
            rg_base += g_rows
        base += size
    return torch.cat(out) if out else torch.empty(0, man.d_model)
