/**
 * How tokens are shown — the one rule of the UI (its server-side twin: interpretability_workbench/features/labels.py
 * and model/token_text.py).
 *
 * The server sends each token decoded on its own, with every byte that is not part of a whole UTF-8 character
 * written as `<0xE2>` (byte-level BPE splits '“' into three such pieces). Here:
 * - `mergeTokens`: in a context, adjacent pieces that together form whole characters are shown as one piece (the
 *   characters they spell); a lone piece stays `<0xE2>`;
 * - `showToken`: a token on its own (lists, labels, logits): a whitespace-only token as marks — `␣` a space, `↵` a
 *   newline, `⇥` a tab — and in any other token spaces at either end as `·`, newlines `↵`, tabs `⇥`, other control
 *   characters as `<0xNN>`;
 * - `contextToken`: a token inside running text: whitespace-only tokens as marks, others as they are (newlines `↵`,
 *   tabs `⇥`), so the words read naturally.
 */

const BYTE_MARK = /<0x([0-9A-Fa-f]{2})>/g;
const MARKS: Record<string, string> = { " ": "␣", "\n": "↵", "\t": "⇥" };
const MAX_MARKS = 6;
const encoder = new TextEncoder();

/** A token's bytes: its text as UTF-8, each `<0xNN>` mark as that byte. */
export function tokenBytes(t: string): number[] {
  const out: number[] = [];
  let last = 0;
  for (const m of t.matchAll(BYTE_MARK)) {
    out.push(...encoder.encode(t.slice(last, m.index)));
    out.push(parseInt(m[1], 16));
    last = (m.index ?? 0) + m[0].length;
  }
  out.push(...encoder.encode(t.slice(last)));
  return out;
}

/** Length of the UTF-8 sequence a lead byte starts (0: not a lead byte). */
function seqLen(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
const strict = new TextDecoder("utf-8", { fatal: true });

/** Bytes -> text: whole UTF-8 characters as themselves, every other byte as `<0xNN>`. */
export function renderBytes(bytes: number[]): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const n = seqLen(bytes[i]);
    if (n > 0 && i + n <= bytes.length) {
      try {
        out += strict.decode(new Uint8Array(bytes.slice(i, i + n)));
        i += n;
        continue;
      } catch {
        /* not a whole character: fall through */
      }
    }
    out += hex(bytes[i]);
    i += 1;
  }
  return out;
}

/** True when the bytes end inside a multi-byte character. */
function endsIncomplete(bytes: number[]): boolean {
  for (let k = 1; k <= Math.min(3, bytes.length); k++) {
    const b = bytes[bytes.length - k];
    if ((b & 0xc0) !== 0x80) return seqLen(b) > k;
  }
  return false;
}

const startsWithContinuation = (bytes: number[]) => bytes.length > 0 && (bytes[0] & 0xc0) === 0x80;

export interface Piece {
  /** the text shown for tokens [start, end) (byte pieces merged; marks not applied) */
  text: string;
  start: number;
  end: number;
}

/** Group adjacent tokens whose byte pieces form whole characters together (see the module comment). */
export function mergeTokens(tokens: string[]): Piece[] {
  const out: Piece[] = [];
  let i = 0;
  while (i < tokens.length) {
    if (!tokens[i].includes("<0x")) {
      out.push({ text: tokens[i], start: i, end: i + 1 });
      i += 1;
      continue;
    }
    let buf = tokenBytes(tokens[i]);
    let j = i + 1;
    while (j < tokens.length && endsIncomplete(buf) && tokens[j].startsWith("<0x")) {
      const next = tokenBytes(tokens[j]);
      if (!startsWithContinuation(next)) break;
      buf = buf.concat(next);
      j += 1;
    }
    out.push({ text: renderBytes(buf), start: i, end: j });
    i = j;
  }
  return out;
}

const isBlank = (t: string) => t.length === 0 || /^\s+$/.test(t);

/** A whitespace-only token as marks (at most `max`, then `…`); an empty token as `∅`. */
export function whitespaceMarks(t: string, max = MAX_MARKS): string {
  if (t.length === 0) return "∅";
  const marks = [...t].map((c) => MARKS[c] ?? hex(c.charCodeAt(0)));
  return marks.slice(0, max).join("") + (marks.length > max ? "…" : "");
}

function controlMarks(t: string): string {
  // eslint-disable-next-line no-control-regex
  return t.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => hex(c.charCodeAt(0)));
}

/** A token on its own (lists, labels, logit bars); byte pieces inside it are merged first. */
export function showToken(t: string): string {
  const text = t.includes("<0x") ? renderBytes(tokenBytes(t)) : t;
  if (isBlank(text)) return whitespaceMarks(text);
  const lead = text.length - text.trimStart().length;
  const trail = text.length - text.trimEnd().length;
  const core = text.slice(lead, text.length - trail);
  const ends = (s: string) => [...s].map((c) => (c === " " ? "·" : MARKS[c] ?? hex(c.charCodeAt(0)))).join("");
  return ends(text.slice(0, lead)) + controlMarks(core) + ends(text.slice(text.length - trail));
}

/** A token inside running text (contexts): whitespace-only as marks, anything else as it is. */
export function contextToken(t: string): string {
  return isBlank(t) ? whitespaceMarks(t, Infinity) : controlMarks(t);
}
