/**
 * Prompt lists for the Remove behaviour page: pasted text (one prompt per line) or a loaded .txt / .jsonl file.
 * A prompt is kept exactly as written (a trailing space changes the next token); blank lines are skipped.
 */

/** A file's text (FileReader: works in every browser and in jsdom). */
export function readText(f: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result ?? ""));
    r.onerror = () => reject(r.error);
    r.readAsText(f);
  });
}

/** Non-blank lines, each as written (a Windows line end's "\r" removed). */
export function promptLines(text: string): string[] {
  return text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.trim().length > 0);
}

/**
 * The prompts of a JSON Lines file: each non-blank line is a JSON string, or an object with a string `text` or
 * `prompt`. Throws an Error naming the first line that is neither.
 */
export function parseJsonl(text: string): string[] {
  const out: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new Error(`line ${i + 1} is not JSON`);
    }
    if (typeof v === "string") out.push(v);
    else if (v && typeof v === "object" && typeof (v as { text?: unknown }).text === "string") out.push((v as { text: string }).text);
    else if (v && typeof v === "object" && typeof (v as { prompt?: unknown }).prompt === "string") out.push((v as { prompt: string }).prompt);
    else throw new Error(`line ${i + 1} is neither a string nor an object with "text" or "prompt"`);
  });
  return out;
}

/** A loaded file's prompts, one per line of the textarea: .jsonl parsed as JSON Lines, anything else as lines. */
export async function promptsFromFile(f: File): Promise<string[]> {
  const text = await readText(f);
  return f.name.toLowerCase().endsWith(".jsonl") ? parseJsonl(text) : promptLines(text);
}

/**
 * Target tokens, one per line: a line of digits is a token id, any other line a token's text exactly as written
 * (" purple" keeps its leading space). Blank lines are skipped.
 */
export function parseTargetTokens(text: string): (string | number)[] {
  return promptLines(text).map((l) => (/^\s*\d+\s*$/.test(l) ? Number(l.trim()) : l));
}
