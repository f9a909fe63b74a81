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
   activation on the positives); ¼ and ⅒ as well when nothing is within budget yet.
3. **prune** — on the best candidate, drop features one at a time (lowest ranked first) while the objective
   does not get worse by more than 1e-3.
4. **combine** — the best within-budget edits of the two best SAEs at different layers together.

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
        feats = r.indices[:k]
        if t <= 1.0 and "ablate" in self.req.modes:
            return Edit(r.sae_id, r.hook_name, r.layer, "ablate", t, feats)
        if "scale" in self.req.modes:
            return Edit(r.sae_id, r.hook_name, r.layer, "scale", 1.0 - t, feats)
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
            b = self.best_of(tried)
            assert b is not None
            out[(sid, fam)] = b
            any_feasible = any_feasible or b.feasible
        return out

    @staticmethod
    def _t_of(e: Edit) -> float:
        return e.strength if e.mode == "ablate" else 1.0 - e.strength

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

    def combine(self, per_sae: dict[tuple[str, str], Candidate]) -> Candidate | None:
        feasible = sorted((c for c in per_sae.values() if c.feasible and len(c.edits) == 1),
                          key=Candidate.sort_key)
        first = feasible[0] if feasible else None
        second = next((c for c in feasible[1:] if first and c.edits[0].layer != first.edits[0].layer), None)
        if first is None or second is None:
            return None
        return self.eval([first.edits[0], second.edits[0]], "combine")

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
        except _Exhausted:
            exhausted = True
        best = self.best_of(list(self.seen.values()))
        return SearchOutcome(best if best is not None and best.feasible else None, list(self.order), exhausted)


def run_search(rankings: list[LayerRanking], request: SearchRequest, evaluate: Evaluate) -> SearchOutcome:
    """Run the stages above; deterministic given the rankings and what ``evaluate`` returns."""
    return Search(rankings, request, evaluate).run()
