"""How one token id becomes text on the wire — the one server-side rule (``ui/src/tokens/display.ts`` shows it).

Decoding a token id on its own gives U+FFFD ('�') when the token is a piece of a multi-byte UTF-8 character
(byte-level BPE splits '“' into three byte tokens; byte-fallback vocabularies hold ``<0xE2>`` pieces). Here each
such id is decoded to its exact bytes — through the GPT-2 byte↔unicode table for byte-level BPE, or its
``<0xNN>`` piece for byte fallback — and written as text where the bytes form whole characters, each byte
that does not as ``<0xE2>``. The UI merges adjacent pieces of one character back when it shows a context and
shows a lone piece as ``<0xE2>``; labels do the same (``features/labels.py``). Every other token is its plain
decode, so ids and strings round-trip as before.
"""
from __future__ import annotations

import re
from functools import lru_cache

REPLACEMENT = "\ufffd"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: the printable character that stands for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def render_bytes(data: bytes) -> str:
    """Bytes -> text: whole UTF-8 characters as themselves, every other byte as ``<0xNN>``."""
    out, i = [], 0
    while i < len(data):
        try:
            out.append(data[i:].decode("utf-8"))
            break
        except UnicodeDecodeError as e:
            out.append(data[i: i + e.start].decode("utf-8"))
            out.extend(f"<0x{b:02X}>" for b in data[i + e.start: i + e.end])
            i += e.end
    return "".join(out)


def piece_bytes(piece: str) -> bytes | None:
    """The bytes a vocabulary piece stands for: ``<0xNN>`` byte-fallback pieces, or byte-level BPE pieces
    (every character in the GPT-2 table); None for anything else."""
    m = _BYTE_PIECE.fullmatch(piece)
    if m:
        return bytes([int(m.group(1), 16)])
    table = _byte_decoder()
    if piece and all(c in table for c in piece):
        return bytes(table[c] for c in piece)
    return None


def token_texts(tokenizer: object, ids: list[int]) -> list[str]:
    """Each id decoded on its own by the rule above."""
    decoded = tokenizer.batch_decode([[int(i)] for i in ids])  # type: ignore[attr-defined]
    out = list(decoded)
    bad = [j for j, s in enumerate(out) if REPLACEMENT in s]
    if bad:
        pieces = tokenizer.convert_ids_to_tokens([int(ids[j]) for j in bad])  # type: ignore[attr-defined]
        for j, piece in zip(bad, pieces):
            b = piece_bytes(piece) if isinstance(piece, str) else None
            if b is not None:
                out[j] = render_bytes(b)
    return out


def token_text(tokenizer: object, token_id: int) -> str:
    return token_texts(tokenizer, [token_id])[0]
