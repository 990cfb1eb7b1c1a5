import { JsonParser, JsonKind, JsonObject, JsonArray, JsonNumber, JsonString, quoteJson } from "../json";

function parse(text: string): JsonParser {
  const p = new JsonParser();
  p.parse(text);
  return p;
}

describe("JsonParser", () => {
  it("parses nested values", () => {
    const v = new JsonParser().parse("{\"a\": [1, 2.5, -3e2], \"b\": {\"c\": \"x\\u00e9\\n\"}, \"d\": true, \"e\": null}")!;
    expect(v.kind).toBe(JsonKind.Object);
    const o = changetype<JsonObject>(v);
    expect(o.keys.join(",")).toBe("a,b,d,e");
    const a = changetype<JsonArray>(o.get("a")!);
    expect(changetype<JsonNumber>(a.items[1]).value).toBe(2.5);
    expect(changetype<JsonNumber>(a.items[2]).value).toBe(-300.0);
    expect(changetype<JsonNumber>(a.items[0]).isInteger).toBe(true);
    const b = changetype<JsonObject>(o.get("b")!);
    expect(changetype<JsonString>(b.get("c")!).value).toBe("xé\n");
  });

  it("reports malformed input with an offset", () => {
    expect(parse("{\"a\": }").error).toBe("at offset 6: unexpected character '}'");
    expect(parse("[1, 2").error).toBe("at offset 5: unexpected end of input");
    expect(parse("{\"a\": 1} x").error).toBe("at offset 9: unexpected trailing characters");
    expect(parse("\"abc").error).toBe("at offset 4: unterminated string");
    expect(parse("01").error).toBe("at offset 1: unexpected trailing characters");
    expect(parse("1.").error).toBe("at offset 2: bad number");
    expect(parse("{\"a\":1,\"a\":2}").error).toBe("at offset 7: duplicate key \"a\"");
    expect(parse("\"a\u0001\"").error).toBe("at offset 2: control character in string");
  });

  it("limits nesting depth", () => {
    let deep = "";
    for (let i = 0; i < 100; i++) deep += "[";
    for (let i = 0; i < 100; i++) deep += "]";
    expect(parse(deep).error).toBe("at offset 65: nesting deeper than 64");
  });

  it("rejects oversized input without parsing it", () => {
    const big = "\"" + "x".repeat(1 << 20) + "\"";
    expect(parse(big).error).toBe("input larger than 1048576 characters");
  });

  it("quotes strings for JSON output", () => {
    expect(quoteJson("a\"b\\c\n\u0001")).toBe("\"a\\\"b\\\\c\\n\\u0001\"");
  });
});
