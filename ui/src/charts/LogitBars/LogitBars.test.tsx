import { render, screen } from "@testing-library/react";
import { compareRows, LogitBars, SignedBars } from "./LogitBars";
import { original, patched } from "./fixtures";

describe("compareRows", () => {
  it("merges both lists by token id", () => {
    expect(compareRows(original, patched)).toEqual([
      { token: " Paris", original: 0.6, patched: null },
      { token: " Lyon", original: 0.2, patched: 0.5 },
      { token: " Rome", original: null, patched: 0.3 },
    ]);
  });
});

describe("LogitBars", () => {
  it("draws original and patched bars side by side, scaled to the max", () => {
    render(<LogitBars original={original} patched={patched} />);
    expect(screen.getAllByTestId("logit-row")).toHaveLength(3);
    const o = screen.getAllByTestId("bar-original").map((b) => Number(b.getAttribute("width")));
    const p = screen.getAllByTestId("bar-patched").map((b) => Number(b.getAttribute("width")));
    expect(o).toHaveLength(2);
    expect(p).toHaveLength(2);
    expect(o[1] / o[0]).toBeCloseTo(0.2 / 0.6, 5);
    expect(p[0] / o[0]).toBeCloseTo(0.5 / 0.6, 5);
    expect(screen.getAllByText("not in top-k")).toHaveLength(2);
  });

  it("updates when patched values change", () => {
    const { rerender } = render(<LogitBars original={original} patched={patched} />);
    const before = screen.getAllByTestId("bar-patched")[0].getAttribute("width");
    rerender(<LogitBars original={original} patched={[{ ...patched[0], prob: 0.1 }]} />);
    expect(screen.getAllByTestId("bar-patched")[0].getAttribute("width")).not.toBe(before);
  });

  it("shows an empty state", () => {
    render(<LogitBars original={[]} patched={[]} />);
    expect(screen.getByText("No logits yet")).toBeInTheDocument();
  });
});

describe("SignedBars", () => {
  it("puts positive bars right of zero and negative left", () => {
    const { container } = render(
      <SignedBars title="Logits" positive={[{ token: "a", id: 1, value: 2 }]} negative={[{ token: "b", id: 2, value: -1 }]} />,
    );
    expect(screen.getAllByTestId("signed-row")).toHaveLength(2);
    expect(container.querySelector(".bar-pos")).toBeTruthy();
    expect(container.querySelector(".bar-neg")).toBeTruthy();
    const zero = Number(container.querySelector("line.zero")!.getAttribute("x1"));
    expect(Number(container.querySelector(".bar-pos")!.getAttribute("x"))).toBeCloseTo(zero);
    expect(Number(container.querySelector(".bar-neg")!.getAttribute("x"))).toBeLessThan(zero);
  });
});
