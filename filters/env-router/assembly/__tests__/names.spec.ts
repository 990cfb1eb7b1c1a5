import { envAllowed, fallbackChain, globMatch, validEnvName } from "../names";
import { baggageMember, b3TraceId, cookieValue, fnv1a, percentDecode, requestIdKey, traceparentTraceId, withBaggageMember } from "../carriers";
import { Availability, Outcome, decide } from "../availability";

describe("env names", () => {
  it("accepts dot-separated DNS-style labels", () => {
    expect(validEnvName("default")).toBe(true);
    expect(validEnvName("feature-x.team-a")).toBe(true);
    expect(validEnvName("a1")).toBe(true);
  });
  it("rejects everything else", () => {
    expect(validEnvName("")).toBe(false);
    expect(validEnvName("Feature")).toBe(false);
    expect(validEnvName("-x")).toBe(false);
    expect(validEnvName("x-")).toBe(false);
    expect(validEnvName("a..b")).toBe(false);
    expect(validEnvName(".a")).toBe(false);
    expect(validEnvName("a b")).toBe(false);
    expect(validEnvName("a\r\nb")).toBe(false);
    expect(validEnvName("x".repeat(64))).toBe(false);
    expect(validEnvName("abcdef", 5)).toBe(false);
  });
  it("globs with * and ?", () => {
    expect(globMatch("feature-*", "feature-x")).toBe(true);
    expect(globMatch("feature-*", "feature-")).toBe(true);
    expect(globMatch("feature-*", "hotfix-x")).toBe(false);
    expect(globMatch("*.team-a", "x.team-a")).toBe(true);
    expect(globMatch("t?am", "team")).toBe(true);
    expect(globMatch("a*b*c", "axxbyyc")).toBe(true);
    expect(globMatch("a*b*c", "axxbyy")).toBe(false);
    expect(envAllowed("anything", [])).toBe(true);
    expect(envAllowed("feature-x", ["default", "feature-*"])).toBe(true);
    expect(envAllowed("perf", ["default", "feature-*"])).toBe(false);
  });
});

const none = new Map<string, Array<string>>();

describe("fallback chains", () => {
  it("drops the leftmost label until the default", () => {
    expect(fallbackChain("feature-x.team-a", none, true, "default").join(">")).toBe("feature-x.team-a>team-a>default");
    expect(fallbackChain("a.b.c", none, true, "default").join(">")).toBe("a.b.c>b.c>c>default");
  });
  it("without hierarchy goes straight to the default", () => {
    expect(fallbackChain("feature-x.team-a", none, false, "default").join(">")).toBe("feature-x.team-a>default");
  });
  it("uses an explicit chain and never repeats an env", () => {
    const explicit = new Map<string, Array<string>>();
    explicit.set("feature-y", ["staging", "feature-y", "default"]);
    expect(fallbackChain("feature-y", explicit, true, "default").join(">")).toBe("feature-y>staging>default");
  });
  it("the default env's own chain is just itself", () => {
    expect(fallbackChain("default", none, true, "default").join(">")).toBe("default");
  });
});

function sampleAvailability(): Availability {
  const avail = new Availability();
  avail.set("reviews", ["default", "team-a"]);
  avail.set("ratings.prod.svc", ["default"]);
  return avail;
}
const avail = sampleAvailability();
const chain = ["feature-x.team-a", "team-a", "default"];

describe("decide", () => {
  it("takes the first env in the chain that runs the service", () => {
    const d = decide(avail, "reviews.default.svc.cluster.local:9080", chain, "default", false);
    expect(d.served).toBe("team-a");
    expect(d.outcome).toBe(Outcome.Fallback);
    expect(d.step).toBe(1);
  });
  it("reports hits, defaults, unknown services and production pinning", () => {
    expect(decide(avail, "reviews", ["team-a", "default"], "default", false).outcome).toBe(Outcome.Hit);
    expect(decide(avail, "ratings.prod.svc", chain, "default", false).outcome).toBe(Outcome.Default);
    expect(decide(avail, "unknown", chain, "default", false).outcome).toBe(Outcome.UnknownService);
    const pinned = decide(avail, "reviews", chain, "default", true);
    expect(pinned.served).toBe("default");
    expect(pinned.outcome).toBe(Outcome.ProductionPinned);
  });
});

describe("baggage", () => {
  it("finds a member, drops its properties and percent-decodes it", () => {
    expect(baggageMember("userId=alice, env=feature-x;ttl=3 ,x=1", "env").value).toBe("feature-x");
    expect(baggageMember("env=a%2Db", "env").value).toBe("a-b");
    expect(baggageMember("environment=x", "env").value).toBeNull();
  });
  it("ignores malformed members and refuses over-limit headers", () => {
    expect(baggageMember("=x,,;;,env", "env").value).toBeNull();
    expect(baggageMember("env=%zz", "env").value).toBeNull();
    expect(baggageMember("env=%e9", "env").value).toBeNull();
    let many = "";
    for (let i = 0; i < 200; i++) many += "m" + i.toString() + "=1,";
    expect(baggageMember(many, "env").tooLarge).toBe(true);
    expect(baggageMember("x".repeat(9000), "env").tooLarge).toBe(true);
  });
  it("sets a member, replacing an old one, within the limits", () => {
    expect(withBaggageMember("a=1,env=old;p=1,b=2", "env", "new")).toBe("a=1,b=2,env=new");
    expect(withBaggageMember(null, "env", "x")).toBe("env=x");
    expect(withBaggageMember("k=" + "v".repeat(8190), "env", "x")).toBeNull();
  });
  it("percent-decodes ASCII only", () => {
    expect(percentDecode("a%20b")).toBe("a b");
    expect(percentDecode("a%2")).toBeNull();
  });
});

describe("cookies and trace ids", () => {
  it("reads a cookie by name", () => {
    expect(cookieValue("a=1; env=feature-x; b=2", "env")).toBe("feature-x");
    expect(cookieValue("env=\"quoted\"", "env")).toBe("quoted");
    expect(cookieValue("myenv=x", "env")).toBeNull();
  });
  it("extracts W3C and B3 trace ids, and request ids, strictly", () => {
    expect(traceparentTraceId("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(traceparentTraceId("00-00000000000000000000000000000000-00f067aa0ba902b7-01")).toBeNull();
    expect(traceparentTraceId("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBeNull();
    expect(traceparentTraceId("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")).toBeNull();
    expect(traceparentTraceId("garbage")).toBeNull();
    expect(b3TraceId("463ac35c9f6413ad")).toBe("463ac35c9f6413ad");
    expect(b3TraceId("463ac35c9f6413a")).toBeNull();
    expect(requestIdKey("5f0c6f6e-1b7e-4c1a-9f57-0d6f3d2b9a10")).toBe("5f0c6f6e-1b7e-4c1a-9f57-0d6f3d2b9a10");
    expect(requestIdKey("short")).toBeNull();
    expect(requestIdKey("has space in it")).toBeNull();
  });
  it("hashes stably", () => {
    expect(fnv1a("")).toBe(0x811c9dc5);
    expect(fnv1a("a")).toBe(0xe40c292c);
  });
});
