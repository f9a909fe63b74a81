// Train page steps: corpus upload with counting, and a 2-SAE sweep on it. Same signature as steps.mjs.

import { MIN, assert, waitFor } from "./util.mjs";

/** A small JSONL corpus (3000 documents: more than the default held-out slice), one {"text"} document per line. */
function smallCorpus() {
  const subjects = ["The cat", "A scientist", "My neighbour", "The river", "Every student", "The old clock", "A small robot"];
  const verbs = ["watched", "described", "followed", "repaired", "ignored", "painted", "counted"];
  const objects = ["the morning light", "a quiet village", "seven red apples", "the broken bridge", "an open window",
    "the long winter", "a strange signal"];
  const lines = [];
  for (let i = 0; i < 3000; i++) {
    const text = `${subjects[i % 7]} ${verbs[(i * 3) % 7]} ${objects[(i * 5) % 7]} on day ${i}, and then ${verbs[(i + 2) % 7]} ${objects[(i + 4) % 7]}.`;
    lines.push(JSON.stringify({ text }));
  }
  return lines.join("\n") + "\n";
}

export async function sweepAndCorpus({ page, baseUrl, shot, state, log }) {
  await page.goto(`${baseUrl}/train`);
  await page.getByTestId("ws-status").and(page.locator('[data-status="open"]')).waitFor({ timeout: 30_000 });
  const name = `e2e-small-${Date.now()}.jsonl`;
  await page.getByLabel(/^Upload \(/).setInputFiles({ name, mimeType: "application/jsonl", buffer: Buffer.from(smallCorpus()) });
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  const row = page.getByTestId("corpus-row").filter({ hasText: name });
  await row.waitFor({ timeout: 60_000 });
  const counted = await waitFor(async () => {
    const s = await row.getAttribute("data-status");
    return s === "ready" || s === "failed" ? s : null;
  }, { timeout: 2 * MIN, what: "the corpus to be counted" });
  if (counted !== "ready") throw new Error(`corpus count failed: ${await row.innerText()}`);
  const tokens = Number((await row.locator("td").nth(6).innerText()).replace(/[^\d]/g, ""));
  assert(tokens > 1000, `corpus counted (${tokens} tokens)`);
  const corpusId = await row.getAttribute("data-corpus");
  assert((await page.getByLabel("Corpus", { exact: true }).inputValue()) === corpusId, "the uploaded corpus is selected for training");
  await shot("train-01-corpus-counted");

  await page.getByLabel(/^Layers/).fill("1");
  await page.getByLabel("d_sae", { exact: true }).fill("64");
  await page.getByLabel("Training tokens").fill("4096");
  await page.getByLabel("Batch size").fill("256");
  await page.getByLabel(/Sweep: train a grid/).check();
  await page.getByLabel("Widths (d_sae)").fill("64");
  await page.getByLabel("k values (topk, batchtopk)").fill("4, 8");
  const count = await page.getByTestId("member-count").innerText();
  assert(/^2 SAEs/.test(count), `member count before starting (${count})`);
  const started = page.waitForResponse((r) => r.url().endsWith("/api/training") && r.request().method() === "POST");
  await page.getByRole("button", { name: "Start training" }).click();
  const res = await started;
  assert(res.ok(), `training started (${res.status()} ${await res.text()})`);
  const runId = (await res.json()).run_id;
  log(`sweep run ${runId}`);
  const view = page.getByTestId("run-view");
  await waitFor(async () => (await view.locator("h2 .mono").innerText()) === runId, { what: "the new run's view" });
  const end = await waitFor(async () => {
    const s = await view.getAttribute("data-status");
    return s === "done" || s === "failed" || s === "cancelled" ? s : null;
  }, { timeout: 5 * MIN, what: "the sweep to finish", interval: 500 });
  if (end !== "done") throw new Error(`run ${end}: ${await view.innerText()}`);
  const rows = page.getByTestId("member-row");
  await waitFor(async () => (await rows.count()) === 2, { what: "two member rows" });
  const ks = await rows.evaluateAll((els) => els.map((e) => e.children[2].textContent));
  assert(ks.join("|") === "topk 64 k4|topk 64 k8", `one row per member (${ks.join(", ")})`);
  const fvus = await rows.evaluateAll((els) => els.map((e) => Number(e.querySelector('[data-col="fvu"]').textContent)));
  assert(fvus.every((v) => Number.isFinite(v) && v >= 0), `final FVU per member (${fvus})`);
  assert((await page.locator('[data-testid="pareto"] circle').count()) === 2, "one Pareto point per member");
  const alerts = page.getByRole("alert");
  if ((await alerts.count()) > 0) throw new Error(`train page: error shown: ${(await alerts.allInnerTexts()).join(" | ")}`);
  state.sweepRunId = runId;
  await shot("train-02-sweep-done");
}
