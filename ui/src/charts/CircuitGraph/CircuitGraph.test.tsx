import { fireEvent, render, screen } from "@testing-library/react";
import { QueryClientProvider } from "@tanstack/react-query";
import { CircuitGraph } from "./CircuitGraph";
import { drawnEdges, layoutCircuit } from "./layout";
import { circuitEdges, circuitNodes } from "./fixtures";
import { createTestQueryClient } from "../../test/render";

const tokens = ["<s>", " the", " cat"];

describe("layoutCircuit", () => {
  it("puts positions left to right, layers bottom to top and logits on top", () => {
    const lay = layoutCircuit(circuitNodes, 3, 2, 600);
    const at = (id: number) => lay.byId.get(id)!;
    expect(at(10).x).toBeLessThan(at(11).x);
    expect(at(11).x).toBeLessThan(at(12).x);
    // rows: token (bottom) > layer 0 > layer 1 > logits (top), in screen y
    expect(at(12).y).toBeGreaterThan(at(0).y);
    expect(at(0).y).toBeGreaterThan(at(2).y);
    expect(at(2).y).toBeGreaterThan(at(13).y);
    // two features in one cell sit side by side, the more influential in the middle of the column
    expect(at(0).y).toBe(at(1).y);
    expect(at(0).x).toBe(lay.columnX(2));
    expect(at(1).x).not.toBe(at(0).x);
    // the most probable logit is rightmost
    expect(at(13).x).toBeGreaterThan(at(14).x);
  });

  it("draws only edges whose ends are shown, strongest last", () => {
    const lay = layoutCircuit(circuitNodes, 3, 2, 600);
    const e = drawnEdges(circuitEdges, lay.byId);
    expect(e).toHaveLength(5);
    expect(e[e.length - 1]).toEqual({ source: 2, target: 13, weight: 3.0 });
  });
});

describe("CircuitGraph", () => {
  const renderGraph = (props: Partial<Parameters<typeof CircuitGraph>[0]> = {}) =>
    render(
      <QueryClientProvider client={createTestQueryClient()}>
        <CircuitGraph nodes={circuitNodes} edges={circuitEdges} promptTokens={tokens} nLayers={2} width={700} {...props} />
      </QueryClientProvider>,
    );

  it("renders nodes by kind, edges by sign with width by |weight|", () => {
    renderGraph();
    expect(screen.getAllByTestId("circuit-node")).toHaveLength(9);
    const edges = screen.getAllByTestId("circuit-edge");
    expect(edges).toHaveLength(5);
    const w = (i: number) => Number(edges[i].getAttribute("stroke-width"));
    expect(w(4)).toBeGreaterThan(w(0));
    expect(edges.filter((e) => e.classList.contains("edge-neg"))).toHaveLength(2);
    expect(screen.getByRole("button", { name: /cats \(layer 0, #5/ })).toBeInTheDocument();
  });

  it("selects on click and Enter, pins with p, outlines supernodes", () => {
    const onSelect = vi.fn();
    const onTogglePin = vi.fn();
    renderGraph({ onSelect, onTogglePin, pinned: new Set([2]), supernodes: [{ id: "a", label: "cat words", members: [0, 1] }] });
    const node = screen.getByRole("button", { name: /cats/ });
    fireEvent.click(node);
    fireEvent.keyDown(node, { key: "Enter" });
    expect(onSelect).toHaveBeenCalledTimes(2);
    fireEvent.keyDown(node, { key: "p" });
    expect(onTogglePin).toHaveBeenCalledWith(expect.objectContaining({ node: 0 }));
    expect(screen.getByRole("button", { name: /feature 3.*pinned/ })).toHaveAttribute("data-pinned", "true");
    expect(screen.getByTestId("supernode")).toHaveTextContent("cat words");
  });

  it("marks the target's logit node", () => {
    renderGraph({ target: 13 });
    expect(screen.getByRole("button", { name: /output “ sat”.*, target/ })).toHaveAttribute("data-target", "true");
    expect(screen.getByRole("button", { name: /output “ ran”/ })).not.toHaveAttribute("data-target");
  });

  it("shows a tooltip on hover", () => {
    renderGraph();
    fireEvent.mouseEnter(screen.getByRole("button", { name: /output “ sat”/ }));
    expect(screen.getByTestId("circuit-tip")).toHaveTextContent("p = 0.600");
  });
});
