import { ApiError, errorMessage, formatDetail } from "./errors";
import { buildUrl, request, unwrapList } from "./client";
import { setStoredToken, API_KEY_HEADER } from "./auth";
import { stubFetch } from "../test/fetchStub";

afterEach(() => vi.unstubAllGlobals());

describe("error formatting", () => {
  it("reads FastAPI detail strings and validation lists", () => {
    expect(formatDetail("No model loaded")).toBe("No model loaded");
    expect(formatDetail([{ loc: ["body", "text"], msg: "String should have at least 1 character" }])).toBe(
      "text: String should have at least 1 character",
    );
    expect(errorMessage(new ApiError(429, "slow down"))).toBe("Rate limited: slow down");
    expect(errorMessage(new TypeError("Failed to fetch"))).toMatch(/Cannot reach the server/);
  });
});

describe("request", () => {
  it("builds query strings without empty values", () => {
    expect(buildUrl("/a", { x: 1, y: "", z: undefined, q: "a b" })).toBe("/a?x=1&q=a+b");
  });

  it("throws ApiError with the server's detail and sends the stored API key", async () => {
    const { fn } = stubFetch({ "POST /api/inference": () => [422, { detail: "text is empty" }] });
    setStoredToken("secret");
    await expect(request("POST", "/api/inference", { body: { text: "" } })).rejects.toMatchObject({
      status: 422,
      message: "text is empty",
    });
    const init = fn.mock.calls[0][1] as RequestInit;
    expect((init.headers as Record<string, string>)[API_KEY_HEADER]).toBe("secret");
  });

  it("accepts bare arrays and {items} for lists", () => {
    expect(unwrapList([1, 2])).toEqual([1, 2]);
    expect(unwrapList({ items: [3] })).toEqual([3]);
    expect(unwrapList(null)).toEqual([]);
  });
});
