import { render, screen } from "@testing-library/react";
import { LineChart } from "./LineChart";
import { lossSeries, withGaps } from "./fixtures";

describe("LineChart", () => {
  it("shows an empty state before any data", () => {
    render(<LineChart title="Loss" series={[{ name: "loss", points: [] }]} />);
    expect(screen.getByText("No data yet")).toBeInTheDocument();
  });

  it("draws one path per series with a point per datum, and the latest value", () => {
    const { container } = render(<LineChart title="Loss" series={[lossSeries]} width={400} />);
    const path = container.querySelector('path[data-series="loss"]')!;
    expect(path).toBeTruthy();
    // d3.line emits M + 19 L commands for 20 points
    expect(path.getAttribute("d")!.match(/[ML]/g)).toHaveLength(20);
    expect(screen.getByTestId("last-loss")).toHaveTextContent("0.05");
    expect(screen.getByRole("img", { name: "Loss chart" })).toBeInTheDocument();
    expect(container.querySelectorAll(".axis-bottom .tick").length).toBeGreaterThan(0);
  });

  it("breaks the line at missing values and supports log scale", () => {
    const { container } = render(<LineChart title="FVU" series={[withGaps]} width={300} logY />);
    const d = container.querySelector("path[data-series=fvu]")!.getAttribute("d")!;
    expect(d.match(/M/g)).toHaveLength(2);
  });
});
