/**
 * Target tokens typed as text: comma-separated, each trimmed, with escapes so that whitespace can be typed —
 * `\n` newline, `\t` tab, `\s` space, `\,` a comma, `\\` a backslash, `\uXXXX` any character. Any other backslash
 * is kept as it is. "\sYes, \n" → [" Yes", "\n"].
 */
export function parseTargets(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  const flush = () => {
    out.push(cur);
    cur = "";
  };
  // split on unescaped commas first (escapes stay escaped), then trim and unescape each piece
  let raw = "";
  const pieces: string[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && i + 1 < s.length) {
      raw += s[i] + s[i + 1];
      i += 1;
    } else if (s[i] === ",") {
      pieces.push(raw);
      raw = "";
    } else raw += s[i];
  }
  pieces.push(raw);
  for (const p of pieces) {
    const t = p.trim();
    if (!t) continue;
    for (let i = 0; i < t.length; i++) {
      const c = t[i];
      if (c !== "\\" || i + 1 >= t.length) {
        cur += c;
        continue;
      }
      const n = t[i + 1];
      const simple: Record<string, string> = { n: "\n", t: "\t", s: " ", ",": ",", "\\": "\\" };
      if (n in simple) {
        cur += simple[n];
        i += 1;
      } else if (n === "u" && /^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) {
        cur += String.fromCharCode(parseInt(t.slice(i + 2, i + 6), 16));
        i += 5;
      } else cur += c;
    }
    flush();
  }
  return out;
}
