import { useEffect, useState } from "react";
import { errorText } from "../../api/errors";
import { useUpdateFeature } from "../../api/mutations";
import type { FeatureDetail, FeatureUpdate } from "../../api/types";
import { ErrorMessage } from "../../components/Status";

/** Editable label, notes and star (PATCH /api/saes/{id}/features/{index}; the cached feature takes the answer). */
export function FeatureEditor({ saeId, f }: { saeId: string; f: FeatureDetail }) {
  const [label, setLabel] = useState(f.label);
  const [notes, setNotes] = useState(f.notes ?? "");
  const save = useUpdateFeature(saeId);
  useEffect(() => {
    setLabel(f.label);
    setNotes(f.notes ?? "");
  }, [f.index, f.label, f.notes]);
  const dirty = label !== f.label || notes !== (f.notes ?? "");
  const patch = (body: FeatureUpdate) => save.mutate({ index: f.index, body });
  return (
    <form className="card feature-editor" aria-label="Label and notes" onSubmit={(e) => { e.preventDefault(); patch({ label, notes }); }}>
      <div className="row">
        <div className="field grow">
          <label htmlFor="feat-label">Label</label>
          <input id="feat-label" value={label} onChange={(e) => setLabel(e.target.value)} />
        </div>
        <button type="button" aria-pressed={!!f.starred} onClick={() => patch({ starred: !f.starred })} disabled={save.isPending}
          title={f.starred ? "Unstar" : "Star"}>
          {f.starred ? "★ Starred" : "☆ Star"}
        </button>
      </div>
      <label htmlFor="feat-notes">Notes</label>
      <textarea id="feat-notes" rows={3} value={notes} onChange={(e) => setNotes(e.target.value)} />
      <button type="submit" disabled={!dirty || save.isPending}>{save.isPending ? "Saving…" : "Save"}</button>
      <ErrorMessage error={errorText(save.error)} />
    </form>
  );
}
