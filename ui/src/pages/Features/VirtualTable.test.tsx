import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { VirtualTable, type Column } from "./VirtualTable";

interface Row {
  i: number;
}
const N = 10_000;
const ROW = 32;
const rows: Row[] = Array.from({ length: N }, (_, i) => ({ i }));
const columns: Column<Row>[] = [{ key: "i", header: "#", render: (r) => `row ${r.i}` }];

// jsdom has no layout and no Element.scrollTo: scrolling sets scrollTop and fires the scroll event, as a browser does
const scrollTo = function (this: Element, opts: ScrollToOptions) {
  if (opts.top != null) this.scrollTop = opts.top;
  this.dispatchEvent(new Event("scroll"));
};

function table(selected = 0) {
  return (
    <VirtualTable rows={rows} columns={columns} rowKey={(r) => r.i} rowHeight={ROW} height={520} selected={selected}
      onSelect={() => {}} onOpen={() => {}} label="Long list" />
  );
}

const shown = () => screen.getAllByTestId("feature-row").map((r) => Number(r.getAttribute("aria-rowindex")) - 2);
/** spacer rows (aria-hidden) plus rendered rows: the height the scrollbar covers below the header */
const bodyHeight = (el: HTMLElement) =>
  [...el.querySelectorAll("tbody tr")].reduce((s, tr) => s + parseFloat((tr as HTMLElement).style.height), 0);

beforeAll(() => {
  (Element.prototype as unknown as { scrollTo: unknown }).scrollTo = scrollTo;
});
afterAll(() => {
  delete (Element.prototype as unknown as { scrollTo?: unknown }).scrollTo;
});

describe("VirtualTable", () => {
  it("renders only a window of a long list, with spacers standing in for the rest", () => {
    const { container } = render(table());
    const idx = shown();
    // 520 px of 32 px rows (~17) plus overscan, never thousands
    expect(idx.length).toBeGreaterThan(10);
    expect(idx.length).toBeLessThan(40);
    expect(idx[0]).toBe(0);
    expect(idx).toEqual(idx.map((_, k) => k));
    expect(screen.getByRole("table", { name: "Long list" })).toHaveAttribute("aria-rowcount", String(N + 1));
    expect(bodyHeight(container)).toBe(N * ROW);
  });

  it("moves the window when the scroller scrolls", async () => {
    const { container } = render(table());
    const scroller = screen.getByTestId("vtable");
    scroller.scrollTop = 5000 * ROW;
    fireEvent.scroll(scroller);
    await waitFor(() => expect(shown()).toContain(5000));
    const idx = shown();
    expect(idx).not.toContain(0);
    expect(idx.length).toBeLessThan(40);
    expect(bodyHeight(container)).toBe(N * ROW);
  });

  it("scrolls a selected row far down the list into view", async () => {
    const { rerender } = render(table(0));
    // the scroll range a browser would lay out: header plus every row, seen through 520 px
    const scroller = screen.getByTestId("vtable");
    Object.defineProperty(scroller, "scrollHeight", { configurable: true, value: ROW + N * ROW });
    Object.defineProperty(scroller, "clientHeight", { configurable: true, value: 520 });
    rerender(table(9000));
    await waitFor(() => expect(shown()).toContain(9000));
    const row = screen.getAllByTestId("feature-row").find((r) => r.getAttribute("aria-rowindex") === "9002")!;
    expect(row).toHaveAttribute("aria-selected", "true");
    expect(row).toHaveTextContent("row 9000");
    // the row lies inside the viewport, below the sticky header
    const rowTop = ROW + 9000 * ROW;
    expect(scroller.scrollTop + ROW).toBeLessThanOrEqual(rowTop);
    expect(scroller.scrollTop + 520).toBeGreaterThanOrEqual(rowTop + ROW);
  });
});
