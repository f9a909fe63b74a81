import { act, fireEvent, screen, waitFor } from "@testing-library/react";
import { TrainPage } from "./TrainPage";
import { renderPage } from "../../test/render";
import { stubFetch } from "../../test/fetchStub";
import type { Corpus } from "../../api/types";

/** A stand-in for the browser's XMLHttpRequest: records the request and lets the test drive its events. */
class FakeXhr {
  static last: FakeXhr | null = null;
  method = "";
  url = "";
  headers: Record<string, string> = {};
  body: unknown = null;
  status = 0;
  statusText = "";
  responseText = "";
  upload: { onprogress: ((e: { loaded: number; total: number; lengthComputable: boolean }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXhr.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(body: unknown) {
    this.body = body;
  }
  abort() {
    this.onabort?.();
  }
  progress(loaded: number, total: number) {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true });
  }
  respond(status: number, body: unknown) {
    this.status = status;
    this.responseText = JSON.stringify(body);
    this.onload?.();
  }
}

afterEach(() => {
  vi.unstubAllGlobals();
  FakeXhr.last = null;
});

const base = { "GET /api/model": () => [200, { status: "ready", n_layers: 2 }] as [number, unknown], "GET /api/training": () => [200, []] as [number, unknown] };

describe("Corpora on the Train page", () => {
  it("uploads with a byte progress bar, then follows the count from job events until ready", async () => {
    vi.stubGlobal("XMLHttpRequest", FakeXhr);
    const counting: Corpus = { id: "c1", name: "small.txt", kind: "upload", format: "txt", size_bytes: 2048, status: "counting" };
    let list: Corpus[] = [];
    stubFetch({ ...base, "GET /api/corpora": () => [200, list] });
    const { ws } = renderPage(<TrainPage />, { path: "/train", route: "/train" });
    act(() => ws().serverOpen());
    expect(await screen.findByText("No corpora yet.")).toBeInTheDocument();
    const file = new File(["hello world\n".repeat(100)], "small.txt", { type: "text/plain" });
    fireEvent.change(screen.getByLabelText(/^Upload \(/), { target: { files: [file] } });
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    await waitFor(() => expect(FakeXhr.last).not.toBeNull());
    const xhr = FakeXhr.last!;
    expect(xhr.method).toBe("POST");
    expect(xhr.url).toBe("/api/corpora");
    expect((xhr.body as FormData).get("file")).toBeInstanceOf(File);
    act(() => xhr.progress(300, 1200));
    expect(screen.getByRole("progressbar", { name: "Upload progress" })).toHaveAttribute("aria-valuenow", "25");
    expect(screen.getByTestId("upload-progress")).toHaveTextContent("300 B / 1.2 KiB sent");
    list = [counting];
    act(() => xhr.respond(201, counting));
    await waitFor(() => expect(screen.queryByTestId("upload-progress")).toBeNull());
    const row = await screen.findByTestId("corpus-row");
    expect(row).toHaveAttribute("data-status", "counting");
    // the just-uploaded corpus becomes the form's corpus
    await waitFor(() => expect(screen.getByLabelText("Corpus")).toHaveValue("c1"));

    act(() => ws().serverSend({ type: "job", job_id: "count_c1", kind: "corpus_count", status: "running", done: 512, total: 2048,
      detail: "120 tokens in 7 documents", ts: 1 }));
    // the cache notifies its readers on the next tick
    await waitFor(() =>
      expect(screen.getByRole("progressbar", { name: "Counting small.txt" })).toHaveAttribute("aria-valuenow", "25"));
    expect(screen.getByTestId("corpus-counting")).toHaveTextContent("counting 25% · 120 tokens in 7 docs");

    list = [{ ...counting, status: "ready", n_docs: 40, n_tokens: 1234 }];
    act(() => ws().serverSend({ type: "job", job_id: "count_c1", kind: "corpus_count", status: "done", done: 2048, total: 2048,
      detail: "1234 tokens in 40 documents", ts: 2 }));
    await waitFor(() => expect(screen.getByTestId("corpus-row")).toHaveAttribute("data-status", "ready"));
    expect(screen.getByTestId("corpus-row")).toHaveTextContent("1,234");
    expect(screen.getByTestId("corpus-row")).toHaveTextContent("40");
  });

  it("shows the server's refusal of an upload", async () => {
    vi.stubGlobal("XMLHttpRequest", FakeXhr);
    stubFetch({ ...base, "GET /api/corpora": () => [200, []] });
    renderPage(<TrainPage />, { path: "/train", route: "/train" });
    await screen.findByText("No corpora yet.");
    fireEvent.change(screen.getByLabelText(/^Upload \(/), { target: { files: [new File(["x"], "big.txt")] } });
    fireEvent.click(screen.getByRole("button", { name: "Upload" }));
    await waitFor(() => expect(FakeXhr.last).not.toBeNull());
    act(() => FakeXhr.last!.respond(413, { detail: "The upload exceeds IWB_MAX_CORPUS_BYTES (1 MiB)" }));
    await waitFor(() => expect(screen.getByRole("alert")).toHaveTextContent("exceeds IWB_MAX_CORPUS_BYTES"));
  });

  it("registers a server path or a hub id, and lists failed corpora with their error", async () => {
    const { calls } = stubFetch({
      ...base,
      "GET /api/corpora": () => [200, [{ id: "bad", name: "broken.parquet", status: "failed", error: "no column 'text'" }]],
      "POST /api/corpora/register": () => [201, { id: "p1", name: "shards", kind: "path", status: "counting" }],
    });
    renderPage(<TrainPage />, { path: "/train", route: "/train" });
    expect(await screen.findByTestId("corpus-error")).toHaveTextContent("failed: no column 'text'");
    fireEvent.change(screen.getByLabelText("Path on the server or hub dataset id"), { target: { value: "/data/shards" } });
    fireEvent.change(screen.getByLabelText("Text field"), { target: { value: "content" } });
    fireEvent.click(screen.getByRole("button", { name: "Register" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST")).toBe(true));
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({ path: "/data/shards", text_field: "content" });
    fireEvent.change(screen.getByLabelText("Path on the server or hub dataset id"), { target: { value: "owner/corpus" } });
    fireEvent.click(screen.getByRole("button", { name: "Register" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "POST")).toHaveLength(2));
    expect(calls.filter((c) => c.method === "POST")[1].body).toEqual({ hub: "owner/corpus", text_field: "content" });
  });
});
