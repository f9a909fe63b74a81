"""Remove a behaviour: search SAE feature edits that drive target tokens down after "positive" prompts while
leaving "negative" prompts alone, and return them as ordinary patches with a report.

``types`` (request, budget, edits, candidates), ``evaluate`` (exact batched measurement, the prompt split),
``ranking`` (contrast per SAE at several positions), ``search`` (the deterministic strategy), ``report``
(the final report, Pareto front), ``export`` (an edit set as one PEFT adapter), ``service`` (the job:
thread, persistence, resume, events). Wired in ``state.py`` as ``BehaviourService``.
"""
