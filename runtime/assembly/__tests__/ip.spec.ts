import { parseIp, parseCidr, parseIpLenient } from "../ip";

describe("parseIp: IPv4 canonical dotted decimal only", () => {
  it("accepts canonical addresses", () => {
    expect(parseIp("10.8.3.17")!.toString()).toBe("10.8.3.17");
    expect(parseIp("0.0.0.0")!.v4bits).toBe(0);
    expect(parseIp("255.255.255.255")!.v4bits).toBe(0xffffffff);
  });
  it("rejects octal, hex, integer, short and padded forms", () => {
    expect(parseIp("010.8.3.17")).toBeNull();
    expect(parseIp("0x0a.8.3.17")).toBeNull();
    expect(parseIp("167772161")).toBeNull();
    expect(parseIp("10.1")).toBeNull();
    expect(parseIp("10.0.0.01")).toBeNull();
    expect(parseIp("256.1.1.1")).toBeNull();
  });
  it("rejects trailing dots, spaces, percent-encoding and ports", () => {
    expect(parseIp("10.0.0.1.")).toBeNull();
    expect(parseIp(" 10.0.0.1")).toBeNull();
    expect(parseIp("10%2e0.0.1")).toBeNull();
    expect(parseIp("10.0.0.1:80")).toBeNull();
    expect(parseIp("")).toBeNull();
  });
});

describe("parseIp: IPv6 in RFC 5952 form only", () => {
  it("accepts canonical forms", () => {
    expect(parseIp("2001:db8::1")!.toString()).toBe("2001:db8::1");
    expect(parseIp("::1")!.lo).toBe(1);
    expect(parseIp("::")!.v6).toBe(true);
    expect(parseIp("fd00:ec2::254")!.toString()).toBe("fd00:ec2::254");
  });
  it("rejects non-canonical spellings", () => {
    expect(parseIp("2001:DB8::1")).toBeNull();
    expect(parseIp("2001:0db8::1")).toBeNull();
    expect(parseIp("2001:db8:0:0:0:0:0:1")).toBeNull();
    expect(parseIp("2001:db8::0:1")).toBeNull();
    expect(parseIpLenient("2001:DB8:0:0:0:0:0:1")!.toString()).toBe("2001:db8::1");
  });
  it("rejects zone ids, dotted tails, brackets and malformed text", () => {
    expect(parseIp("fe80::1%eth0")).toBeNull();
    expect(parseIp("::ffff:10.0.0.1")).toBeNull();
    expect(parseIp("[::1]")).toBeNull();
    expect(parseIp("1::2::3")).toBeNull();
    expect(parseIp("1:2:3:4:5:6:7:8:9")).toBeNull();
    expect(parseIp("12345::1")).toBeNull();
    expect(parseIp(":1")).toBeNull();
    expect(parseIp("1:")).toBeNull();
  });
  it("recognises IPv4-mapped addresses", () => {
    expect(parseIp("::ffff:a00:1")!.isV4Mapped()).toBe(true);
    expect(parseIp("::1")!.isV4Mapped()).toBe(false);
  });
});

describe("parseCidr", () => {
  it("parses and matches IPv4 blocks", () => {
    const c = parseCidr("10.8.0.0/16")!;
    expect(c.contains(parseIp("10.8.3.17")!)).toBe(true);
    expect(c.contains(parseIp("10.9.0.1")!)).toBe(false);
    expect(parseCidr("0.0.0.0/0")!.contains(parseIp("1.2.3.4")!)).toBe(true);
    expect(parseCidr("10.0.0.1/32")!.contains(parseIp("10.0.0.1")!)).toBe(true);
  });
  it("parses and matches IPv6 blocks", () => {
    const c = parseCidr("fd00::/8")!;
    expect(c.contains(parseIp("fd12:3456::1")!)).toBe(true);
    expect(c.contains(parseIp("fe80::1")!)).toBe(false);
    expect(parseCidr("2001:db8::/96")!.contains(parseIp("2001:db8::ffff:1")!)).toBe(true);
    expect(parseCidr("2001:db8::/96")!.contains(parseIp("2001:db8::1:0:0:1")!)).toBe(false);
  });
  it("never matches across families", () => {
    expect(parseCidr("0.0.0.0/0")!.contains(parseIp("::1")!)).toBe(false);
  });
  it("rejects host bits, bad lengths and non-canonical addresses", () => {
    expect(parseCidr("10.0.0.1/8")).toBeNull();
    expect(parseCidr("10.0.0.0/33")).toBeNull();
    expect(parseCidr("10.0.0.0/08")).toBeNull();
    expect(parseCidr("10.0.0.0/")).toBeNull();
    expect(parseCidr("010.0.0.0/8")).toBeNull();
    expect(parseCidr("::/129")).toBeNull();
  });
});
