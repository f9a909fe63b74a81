import { render } from "@testing-library/react";
import { ParetoScatter, paretoFront } from "./ParetoScatter";

const pts = [
  { id: 0, label: "a", x: 8, y: 0.2 },
  { id: 1, label: "b", x: 16, y: 0.25 }, // beaten by a (more L0, more FVU)
  { id: 2, label: "c", x: 40, y: 0.1 },
  { id: 3, label: "d", x: 4, y: 0.4 },
];

describe("ParetoScatter", () => {
  it("keeps the points no other beats on both L0 and FVU", () => {
    expect(paretoFront(pts).map((p) => p.id)).toEqual([3, 0, 2]);
  });

  it("places one circle per member by its L0 and FVU and marks the frontier", () => {
    const { container } = render(<ParetoScatter title="L0 vs FVU" points={pts} width={360} height={220} />);
    const circles = [...container.querySelectorAll("circle")];
    expect(circles.map((c) => c.getAttribute("data-member"))).toEqual(["0", "1", "2", "3"]);
    // x over [0, 40] -> 0..292 px; y over [0, 0.4] -> 178..0 px
    const at = (id: number) => circles[id];
    expect(Number(at(2).getAttribute("cx"))).toBeCloseTo(292);
    expect(Number(at(0).getAttribute("cx"))).toBeCloseTo(292 / 5);
    expect(Number(at(3).getAttribute("cy"))).toBeCloseTo(0);
    expect(Number(at(2).getAttribute("cy"))).toBeCloseTo(178 * 0.75);
    expect(circles.map((c) => c.getAttribute("data-front"))).toEqual(["true", "false", "true", "true"]);
    expect(container.querySelector('[data-testid="pareto-front"]')!.getAttribute("d")!.match(/[ML]/g)).toHaveLength(3);
  });

  it("says so when no member has finished", () => {
    const { getByText } = render(<ParetoScatter title="x" points={[]} />);
    expect(getByText("No finished SAEs")).toBeInTheDocument();
  });
});
