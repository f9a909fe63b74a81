// Browser step of the Remove behaviour page (issue #17): same signature as the steps in steps.mjs.
// Needs the loaded model and a trained SAE (loadModel, trainSae).

import { MIN, assert, waitFor } from "./util.mjs";

/** Start a small removal job (tiny budgets), watch candidates arrive over the socket, then read the report. */
export async function removeBehaviour({ page, baseUrl, shot, state }) {
  await page.goto(`${baseUrl}/behaviour`);
  await page.getByLabel(/^Positive prompts/).fill(["The cat sat on the", "I went to the", "She looked at the", "We walked into the"].join("\n"));
  await page.getByLabel(/^Negative prompts/).fill(["One, two, three,", "Hello, my name is", "It was a dark and", "Numbers: 4, 5,"].join("\n"));
  await page.getByLabel("Target text").fill(" the");
  await page.getByLabel("Max evaluations", { exact: true }).fill("6");
  await page.getByLabel("Max features", { exact: true }).fill("4");
  await page.getByLabel("Max KL", { exact: true }).fill("1");
  await page.getByLabel("Max target change", { exact: true }).fill("0.5");
  const started = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/behaviours/remove" && r.request().method() === "POST");
  await page.getByRole("button", { name: "Start" }).click();
  const res = await started;
  assert(res.status() === 202, `the job starts (HTTP ${res.status()}: ${await res.text()})`);
  const jobId = (await res.json()).job_id;
  state.behaviourJob = jobId;
  // count the candidate rows the page shows while the job is still running: only socket events add them
  const job = page.getByTestId("behaviour-job");
  await job.waitFor({ timeout: 30_000 });
  const liveRows = await waitFor(async () => {
    const s = await job.getAttribute("data-status");
    const n = await page.getByTestId("candidate-row").count();
    if (s === "failed") throw new Error(`job failed: ${(await page.getByRole("alert").allInnerTexts()).join(" | ")}`);
    return n > 0 ? { n, status: s } : s === "done" ? { n, status: s } : null;
  }, { timeout: 5 * MIN, what: "the first candidates", interval: 100 });
  await shot("12-behaviour-candidates");
  await waitFor(async () => {
    const s = await job.getAttribute("data-status");
    if (s === "failed") throw new Error(`job failed: ${(await page.getByRole("alert").allInnerTexts()).join(" | ")}`);
    return s === "done";
  }, { timeout: 5 * MIN, what: "the job to finish", interval: 500 });
  const report = page.getByRole("region", { name: "Report" });
  await report.waitFor({ timeout: 30_000 });
  const rows = await page.getByTestId("candidate-row").count();
  assert(rows >= 1 && rows <= 6, `1..6 candidates listed (${rows}; ${liveRows.n} seen while ${liveRows.status})`);
  const target = page.getByTestId("report-target");
  const message = page.getByTestId("report-message");
  assert((await target.count()) > 0 || (await message.count()) > 0, "the report gives the target's drop or says why no patch was made");
  if (await target.count()) assert(/\d\.\d{3} → \d/.test(await target.innerText()), `before → after shown: ${await target.innerText()}`);
  const api = await (await page.request.get(`${baseUrl}/api/behaviours/${jobId}/candidates`)).json();
  assert(api.length === rows, `the table lists every candidate the server stored (${api.length} vs ${rows})`);
  await shot("13-behaviour-report");
}
