import { useCallback, useEffect, useRef, type ReactNode } from "react";
import { observeElementRect, useVirtualizer, type Rect, type Virtualizer } from "@tanstack/react-virtual";

export interface Column<T> {
  key: string;
  header: ReactNode;
  width?: string;
  render: (row: T) => ReactNode;
  /** header cell extra props (sorting buttons live in `header`) */
  ariaSort?: "ascending" | "descending" | "none";
}

interface Props<T> {
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string | number;
  rowHeight?: number;
  height?: number;
  selected: number;
  onSelect: (i: number) => void;
  onOpen: (row: T) => void;
  label: string;
  overscan?: number;
}

/**
 * Fixed-row-height virtualised table (TanStack Virtual): only the visible rows (+ overscan) are in the DOM, with
 * spacer rows above and below standing in for the rest, so the scrollbar covers the whole list. The header row
 * is sticky inside the scroller and as tall as a row: the rows start below it, and scrolling to a row keeps it
 * clear of the header.
 */
export function VirtualTable<T>({
  rows, columns, rowKey, rowHeight = 32, height = 520, selected, onSelect, onOpen, label, overscan = 8,
}: Props<T>) {
  const scroller = useRef<HTMLDivElement>(null);
  // The scroller's height is fixed by its style; where layout reports none (jsdom, a hidden tab) use that height.
  const observeRect = useCallback(
    (instance: Virtualizer<HTMLDivElement, Element>, cb: (rect: Rect) => void) =>
      observeElementRect(instance, (rect) => cb(rect.height > 0 ? rect : { ...rect, height })),
    [height],
  );
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => rowHeight,
    overscan,
    paddingStart: rowHeight,
    scrollPaddingStart: rowHeight,
    initialRect: { width: 0, height },
    observeElementRect: observeRect,
    useFlushSync: false,
  });

  // keep the keyboard selection in view (an empty list has nothing to scroll to)
  useEffect(() => {
    if (selected >= 0) virtualizer.scrollToIndex(selected, { align: "auto" });
  }, [selected, virtualizer]);

  const items = virtualizer.getVirtualItems();
  const top = items.length ? items[0].start - rowHeight : 0;
  const bottom = items.length ? virtualizer.getTotalSize() - items[items.length - 1].end : 0;

  return (
    <div ref={scroller} className="vtable" style={{ height, overflowY: "auto" }} data-testid="vtable">
      <table className="table" aria-label={label} aria-rowcount={rows.length + 1}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.key} scope="col" style={{ width: c.width }} aria-sort={c.ariaSort}>
                {c.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {top > 0 && <tr aria-hidden="true" style={{ height: top }} />}
          {items.map(({ index: i }) => {
            const row = rows[i];
            return (
              <tr
                key={rowKey(row)}
                aria-rowindex={i + 2}
                aria-selected={i === selected}
                className={i === selected ? "selected" : undefined}
                style={{ height: rowHeight }}
                onClick={() => onSelect(i)}
                onDoubleClick={() => onOpen(row)}
                data-testid="feature-row"
              >
                {columns.map((c) => (
                  <td key={c.key}>{c.render(row)}</td>
                ))}
              </tr>
            );
          })}
          {bottom > 0 && <tr aria-hidden="true" style={{ height: bottom }} />}
        </tbody>
      </table>
    </div>
  );
}
