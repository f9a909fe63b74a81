import { fireEvent, render, screen } from "@testing-library/react";
import { TokenHighlight } from "./TokenHighlight";
import { ctx } from "./fixtures";

describe("TokenHighlight", () => {
  it("renders every token, shading only active ones, stronger for larger values", () => {
    render(<TokenHighlight {...ctx} />);
    const toks = screen.getAllByTestId("tok");
    expect(toks).toHaveLength(4);
    expect(toks[3]).toHaveTextContent("↵");
    expect(toks[0].style.backgroundColor).toBe("");
    expect(toks[1].style.backgroundColor).not.toBe("");
    expect(toks[1].style.backgroundColor).not.toBe(toks[2].style.backgroundColor);
  });

  it("shows the value on hover and on keyboard focus", () => {
    render(<TokenHighlight {...ctx} />);
    const toks = screen.getAllByTestId("tok");
    fireEvent.mouseEnter(toks[2]);
    expect(screen.getByRole("tooltip")).toHaveTextContent("4");
    fireEvent.mouseLeave(toks[2]);
    expect(screen.queryByRole("tooltip")).toBeNull();
    fireEvent.focus(toks[1]);
    expect(screen.getByRole("tooltip")).toHaveTextContent("2");
  });

  it("outlines highlighted tokens", () => {
    render(<TokenHighlight {...ctx} highlight={new Set([" cat"])} />);
    expect(screen.getAllByTestId("tok")[1]).toHaveClass("tok-hl");
  });

  it("merges byte pieces of one character into one chip with the largest activation, shows spaces as marks", () => {
    render(<TokenHighlight tokens={["a", " <0xE2>", "<0x80>", "<0x9C>", "    ", " <0xC3>"]} activations={[0, 1, 3, 2, 0, 0]} />);
    const toks = screen.getAllByTestId("tok");
    expect(toks.map((t) => t.textContent)).toEqual(["a", " “", "␣␣␣␣", " <0xC3>"]);
    expect(toks[1]).toHaveAttribute("data-act", "3");
    expect(toks[1].getAttribute("title")).toMatch(/3 byte tokens/);
  });
});
