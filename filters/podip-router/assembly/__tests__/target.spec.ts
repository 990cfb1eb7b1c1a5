import { Reject, base64, deniedRanges, inAny, parseAddress, parseHostForm, parsePathForm, parsePort } from "../target";
import { parseIp } from "../../../../runtime/assembly/ip";

const noNames = new Map<string, string>();
function names(): Map<string, string> {
  const m = new Map<string, string>();
  m.set("web-0", "10.8.3.17");
  return m;
}
const podNames = names();

describe("parsePort", () => {
  it("accepts plain decimal 1-65535", () => {
    expect(parsePort("1")).toBe(1);
    expect(parsePort("8080")).toBe(8080);
    expect(parsePort("65535")).toBe(65535);
  });
  it("rejects zero, overflow, padding, signs and other digits", () => {
    expect(parsePort("0")).toBe(-1);
    expect(parsePort("65536")).toBe(-1);
    expect(parsePort("080")).toBe(-1);
    expect(parsePort("+80")).toBe(-1);
    expect(parsePort("")).toBe(-1);
    expect(parsePort("99999999999")).toBe(-1);
    expect(parsePort("８０")).toBe(-1);
  });
});

describe("parsePathForm", () => {
  it("takes the address and port, strips the prefix, keeps the query", () => {
    const t = parsePathForm("/_pod/10.8.3.17:8080/actuator/health?x=1", "/_pod/", noNames, 0)!;
    expect(t.reject).toBe(Reject.None);
    expect(t.hostPort()).toBe("10.8.3.17:8080");
    expect(t.rest).toBe("/actuator/health?x=1");
  });
  it("uses the default port and gives '/' for an empty rest", () => {
    expect(parsePathForm("/_pod/10.8.3.17", "/_pod/", noNames, 9090)!.hostPort()).toBe("10.8.3.17:9090");
    expect(parsePathForm("/_pod/10.8.3.17", "/_pod/", noNames, 9090)!.rest).toBe("/");
    expect(parsePathForm("/_pod/10.8.3.17?a=b", "/_pod/", noNames, 9090)!.rest).toBe("/?a=b");
    expect(parsePathForm("/_pod/10.8.3.17", "/_pod/", noNames, 0)!.reject).toBe(Reject.Malformed);
  });
  it("accepts bracketed canonical IPv6 and pod names", () => {
    expect(parsePathForm("/_pod/[fd00:10::5]:8080/x", "/_pod/", noNames, 0)!.hostPort()).toBe("[fd00:10::5]:8080");
    expect(parsePathForm("/_pod/web-0:8080/x", "/_pod/", podNames, 0)!.hostPort()).toBe("10.8.3.17:8080");
    expect(parsePathForm("/_pod/web-9:8080/x", "/_pod/", podNames, 0)!.reject).toBe(Reject.UnknownName);
  });
  it("is not a pin request without the prefix", () => {
    expect(parsePathForm("/api/_pod/10.0.0.1", "/_pod/", noNames, 80)).toBeNull();
    expect(parsePathForm("/_podx/10.0.0.1", "/_pod/", noNames, 80)).toBeNull();
  });
  it("refuses non-canonical addresses, traversal, nesting and empty segments", () => {
    const bad = [
      "/_pod/010.8.3.17:8080/", "/_pod/0x0a.8.3.17:8080/", "/_pod/167772161:8080/", "/_pod/10.8:8080/",
      "/_pod/10.8.3.17.:8080/", "/_pod/10%2e8.3.17:8080/", "/_pod/fd00::1:8080/", "/_pod/[fe80::1%25eth0]:80/",
      "/_pod/[::ffff:10.8.3.17]:80/", "/_pod/10.8.3.17:0/", "/_pod/10.8.3.17:65536/", "/_pod/10.8.3.17:/",
      "/_pod/10.8.3.17:8080/../admin", "/_pod/10.8.3.17:8080/a/%2e%2e/b", "/_pod/10.8.3.17:8080/_pod/10.0.0.1/",
      "/_pod/10.8.3.17:8080//x", "/_pod//x", "/_pod/", "/_pod/10.8.3.17:8080/a\\b", "/_pod/[fd00::1]x/",
    ];
    for (let i = 0; i < bad.length; i++) {
      const t = parsePathForm(bad[i], "/_pod/", noNames, 8080);
      expect(t).not.toBeNull();
      expect(t!.reject).not.toBe(Reject.None);
    }
  });
});

describe("parseHostForm", () => {
  it("reads IPv4 and IPv6 labels", () => {
    expect(parseHostForm("10-8-3-17.pods.example.com", "pods.example.com", noNames, 8080)!.hostPort()).toBe("10.8.3.17:8080");
    expect(parseHostForm("10-8-3-17.pods.example.com:443", "pods.example.com", noNames, 8080)!.hostPort()).toBe("10.8.3.17:8080");
    expect(parseHostForm("fd00-10--5.pods.example.com", "pods.example.com", noNames, 8080)!.hostPort()).toBe("[fd00:10::5]:8080");
    expect(parseHostForm("web-0.pods.example.com", "pods.example.com", podNames, 8080)!.hostPort()).toBe("10.8.3.17:8080");
  });
  it("ignores other hosts and refuses bad labels", () => {
    expect(parseHostForm("api.example.com", "pods.example.com", noNames, 8080)).toBeNull();
    expect(parseHostForm("pods.example.com", "pods.example.com", noNames, 8080)).toBeNull();
    expect(parseHostForm("a.10-8-3-17.pods.example.com", "pods.example.com", noNames, 8080)!.reject).toBe(Reject.Malformed);
    expect(parseHostForm("010-8-3-17.pods.example.com", "pods.example.com", noNames, 8080)!.reject).toBe(Reject.Malformed);
    expect(parseHostForm("10-8-3.pods.example.com", "pods.example.com", noNames, 8080)!.reject).toBe(Reject.Malformed);
  });
});

const denied = deniedRanges();

describe("ranges", () => {
  it("denies loopback, unspecified, link-local, metadata, multicast, broadcast, mapped and NAT64", () => {
    const list = ["127.0.0.1", "0.0.0.0", "169.254.169.254", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00:ec2::254", "ff02::1", "64:ff9b::a9fe:a9fe", "::a00:1"];
    for (let i = 0; i < list.length; i++) expect(inAny(parseIp(list[i])!, denied)).toBe(true);
  });
  it("leaves pod ranges alone", () => {
    expect(inAny(parseIp("10.8.3.17")!, denied)).toBe(false);
    expect(inAny(parseIp("fd00:10::5")!, denied)).toBe(false);
  });
});

describe("base64", () => {
  it("encodes with padding", () => {
    expect(base64("10.8.3.17:8080")).toBe("MTAuOC4zLjE3OjgwODA=");
    expect(base64("a")).toBe("YQ==");
    expect(base64("ab")).toBe("YWI=");
    expect(base64("abc")).toBe("YWJj");
    expect(base64("")).toBe("");
  });
});

describe("parseAddress", () => {
  it("refuses percent-encoding and overlong input", () => {
    expect(parseAddress("10.0.0.1%3a80", noNames, 80).reject).toBe(Reject.Malformed);
    expect(parseAddress("1".repeat(100), noNames, 80).reject).toBe(Reject.Malformed);
  });
});
