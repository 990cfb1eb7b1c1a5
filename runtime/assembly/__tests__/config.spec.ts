import { ConfigReader } from "../config";
import { JsonObject } from "../json";

describe("ConfigReader", () => {
  it("reads typed fields with defaults", () => {
    const r = new ConfigReader();
    const o = r.parse("{\"name\": \"x\", \"n\": 5, \"f\": 0.5, \"on\": true, \"mode\": \"b\", \"list\": [\"p\", \"q\"]}")!;
    expect(r.str(o, "", "name", "")).toBe("x");
    expect(r.int(o, "", "n", 0, 0, 10)).toBe(5);
    expect(r.num(o, "", "f", 0, 0, 1)).toBe(0.5);
    expect(r.bool(o, "", "on", false)).toBe(true);
    expect(r.oneOf(o, "", "mode", ["a", "b"], "a")).toBe("b");
    expect(r.strings(o, "", "list", 10, []).join("|")).toBe("p|q");
    expect(r.int(o, "", "missing", 7, 0, 10)).toBe(7);
    expect(r.ok).toBe(true);
  });

  it("names the failing field with its full path", () => {
    const r = new ConfigReader();
    const o = r.parse("{\"rules\": [{}, {}, {\"pid\": {\"kp\": -1}}]}")!;
    const rules = r.array(o, "", "rules", 10)!;
    for (let i = 0; i < rules.items.length; i++) {
      const rule = r.itemObject(rules, "rules", i)!;
      const pid = r.object(rule, "rules[" + i.toString() + "]", "pid");
      if (pid !== null) r.num(pid, "rules[" + i.toString() + "].pid", "kp", 0, 0, 100);
    }
    expect(r.error).toBe("rules[2].pid.kp: must be >= 0, got -1");
  });

  it("keeps only the first error", () => {
    const r = new ConfigReader();
    const o = r.parse("{\"a\": \"x\", \"b\": 3}")!;
    r.int(o, "", "a", 0, 0, 1);
    r.int(o, "", "b", 0, 0, 1);
    expect(r.error).toBe("a: must be an integer, got string");
  });

  it("rejects unknown fields", () => {
    const r = new ConfigReader();
    const o = r.parse("{\"timeout_ms\": 1, \"tiemout\": 2}")!;
    r.allowKeys(o, "", ["timeout_ms"]);
    expect(r.error).toBe("tiemout: unknown field (allowed: timeout_ms)");
  });

  it("reports required, type, range and enum problems", () => {
    let r = new ConfigReader();
    let o = r.parse("{}")!;
    r.str(o, "", "cluster", "", true);
    expect(r.error).toBe("cluster: is required");

    r = new ConfigReader();
    o = r.parse("{\"n\": 1.5}")!;
    r.int(o, "x", "n", 0, 0, 10);
    expect(r.error).toBe("x.n: must be an integer, got 1.5");

    r = new ConfigReader();
    o = r.parse("{\"n\": 11}")!;
    r.int(o, "", "n", 0, 0, 10);
    expect(r.error).toBe("n: must be <= 10, got 11");

    r = new ConfigReader();
    o = r.parse("{\"m\": \"c\"}")!;
    r.oneOf(o, "", "m", ["a", "b"], "a");
    expect(r.error).toBe("m: must be one of a, b, got \"c\"");

    r = new ConfigReader();
    o = r.parse("{\"l\": [\"a\", 2]}")!;
    r.strings(o, "", "l", 10, []);
    expect(r.error).toBe("l[1]: must be a string, got number");
  });

  it("treats an empty configuration as an empty object and rejects non-objects", () => {
    let r = new ConfigReader();
    expect(r.parse("  ")!.keys.length).toBe(0);
    r = new ConfigReader();
    expect(r.parse("[1]")).toBeNull();
    expect(r.error).toBe("configuration: must be a JSON object, got array");
    r = new ConfigReader();
    expect(r.parse("{\"a\":")).toBeNull();
    expect(r.error).toBe("configuration: invalid JSON at offset 5: unexpected end of input");
  });
});
