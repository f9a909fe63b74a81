#!/usr/bin/env node
// Regenerate src/api/schema.d.ts from the server's OpenAPI schema.
//   npm run gen:api                       reads ui/openapi.json (dumped by the backend)
//   npm run gen:api -- path/to/openapi.json
//   OPENAPI_URL=http://127.0.0.1:8000/openapi.json npm run gen:api   reads a running server
import { readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { renderSchemaTypes } from "./gen-api-lib.mjs";

const uiDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(uiDir, "src/api/schema.d.ts");

async function loadSchema() {
  const url = process.env.OPENAPI_URL;
  if (url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    return { schema: await res.json(), from: url };
  }
  const file = resolve(process.cwd(), process.argv[2] ?? resolve(uiDir, "openapi.json"));
  if (!existsSync(file)) {
    throw new Error(`${file} does not exist: dump it from the backend first, or set OPENAPI_URL to a running server's /openapi.json`);
  }
  return { schema: JSON.parse(await readFile(file, "utf8")), from: file };
}

try {
  const { schema, from } = await loadSchema();
  await writeFile(out, await renderSchemaTypes(schema));
  const n = Object.keys(schema.paths ?? {}).length;
  console.log(`wrote ${out} (${n} paths) from ${from}`);
} catch (e) {
  console.error(`gen:api failed: ${e.message}`);
  process.exit(1);
}
