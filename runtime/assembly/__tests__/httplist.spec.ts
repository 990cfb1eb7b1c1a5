import { splitList, trimOws, isMultiValued, asciiLower } from "../httplist";

describe("splitList (RFC 9110 5.6.1)", () => {
  it("splits on commas and trims optional whitespace", () => {
    const items = splitList(" application/json ,\ttext/plain")!;
    expect(items.length).toBe(2);
    expect(items[0]).toBe("application/json");
    expect(items[1]).toBe("text/plain");
  });

  it("keeps a comma inside a quoted string in one element", () => {
    const items = splitList("multipart/form-data; boundary=\"a,b\"")!;
    expect(items.length).toBe(1);
    expect(items[0]).toBe("multipart/form-data; boundary=\"a,b\"");
  });

  it("honours backslash quoted-pairs inside quotes", () => {
    const items = splitList("a; x=\"1\\\",2\", b")!;
    expect(items.length).toBe(2);
    expect(items[0]).toBe("a; x=\"1\\\",2\"");
    expect(items[1]).toBe("b");
  });

  it("ignores empty elements", () => {
    const items = splitList(",, a ,, b,")!;
    expect(items.length).toBe(2);
    expect(items[1]).toBe("b");
  });

  it("rejects an unterminated quoted string", () => {
    expect(splitList("a, \"b, c")).toBeNull();
  });

  it("rejects more elements than allowed", () => {
    let big = "x";
    for (let i = 0; i < 300; i++) big += ",x";
    expect(splitList(big)).toBeNull();
    expect(splitList(big, 1000)!.length).toBe(301);
  });

  it("returns an empty list for an empty or blank value", () => {
    expect(splitList("")!.length).toBe(0);
    expect(splitList("  \t ")!.length).toBe(0);
  });
});

describe("helpers", () => {
  it("trims only SP and HTAB", () => {
    expect(trimOws(" \ta b\t ")).toBe("a b");
    expect(trimOws("\na")).toBe("\na");
  });
  it("detects comma-joined duplicates", () => {
    expect(isMultiValued("application/json,application/json")).toBe(true);
    expect(isMultiValued("multipart/form-data; boundary=\"a,b\"")).toBe(false);
    expect(isMultiValued("text/plain")).toBe(false);
  });
  it("lowercases ASCII only", () => {
    expect(asciiLower("Content-Type")).toBe("content-type");
    expect(asciiLower("ÄB")).toBe("Äb");
  });
});
