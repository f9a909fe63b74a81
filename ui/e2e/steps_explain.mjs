// Browser step for feature explanations (issue #19): the loaded tiny model explains three features.
// Same signature as the steps in steps.mjs; needs state.saeId from trainSae.

import { MIN, assert, waitFor } from "./util.mjs";

/**
 * Explain the first three listed features with the loaded model (a random tiny Llama: its replies may not parse,
 * which the job records per feature as an error): the panel's progress follows the job's events to 3 / 3, and each
 * of the three rows then shows an explanation, or its detail page shows the error with its kind.
 */
export async function explainFeatures({ page, baseUrl, shot, state }) {
  const sae = encodeURIComponent(state.saeId);
  await page.goto(`${baseUrl}/features/${sae}`);
  const analysis = page.getByTestId("analysis-panel");
  await waitFor(async () => {
    const s = await analysis.getAttribute("data-status");
    if (s === "failed" || s === "cancelled") throw new Error(`analysis ${s}`);
    return s === "done";
  }, { timeout: 3 * MIN, what: "feature analysis", interval: 500 });
  // sort by max activation so the three are live features; index order breaks ties the same way each time
  await page.getByRole("button", { name: /Max act/ }).click();
  await waitFor(async () => (await page.getByTestId("feature-row").count()) >= 3, { what: "three feature rows" });
  const firstThree = async () => (await page.getByTestId("feature-row").evaluateAll(
    (rows) => rows.slice(0, 3).map((r) => Number(r.querySelector("td a")?.textContent))));
  const indices = await firstThree();

  // record every progress text the panel shows while the job runs (the socket's job events move it)
  await page.evaluate(() => {
    const log = (window.__explainLog = []);
    new MutationObserver(() => {
      const t = document.querySelector('[data-testid="explain-progress"]')?.textContent ?? "";
      if (t && log[log.length - 1] !== t) log.push(t);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  const panel = page.getByTestId("explain-panel");
  await page.getByLabel("Explain", { exact: true }).selectOption("shown");
  await page.getByLabel("at most").fill("3");
  await page.getByLabel("Explainer").selectOption("loaded");
  await page.getByRole("button", { name: "Explain features" }).click();
  await waitFor(async () => {
    const s = await panel.getAttribute("data-status");
    if (s === "failed") throw new Error(`explanation job failed: ${await panel.innerText()}`);
    return s === "done";
  }, { timeout: 8 * MIN, what: "the explanation job to finish", interval: 500 });
  const progress = await page.getByTestId("explain-progress").innerText();
  const trail = await page.evaluate(() => window.__explainLog);
  assert(/^3 \/ 3 features/.test(progress), `progress reached 3 / 3 (${progress}; seen: ${trail.join(" | ")})`);
  const errors = Number(/· (\d+) errors?/.exec(progress)?.[1] ?? 0);
  await shot("20-explain-done");

  // the job's end reloads the list: each of the three shows its explanation in its row, or its detail page the
  // error with its kind (what the server stored decides which)
  const job = await (await page.request.get(`${baseUrl}/api/saes/${sae}/explanations/job`)).json();
  assert(JSON.stringify(job.config.features) === JSON.stringify(indices),
    `the job covered the three listed features (${job.config.features} vs ${indices})`);
  assert(job.errors === errors, `the panel's error count matches the job's (${errors} vs ${job.errors})`);
  const stored = [];
  for (const idx of indices) {
    const f = await (await page.request.get(`${baseUrl}/api/saes/${sae}/features/${idx}`)).json();
    assert(f.explanation_detail, `feature ${idx} has an explanation record`);
    stored.push([idx, f.explanation_detail]);
  }
  for (const [idx, e] of stored) {
    if (!e.text) continue;
    const row = page.getByTestId("feature-row").filter({ has: page.getByRole("link", { name: String(idx), exact: true }) });
    await waitFor(async () => (await row.getByTestId("explanation-cell").innerText()).trim() === e.text.trim(),
      { what: `feature ${idx}'s explanation in its row` });
  }
  for (const [idx, e] of stored) {
    if (e.text) continue;
    await page.goto(`${baseUrl}/features/${sae}/${idx}`);
    const err = page.getByTestId("explanation-error");
    await err.waitFor({ timeout: 30_000 });
    const shown = await err.innerText();
    assert(shown.includes(`(${e.error_kind})`), `feature ${idx} shows its error kind ${e.error_kind} (${shown})`);
    await shot(`21-explain-error-${idx}`);
  }
  state.explained = stored.filter(([, e]) => e.text).length;
  console.log(`explainFeatures: ${state.explained} of 3 explained, ${errors} with an error; progress seen: ${trail.join(" | ")}`);
}
