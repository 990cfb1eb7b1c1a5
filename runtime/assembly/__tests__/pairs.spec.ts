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
