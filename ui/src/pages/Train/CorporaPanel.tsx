import { useRef, useState } from "react";
import { errorText } from "../../api/errors";
import { useRegisterCorpus, useUploadCorpusTracked } from "../../api/mutations";
import { useCorpora } from "../../api/queries";
import type { Corpus } from "../../api/types";
import type { UploadProgress } from "../../api/upload";
import { ErrorMessage, Loading, ProgressBar, formatBytes } from "../../components/Status";

/**
 * Training corpora: upload a file (with the bytes sent so far: XMLHttpRequest, since fetch reports no upload
 * progress), register a path on the server or a cached hub dataset, and the list with each corpus's state.
 * A counting corpus follows the `job` events (kind corpus_count) that socketSync.ts writes into the cached list.
 */
export function CorporaPanel({ onUploaded }: { onUploaded?: (corpusId: string) => void }) {
  const corpora = useCorpora();
  const upload = useUploadCorpusTracked();
  const register = useRegisterCorpus();
  const fileRef = useRef<HTMLInputElement>(null);
  const [sent, setSent] = useState<UploadProgress | null>(null);
  const [path, setPath] = useState("");
  const [textField, setTextField] = useState("text");

  const onUpload = () => {
    const file = fileRef.current?.files?.[0];
    if (!file) return;
    setSent({ loaded: 0, total: file.size });
    upload.mutate(
      { file, onProgress: setSent },
      {
        onSuccess: (c) => {
          if (fileRef.current) fileRef.current.value = "";
          onUploaded?.(c.id);
        },
        onSettled: () => setSent(null),
      },
    );
  };

  const onRegister = (e: React.FormEvent) => {
    e.preventDefault();
    const p = path.trim();
    if (!p) return;
    const body = p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) ? { path: p } : { hub: p };
    register.mutate({ ...body, text_field: textField.trim() || "text" }, { onSuccess: () => setPath("") });
  };

  return (
    <section className="card" aria-labelledby="corpora-h" data-testid="corpora">
      <h2 id="corpora-h">Corpora</h2>
      <div className="row">
        <label htmlFor="c-upload">Upload (.txt, .jsonl, .jsonl.gz, .jsonl.zst, .parquet)</label>
        <input id="c-upload" ref={fileRef} type="file" accept=".txt,.jsonl,.gz,.zst,.parquet" />
        <button type="button" onClick={onUpload} disabled={upload.isPending}>
          {upload.isPending ? "Uploading…" : "Upload"}
        </button>
      </div>
      {sent && (
        <div data-testid="upload-progress">
          <ProgressBar value={sent.total ? sent.loaded / sent.total : null} label="Upload progress" />
          <span className="small muted">
            {formatBytes(sent.loaded)} / {formatBytes(sent.total)} sent
          </span>
        </div>
      )}
      <ErrorMessage error={errorText(upload.error)} />
      <form className="row" onSubmit={onRegister} aria-label="Register a corpus">
        <label htmlFor="c-path">Path on the server or hub dataset id</label>
        <input id="c-path" value={path} onChange={(e) => setPath(e.target.value)}
          placeholder="/data/corpus.parquet or owner/name (from the local cache)" />
        <label htmlFor="c-field">Text field</label>
        <input id="c-field" value={textField} onChange={(e) => setTextField(e.target.value)} size={8} />
        <button type="submit" disabled={register.isPending || !path.trim()}>
          {register.isPending ? "Registering…" : "Register"}
        </button>
      </form>
      <ErrorMessage error={errorText(register.error)} />
      <ErrorMessage error={errorText(corpora.error)} onRetry={() => void corpora.refetch()} />
      {corpora.data ? <CorpusTable corpora={corpora.data} /> : corpora.isPending && <Loading what="Loading corpora" />}
    </section>
  );
}

function CorpusTable({ corpora }: { corpora: Corpus[] }) {
  if (corpora.length === 0) return <p>No corpora yet.</p>;
  return (
    <table className="table" aria-label="Corpora">
      <thead>
        <tr>
          <th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Format</th><th scope="col">Size</th>
          <th scope="col">Status</th><th scope="col">Documents</th><th scope="col">Tokens</th>
        </tr>
      </thead>
      <tbody>
        {corpora.map((c) => (
          <tr key={c.id} data-testid="corpus-row" data-corpus={c.id} data-status={c.status ?? "ready"}>
            <td title={c.id}>{c.name}</td>
            <td>{c.kind ?? "upload"}</td>
            <td>{c.format ?? "—"}</td>
            <td>{formatBytes(c.size_bytes)}</td>
            <td><CorpusStatus c={c} /></td>
            <td>{c.n_docs != null ? c.n_docs.toLocaleString() : "—"}</td>
            <td>{c.n_tokens != null ? c.n_tokens.toLocaleString() : "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function CorpusStatus({ c }: { c: Corpus }) {
  const status = c.status ?? "ready";
  if (status === "failed") return <span className="bad" data-testid="corpus-error">failed: {c.error ?? "unreadable"}</span>;
  if (status === "ready") return <span className="badge badge-done">ready</span>;
  const p = c.progress;
  const frac = p && p.bytes_total > 0 ? p.bytes_done / p.bytes_total : null;
  return (
    <span data-testid="corpus-counting">
      <ProgressBar value={frac} label={`Counting ${c.name}`} />
      <span className="small muted">
        counting{frac != null ? ` ${Math.round(frac * 100)}%` : "…"}
        {p ? ` · ${p.tokens.toLocaleString()} tokens in ${p.documents.toLocaleString()} docs` : ""}
      </span>
    </span>
  );
}
