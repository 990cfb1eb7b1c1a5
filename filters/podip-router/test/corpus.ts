// A hostile corpus for the pin parser: each entry is a request that must never reach the
// hand-off (no session header, no original destination, nothing forwarded).
export interface HostileCase {
  name: string;
  path?: string;
  authority?: string;
}

const P = "/_pod/";
const addrForms = [
  // IPv4 spellings that resolve to an allowed pod address in lenient parsers
  "010.8.3.17", "10.010.3.17", "0x0a.8.3.17", "0xa.0x8.0x3.0x11", "012.8.3.17", "167772161", "0xa080311", "10.8.785", "10.525073",
  "10.8.3", "10.8", "10", "10.8.3.17.", "10.8.3.017", "10.8.03.17", "10.08.3.17", "10.8.3.17.0", " 10.8.3.17", "10.8.3.17 ",
  "10.8.3.256", "10.8.3.-1", "10.8.3.+17", "1e1.8.3.17", "10,8,3,17", "10.8.3.17\t", "10..3.17", "10.8.3.17;24",
  // unicode digits and look-alikes
  "１０.8.3.17", "10.8.3.１７", "١٠.8.3.17", "10.8.3.17\u200b", "10。8。3。17", "10.8.3.l7",
  // percent-encoding of the address
  "10%2e8.3.17", "%31%30.8.3.17", "10.8.3.17%00", "10.8.3.17%20",
  // metadata and special ranges, in every spelling
  "169.254.169.254", "169.254.169.254:80", "0251.0376.0251.0376", "0xa9fea9fe", "2852039166", "[fd00:ec2::254]", "[fd00:ec2::254]:80",
  "127.0.0.1", "127.1", "0.0.0.0", "0", "[::1]", "[::]", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "[64:ff9b::a9fe:a9fe]",
  "[fe80::1]", "[fe80::1%25eth0]", "[ff02::1]", "224.0.0.1", "255.255.255.255", "239.255.255.250", "[::a9fe:a9fe]",
  // IPv6 spelling tricks
  "[FD00:10::5]", "[fd00:0010::5]", "[fd00:10:0:0:0:0:0:5]", "[fd00:10::0:5]", "fd00:10::5", "[fd00:10::5", "fd00:10::5]",
  "[[fd00:10::5]]", "[fd00:10::5]x", "[fd00:10:::5]", "[fd00:10::5::1]", "[1:2:3:4:5:6:7:8:9]", "[fd00:10::5%eth0]",
  "[::ffff:10.8.3.17]", "[::ffff:a08:311]", "[10.8.3.17]",
  // ports
  "10.8.3.17:0", "10.8.3.17:65536", "10.8.3.17:99999999999", "10.8.3.17:080", "10.8.3.17:-1", "10.8.3.17:+80", "10.8.3.17:8080:1",
  "10.8.3.17:", "10.8.3.17:http", "10.8.3.17:0x1f90", "10.8.3.17:８０８０", "[fd00:10::5]:0", "[fd00:10::5]:65536", "10.8.3.17:22",
  "10.8.3.17:15000", "10.8.3.17:15021",
  // outside the allowed ranges
  "10.9.0.1", "192.168.1.1", "172.16.0.1", "8.8.8.8", "100.64.0.1", "[fd01::1]", "[2001:db8::1]",
  // names that are not configured, or look like hosts
  "web-9", "localhost", "metadata.google.internal", "kubernetes.default", "web-0.evil.com", "WEB-0",
  // empties and junk
  "", ":", ":8080", "[]", "[]:80", "@10.8.3.17", "user@10.8.3.17", "10.8.3.17@evil", "10.8.3.17#", "..", ".", "~",
];

const rests = [
  "/../admin", "/a/../../etc/passwd", "/%2e%2e/admin", "/%2E%2E/admin", "/a/%2f/b", "/a/..%2fb", "/.", "/a/./b", "/a\\..\\b",
  "//evil.com/x", "/_pod/10.8.3.18:8080/x", "/_pod", "/_pod?x", "/%5c..%5cadmin", "/a/..",
];

export function hostileCorpus(): HostileCase[] {
  const out: HostileCase[] = [];
  for (const a of addrForms) {
    out.push({ name: `path ${JSON.stringify(a)}`, path: `${P}${a}/x` });
  }
  for (const r of rests) out.push({ name: `rest ${JSON.stringify(r)}`, path: `${P}10.8.3.17:8080${r}` });
  // double and nested prefixes, empty segments
  out.push({ name: "double prefix", path: `${P}${P}10.8.3.17:8080/x` });
  out.push({ name: "prefix only", path: P });
  out.push({ name: "empty address segment", path: `${P}/x` });
  out.push({ name: "query right after prefix", path: `${P}?10.8.3.17` });
  // host form
  for (const h of ["010-8-3-17", "10-8-3", "10-8-3-17-1", "0xa-8-3-17", "169-254-169-254", "127-0-0-1", "10-9-0-1", "fe80--1", "--1",
    "fd00-ec2--254", "FD00-10--5", "fd00-0010--5", "10-8-3-256", "a.10-8-3-17", "10-8-3-17x", "web-9", "%31%30-8-3-17", ""]) {
    out.push({ name: `host ${JSON.stringify(h)}`, authority: `${h}.pods.example.com` });
  }
  return out;
}
