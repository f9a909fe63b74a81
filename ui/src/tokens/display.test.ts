import { contextToken, mergeTokens, renderBytes, showToken, tokenBytes } from "./display";

describe("token display", () => {
  it("reads byte marks back as bytes and renders bytes as whole characters or marks", () => {
    expect(tokenBytes(" <0xE2><0x80>")).toEqual([0x20, 0xe2, 0x80]);
    expect(renderBytes([0xe2, 0x80, 0x9c])).toBe("“");
    expect(renderBytes([0x61, 0xe2, 0x80])).toBe("a<0xE2><0x80>");
    expect(renderBytes([0xff, 0x62])).toBe("<0xFF>b");
  });

  it("merges adjacent byte pieces of one character in a context, keeps a lone piece as a mark", () => {
    // server pieces of ' “quoted”' (tiny byte-level vocabulary) and a lone lead byte at the end
    const tokens = [" <0xE2>", "<0x80>", "<0x9C>quoted", "<0xE2><0x80>", "<0x9D>", " x", " <0xC3>"];
    const pieces = mergeTokens(tokens);
    expect(pieces.map((p) => p.text)).toEqual([" “quoted", "”", " x", " <0xC3>"]);
    expect(pieces.map((p) => [p.start, p.end])).toEqual([[0, 3], [3, 5], [5, 6], [6, 7]]);
    // a continuation byte after a complete character does not merge
    expect(mergeTokens(["a", "<0x80>"]).map((p) => p.text)).toEqual(["a", "<0x80>"]);
  });

  it("shows whitespace as marks and never an empty chip", () => {
    expect(showToken(" ")).toBe("␣");
    expect(showToken("\n\n")).toBe("↵↵");
    expect(showToken("\t")).toBe("⇥");
    expect(showToken(" ".repeat(9))).toBe("␣␣␣␣␣␣…");
    expect(showToken("")).toBe("∅");
    expect(showToken(" return")).toBe("·return");
    expect(showToken('"""')).toBe('"""');
    expect(showToken("a\nb")).toBe("a↵b");
    expect(showToken(" <0xE2><0x80><0x9C>")).toBe("·“");
    expect(contextToken(" return")).toBe(" return");
    expect(contextToken("    ")).toBe("␣␣␣␣");
  });
});
