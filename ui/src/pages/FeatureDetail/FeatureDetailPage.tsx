import { useState } from "react";
import { Link, useParams } from "react-router";
import { useFeature } from "../../api/queries";
import type { Context, FeatureDetail, Neighbour } from "../../api/types";
import { AsyncBlock } from "../../components/Status";
import { TokenHighlight } from "../../charts/TokenHighlight/TokenHighlight";
import { Histogram } from "../../charts/Histogram/Histogram";
import { SignedBars } from "../../charts/LogitBars/LogitBars";
import { fmt } from "../../charts/useWidth";
import { ExplanationSection } from "./ExplanationSection";
import { FeatureEditor } from "./FeatureEditor";
import { TokenCloud } from "./TokenCloud";
import { TryText } from "./TryText";
import { UpstreamSaes } from "../../components/UpstreamSaes";

export function FeatureDetailPage() {
  const { saeId = "", index = "" } = useParams();
  const idx = Number(index);
  const feature = useFeature(saeId, idx);
  return (
    <div className="page feature-detail">
      <p><Link to={`/features/${encodeURIComponent(saeId)}`}>← All features</Link></p>
      <AsyncBlock query={feature} what="Loading feature">
        {(f) => <Detail saeId={saeId} f={f} />}
      </AsyncBlock>
    </div>
  );
}

function Detail({ saeId, f }: { saeId: string; f: FeatureDetail }) {
  const [hl, setHl] = useState<string | null>(null);
  const highlight = hl ? new Set([hl]) : undefined;
  const q = `sae=${encodeURIComponent(saeId)}`;
  return (
    <>
      <h1>
        Feature {f.index} <span className="muted">— {f.label || "unlabelled"}</span>
        {f.starred && <span aria-label="starred"> ★</span>}
      </h1>
      <p className="stats" data-testid="feature-stats">
        <span>density {fmt(f.density)}</span>
        <span>max {fmt(f.max_activation)}</span>
        {f.mean_activation != null && <span>mean {fmt(f.mean_activation)}</span>}
        <Link to={`/patches?${q}&features=${f.index}`}>Patch this feature →</Link>
        <Link to={`/provenance?${q}&feature=${f.index}`}>Provenance →</Link>
      </p>
      {!f.analysed && (
        <p className="muted" data-testid="not-analysed">
          This SAE has not been analysed yet: contexts, histograms and neighbours appear after the feature analysis
          (start it on the <Link to={`/features/${encodeURIComponent(saeId)}`}>features page</Link>).
        </p>
      )}
      <FeatureEditor saeId={saeId} f={f} />
      {f.analysed && <ExplanationSection saeId={saeId} f={f} />}
      <section className="card" aria-labelledby="up-h">
        <h2 id="up-h">Provenance</h2>
        <UpstreamSaes saeId={saeId} depth={2} />
      </section>
      <div className="two-col">
        <section className="card" aria-labelledby="ctx-h">
          <h2 id="ctx-h">Top contexts</h2>
          <Contexts items={f.top_contexts} max={f.max_activation ?? 0} highlight={highlight} />
          <h2>Quantile examples</h2>
          {f.quantiles.length === 0 && <p className="muted">None.</p>}
          {f.quantiles.map((b) => (
            <details key={b.label}>
              <summary>{b.label} ({b.examples.length})</summary>
              <Contexts items={b.examples} max={f.max_activation ?? 0} highlight={highlight} />
            </details>
          ))}
        </section>
        <div>
          <section className="card" aria-labelledby="cloud-h">
            <h2 id="cloud-h">Tokens it fires on</h2>
            <TokenCloud contexts={f.top_contexts} onHover={setHl} />
          </section>
          <section className="card">
            <Histogram title="Activation histogram" edges={f.histogram.edges} counts={f.histogram.counts} xLabel="activation" logY />
            {f.logit_histogram && (
              <Histogram title="Logit-weight histogram" edges={f.logit_histogram.edges} counts={f.logit_histogram.counts} color="#9333ea" />
            )}
          </section>
          <section className="card">
            <SignedBars title="Logit effects (top ±)" positive={f.top_positive_logits} negative={f.top_negative_logits} />
          </section>
          <section className="card">
            <NeighbourList title="Neighbours (decoder cosine)" saeId={saeId} items={f.neighbours} />
            {f.coactive && <NeighbourList title="Co-active" saeId={saeId} items={f.coactive} />}
          </section>
        </div>
      </div>
      <TryText saeId={saeId} index={f.index} maxActivation={f.max_activation ?? 0} />
    </>
  );
}

function Contexts({ items, max, highlight }: { items: Context[]; max: number; highlight?: ReadonlySet<string> }) {
  return (
    <ol className="contexts">
      {items.map((c, i) => (
        <li key={i}>
          <TokenHighlight tokens={c.tokens} activations={c.activations} max={max || undefined} highlight={highlight} />
        </li>
      ))}
    </ol>
  );
}

function NeighbourList({ title, saeId, items }: { title: string; saeId: string; items: Neighbour[] }) {
  return (
    <>
      <h2>{title}</h2>
      {items.length === 0 ? <p className="muted">None.</p> : (
        <ul className="neighbours">
          {items.map((n) => (
            <li key={n.index}>
              <Link to={`/features/${encodeURIComponent(saeId)}/${n.index}`}>#{n.index}</Link> {n.label}{" "}
              <span className="muted">{fmt(n.score)}</span>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
