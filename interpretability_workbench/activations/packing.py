"""Documents -> tokens -> fixed-length contexts, lazily and resumably.

The packing rule is ``corpus.make_contexts``'s: documents are tokenised without special tokens and joined
with the EOS token (when the tokenizer has one), the token stream is cut into bodies of ``context_size``
(minus one when the tokenizer has a BOS token) and each body gets BOS in front. On the same texts, one
pass of ``ContextPacker`` yields exactly ``make_contexts``'s contexts.

Held-out scheme: the first ``held_out_contexts`` contexts of the stream are the held-out slice. Training
starts at the first document boundary after them (the rest of the document the last held-out context
ended in is dropped), so no held-out document is ever trained on, and every later pass (epoch) restarts
at that boundary, never at the start of the source.

Resuming: ``PackerState`` says where the next training context begins (a source position, the number of
tokens of that document already used, the epoch) plus counters; it is a small JSON object for a
checkpoint. A packer restored from it continues exactly: N contexts, save, restore, M more == N + M.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, NamedTuple

import torch
from torch import Tensor

from ..model.tokenize import bos_id
from .source_types import START, CorpusExhausted, CorpusSource, Position, SourceError


@dataclass(frozen=True)
class PackerState:
    """Where the next training context begins, and what was produced so far."""

    position: Position
    """Source position of the document in which the next context begins."""
    offset: int
    """Tokens of that document (its ids then EOS) already used by earlier contexts."""
    epoch: int
    """Passes over the training documents completed before this point (0 in the first pass)."""
    origin: Position
    """Where training (and each new pass) starts: the document boundary after the held-out slice."""
    contexts: int
    """Training contexts produced so far."""
    context_size: int
    """Tokens per context (BOS included); a restore with another size is refused."""
    held_out_contexts: int
    """Size of the held-out slice at the start of the stream; a restore with another size is refused."""

    def __post_init__(self) -> None:
        for name in ("offset", "epoch", "contexts", "held_out_contexts"):
            if getattr(self, name) < 0:
                raise ValueError(f"PackerState.{name} must be >= 0")
        if self.context_size < 2:
            raise ValueError("PackerState.context_size must be at least 2")

    @property
    def tokens(self) -> int:
        """Training tokens produced (contexts x context_size, BOS included)."""
        return self.contexts * self.context_size

    @property
    def trainable_tokens(self) -> int:
        """Training tokens excluding position 0 of each context (the attention sink, never trained on)."""
        return self.contexts * (self.context_size - 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["position"], d["origin"] = self.position.to_dict(), self.origin.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PackerState:
        try:
            return cls(position=Position.from_dict(d["position"]), offset=int(d["offset"]), epoch=int(d["epoch"]),
                       origin=Position.from_dict(d["origin"]), contexts=int(d["contexts"]),
                       context_size=int(d["context_size"]), held_out_contexts=int(d["held_out_contexts"]))
        except (KeyError, TypeError, ValueError) as e:
            raise SourceError(f"the stored packer state is unreadable ({e}); "
                              "restart the run without resuming") from None


class HeldOut(NamedTuple):
    contexts: Tensor  # [held_out_contexts context_size]
    origin: Position  # where training starts


class PackReport(NamedTuple):
    """Exact accounting of what a packer produced."""

    train_contexts: int
    train_tokens: int  # contexts x context_size (BOS included)
    trainable_tokens: int  # excluding position 0 of each context (never trained on)
    held_out_contexts: int
    held_out_tokens: int
    epoch: int  # passes over the training documents completed


@dataclass
class _Cursor:
    """A point in the token stream: the document at ``position``, ``offset`` tokens into it."""

    position: Position
    offset: int = 0
    epoch: int = 0
    contexts: int = 0
    doc_end: Position = field(default_factory=Position)  # end of the document the last context ended in


class ContextPacker:
    """Lazily packs a ``CorpusSource`` into ``[n context_size]`` token contexts.

    ``epochs`` bounds the passes over the training documents: 1 (the default) refuses to repeat data and
    raises ``CorpusExhausted`` when more contexts are asked for than one pass holds; k allows k passes;
    None repeats forever (``state.epoch`` counts the passes). ``state`` resumes a stored ``PackerState``.
    """

    def __init__(self, source: CorpusSource, tokenizer: object, context_size: int, *, held_out_contexts: int = 0,
                 epochs: int | None = 1, state: PackerState | None = None, tokenize_batch: int = 64) -> None:
        if context_size < 2:
            raise SourceError("context_size must be at least 2")
        if held_out_contexts < 0:
            raise SourceError("held_out_contexts must be >= 0")
        if epochs is not None and epochs < 1:
            raise SourceError("epochs must be at least 1, or None to repeat the corpus without limit")
        if tokenize_batch < 1:
            raise ValueError("tokenize_batch must be at least 1")
        self.source, self.tokenizer = source, tokenizer
        self.context_size, self.held_out_contexts = context_size, held_out_contexts
        self.epochs, self.tokenize_batch = epochs, tokenize_batch
        self.bos: int | None = bos_id(tokenizer)
        self.eos: int | None = getattr(tokenizer, "eos_token_id", None)
        self.body = context_size - (1 if self.bos is not None else 0)
        self._held_out: HeldOut | None = None
        self._state: PackerState | None = None
        self._gen: Iterator[tuple[list[int], _Cursor]] | None = None
        if state is not None:
            self.restore(state)

    # state ---------------------------------------------------------------------------
    @property
    def state(self) -> PackerState:
        """The state after the last context returned (save it with the weights trained on them)."""
        if self._state is None:
            origin = self.held_out().origin
            self._state = PackerState(position=origin, offset=0, epoch=0, origin=origin, contexts=0,
                                      context_size=self.context_size, held_out_contexts=self.held_out_contexts)
        return self._state

    def restore(self, state: PackerState) -> None:
        if state.context_size != self.context_size:
            raise SourceError(f"the stored read position was made with context_size {state.context_size}; "
                              f"resume with that size (not {self.context_size}) or start a new run")
        if state.held_out_contexts != self.held_out_contexts:
            raise SourceError(f"the stored read position reserves {state.held_out_contexts} held-out contexts; "
                              f"resume with the same held-out size (not {self.held_out_contexts}) or start a new run")
        self._state, self._gen = state, None

    def held_out(self) -> HeldOut:
        """The held-out slice (the first ``held_out_contexts`` contexts) and where training starts."""
        if self._held_out is None:
            if self.held_out_contexts == 0:
                self._held_out = HeldOut(torch.empty(0, self.context_size, dtype=torch.long), START)
            else:
                rows, cur = [], None
                for body, cur in self._stream(_Cursor(START), START, passes=1):
                    rows.append(body)
                    if len(rows) == self.held_out_contexts:
                        break
                if len(rows) < self.held_out_contexts or cur is None:
                    raise SourceError(f"the corpus holds only {len(rows)} contexts of {self.context_size} tokens, "
                                      f"fewer than the {self.held_out_contexts} held out; hold out fewer tokens, "
                                      "use shorter contexts or a larger corpus")
                self._held_out = HeldOut(self._tensor(rows), cur.doc_end)
        return self._held_out

    # reading -------------------------------------------------------------------------
    def take(self, n: int) -> Tensor:
        """The next ``n`` training contexts ``[n context_size]``; raises ``CorpusExhausted`` (state
        unchanged) when the allowed passes end first."""
        if n < 0:
            raise ValueError("n must be >= 0")
        rows = self._pull(n)
        if len(rows) < n:
            done = self.state.contexts + len(rows)
            self._gen = None  # the next call restarts from the unchanged state
            raise CorpusExhausted(
                f"the corpus ran out after {done} training contexts ({done * self.context_size} tokens) in "
                f"{self.epochs} pass(es) over it, and {self.state.contexts + n} were asked for; allow more "
                "epochs, lower the token budget, or use a larger corpus")
        return self._commit(rows)

    def take_upto(self, n: int) -> Tensor:
        """Up to ``n`` next training contexts ``[m context_size]``; fewer (maybe none) only when the
        allowed passes ended."""
        if n < 0:
            raise ValueError("n must be >= 0")
        rows = self._pull(n)
        if len(rows) < n:
            self._gen = None
        return self._commit(rows)

    def batches(self, batch_contexts: int, limit: int | None = None) -> Iterator[Tensor]:
        """Batches of ``batch_contexts`` contexts until ``limit`` more contexts were produced (the last batch
        may be smaller; ``CorpusExhausted`` if the allowed passes end first); with ``limit`` None, until
        the allowed passes end (needs finite ``epochs``). ``self.state`` after each batch resumes right
        after it."""
        if batch_contexts < 1:
            raise ValueError("batch_contexts must be at least 1")
        if limit is None and self.epochs is None:
            raise SourceError("give a limit when the corpus repeats without end (epochs=None)")
        left = limit
        while left is None or left > 0:
            if left is not None:
                want = min(batch_contexts, left)
                yield self.take(want)
                left -= want
                continue
            got = self.take_upto(batch_contexts)
            if got.shape[0]:
                yield got
            if got.shape[0] < batch_contexts:
                return

    def report(self) -> PackReport:
        st = self.state
        h = self.held_out().contexts.shape[0]
        return PackReport(st.contexts, st.tokens, st.trainable_tokens, h, h * self.context_size, st.epoch)

    # internals -----------------------------------------------------------------------
    def _pull(self, n: int) -> list[tuple[list[int], _Cursor]]:
        """Up to ``n`` (body, cursor after it) pairs; fewer only when the allowed passes ended."""
        gen, out = self._generator(), []
        for _ in range(n):
            try:
                out.append(next(gen))
            except StopIteration:
                break
        return out

    def _commit(self, rows: list[tuple[list[int], _Cursor]]) -> Tensor:
        if not rows:
            return torch.empty(0, self.context_size, dtype=torch.long)
        self._state = self._to_state(rows[-1][1])
        return self._tensor([b for b, _ in rows])

    def _to_state(self, cur: _Cursor) -> PackerState:
        st = self.state
        return PackerState(position=cur.position, offset=cur.offset, epoch=cur.epoch, origin=st.origin,
                           contexts=cur.contexts, context_size=self.context_size,
                           held_out_contexts=self.held_out_contexts)

    def _generator(self) -> Iterator[tuple[list[int], _Cursor]]:
        if self._gen is None:
            st = self.state
            start = _Cursor(st.position, st.offset, st.epoch, st.contexts)
            self._gen = self._stream(start, st.origin, passes=self.epochs)
        return self._gen

    def _tensor(self, rows: list[list[int]]) -> Tensor:
        t = torch.tensor(rows, dtype=torch.long)  # [n body]
        if self.bos is not None:
            t = torch.cat([torch.full((t.shape[0], 1), self.bos, dtype=torch.long), t], dim=1)
        return t  # [n context_size]

    def _documents(self, start: Position) -> Iterator[tuple[Position, Position, list[int]]]:
        """(position before, position after, token ids + EOS) per document from ``start``."""
        before = start
        pending: list[tuple[Position, str]] = []

        def flush() -> Iterator[tuple[Position, Position, list[int]]]:
            nonlocal before
            texts = [t for _, t in pending]
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
            for (after, _), doc in zip(pending, ids):
                doc = list(doc)
                if self.eos is not None:
                    doc.append(self.eos)
                yield before, after, doc
                before = after
            pending.clear()

        for after, text in self.source.iter_documents(start):
            pending.append((after, text))
            if len(pending) >= self.tokenize_batch:
                yield from flush()
        if pending:
            yield from flush()

    def _stream(self, cur: _Cursor, origin: Position, passes: int | None) -> Iterator[tuple[list[int], _Cursor]]:
        """Context bodies from ``cur`` with the cursor after each; a new pass restarts at ``origin``."""
        body_len = self.body
        pos, skip, epoch, n = cur.position, cur.offset, cur.epoch, cur.contexts
        body: list[int] = []
        while True:
            got_doc = False
            for before, after, ids in self._documents(pos):
                got_doc = True
                i, size = skip, len(ids)
                skip = 0
                while i < size:
                    take = min(body_len - len(body), size - i)
                    body.extend(ids[i: i + take])
                    i += take
                    if len(body) == body_len:
                        n += 1
                        nxt = _Cursor(before, i, epoch, n, after) if i < size else _Cursor(after, 0, epoch, n, after)
                        yield body, nxt
                        body = []
            epoch += 1
            if passes is not None and epoch >= passes:
                return
            if not got_doc and pos == origin:
                raise SourceError("no documents follow the held-out slice; hold out fewer tokens "
                                  "or use a larger corpus")
            pos, skip = origin, 0
