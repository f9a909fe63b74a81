import { useEffect, useRef, useState, type ReactNode } from "react";

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

/** Fixed-row-height virtualised table: only the visible rows (+ overscan) are in the DOM. */
export function VirtualTable<T>({
  rows, columns, rowKey, rowHeight = 32, height = 520, selected, onSelect, onOpen, label, overscan = 8,
}: Props<T>) {
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const start = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const end = Math.min(rows.length, Math.ceil((scrollTop + height) / rowHeight) + overscan);

  // keep the keyboard selection in view
  useEffect(() => {
    const el = scroller.current;
    if (!el || selected < 0) return;
    const top = selected * rowHeight;
    const header = rowHeight;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + rowHeight + header > el.scrollTop + height) el.scrollTop = top + rowHeight + header - height;
    setScrollTop(el.scrollTop);
  }, [selected, rowHeight, height]);

  return (
    <div
      ref={scroller}
      className="vtable"
      style={{ height, overflowY: "auto" }}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      data-testid="vtable"
    >
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
          {start > 0 && <tr aria-hidden="true" style={{ height: start * rowHeight }} />}
          {rows.slice(start, end).map((row, j) => {
            const i = start + j;
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
          {end < rows.length && <tr aria-hidden="true" style={{ height: (rows.length - end) * rowHeight }} />}
        </tbody>
      </table>
    </div>
  );
}
