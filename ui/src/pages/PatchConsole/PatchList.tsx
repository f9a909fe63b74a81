import { useEffect, useRef, useState } from "react";
import { errorText } from "../../api/errors";
import { useDeletePatch, useExportPatch, useImportPatch, useUpdatePatch } from "../../api/mutations";
import type { Patch } from "../../api/types";
import { useSocket } from "../../ws/context";
import { ErrorMessage } from "../../components/Status";
import { fmt } from "../../charts/useWidth";
import { FeatureActivity } from "./FeatureActivity";

/** Slider range [min, max, step] per mode, in absolute units. */
export const RANGE: Record<Patch["mode"], [number, number, number]> = {
  ablate: [0, 1, 0.01],
  scale: [-2, 4, 0.05],
  steer: [-40, 40, 0.5],
  clamp: [0, 40, 0.5],
  adapter: [0, 2, 0.05],
};
/** Slider range in units of the features' typical activation (steer, clamp). */
export const UNIT_RANGE: Partial<Record<Patch["mode"], [number, number, number]>> = {
  steer: [-20, 20, 0.25],
  clamp: [0, 10, 0.1],
};

const ORIGIN: Record<string, string> = { contrast: "Contrast page", "patch console": "Patch console", "feature page": "feature page" };

/** "4 × typical activation (= 12.3)" or "4". */
export function strengthText(p: Pick<Patch, "strength" | "strength_unit" | "unit_scale" | "unit_source" | "absolute_strength">): string {
  if (p.strength_unit !== "typical_activation") return fmt(p.strength);
  const unit = p.unit_source === "residual_norm" ? "residual norm" : "typical activation";
  return `${fmt(p.strength)} × ${unit} (= ${fmt(p.absolute_strength)})`;
}

/**
 * One patch: enable toggle, live strength slider (WS set_strength while it moves, commit_strength when the user lets
 * go), a number box (PATCH on an explicit edit), its features' activations on the prompt, export, delete. Each answer
 * updates the cached patch list; the row shows the error of the last action it started.
 */
function PatchRow({ p, text }: { p: Patch; text: string }) {
  const socket = useSocket();
  const update = useUpdatePatch();
  const remove = useDeletePatch();
  const exp = useExportPatch();
  const ops = [update, remove, exp];
  const busy = ops.some((o) => o.isPending);
  const error = errorText(ops.find((o) => o.error)?.error);
  const clearErrors = () => ops.forEach((o) => o.reset());
  const [strength, setStrength] = useState(p.strength);
  const moved = useRef(false);
  useEffect(() => setStrength(p.strength), [p.strength]);
  const units = p.strength_unit === "typical_activation";
  const [lo, hi, step] = (units ? UNIT_RANGE[p.mode] : undefined) ?? RANGE[p.mode];
  /** live: the server changes the strength in memory and pushes new logits */
  const move = (v: number) => {
    setStrength(v);
    moved.current = true;
    socket.send({ type: "set_strength", patch_id: p.id, strength: v });
  };
  /** the user let go of the slider: persist what it shows */
  const settle = () => {
    if (!moved.current) return;
    moved.current = false;
    socket.send({ type: "commit_strength", patch_id: p.id });
  };
  /** an explicit edit in the number box: PATCH */
  const save = (v: number) => {
    moved.current = false;
    if (!Number.isFinite(v) || v === p.strength) return;
    clearErrors();
    update.mutate({ id: p.id, body: { strength: v } });
  };
  const id = `strength-${p.id}`;
  const from = p.origin ? ORIGIN[p.origin] ?? p.origin : null;
  return (
    <li className="patch-row" data-testid="patch-row" data-patch-id={p.id}>
      <label className="check">
        <input type="checkbox" checked={p.enabled} disabled={busy}
          onChange={(e) => {
            clearErrors();
            update.mutate({ id: p.id, body: { enabled: e.target.checked } });
          }} />
        <strong>{p.name}</strong>
      </label>
      {from && <span className="origin" data-testid="patch-origin" title={`made on the ${from}`}>from {from}</span>}
      <span className="muted small">
        {p.mode}{p.features.length ? ` · features ${p.features.join(", ")}` : ""} · {p.hook_name} · rank {p.rank}
        {p.applied ? "" : " · not applied"}
      </span>
      {from && !p.enabled && p.origin !== "patch console" && (
        <p className="muted small" data-testid="origin-note">Made on the {from}: off for these results until you tick it.</p>
      )}
      {p.apply_error && <ErrorMessage error={`Not applied: ${p.apply_error}`} />}
      <div className="row">
        <label htmlFor={id}>Strength{units ? " (× typical activation)" : ""}</label>
        <input id={id} type="range" min={Math.min(lo, strength)} max={Math.max(hi, strength)} step={step} value={strength}
          onChange={(e) => move(Number(e.target.value))} onPointerUp={settle} onKeyUp={settle} onBlur={settle}
          data-testid="strength-slider" />
        <input type="number" aria-label={`Strength of ${p.name}`} step="any" value={strength} className="num"
          onChange={(e) => setStrength(Number(e.target.value))} onBlur={(e) => save(Number(e.target.value))}
          onKeyDown={(e) => e.key === "Enter" && save(Number((e.target as HTMLInputElement).value))} />
        <span className="muted small" data-testid="strength-text">{strengthText({ ...p, strength, absolute_strength: strength * (units ? p.unit_scale ?? 1 : 1) })}</span>
      </div>
      <FeatureActivity patch={p} text={text} />
      <div className="row">
        <button type="button" onClick={() => {
          clearErrors();
          exp.mutate({ id: p.id, format: "peft" });
        }} disabled={!p.exportable_as_peft}
          title={p.exportable_as_peft ? undefined : "not an exact weight delta (clamp): export the native format"}>
          Export PEFT
        </button>
        <button type="button" onClick={() => {
          clearErrors();
          exp.mutate({ id: p.id, format: "native" });
        }}>Export native</button>
        <button type="button" className="danger" onClick={() => {
          clearErrors();
          remove.mutate(p.id);
        }}>Delete</button>
      </div>
      <ErrorMessage error={error} />
    </li>
  );
}

/** The patches, one row each, and the adapter import (POST /api/patches/import adds to the cached list). */
export function PatchList({ patches, text = "" }: { patches: Patch[]; text?: string }) {
  const imp = useImportPatch();
  const file = useRef<HTMLInputElement>(null);
  return (
    <section className="card" aria-labelledby="patches-h">
      <h2 id="patches-h">Patches</h2>
      {patches.length === 0 ? <p className="muted">No patches yet.</p> : (
        <ul className="patch-list">
          {patches.map((p) => <PatchRow key={p.id} p={p} text={text} />)}
        </ul>
      )}
      <div className="row">
        <label htmlFor="patch-import">Import adapter (.zip)</label>
        <input id="patch-import" ref={file} type="file" accept=".zip,.json,.safetensors" />
        <button type="button" disabled={imp.isPending} onClick={() => {
          const f = file.current?.files?.[0];
          if (f) imp.mutate(f);
        }}>{imp.isPending ? "Importing…" : "Import"}</button>
      </div>
      <ErrorMessage error={errorText(imp.error)} />
    </section>
  );
}
