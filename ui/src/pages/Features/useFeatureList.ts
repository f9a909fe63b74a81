import { useEffect, useState } from "react";
import { api } from "../../api/endpoints";
import { errorMessage } from "../../api/errors";
import type { FeatureSort, FeatureSummary } from "../../api/types";

/** the server caps a page at 500 */
export const PAGE = 500;

/**
 * All features of an SAE for one (sort, q), fetched page by page (GET .../features?offset&limit&sort&q);
 * the first page shows at once, the rest stream in. Client-side filters then work on the whole list.
 */
export function useFeatureList(saeId: string | undefined, sort: FeatureSort, q: string, tick: number) {
  const [rows, setRows] = useState<FeatureSummary[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!saeId) return;
    const ctrl = new AbortController();
    setLoading(true);
    setError(null);
    setRows([]);
    setTotal(null);
    (async () => {
      let offset = 0;
      let acc: FeatureSummary[] = [];
      for (;;) {
        const page = await api.listFeatures(saeId, { offset, limit: PAGE, sort, q: q || undefined }, ctrl.signal);
        if (ctrl.signal.aborted) return;
        acc = acc.concat(page.items);
        setRows(acc);
        setTotal(page.total);
        offset += page.items.length;
        if (page.items.length === 0 || offset >= page.total) break;
      }
      setLoading(false);
    })().catch((e) => {
      if (ctrl.signal.aborted) return;
      setError(errorMessage(e));
      setLoading(false);
    });
    return () => ctrl.abort();
  }, [saeId, sort, q, tick]);

  return { rows, total, loading, error };
}
