import { parseTargets } from "./targets";

describe("parseTargets", () => {
  it("reads escapes instead of literal backslashes", () => {
    expect(parseTargets("\\sYes, No")).toEqual([" Yes", "No"]);
    expect(parseTargets("\\n")).toEqual(["\n"]);
    expect(parseTargets("\\t, \\n\\n")).toEqual(["\t", "\n\n"]);
    expect(parseTargets("a\\,b, \\\\")).toEqual(["a,b", "\\"]);
    expect(parseTargets("\\u2019s")).toEqual(["’s"]);
    expect(parseTargets(" , ,x")).toEqual(["x"]);
    expect(parseTargets("C:\\path")).toEqual(["C:\\path"]);
  });
});
