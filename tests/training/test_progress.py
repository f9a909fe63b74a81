"""Training progress never looks stuck: every phase of a run (preparing, buffer fills, steps, held-out
evaluation, CE-loss evaluation, saving) is named and publishes a done/total that moves up to its total, with
an ETA; the heartbeat publishes while a buffer fills even when no counter moves."""
from __future__ import annotations

import dataclasses
import threading

from interpretability_workbench.events import EVENT_TYPES, TRAINING_PHASES, TrainingDone, TrainingProgress
from interpretability_workbench.server.schemas.ws import EVENT_MESSAGES, MemberProgressWire, server_message
from interpretability_workbench.training.progress import Progress, WorkPlan


def test_the_heartbeat_publishes_during_a_fill_and_phases_resume() -> None:
    got: list[tuple[str, TrainingProgress]] = []
    cond = threading.Condition()

    def publish(ev):
        with cond:
            got.append((threading.current_thread().name, ev))
            cond.notify_all()
        return ev

    def wait_for(pred) -> TrainingProgress:
        with cond:
            assert cond.wait_for(lambda: any(pred(t, e) for t, e in got), timeout=30)
            return next(e for t, e in got if pred(t, e))

    p = Progress(publish, "r", 4096, total_steps=8, interval_s=0.01, plan=WorkPlan(1000, 500))
    p.start()
    try:
        p.step_done(3)
        p.begin_fill(10)
        p.advance(4)
        n = len(got)
        beat = wait_for(lambda t, e: t == "progress-r" and got.index((t, e)) >= n and e.phase == "filling buffer")
        assert (beat.phase_done, beat.phase_total, beat.phase_unit) == (4, 10, "contexts")  # the heartbeat, mid-fill
        p.forward_done(640, 0.5)
        p.end_fill()
        back = got[-1][1]
        assert (back.phase, back.phase_done, back.phase_total) == ("training", 3, 8)  # back where it was
        assert back.eta_s is not None and back.eta_s > 0  # (4096 left / 1280 tok/s) + 1500 / 1280
    finally:
        p.stop()


def test_every_phase_of_a_run_reports_moving_progress(state, make_config) -> None:
    events: list[TrainingProgress] = []
    done: list[TrainingDone] = []
    state.bus.on(TrainingProgress, events.append)
    state.bus.on(TrainingDone, done.append)
    cfg = make_config(total_tokens=6 * 512, buffer_tokens=1500, model_batch_size=4, ce_eval_contexts=2,
                      eval_tokens=600, checkpoint_every=0, progress_interval_s=0.0, sweep={"k": [4, 8]})
    run_id = state.training.start(cfg)
    row = state.training.wait(run_id, timeout=300)
    assert row.status == "done", row.error
    evs = [e for e in events if e.run_id == run_id]
    order = [p for p in TRAINING_PHASES if p != "starting"]
    first = {p: next(i for i, e in enumerate(evs) if e.phase == p) for p in order}
    assert [first[p] for p in order if p != "filling buffer"] == sorted(first[p] for p in order if p != "filling buffer")
    assert first["preparing"] < first["filling buffer"] < first["evaluating held-out"]
    # split into runs of one phase: inside each, done never goes down and ends at the phase's total
    segments: list[list[TrainingProgress]] = []
    for e in evs:
        if e.phase == "starting":
            continue
        if segments and segments[-1][-1].phase == e.phase and e.phase_done >= segments[-1][-1].phase_done:
            segments[-1].append(e)
        else:
            segments.append([e])
    for seg in segments:
        dones = [e.phase_done for e in seg]
        assert dones == sorted(dones) and seg[0].phase_total > 0, (seg[0].phase, dones)
        assert all(e.phase_total == seg[0].phase_total for e in seg)
    for phase in order:
        assert any(seg[-1].phase_done == seg[-1].phase_total for seg in segments if seg[0].phase == phase), phase
        assert len({e.phase_done for e in evs if e.phase == phase}) >= 2, f"{phase} never moved"
    fills = [seg for seg in segments if seg[0].phase == "filling buffer"]
    assert len(fills) >= 2 and all(s[0].phase_unit == "contexts" for s in fills)  # refills between steps
    assert max(len({e.phase_done for e in s}) for s in fills) >= 3  # a fill moves per model batch
    units = {e.phase: e.phase_unit for e in evs}
    assert units["training"] == "steps" and units["evaluating CE loss"] == "forwards" and units["saving"] == "SAEs"
    ce = [e for e in evs if e.phase == "evaluating CE loss"]
    assert ce[0].phase_total == 1 + 1 + 2  # clean, the hook zero-ablated once, each SAE spliced
    assert all(e.eta_s is not None for e in evs if e.phase in ("training", "evaluating held-out"))
    assert evs[-1].phase == "saving" and evs[-1].phase_done == 2
    assert [m.k for m in next(e for e in evs if e.phase == "training" and e.members).members] == [4, 8]
    for e in [*evs, *done]:  # every event is a valid wire message
        server_message.validate_python(e.to_dict())
    assert done[-1].train_tokens == 6 * 512 and done[-1].held_out_tokens == 600 and done[-1].passes == 1


def test_events_and_their_wire_twins_have_the_same_fields() -> None:
    for ev in EVENT_TYPES:
        wire = EVENT_MESSAGES[ev.type]
        assert {f.name for f in dataclasses.fields(ev)} | {"type"} == set(wire.model_fields), ev.type
    from interpretability_workbench.events import MemberProgress
    assert {f.name for f in dataclasses.fields(MemberProgress)} == set(MemberProgressWire.model_fields)
