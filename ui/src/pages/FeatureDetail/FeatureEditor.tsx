import { useEffect, useState } from "react";
import { api } from "../../api/endpoints";
import { useAction } from "../../api/useAsync";
import type { FeatureDetail } from "../../api/types";
import { ErrorMessage } from "../../components/Status";

/** Editable label, notes and star (PATCH /api/saes/{id}/features/{index}). */
export function FeatureEditor({ saeId, f, onSaved }: { saeId: string; f: FeatureDetail; onSaved: (f: FeatureDetail) => void }) {
  const [label, setLabel] = useState(f.label);
  const [notes, setNotes] = useState(f.notes ?? "");
  const save = useAction();
  useEffect(() => {
    setLabel(f.label);
    setNotes(f.notes ?? "");
  }, [f.index, f.label, f.notes]);
  const dirty = label !== f.label || notes !== (f.notes ?? "");
  const patch = async (body: { label?: string; notes?: string; starred?: boolean }) => {
    const r = await save.run(() => api.updateFeature(saeId, f.index, body));
    if (r) onSaved(r);
  };
  return (
    <form className="card feature-editor" aria-label="Label and notes" onSubmit={(e) => { e.preventDefault(); patch({ label, notes }); }}>
      <div className="row">
        <div className="field grow">
          <label htmlFor="feat-label">Label</label>
          <input id="feat-label" value={label} onChange={(e) => setLabel(e.target.value)} />
        </div>
        <button type="button" aria-pressed={!!f.starred} onClick={() => patch({ starred: !f.starred })} disabled={save.busy}
          title={f.starred ? "Unstar" : "Star"}>
          {f.starred ? "★ Starred" : "☆ Star"}
        </button>
      </div>
      <label htmlFor="feat-notes">Notes</label>
      <textarea id="feat-notes" rows={3} value={notes} onChange={(e) => setNotes(e.target.value)} />
      <button type="submit" disabled={!dirty || save.busy}>{save.busy ? "Saving…" : "Save"}</button>
      <ErrorMessage error={save.error} />
    </form>
  );
}
