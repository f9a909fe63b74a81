import { fireEvent, render, screen } from "@testing-library/react";
import { Histogram } from "./Histogram";
import { bins } from "./fixtures";

describe("Histogram", () => {
  it("draws one bar per bin with height proportional to count", () => {
    render(<Histogram title="Activations" {...bins} width={300} />);
    const bars = screen.getAllByTestId("hist-bar");
    expect(bars).toHaveLength(4);
    const h = bars.map((b) => Number(b.getAttribute("height")));
    expect(h[0]).toBeGreaterThan(h[1]);
    expect(h[2]).toBe(0);
    expect(h[1] / h[0]).toBeCloseTo(0.5, 5);
  });

  it("shows the bin on hover", () => {
    render(<Histogram title="Activations" {...bins} width={300} />);
    fireEvent.mouseEnter(screen.getAllByTestId("hist-bar")[1]);
    expect(screen.getByTestId("hist-hover")).toHaveTextContent("[1, 2): 5");
  });

  it("says so when the bins are inconsistent", () => {
    render(<Histogram title="X" edges={[0, 1]} counts={[1, 2]} />);
    expect(screen.getByText("No histogram")).toBeInTheDocument();
  });
});
