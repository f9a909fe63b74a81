"""The search over layers, number of features, mode and strength (deterministic; free of threads, storage
and the model: ``evaluate`` measures a candidate exactly and may replay a stored one).

Stages, each deciding on the search split only:

1. **screen** — per SAE and mode family (weight delta: ablate/scale; clamp) the top-k ranked features for
   k = 1, 2, 4, ... ≤ ``max_features`` at the family's default strength (ablate 1 — or scale 0 when only
   scale is allowed — and clamp to 0). Growing k stops once a candidate spends 4× the budget or the target
   is gone (ratio ≤ 1e-3).
2. **refine** — the best candidate of each (SAE, family), best four first: k between its ladder neighbours
   (¾k, 1½k), then strengths around the default (weight: t = ½, ¾, 1½, 2, 3 of the span removed — t > 1 is
   scale with factor 1 − t, pushing the component past zero; clamp: 0 down to −2× the features' mean
   activation on the positives); ¼ and ⅒ as well when nothing is within budget yet. Then **bisection on
   the budget's edge**: when a stronger strength removed more of the target but broke the budget, the
   strength between it and the strongest one within budget is halved ``BISECT_STEPS`` times (the best edit
   within a budget usually spends all of it).
3. **prune** — on the best candidate, drop features one at a time (lowest ranked first) while the objective
   does not get worse by more than 1e-3.
4. **combine** — the best within-budget edits of the two, then three, best SAEs at different layers
   together; when the sum breaks the budget, one factor λ ∈ (0, 1) scales every edit's strength
   (clamp value, span fraction t) and is bisected as above; then prune again.
5. **strengthen** — each edit of the best candidate, one at a time, pushed harder up to the budget's edge
   (pruning usually frees some of it), stepping then bisecting.

The best candidate is the within-budget one with the lowest objective (target ratio + 0.01 × budget use;
then fewer features; then earlier). Every evaluation counts against ``max_evaluations``; a repeated
candidate is looked up, never measured twice.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .types import Candidate, Edit, LayerRanking, SearchRequest, edits_key

Evaluate = Callable[[list[Edit], str], Candidate]
"""(edits, stage) -> the candidate measured on both splits (raises to stop the search, e.g. cancelled)."""

STOP_BUDGET_USE = 4.0
STOP_RATIO = 1e-3
REFINE_SEEDS = 4
WEIGHT_STRENGTHS = (0.5, 0.75, 1.5, 2.0, 3.0)
WEIGHT_GENTLE = (0.25, 0.1)
CLAMP_MULTIPLES = (0.5, 1.0, 2.0)
PRUNE_TOLERANCE = 1e-3
PRUNE_MAX = 24
BISECT_STEPS = 5
COMBINE_STEPS = 4
BISECT_GAIN = 0.02
"""Bisect only towards a stronger edit whose target ratio is lower by more than this."""
MAX_COMBINED = 3
STRENGTHEN_STEPS = 3


class SearchOutcome(NamedTuple):
    best: Candidate | None
    """The best within-budget candidate (None when none was)."""
    candidates: list[Candidate]
    """Every distinct candidate, in evaluation order."""
    exhausted: bool
    """The evaluation budget ran out before the stages finished."""


class _Exhausted(Exception):
    pass


class Search:
    def __init__(self, rankings: list[LayerRanking], request: SearchRequest, evaluate: Evaluate) -> None:
        self.rankings = [r for r in rankings if r.features]
        self.req, self._evaluate = request, evaluate
        self.seen: dict[str, Candidate] = {}
        self.order: list[Candidate] = []
        modes = request.modes
        self.families = [f for f, ok in (("weight", "ablate" in modes or "scale" in modes),
                                         ("clamp", "clamp" in modes)) if ok]

    # candidates ------------------------------------------------------------------------
    def weight_edit(self, r: LayerRanking, k: int, t: float) -> Edit | None:
        """Remove a fraction t of the span of the top-k features (ablate t ≤ 1; scale 1 − t otherwise)."""
        return self.with_push(Edit(r.sae_id, r.hook_name, r.layer, "ablate", 1.0, r.indices[:k]), t)

    def with_push(self, e: Edit, push: float) -> Edit | None:
        """``e`` pushing ``push`` hard: clamp at −push; a weight edit removing the fraction t = push of the
        span (ablate t ≤ 1, scale 1 − t otherwise, as the allowed modes permit)."""
        push = round(push, 6)
        if e.mode == "clamp":
            return Edit(e.sae_id, e.hook_name, e.layer, "clamp", -push if push else 0.0, list(e.features))
        if push <= 1.0 and "ablate" in self.req.modes:
            return Edit(e.sae_id, e.hook_name, e.layer, "ablate", push, list(e.features))
        if "scale" in self.req.modes:
            return Edit(e.sae_id, e.hook_name, e.layer, "scale", 1.0 - push, list(e.features))
        return None

    def clamp_edit(self, r: LayerRanking, k: int, v: float) -> Edit | None:
        if not r.clampable:
            return None
        return Edit(r.sae_id, r.hook_name, r.layer, "clamp", v, r.indices[:k])

    def edit(self, r: LayerRanking, family: str, k: int, strength: float | None = None) -> Edit | None:
        if family == "weight":
            return self.weight_edit(r, k, 1.0 if strength is None else strength)
        return self.clamp_edit(r, k, 0.0 if strength is None else strength)

    def eval(self, edits: list[Edit | None], stage: str) -> Candidate | None:
        real = [e for e in edits if e is not None]
        if len(real) != len(edits) or not real:
            return None
        key = edits_key(real)
        if key in self.seen:
            return self.seen[key]
        if len(self.order) >= self.req.max_evaluations:
            raise _Exhausted
        c = self._evaluate(real, stage)
        self.seen[key] = c
        self.order.append(c)
        return c

    def best_of(self, cands: list[Candidate | None]) -> Candidate | None:
        real = [c for c in cands if c is not None]
        return min(real, key=Candidate.sort_key) if real else None

    # stages ------------------------------------------------------------------------------
    def ladder(self, r: LayerRanking) -> list[int]:
        n = min(len(r.features), self.req.max_features)
        ks, k = [], 1
        while k <= n:
            ks.append(k)
            k *= 2
        return ks

    def screen(self) -> dict[tuple[str, str], Candidate]:
        best: dict[tuple[str, str], Candidate] = {}
        for r in self.rankings:
            for fam in self.families:
                for k in self.ladder(r):
                    c = self.eval([self.edit(r, fam, k)], "screen")
                    if c is None:
                        break
                    b = self.best_of([best.get((r.sae_id, fam)), c])
                    if b is not None:
                        best[(r.sae_id, fam)] = b
                    if c.budget_use >= STOP_BUDGET_USE or c.search.target_ratio <= STOP_RATIO:
                        break
        return best

    def refine(self, seeds: dict[tuple[str, str], Candidate]) -> dict[tuple[str, str], Candidate]:
        by_id = {r.sae_id: r for r in self.rankings}
        ordered = sorted(seeds.items(), key=lambda kv: kv[1].sort_key())[:REFINE_SEEDS]
        out = dict(seeds)
        any_feasible = any(c.feasible for c in seeds.values())
        for (sid, fam), seed in ordered:
            r = by_id[sid]
            e0 = seed.edits[0]
            k0, n = len(e0.features), min(len(r.features), self.req.max_features)
            base_strength = None if fam == "clamp" else self._t_of(e0)
            tried = [seed]
            for k in sorted({max(1, round(k0 * 0.75)), min(n, round(k0 * 1.5))} - {k0}):
                tried.append(self.eval([self.edit(r, fam, k, base_strength)], "refine"))
            best = self.best_of(tried)
            assert best is not None
            k1 = len(best.edits[0].features)
            if fam == "weight":
                strengths = list(WEIGHT_STRENGTHS) + ([] if any_feasible else list(WEIGHT_GENTLE))
            else:
                a = max([f.mean_positive for f in r.features[:k1]] + [0.0]) or 1.0
                strengths = [-m * a for m in CLAMP_MULTIPLES]
            for s in strengths:
                tried.append(self.eval([self.edit(r, fam, k1, s)], "refine"))
            tried += self.bisect([c for c in tried if c is not None and len(c.edits[0].features) == k1],
                                 lambda push, r=r, fam=fam, k1=k1: [self.edit(r, fam, k1, self._strength(fam, push))])
            b = self.best_of(tried)
            assert b is not None
            out[(sid, fam)] = b
            any_feasible = any_feasible or b.feasible
        return out

    @staticmethod
    def _t_of(e: Edit) -> float:
        return e.strength if e.mode == "ablate" else 1.0 - e.strength

    @classmethod
    def _push(cls, e: Edit) -> float:
        """How hard an edit pushes (0: clamp to 0 / no weight change; larger is stronger)."""
        return -e.strength if e.mode == "clamp" else cls._t_of(e)

    @staticmethod
    def _strength(family: str, push: float) -> float:
        return (-push if push else 0.0) if family == "clamp" else push

    def bisect(self, tried: list[Candidate], make: Callable[[float], list[Edit | None]],
               pushes: Callable[[Candidate], float] | None = None, steps: int = BISECT_STEPS,
               floor: tuple[float, float] = (0.0, 1.0), stage: str = "refine") -> list[Candidate | None]:
        """Halve the gap between the strongest within-budget push and the weakest stronger one that broke the
        budget while removing more of the target; ``make(push)`` builds the candidate's edits. ``floor``:
        (push, target ratio) assumed within budget when none of ``tried`` is (the unedited model)."""
        push_of = pushes or (lambda c: self._push(c.edits[0]))
        feasible = [c for c in tried if c.feasible]
        strongest = max(feasible, key=push_of, default=None)
        lo, lo_ratio = (push_of(strongest), strongest.search.target_ratio) if strongest else floor
        over = [push_of(c) for c in tried
                if not c.feasible and push_of(c) > lo and c.search.target_ratio < lo_ratio - BISECT_GAIN]
        if not over:
            return []
        hi, out = min(over), []
        for _ in range(steps):
            mid = (lo + hi) / 2
            c = self.eval(make(mid), stage)
            if c is None:
                break
            out.append(c)
            if c.feasible:
                lo = mid
            else:
                hi = mid
        return out

    def prune(self, best: Candidate) -> Candidate:
        rank_of = {r.sae_id: {f: i for i, f in enumerate(r.indices)} for r in self.rankings}
        spent = 0
        for ei in range(len(best.edits)):
            feats = sorted(best.edits[ei].features, key=lambda f: -rank_of[best.edits[ei].sae_id].get(f, 0))
            for f in feats:
                edit = best.edits[ei]
                if len(edit.features) <= 1 or spent >= PRUNE_MAX:
                    break
                smaller = Edit(edit.sae_id, edit.hook_name, edit.layer, edit.mode, edit.strength,
                               [x for x in edit.features if x != f])
                edits = [*best.edits[:ei], smaller, *best.edits[ei + 1:]]
                was_new = edits_key(edits) not in self.seen
                c = self.eval(edits, "prune")
                spent += was_new
                if c is not None and c.feasible and c.objective <= best.objective + PRUNE_TOLERANCE:
                    best = c
        return best

    def combine(self, per_sae: dict[tuple[str, str], Candidate]) -> None:
        """The best within-budget single edits of different layers, two then three of them together."""
        feasible = sorted((c for c in per_sae.values() if c.feasible and len(c.edits) == 1),
                          key=Candidate.sort_key)
        picks: list[Candidate] = []
        for c in feasible:
            if all(c.edits[0].layer != p.edits[0].layer for p in picks):
                picks.append(c)
        for n in range(2, min(MAX_COMBINED, len(picks)) + 1):
            edits = [p.edits[0] for p in picks[:n]]
            c = self.eval(list(edits), "combine")
            if c is None or c.feasible:
                continue
            self.bisect([c], lambda lam, edits=edits: [self.with_push(e, self._push(e) * lam) for e in edits],
                        pushes=lambda _c: 1.0, steps=COMBINE_STEPS,
                        floor=(0.0, min(p.search.target_ratio for p in picks[:n])), stage="combine")

    def strengthen(self, best: Candidate) -> Candidate:
        """Push each edit of the best candidate harder, one at a time, up to the budget's edge (pruning
        usually frees budget): steps of max(push, ¼ of the features' largest mean activation on the positives;
        ¼ of the span for weight edits), doubling while the objective improves, until the budget breaks; then
        bisection between the last step within budget and the one over it."""
        by_id = {r.sae_id: r for r in self.rankings}
        for ei in range(len(best.edits)):
            e0 = best.edits[ei]
            unit = 1.0
            if e0.mode == "clamp" and e0.sae_id in by_id:
                means = {f.index: f.mean_positive for f in by_id[e0.sae_id].features}
                unit = max([means.get(f, 0.0) for f in e0.features] + [0.0]) or 1.0

            def make(push: float, ei: int = ei, base: Candidate = best) -> list[Edit | None]:
                return [*base.edits[:ei], self.with_push(base.edits[ei], push), *base.edits[ei + 1:]]

            push = self._push(e0)
            step, tried = max(push, 0.25 * unit), [best]
            for _ in range(STRENGTHEN_STEPS):
                c = self.eval(make(push + step), "strengthen")
                if c is None:
                    break
                tried.append(c)
                if not c.feasible or c.objective >= best.objective:
                    break
                best, push, step = c, push + step, step * 2
            tried += self.bisect(tried, make, pushes=lambda c, ei=ei: self._push(c.edits[ei]), steps=COMBINE_STEPS,
                                 stage="strengthen")
            best = self.best_of([c for c in tried if c is not None and c.feasible]) or best
        return best

    def run(self) -> SearchOutcome:
        exhausted = False
        try:
            per_sae = self.screen()
            per_sae = self.refine(per_sae)
            best = self.best_of(list(self.seen.values()))
            if best is not None and best.feasible:
                self.prune(best)
            self.combine(per_sae)
            best = self.best_of(list(self.seen.values()))
            if best is not None and best.feasible and len(best.edits) > 1:
                self.prune(best)
            best = self.best_of(list(self.seen.values()))
            if best is not None and best.feasible:
                self.strengthen(best)
        except _Exhausted:
            exhausted = True
        best = self.best_of(list(self.seen.values()))
        return SearchOutcome(best if best is not None and best.feasible else None, list(self.order), exhausted)


def run_search(rankings: list[LayerRanking], request: SearchRequest, evaluate: Evaluate) -> SearchOutcome:
    """Run the stages above; deterministic given the rankings and what ``evaluate`` returns."""
    return Search(rankings, request, evaluate).run()
