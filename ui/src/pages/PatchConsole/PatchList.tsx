import { useEffect, useRef, useState } from "react";
import { errorText } from "../../api/errors";
import { useDeletePatch, useExportPatch, useImportPatch, useUpdatePatch } from "../../api/mutations";
import type { Patch } from "../../api/types";
import { useSocket } from "../../ws/context";
import { ErrorMessage } from "../../components/Status";

export const RANGE: Record<Patch["mode"], [number, number, number]> = {
  ablate: [0, 1, 0.01],
  scale: [-2, 4, 0.05],
  steer: [-40, 40, 0.5],
  clamp: [0, 40, 0.5],
  adapter: [0, 2, 0.05],
};

/**
 * One patch: enable toggle, live strength slider (WS set_strength; persisted by PATCH when idle), export, delete.
 * Each answer updates the cached patch list; the row shows the error of the last action it started.
 */
function PatchRow({ p }: { p: Patch }) {
  const socket = useSocket();
  const update = useUpdatePatch();
  const remove = useDeletePatch();
  const exp = useExportPatch();
  const ops = [update, remove, exp];
  const busy = ops.some((o) => o.isPending);
  const error = errorText(ops.find((o) => o.error)?.error);
  const clearErrors = () => ops.forEach((o) => o.reset());
  const [strength, setStrength] = useState(p.strength);
  const persist = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => setStrength(p.strength), [p.strength]);
  useEffect(() => () => { if (persist.current) clearTimeout(persist.current); }, []);
  const [lo, hi, step] = RANGE[p.mode];

  const move = (v: number) => {
    setStrength(v);
    socket.send({ type: "set_strength", patch_id: p.id, strength: v });
    if (persist.current) clearTimeout(persist.current);
    persist.current = setTimeout(() => {
      clearErrors();
      update.mutate({ id: p.id, body: { strength: v } });
    }, 500);
  };
  const id = `strength-${p.id}`;
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
      <span className="muted small">
        {p.mode}{p.features.length ? ` · features ${p.features.join(", ")}` : ""} · {p.hook_name} · rank {p.rank}
        {p.applied ? "" : " · not applied"}
      </span>
      {p.apply_error && <ErrorMessage error={`Not applied: ${p.apply_error}`} />}
      <div className="row">
        <label htmlFor={id}>Strength</label>
        <input id={id} type="range" min={Math.min(lo, strength)} max={Math.max(hi, strength)} step={step} value={strength}
          onChange={(e) => move(Number(e.target.value))} data-testid="strength-slider" />
        <input type="number" aria-label={`Strength of ${p.name}`} step="any" value={strength} className="num"
          onChange={(e) => move(Number(e.target.value))} />
      </div>
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
export function PatchList({ patches }: { patches: Patch[] }) {
  const imp = useImportPatch();
  const file = useRef<HTMLInputElement>(null);
  return (
    <section className="card" aria-labelledby="patches-h">
      <h2 id="patches-h">Patches</h2>
      {patches.length === 0 ? <p className="muted">No patches yet.</p> : (
        <ul className="patch-list">
          {patches.map((p) => <PatchRow key={p.id} p={p} />)}
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
