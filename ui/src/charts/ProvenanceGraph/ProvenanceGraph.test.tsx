import { fireEvent, render, screen } from "@testing-library/react";
import { ProvenanceGraph } from "./ProvenanceGraph";
import { layeredLayout, layoutHeight, prune, pruneByShare, ROW } from "./layout";
import { edges, nodes } from "./fixtures";

describe("layout", () => {
  it("orders columns by layer with logits last", () => {
    const placed = layeredLayout(nodes, 800, 400);
    const x = (id: string) => placed.find((p) => p.id === id)!.x;
    expect(x("L0/1")).toBeLessThan(x("L1/3"));
    expect(x("L1/3")).toBe(x("L1/4"));
    expect(x("L1/3")).toBeLessThan(x("L2/7"));
    expect(x("L2/7")).toBeLessThan(x("logit/ the"));
  });

  it("grows with its fullest column so that no two nodes of a column are closer than a row", () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ id: `L1/${i}`, layer: 1, feature: i, kind: "feature", label: `f${i}`, activation: i }));
    const all = [nodes[0], ...many];
    const h = layoutHeight(all, 460);
    expect(h).toBeGreaterThan(20 * ROW);
    const placed = layeredLayout(all, 800, h);
    const ys = placed.filter((p) => p.layer === 1).map((p) => p.y).sort((a, b) => a - b);
    for (let i = 1; i < ys.length; i++) expect(ys[i] - ys[i - 1]).toBeGreaterThanOrEqual(ROW);
    expect(Math.max(...ys) + ROW / 2).toBeLessThanOrEqual(h);  // the last label fits too
  });

  it("prunes each edge class by cumulative share into each node, dropping what no longer reaches the target", () => {
    const p = pruneByShare(nodes, edges, { feature: 0.5, logit: 1 });
    expect(p.edges.map((e) => e.source).sort()).toEqual(["L0/1", "L1/3", "L2/7"]);
    expect(p.nodes.map((n) => n.id).sort()).toEqual(["L0/1", "L1/3", "L2/7", "logit/ the"]);
    // logit edges are pruned on their own scale: at the lowest share the strongest stays
    expect(pruneByShare(nodes, edges, { feature: 1, logit: 0.05 }).edges).toHaveLength(4);
    // an upstream node whose only path to the target is pruned goes too
    const chain = [...edges, { source: "L0/2", target: "L1/4", weight: 5 }];
    const withL0 = [...nodes, { id: "L0/2", layer: 0, feature: 2, kind: "feature", label: null, activation: 1 }];
    expect(pruneByShare(withL0, chain, { feature: 0.5, logit: 1 }).nodes.map((n) => n.id)).not.toContain("L0/2");
  });

  it("prunes weak edges and orphaned nodes but keeps the target", () => {
    const p = prune(nodes, edges, 0.4);
    expect(p.edges.map((e) => e.source)).toEqual(["L1/3", "L0/1"]);
    expect(p.nodes.map((n) => n.id).sort()).toEqual(["L0/1", "L1/3", "L2/7"]);
  });
});

describe("ProvenanceGraph", () => {
  it("renders nodes and edges with width by |weight|", () => {
    render(<ProvenanceGraph nodes={nodes} edges={edges} threshold={0} width={800} />);
    expect(screen.getAllByTestId("prov-node")).toHaveLength(5);
    const es = screen.getAllByTestId("prov-edge");
    expect(es).toHaveLength(4);
    const width = (s: string) => Number(es.find((e) => e.getAttribute("data-source") === s)!.getAttribute("stroke-width"));
    expect(width("L1/3")).toBeGreaterThan(width("L0/1"));
    expect(width("L0/1")).toBeGreaterThan(width("L1/4"));
  });

  it("prune slider threshold hides edges", () => {
    const { rerender } = render(<ProvenanceGraph nodes={nodes} edges={edges} threshold={0} width={800} />);
    rerender(<ProvenanceGraph nodes={nodes} edges={edges} threshold={0.6} width={800} />);
    expect(screen.getAllByTestId("prov-edge")).toHaveLength(1);
  });

  it("click selects a node, drag pins it instead", () => {
    const onSelect = vi.fn();
    render(<ProvenanceGraph nodes={nodes} edges={edges} threshold={0} width={800} onSelect={onSelect} />);
    const node = screen.getAllByTestId("prov-node").find((n) => n.getAttribute("data-id") === "L1/3")!;
    fireEvent.pointerDown(node, { clientX: 10, clientY: 10, pointerId: 1 });
    fireEvent.pointerUp(node, { clientX: 10, clientY: 10, pointerId: 1 });
    expect(onSelect).toHaveBeenCalledWith(expect.objectContaining({ id: "L1/3" }));

    fireEvent.pointerDown(node, { clientX: 10, clientY: 10, pointerId: 1 });
    fireEvent.pointerMove(node, { clientX: 100, clientY: 120, pointerId: 1 });
    fireEvent.pointerUp(node, { clientX: 100, clientY: 120, pointerId: 1 });
    expect(onSelect).toHaveBeenCalledTimes(1);
    const moved = screen.getAllByTestId("prov-node").find((n) => n.getAttribute("data-id") === "L1/3")!;
    expect(moved).toHaveAttribute("data-pinned", "true");
    expect(moved.getAttribute("transform")).toBe("translate(100,120)");
  });

  it("shows a tooltip on hover, with validation", () => {
    render(
      <ProvenanceGraph nodes={nodes} edges={edges} threshold={0} width={800}
        validation={[{ source: "L1/3", target: "L2/7", predicted: 0.9, actual: 0.8 }]} />,
    );
    fireEvent.mouseEnter(screen.getAllByTestId("prov-edge")[0]);
    expect(screen.getByRole("tooltip")).toHaveTextContent("predicted 0.9, actual 0.8");
  });

  it("zooms with the buttons; a drag under zoom pins the node at the graph position under the pointer", () => {
    render(<ProvenanceGraph nodes={nodes} edges={edges} threshold={0} width={800} />);
    const layer = screen.getByTestId("zoom-layer");
    fireEvent.click(screen.getByRole("button", { name: "Zoom in" }));
    expect(screen.getByTestId("zoom-level")).toHaveTextContent("125%");
    expect(layer.getAttribute("transform")).toMatch(/scale\(1\.25\)/);
    fireEvent.click(screen.getByRole("button", { name: "Reset view" }));
    expect(screen.getByTestId("zoom-level")).toHaveTextContent("100%");
    fireEvent.click(screen.getByRole("button", { name: "Zoom in" }));
    fireEvent.click(screen.getByRole("button", { name: "Zoom out" }));
    expect(screen.getByTestId("zoom-level")).toHaveTextContent("100%");

    const node = screen.getAllByTestId("prov-node").find((n) => n.getAttribute("data-id") === "L0/1")!;
    fireEvent.pointerDown(node, { clientX: 10, clientY: 10, pointerId: 1 });
    fireEvent.pointerMove(node, { clientX: 200, clientY: 100, pointerId: 1 });
    fireEvent.pointerUp(node, { clientX: 200, clientY: 100, pointerId: 1 });
    expect(screen.getByRole("button", { name: "Unpin all (1)" })).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "Unpin all (1)" }));
    expect(screen.getAllByTestId("prov-node").some((n) => n.getAttribute("data-pinned"))).toBe(false);
  });

  it("Enter on a focused node selects it", () => {
    const onSelect = vi.fn();
    render(<ProvenanceGraph nodes={nodes} edges={edges} threshold={0} width={800} onSelect={onSelect} />);
    fireEvent.keyDown(screen.getAllByTestId("prov-node")[0], { key: "Enter" });
    expect(onSelect).toHaveBeenCalled();
  });
});
