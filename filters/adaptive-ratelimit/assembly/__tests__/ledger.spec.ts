import { GuardRecord, Ledger } from "../shared";

describe("ledger (the exact in-flight count across workers)", () => {
  it("sums the other workers' entries; a worker's own write replaces its entry", () => {
    const l = new Ledger();
    expect(l.set(1, 2)).toBe(true);
    expect(l.set(2, 1)).toBe(true);
    expect(l.set(3, 4)).toBe(true);
    expect(l.othersOf(1)).toBe(5);
    expect(l.othersOf(9)).toBe(7);
    // A level, not an increment: writing the same count again changes nothing.
    expect(l.set(2, 1)).toBe(false);
    expect(l.set(2, 0)).toBe(true);
    expect(l.othersOf(1)).toBe(4);
  });

  it("reads back what it wrote; an unreadable value reads as empty", () => {
    const l = new Ledger();
    l.set(7, 3);
    l.set(11, 1);
    const back = Ledger.decode(l.encode());
    expect(back.othersOf(0)).toBe(4);
    expect(back.othersOf(7)).toBe(1);
    expect(Ledger.decode(new ArrayBuffer(15)).workers.length).toBe(0);
    const bad = new ArrayBuffer(16);
    store<u64>(changetype<usize>(bad), 7);
    store<f64>(changetype<usize>(bad) + 8, NaN);
    expect(Ledger.decode(bad).workers.length).toBe(0);
    store<f64>(changetype<usize>(bad) + 8, -1);
    expect(Ledger.decode(bad).workers.length).toBe(0);
  });

  it("drops the entries of workers that left (their requests no longer count)", () => {
    const l = new Ledger();
    l.set(1, 2);
    l.set(2, 5);
    l.set(3, 1);
    const registered = new Array<u64>();
    registered.push(1);
    registered.push(3);
    expect(l.keep(registered)).toBe(true);
    expect(l.othersOf(0)).toBe(3);
    expect(l.keep(registered)).toBe(false);
  });
});

describe("guard record", () => {
  it("carries whether the limit is held exactly", () => {
    const g = new GuardRecord();
    g.limit = 2;
    g.rate = 20;
    g.exact = true;
    g.workers.push(5);
    g.shares.push(1);
    g.seen.push(1);
    const back = GuardRecord.decode(g.encode())!;
    expect(back.exact).toBe(true);
    expect(back.limit).toBe(2);
    expect(back.partFor(5)).toBe(2);
    g.exact = false;
    expect(GuardRecord.decode(g.encode())!.exact).toBe(false);
  });
});
