import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import type { FeatureSort, FeatureSummary } from "../../api/types";
import { SaePicker } from "../../components/SaePicker";
import { ErrorMessage, Loading } from "../../components/Status";
import { AnalysisPanel } from "./AnalysisPanel";
import { ExplainPanel } from "./ExplainPanel";
import { ExplanationErrorMark, Score, SCORE_HELP } from "./scores";
import { EvalsPanel } from "./EvalsPanel";
import { SaeTransfer } from "./SaeTransfer";
import { fmt } from "../../charts/useWidth";
import { useFeatureList } from "./useFeatureList";
import { VirtualTable, type Column } from "./VirtualTable";
import { TokenChips } from "../../components/TokenChips";

type SortKey = "index" | "label" | "density" | "max_activation" | "consistency" | "detection" | "fuzzing";

function isTyping(t: EventTarget | null) {
  const el = t as HTMLElement | null;
  return !!el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
}

export function FeaturesPage() {
  const { saeId } = useParams();
  const nav = useNavigate();
  // default: features whose top contexts agree on one non-whitespace token first (whitespace features sink), see
  // FeatureSummary.consistency; ties: the commoner first
  const [sortKey, setSortKey] = useState<SortKey>("consistency");
  const [desc, setDesc] = useState(true);
  const [search, setSearch] = useState("");
  const [q, setQ] = useState("");
  const [minDensity, setMinDensity] = useState("");
  const [maxDensity, setMaxDensity] = useState("");
  const [starredOnly, setStarredOnly] = useState(false);
  const [hideDead, setHideDead] = useState(false);
  const [hideDegenerate, setHideDegenerate] = useState(true);
  const [selected, setSelected] = useState(0);
  const searchRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const t = setTimeout(() => setQ(search.trim()), 300);
    return () => clearTimeout(t);
  }, [search]);

  const sort = `${desc ? "-" : ""}${sortKey}` as FeatureSort;
  // reloads (reconnect, finished analysis, label edits) come through the query cache
  const list = useFeatureList(saeId, sort, q, hideDegenerate);

  const rows = useMemo(() => {
    const lo = minDensity === "" ? -Infinity : Number(minDensity);
    const hi = maxDensity === "" ? Infinity : Number(maxDensity);
    return list.rows.filter(
      (r) => {
        const d = r.density ?? 0;
        return d >= lo && d <= hi && (!starredOnly || r.starred) && (!hideDead || d > 0);
      },
    );
  }, [list.rows, minDensity, maxDensity, starredOnly, hideDead]);

  const shownIndices = useMemo(() => rows.map((r) => r.index), [rows]);

  useEffect(() => setSelected(0), [saeId, sort, q, minDensity, maxDensity, starredOnly, hideDead, hideDegenerate]);

  const open = (r: FeatureSummary) => saeId && nav(`/features/${encodeURIComponent(saeId)}/${r.index}`);

  // one listener for the page's lifetime; it reads the latest rows/selection through refs
  const live = useRef({ rows, selected, open });
  live.current = { rows, selected, open };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "/" && !isTyping(e.target)) {
        e.preventDefault();
        searchRef.current?.focus();
        return;
      }
      if (isTyping(e.target)) {
        if (e.key === "Escape") (e.target as HTMLElement).blur();
        return;
      }
      const { rows: rs, selected: sel, open: go } = live.current;
      if (e.key === "j") setSelected((s) => Math.max(0, Math.min(rs.length - 1, s + 1)));
      else if (e.key === "k") setSelected((s) => Math.max(0, s - 1));
      else if (e.key === "Enter" && rs[sel]) go(rs[sel]);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const sortHeader = (key: SortKey, label: string) => (
    <button
      type="button"
      className="th-sort"
      onClick={() => {
        if (sortKey === key) setDesc((d) => !d);
        else {
          setSortKey(key);
          setDesc(key !== "index" && key !== "label");
        }
      }}
    >
      {label}
      {sortKey === key ? (desc ? " ▼" : " ▲") : ""}
    </button>
  );
  const ariaSort = (key: SortKey) => (sortKey === key ? (desc ? "descending" : "ascending") : "none");
  const columns: Column<FeatureSummary>[] = [
    { key: "index", header: sortHeader("index", "#"), width: "5%", ariaSort: ariaSort("index"),
      render: (r) => <Link to={`/features/${encodeURIComponent(saeId!)}/${r.index}`}>{r.index}</Link> },
    { key: "label", header: sortHeader("label", "Label"), width: "16%", ariaSort: ariaSort("label"),
      render: (r) => <span className="cell-clip" title={r.label}>{r.starred ? "★ " : ""}{r.label}</span> },
    { key: "explanation", header: "Explanation", width: "24%",
      render: (r) => (
        <span className="cell-clip" data-testid="explanation-cell">
          <ExplanationErrorMark error={r.explanation_error} kind={r.explanation_error_kind} />
          {r.explanation_error && " "}
          {r.explanation ? <span title={r.explanation}>{r.explanation}</span> : !r.explanation_error && <span className="muted">—</span>}
        </span>
      ) },
    { key: "detection", header: <span title={SCORE_HELP.detection}>{sortHeader("detection", "Detect.")}</span>, width: "8%",
      ariaSort: ariaSort("detection"), render: (r) => <Score kind="detection" value={r.detection} /> },
    { key: "fuzzing", header: <span title={SCORE_HELP.fuzzing}>{sortHeader("fuzzing", "Fuzz.")}</span>, width: "7%",
      ariaSort: ariaSort("fuzzing"), render: (r) => <Score kind="fuzzing" value={r.fuzzing} /> },
    { key: "consistency", header: sortHeader("consistency", "Consistency"), width: "9%", ariaSort: ariaSort("consistency"),
      render: (r) => <span title="how much the top contexts agree on a non-whitespace peak token (1: all on one word)">{fmt(r.consistency, 2)}</span> },
    { key: "density", header: sortHeader("density", "Density"), width: "7%", ariaSort: ariaSort("density"), render: (r) => fmt(r.density) },
    { key: "max", header: sortHeader("max_activation", "Max act."), width: "7%", ariaSort: ariaSort("max_activation"),
      render: (r) => fmt(r.max_activation) },
    { key: "tokens", header: "Top tokens", render: (r) => <TokenChips tokens={r.top_tokens ?? []} /> },
  ];

  return (
    <div className="page features-page">
      <h1>Features</h1>
      <SaePicker value={saeId} onChange={(id) => nav(`/features/${encodeURIComponent(id)}`)} />
      <SaeTransfer saeId={saeId} onImported={(sae) => nav(`/features/${encodeURIComponent(sae.id)}`)} />
      {saeId && (
        <>
          <AnalysisPanel saeId={saeId} />
          <ExplainPanel saeId={saeId} shown={shownIndices} selected={rows[selected]?.index ?? null} />
          <EvalsPanel saeId={saeId} />
          <p className="small"><Link to={`/map/${encodeURIComponent(saeId)}`}>Feature map of this SAE</Link></p>
          <div className="toolbar" role="search">
            <div className="field">
              <label htmlFor="f-search">Search (label, token or explanation) <kbd>/</kbd></label>
              <input id="f-search" ref={searchRef} type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
            </div>
            <div className="field">
              <label htmlFor="f-min">Min density</label>
              <input id="f-min" type="number" step="any" min={0} max={1} value={minDensity} onChange={(e) => setMinDensity(e.target.value)} />
            </div>
            <div className="field">
              <label htmlFor="f-max">Max density</label>
              <input id="f-max" type="number" step="any" min={0} max={1} value={maxDensity} onChange={(e) => setMaxDensity(e.target.value)} />
            </div>
            <label className="check"><input type="checkbox" checked={starredOnly} onChange={(e) => setStarredOnly(e.target.checked)} /> Starred only</label>
            <label className="check"><input type="checkbox" checked={hideDead} onChange={(e) => setHideDead(e.target.checked)} /> Hide dead</label>
            <label className="check" title="Features with at least half of their top contexts peaking on whitespace (special tokens and position 0 are never peaks)">
              <input type="checkbox" checked={hideDegenerate} onChange={(e) => setHideDegenerate(e.target.checked)} /> Hide whitespace features
            </label>
          </div>
          <p className="muted small" data-testid="feature-count">
            {rows.length.toLocaleString()} shown{list.total != null ? ` of ${list.total.toLocaleString()}` : ""}
            {list.loading ? " (loading…)" : ""} · <kbd>j</kbd>/<kbd>k</kbd> move, <kbd>Enter</kbd> opens
          </p>
          <ErrorMessage error={list.error} onRetry={list.retry} />
          {list.loading && list.rows.length === 0 ? (
            <Loading what="Loading features" />
          ) : (
            <VirtualTable rows={rows} columns={columns} rowKey={(r) => r.index} selected={selected}
              onSelect={setSelected} onOpen={open} label="Features" />
          )}
        </>
      )}
    </div>
  );
}
