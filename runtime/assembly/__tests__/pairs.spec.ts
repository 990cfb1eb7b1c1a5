import { Header, encodePairs, decodePairs } from "../pairs";

describe("pairs codec", () => {
  it("round-trips headers, including empty values and UTF-8", () => {
    const list = new Array<Header>();
    list.push(new Header(":path", "/a?b=c"));
    list.push(new Header("x-empty", ""));
    list.push(new Header("x-utf8", "é"));
    const buf = encodePairs(list);
    expect(buf.byteLength).toBe(4 + 3 * 8 + (5 + 1 + 6 + 1) + (7 + 1 + 0 + 1) + (6 + 1 + 2 + 1));
    const back = decodePairs(changetype<usize>(buf), buf.byteLength)!;
    expect(back.length).toBe(3);
    expect(back[0].value).toBe("/a?b=c");
    expect(back[1].value).toBe("");
    expect(back[2].value).toBe("é");
  });

  it("rejects malformed buffers", () => {
    const list = new Array<Header>();
    list.push(new Header("a", "b"));
    const buf = encodePairs(list);
    const p = changetype<usize>(buf);
    expect(decodePairs(p, buf.byteLength - 1)).toBeNull();
    store<u8>(p + 4 + 8 + 1, 0x41); // overwrite the NUL after the key
    expect(decodePairs(p, buf.byteLength)).toBeNull();
    const huge = new ArrayBuffer(8);
    store<u32>(changetype<usize>(huge), 5000);
    expect(decodePairs(changetype<usize>(huge), 8)).toBeNull();
    expect(decodePairs(p, 2)).toBeNull();
    expect(decodePairs(0, 0)!.length).toBe(0);
  });
});

import { PairsView } from "../pairs";

describe("PairsView", () => {
  it("finds names by bytes and decodes only what is asked", () => {
    const list = new Array<Header>();
    list.push(new Header(":path", "/"));
    list.push(new Header("content-type", "a,b"));
    list.push(new Header("x", ""));
    const view = PairsView.parse(encodePairs(list))!;
    expect(view.count).toBe(3);
    expect(view.find(String.UTF8.encode("content-type"))).toBe(1);
    expect(view.find(String.UTF8.encode("content-typ"))).toBe(-1);
    expect(view.valueHasByte(1, 0x2c)).toBe(true);
    expect(view.valueHasByte(0, 0x2c)).toBe(false);
    expect(view.value(1)).toBe("a,b");
    expect(view.name(2)).toBe("x");
    expect(view.valueLength(2)).toBe(0);
  });

  it("rejects the same malformations as decodePairs", () => {
    const list = new Array<Header>();
    list.push(new Header("a", "b"));
    const good = encodePairs(list);
    expect(PairsView.parse(good.slice(0, good.byteLength - 1))).toBeNull();
    const extra = new ArrayBuffer(good.byteLength + 1);
    memory.copy(changetype<usize>(extra), changetype<usize>(good), good.byteLength);
    expect(PairsView.parse(extra)).toBeNull();
    expect(PairsView.parse(new ArrayBuffer(0))!.count).toBe(0);
  });
});

import { isUtf8 } from "../pairs";

function bytes(list: Array<u8>): ArrayBuffer {
  const b = new ArrayBuffer(list.length);
  for (let i = 0; i < list.length; i++) store<u8>(changetype<usize>(b) + i, list[i]);
  return b;
}
function utf8(list: Array<u8>): bool {
  const b = bytes(list);
  return isUtf8(changetype<usize>(b), b.byteLength);
}

describe("isUtf8", () => {
  it("accepts ASCII and well-formed sequences", () => {
    expect(utf8([0x61, 0x62])).toBe(true);
    expect(utf8([0xc3, 0xa9])).toBe(true);
    expect(utf8([0xe2, 0x82, 0xac])).toBe(true);
    expect(utf8([0xf0, 0x9f, 0x98, 0x80])).toBe(true);
    expect(utf8([])).toBe(true);
  });
  it("rejects stray, truncated, overlong and surrogate sequences", () => {
    expect(utf8([0xff])).toBe(false);
    expect(utf8([0x80])).toBe(false);
    expect(utf8([0xc3])).toBe(false);
    expect(utf8([0xe2, 0x82])).toBe(false);
    expect(utf8([0xc0, 0xaf])).toBe(false);
    expect(utf8([0xed, 0xa0, 0x80])).toBe(false);
    expect(utf8([0xf4, 0x90, 0x80, 0x80])).toBe(false);
  });
});
