import { Action, HeaderClass, OnConflict, Rule, decide, defaultRules, unsafeValue } from "../policy";
import { Settings, parseSettings, validHeaderName } from "../settings";

function rule(onConflict: OnConflict, split: bool = true): Rule {
  return new Rule("content-type", HeaderClass.Singleton, onConflict, split, true, true);
}

describe("decide", () => {
  it("leaves a single clean value alone", () => {
    expect(decide(rule(OnConflict.First), ["application/json"]).action).toBe(Action.Clean);
  });

  it("collapses a comma-joined repeat (the Spring 415 case)", () => {
    const d = decide(rule(OnConflict.First), ["application/json,application/json"]);
    expect(d.action).toBe(Action.Collapse);
    expect(d.value).toBe("application/json");
  });

  it("collapses identical separate entries", () => {
    const d = decide(rule(OnConflict.Reject), ["text/plain", " text/plain "]);
    expect(d.action).toBe(Action.Collapse);
    expect(d.value).toBe("text/plain");
  });

  it("keeps a quoted comma inside one value", () => {
    expect(decide(rule(OnConflict.First), ["multipart/form-data; boundary=\"a,b\""]).action).toBe(Action.Clean);
    const d = decide(rule(OnConflict.First), ["multipart/form-data; boundary=\"a,b\",multipart/form-data; boundary=\"a,b\""]);
    expect(d.action).toBe(Action.Collapse);
    expect(d.value).toBe("multipart/form-data; boundary=\"a,b\"");
  });

  it("passes a single line whose unquoted comma is not between two media types (boundary=a,b)", () => {
    expect(decide(rule(OnConflict.First), ["multipart/form-data; boundary=a,b"]).action).toBe(Action.Clean);
    expect(decide(rule(OnConflict.First), ["text/plain; charset=utf-8,"]).action).toBe(Action.Clean);
  });

  it("still collapses two joined lines that each carry such a value", () => {
    const d = decide(rule(OnConflict.First), ["multipart/form-data; boundary=a,multipart/form-data; boundary=a"]);
    expect(d.action).toBe(Action.Collapse);
    expect(d.value).toBe("multipart/form-data; boundary=a");
  });

  it("resolves conflicts by first or last, or rejects", () => {
    const values = ["application/json, text/plain"];
    expect(decide(rule(OnConflict.First), values).value).toBe("application/json");
    expect(decide(rule(OnConflict.Last), values).value).toBe("text/plain");
    const r = decide(rule(OnConflict.Reject), values);
    expect(r.action).toBe(Action.Reject);
    expect(r.reason).toBe("conflicting content-type values");
  });

  it("does not split a rule whose grammar has commas (dates)", () => {
    const date = new Rule("date", HeaderClass.Singleton, OnConflict.First, false, false, true);
    expect(decide(date, ["Sun, 06 Nov 1994 08:49:37 GMT"]).action).toBe(Action.Clean);
    const d = decide(date, ["Sun, 06 Nov 1994 08:49:37 GMT", "Mon, 07 Nov 1994 08:49:37 GMT"]);
    expect(d.action).toBe(Action.Resolve);
    expect(d.value).toBe("Sun, 06 Nov 1994 08:49:37 GMT");
  });

  it("ignores empty members and whitespace", () => {
    const d = decide(rule(OnConflict.Reject), [" application/json ,, application/json "]);
    expect(d.action).toBe(Action.Collapse);
    expect(d.value).toBe("application/json");
  });

  it("skips malformed values instead of guessing", () => {
    expect(decide(rule(OnConflict.First), ["a, \"b"]).action).toBe(Action.Malformed);
    let many = "a";
    for (let i = 0; i < 100; i++) many += ",a";
    expect(decide(rule(OnConflict.First), [many]).action).toBe(Action.Malformed);
    const plain = new Rule("x-single", HeaderClass.Singleton, OnConflict.First, true, true, true);
    expect(decide(plain, ["a\r\nx: y,a\r\nx: y"]).action).toBe(Action.Malformed);
    expect(decide(rule(OnConflict.First), ["text/plain\r\nx: y,text/plain\r\nx: y"]).action).toBe(Action.Clean);
    expect(unsafeValue("a\u0000")).toBe(true);
    expect(unsafeValue("ok")).toBe(false);
  });
});

describe("defaults", () => {
  it("content-type resolves to the first value; content-length and authority reject", () => {
    const rules = defaultRules();
    let ct: Rule | null = null, cl: Rule | null = null, au: Rule | null = null;
    for (let i = 0; i < rules.length; i++) {
      if (rules[i].name == "content-type") ct = rules[i];
      if (rules[i].name == "content-length") cl = rules[i];
      if (rules[i].name == ":authority") au = rules[i];
    }
    expect(ct!.onConflict).toBe(OnConflict.First);
    expect(cl!.onConflict).toBe(OnConflict.Reject);
    expect(au!.onConflict).toBe(OnConflict.Reject);
  });

  it("never lists set-cookie or content-encoding", () => {
    const rules = defaultRules();
    for (let i = 0; i < rules.length; i++) {
      expect(rules[i].name).not.toBe("set-cookie");
      expect(rules[i].name).not.toBe("content-encoding");
    }
  });
});

describe("parseSettings", () => {
  it("accepts {} and an empty configuration", () => {
    expect(parseSettings("{}", new Settings())).toBe("");
    const s = new Settings();
    expect(parseSettings("", s)).toBe("");
    expect(s.requestRules.all.length).toBeGreaterThan(5);
  });

  it("names the field of a bad value", () => {
    expect(parseSettings("{\"headers\": [{\"name\": \"content-type\", \"on_conflict\": \"middle\"}]}", new Settings()))
      .toBe("headers[0].on_conflict: must be one of first, last, reject, got \"middle\"");
    expect(parseSettings("{\"headers\": [{\"name\": \"Content-Type\"}]}", new Settings()))
      .toBe("headers[0].name: header names must be lowercase (Envoy lowercases every name), got \"Content-Type\"");
    expect(parseSettings("{\"headers\": [{\"name\": \"set-cookie\", \"class\": \"singleton\"}]}", new Settings()))
      .toBe("headers[0].class: set-cookie is never merged (each cookie is its own field line)");
    expect(parseSettings("{\"aliases\": [{\"from\": \"x-a\", \"to\": \"x-a\"}]}", new Settings()))
      .toBe("aliases[0].to: must differ from \"from\"");
    expect(parseSettings("{\"dry_run\": 1}", new Settings())).toBe("dry_run: must be a boolean, got number");
    expect(parseSettings("{\"dryrun\": true}", new Settings())).toBe("dryrun: unknown field (allowed: dry_run, request, response, headers, aliases, diagnose_upstream_protocol_errors, diagnostic_header, stamp_build)");
    expect(parseSettings("{\"diagnostic_header\": \"X Bad\"}", new Settings())).toBe("diagnostic_header: not a valid lowercase header name: \"X Bad\"");
  });

  it("overrides a default rule by name and can switch it off", () => {
    const s = new Settings();
    expect(parseSettings("{\"headers\": [{\"name\": \"content-type\", \"class\": \"ignore\"}, {\"name\": \"x-tenant\", \"on_conflict\": \"reject\", \"direction\": \"request\"}]}", s)).toBe("");
    let hasCt = false, tenantReq = false, tenantResp = false;
    for (let i = 0; i < s.requestRules.all.length; i++) {
      if (s.requestRules.all[i].name == "content-type") hasCt = true;
      if (s.requestRules.all[i].name == "x-tenant") tenantReq = true;
    }
    for (let i = 0; i < s.responseRules.all.length; i++) if (s.responseRules.all[i].name == "x-tenant") tenantResp = true;
    expect(hasCt).toBe(false);
    expect(tenantReq).toBe(true);
    expect(tenantResp).toBe(false);
  });

  it("maps host to :authority", () => {
    const s = new Settings();
    expect(parseSettings("{\"headers\": [{\"name\": \"host\", \"on_conflict\": \"first\"}]}", s)).toBe("");
    let found = false;
    for (let i = 0; i < s.requestRules.all.length; i++) {
      if (s.requestRules.all[i].name == ":authority") { found = true; expect(s.requestRules.all[i].onConflict).toBe(OnConflict.First); }
    }
    expect(found).toBe(true);
  });

  it("validates header names", () => {
    expect(validHeaderName("x-api-key")).toBe(true);
    expect(validHeaderName("x api")).toBe(false);
    expect(validHeaderName("")).toBe(false);
    expect(validHeaderName("X-Api")).toBe(false);
  });
});

describe("authorization: joined credentials are split, one credential is never", () => {
  const auth = (): Rule => {
    const rules = defaultRules();
    for (let i = 0; i < rules.length; i++) if (rules[i].name == "authorization") return rules[i];
    return rules[0];
  };
  it("two different Bearer lines joined by Envoy conflict (rejected by default)", () => {
    const d = decide(auth(), ["Bearer aaa,Bearer bbb"]);
    expect(d.action).toBe(Action.Reject);
    expect(d.reason).toBe("conflicting authorization values");
  });
  it("two identical lines collapse to one", () => {
    const d = decide(auth(), ["Basic YWxhZGRpbjpvcGVuc2VzYW1l,Basic YWxhZGRpbjpvcGVuc2VzYW1l"]);
    expect(d.action).toBe(Action.Collapse);
    expect(d.value).toBe("Basic YWxhZGRpbjpvcGVuc2VzYW1l");
  });
  it("Digest credentials keep their own commas", () => {
    expect(decide(auth(), ["Digest username=\"a\", realm=\"b, c\", nonce=\"d\", uri=\"/\", response=\"e\""]).action).toBe(Action.Clean);
  });
  it("two joined Digest credentials are two values, each kept whole", () => {
    const one = "Digest username=\"a\", realm=\"b\", nonce=\"d\"";
    const d = decide(auth(), [one + "," + one]);
    expect(d.action).toBe(Action.Collapse);
    expect(d.value).toBe(one);
  });
});
