import { useEffect, useMemo } from "react";
import { errorText } from "../../api/errors";
import { useFeaturePages } from "../../api/queries";
import type { FeatureSort, FeatureSummary } from "../../api/types";

export interface FeatureList {
  /** every feature loaded so far, in the server's order */
  rows: FeatureSummary[];
  /** how many features match (sort, q) on the server; null before the first page */
  total: number | null;
  /** true until every page is in (or a page failed) */
  loading: boolean;
  error: string | null;
  /** load again from the first page (after an error) */
  retry: () => void;
}

/**
 * All features of an SAE for one (sort, q): the infinite query of useFeaturePages, its pages fetched one after
 * the other until `total`; the first page shows at once, the rest stream in. Client-side filters then work on
 * the whole list. The cache keeps it per (SAE, sort, q); a finished analysis or a label edit invalidates it.
 */
export function useFeatureList(saeId: string | undefined, sort: FeatureSort, q: string, hideDegenerate = false): FeatureList {
  const query = useFeaturePages(saeId, sort, q, hideDegenerate);
  const { data, error, hasNextPage, isError, isFetching, isPending, fetchNextPage, refetch } = query;

  // One page at a time; a failed page stops the stream until retry. The page count is a dependency because a
  // fast page can come back inside one render batch, so that isFetching never reads true in between.
  const pageCount = data?.pages.length ?? 0;
  useEffect(() => {
    if (hasNextPage && !isFetching && !isError) void fetchNextPage({ cancelRefetch: false });
  }, [pageCount, hasNextPage, isFetching, isError, fetchNextPage]);

  const rows = useMemo(() => data?.pages.flatMap((p) => p.items) ?? [], [data]);
  const pages = data?.pages ?? [];
  return {
    rows,
    total: pages.length ? pages[pages.length - 1].total : null,
    loading: !!saeId && !isError && (isPending || hasNextPage || isFetching),
    error: errorText(error),
    retry: () => void refetch(),
  };
}
