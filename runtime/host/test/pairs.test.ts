// The pairs wire format and its strict parsing: reference section 2.4.
import { describe, expect, test } from "vitest";
import { decodePairs, encodePairs } from "../src/index.js";

describe("pairs (2.4)", () => {
  test("layout: count, the length table, then NUL-terminated keys and values", () => {
    const buf = encodePairs([["ab", "c"], ["d", ""]]);
    expect([...buf]).toEqual([2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x62, 0, 0x63, 0, 0x64, 0, 0]);
    expect(decodePairs(buf)).toEqual([["ab", "c"], ["d", ""]]);
  });

  test("any malformation gives an empty list, silently", () => {
    const good = encodePairs([["a", "b"]]);
    expect(decodePairs(good.subarray(0, good.length - 1))).toEqual([]); // truncated
    expect(decodePairs(Buffer.concat([good, Buffer.from([0])]))).toEqual([]); // trailing bytes
    const noNul = Buffer.from(good);
    noNul[4 + 8 + 1] = 0x41;
    expect(decodePairs(noNul)).toEqual([]);
    const tooMany = Buffer.alloc(4 + 1025 * 8);
    tooMany.writeUInt32LE(1025, 0);
    expect(decodePairs(tooMany)).toEqual([]);
    expect(decodePairs(Buffer.alloc((1 << 20) + 1))).toEqual([]);
  });
});
