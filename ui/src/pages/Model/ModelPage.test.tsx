import { fireEvent, screen, waitFor } from "@testing-library/react";
import { ModelPage, blockRanges } from "./ModelPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";

const info = {
  status: "ready" as const, name: "tiny-llama", architecture: "LlamaForCausalLM", n_layers: 2, d_model: 16, vocab_size: 100,
  device: "cpu", dtype: "float32", hook_points: ["blocks.0.hook_resid_post"], memory_bytes: 2048,
};

afterEach(() => vi.unstubAllGlobals());

describe("ModelPage", () => {
  it("shows 'no model', loads one, and shows its facts", async () => {
    const { calls } = stubFetch({
      "GET /api/health": () => [200, { status: "ok", version: "0.1", model_status: "none", uptime_s: 1 }],
      "GET /api/model": () => [200, { status: "none" }],
      "POST /api/model": () => [200, info],
    });
    renderPage(<ModelPage />);
    expect(await screen.findByText("No model loaded.")).toBeInTheDocument();
    fireEvent.change(screen.getByRole("textbox", { name: "Model" }), { target: { value: "tiny-llama" } });
    fireEvent.click(screen.getByRole("button", { name: "Load" }));
    expect(await screen.findByTestId("model-layers")).toHaveTextContent("2");
    expect(screen.getByTestId("model-memory")).toHaveTextContent("2.0 KiB");
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({ name: "tiny-llama", device: null, dtype: null });
  });

  it("shows the server's error as a readable message", async () => {
    stubFetch({
      "GET /api/health": () => [200, { status: "ok", version: "0.1", model_status: "none", uptime_s: 1 }],
      "GET /api/model": () => [200, { status: "none" }],
      "POST /api/model": () => [400, { detail: "Unknown model 'nope'" }],
    });
    renderPage(<ModelPage />);
    fireEvent.change(await screen.findByRole("textbox", { name: "Model" }), { target: { value: "nope" } });
    fireEvent.click(screen.getByRole("button", { name: "Load" }));
    await waitFor(() => expect(screen.getByRole("alert")).toHaveTextContent("Unknown model 'nope'"));
  });

  it("keeps showing the loaded model (with its weights) while another loads", async () => {
    stubFetch({
      "GET /api/health": () => [200, { status: "ok", version: "0.1", model_status: "loading", uptime_s: 1 }],
      "GET /api/model": () => [200, { ...info, status: "loading", requested: "other/model", model_id: "tiny-llama",
        weights: "GGUF Q4_1 (x.gguf), dequantized to float32" }],
    });
    renderPage(<ModelPage />);
    expect(await screen.findByTestId("model-loading")).toHaveTextContent("Loading other/model");
    expect(screen.getByTestId("model-loading")).toHaveTextContent("tiny-llama is still loaded and serving");
    expect(screen.getByTestId("model-layers")).toHaveTextContent("2");
    expect(screen.getByTestId("model-weights")).toHaveTextContent("GGUF Q4_1 (x.gguf), dequantized to float32");
  });
});

describe("ModelPage devices", () => {
  it("shows per-device memory and where each block is stored", async () => {
    const GiB = 1024 ** 3;
    const devices = [
      { device: "cuda:0", total_bytes: 80 * GiB, used_bytes: 20 * GiB, free_bytes: 60 * GiB, allocated_bytes: 18 * GiB,
        weight_bytes: 16 * GiB, layers: [0, 1, 2] },
      { device: "cpu", total_bytes: 128 * GiB, used_bytes: 40 * GiB, free_bytes: 88 * GiB, allocated_bytes: 6 * GiB,
        weight_bytes: 5 * GiB, layers: [3] },
      { device: "disk", weight_bytes: 2 * GiB, layers: [4, 5] },
    ];
    stubFetch({
      "GET /api/health": () => [200, { status: "ok", version: "0.1", model_status: "ready", uptime_s: 1 }],
      "GET /api/model": () => [200, {
        ...info, n_layers: 6, device: "cuda:0", dispatched: true, devices,
        layer_devices: ["cuda:0", "cuda:0", "cuda:0", "cpu", "disk", "disk"],
        weights: "GGUF Q4_1 (m.gguf), dequantized to float32",
      }],
    });
    renderPage(<ModelPage />);
    const rows = await screen.findAllByTestId("device-row");
    expect(rows.map((r) => r.getAttribute("data-device"))).toEqual(["cuda:0", "cpu", "disk"]);
    expect(rows[0]).toHaveTextContent("20.0 GiB / 80.0 GiB");
    expect(rows[0]).toHaveTextContent("16.0 GiB");
    expect(rows[0]).toHaveTextContent("0–2");
    expect(rows[2]).toHaveTextContent("4–5");
    expect(rows[2].querySelectorAll("td")[1]).toHaveTextContent("—");
    expect(screen.getByText(/model dispatched across devices/)).toBeInTheDocument();
    const cells = screen.getByTestId("layer-placement").querySelectorAll("li");
    expect([...cells].map((c) => c.getAttribute("data-device"))).toEqual(["cuda:0", "cuda:0", "cuda:0", "cpu", "disk", "disk"]);
    expect(screen.getByTestId("model-weights")).toHaveTextContent("dequantized to float32");
  });

  it("writes block lists as ranges", () => {
    expect(blockRanges([5, 0, 1, 2, 7, 8])).toBe("0–2, 5, 7–8");
    expect(blockRanges([])).toBe("—");
  });
});
