// What the emulated Envoy process provides to everything in it (plugins, VMs, streams): the
// worker count and version, a virtual (or real) clock and timers, the log Envoy would write,
// the process-wide shared data, queues and stats, clusters for http_call, and the accounting
// settle() waits on. envoy.ts adds the plugins and the traffic on top.
import { LogLevelName, LOG_LEVELS } from "../abi/abi.js";
import type { HeaderList } from "../abi/pairs.js";
import { HeaderMap, InlineConfig, inlineSets, MapKind } from "./headers.js";

export interface EnvoyOptions {
  /** Worker threads (--concurrency). Default 2. */
  workers?: number;
  /** Envoy version emulated, "1.28" ... "1.36". Default "1.36". */
  version?: string;
  /** Level of Envoy's `wasm` logger. Default "info". */
  logLevel?: LogLevelName;
  /** Inline header registry. */
  inline?: InlineConfig;
  /** Virtual wall clock at start, ms since the epoch. Default 2026-01-01T00:00:00Z. */
  startTimeMs?: number;
  node?: { id?: string; cluster?: string; metadata?: Record<string, string> };
  /** Per-stream buffer limit for StopIterationAndBuffer (default 1 MiB). */
  bufferLimitBytes?: number;
  /** Record every call into every VM in `envoy.calls`. */
  traceCalls?: boolean;
  /** "real": the clock is the wall clock and ticks fire on real timers (runRealTime); default "virtual". */
  clock?: "virtual" | "real";
}

export interface CallRecord {
  worker: number | "base" | "canary";
  plugin: string;
  name: string;
  args: number[];
}

export interface LogEntry {
  level: LogLevelName;
  logger: string;
  message: string;
  plugin?: string;
  worker?: number | string;
}

export interface CallResponse {
  status?: number;
  headers?: HeaderList;
  body?: string | Uint8Array;
  trailers?: HeaderList;
}
/** A cluster reachable through http_call: "reset" simulates a failed call (stream reset). */
export type ClusterHandler = (req: { headers: HeaderList; body: Buffer; trailers: HeaderList; timeoutMs: number }) =>
  CallResponse | "reset" | Promise<CallResponse | "reset">;

export class SharedDataStore {
  private stores = new Map<string, Map<string, { value: Buffer; cas: number }>>();
  private casCounter = 0;
  /**
   * Test hook standing in for other worker threads: called after each read, it may write the
   * key (through `set`) before the reader's compare-and-swap, as a concurrent worker could.
   */
  afterGet: ((vmId: string, key: string, value: Buffer) => void) | undefined;

  get(vmId: string, key: string): { value: Buffer; cas: number } | undefined {
    const entry = this.stores.get(vmId)?.get(key);
    if (entry && this.afterGet) {
      const hook = this.afterGet;
      this.afterGet = undefined;
      try {
        hook(vmId, key, entry.value);
      } finally {
        this.afterGet = hook;
      }
    }
    return entry;
  }

  private writers = new Map<string, string>();

  /** Envoy's rules (section 2.11): cas 0 or absent key writes; a stale cas loses. */
  set(vmId: string, key: string, value: Buffer, cas: number, writer = "host"): boolean {
    let store = this.stores.get(vmId);
    if (!store) this.stores.set(vmId, (store = new Map()));
    const cur = store.get(key);
    if (cur && cas !== 0 && cas !== cur.cas) return false;
    this.casCounter = this.casCounter >= 0xffffffff ? 1 : this.casCounter + 1;
    store.set(key, { value: Buffer.from(value), cas: this.casCounter });
    this.writers.set(`${vmId}\0${key}`, writer);
    return true;
  }

  /** Which VM ("canary", a worker index, or "host") last wrote a key: for tests. */
  lastWriter(vmId: string, key: string): string | undefined {
    return this.writers.get(`${vmId}\0${key}`);
  }

  keys(vmId: string): string[] {
    return [...(this.stores.get(vmId)?.keys() ?? [])];
  }
}

/** The VM that owns a queue: told when data arrives, unless it has failed. */
export interface QueueOwner {
  readonly failed: boolean;
  queueReady(token: number): void;
}

/** Where an http_call's answer goes. */
export interface HttpCallTarget {
  deliverHttpCallResponse(token: number, response: { headers: HeaderList; body: Buffer; trailers: HeaderList } | null): void;
}

export class SharedQueues {
  private byName = new Map<string, { token: number; owner: QueueOwner; items: Buffer[] }>();
  private byToken = new Map<number, { token: number; owner: QueueOwner; items: Buffer[] }>();
  private next = 1;

  constructor(private readonly process: Process) {}

  /** Re-registering keeps the token and data but moves ownership to the caller (section 2.12). */
  register(vmId: string, name: string, owner: QueueOwner): number {
    const key = `${vmId}\0${name}`;
    const q = this.byName.get(key);
    if (q) {
      q.owner = owner;
      return q.token;
    }
    const created = { token: this.next++, owner, items: [] as Buffer[] };
    this.byName.set(key, created);
    this.byToken.set(created.token, created);
    return created.token;
  }

  resolve(vmId: string, name: string): number | undefined {
    const q = this.byName.get(`${vmId}\0${name}`);
    return q && !q.owner.failed ? q.token : undefined;
  }

  enqueue(token: number, data: Buffer): boolean {
    const q = this.byToken.get(token);
    if (!q) return false;
    q.items.push(Buffer.from(data));
    const owner = q.owner;
    this.process.post(() => owner.queueReady(token));
    return true;
  }

  /** undefined: unknown token; null: empty. */
  dequeue(token: number): Buffer | null | undefined {
    const q = this.byToken.get(token);
    if (!q) return undefined;
    return q.items.shift() ?? null;
  }
}

type MetricKind = "counter" | "gauge" | "histogram";

export class Stats {
  private values = new Map<string, { kind: MetricKind; value: bigint; samples: bigint[] }>();

  define(name: string, kind: MetricKind): void {
    if (!this.values.has(name)) this.values.set(name, { kind, value: 0n, samples: [] });
  }

  /** Counters need offset > 0; gauges add or subtract; histograms refuse (section 2.15). */
  increment(name: string, offset: bigint): boolean {
    const m = this.values.get(name)!;
    if (m.kind === "histogram") return false;
    if (m.kind === "counter" && offset <= 0n) return false;
    m.value = BigInt.asUintN(64, m.value + offset);
    return true;
  }

  record(name: string, value: bigint): void {
    const m = this.values.get(name)!;
    if (m.kind === "counter") m.value += value;
    else if (m.kind === "gauge") m.value = value;
    else m.samples.push(value);
  }

  get(name: string): bigint | undefined {
    const m = this.values.get(name);
    return !m || m.kind === "histogram" ? undefined : m.value;
  }

  /** Host-side counters (e.g. vm reloads). */
  bump(name: string): void {
    this.define(name, "counter");
    this.values.get(name)!.value += 1n;
  }

  /** What /stats shows: custom metrics under their own name (the wasmcustom prefix is stripped). */
  snapshot(): Record<string, { kind: MetricKind; value: number; samples: number[] }> {
    const out: Record<string, { kind: MetricKind; value: number; samples: number[] }> = {};
    for (const [k, m] of this.values) out[k] = { kind: m.kind, value: Number(m.value), samples: m.samples.map(Number) };
    return out;
  }
}

const DEFAULT_START = Date.UTC(2026, 0, 1);

/** A binary heap of timed callbacks; equal times run in insertion order. */
class TimerQueue {
  private heap: Array<{ at: number; seq: number; run: () => void }> = [];
  private seq = 0;

  push(t: { at: number; run: () => void }): void {
    const item = { ...t, seq: this.seq++ };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  peek(): { at: number; run: () => void } | undefined {
    return this.heap[0];
  }

  pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l], h[m])) m = l;
      if (r < h.length && this.less(h[r], h[m])) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }

  get size(): number {
    return this.heap.length;
  }

  private less(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
}

export class Process {
  readonly workers: number;
  readonly minor: number;
  logLevel: LogLevelName;
  readonly inline: Record<MapKind, Set<string>>;
  readonly sharedData = new SharedDataStore();
  readonly queues: SharedQueues;
  readonly metrics = new Stats();
  readonly clusters = new Map<string, ClusterHandler>();
  readonly logs: LogEntry[] = [];
  readonly node: { id: string; cluster: string; metadata: Record<string, string> };
  readonly bufferLimitBytes: number;
  readonly calls: CallRecord[] | undefined;
  protected clockMs: number;
  private readonly startMs: number;
  private nextConnection = 1;
  private nextWorker = 0;

  constructor(opts: EnvoyOptions = {}) {
    this.workers = opts.workers ?? 2;
    const m = /^1\.(\d+)$/.exec(opts.version ?? "1.36");
    if (!m || Number(m[1]) < 28 || Number(m[1]) > 36) throw new Error(`unsupported Envoy version ${opts.version}: the host emulates 1.28-1.36`);
    this.minor = Number(m[1]);
    this.logLevel = opts.logLevel ?? "info";
    this.inline = inlineSets(opts.inline);
    this.realTime = opts.clock === "real";
    this.startMs = this.clockMs = this.realTime ? Date.now() : opts.startTimeMs ?? DEFAULT_START;
    this.node = { id: opts.node?.id ?? "sidecar~10.0.0.1~app.default~default.svc.cluster.local", cluster: opts.node?.cluster ?? "app.default", metadata: opts.node?.metadata ?? {} };
    this.bufferLimitBytes = opts.bufferLimitBytes ?? 1 << 20;
    this.queues = new SharedQueues(this);
    this.calls = opts.traceCalls ? [] : undefined;
  }

  // ------------------------------------------------------------ clock

  protected readonly realTime: boolean;

  nowMs(): number {
    return this.realTime ? Date.now() : this.clockMs;
  }

  private wallStepMs = 0;

  /** The wall clock modules read (proxy_get_current_time_nanoseconds, WASI realtime): stepped by stepWallClock. */
  wallNowMs(): number {
    return this.nowMs() + this.wallStepMs;
  }

  /**
   * Steps the wall clock by `ms` (negative: backwards), as NTP or an operator can: what modules
   * read as the current time moves, while timers and the monotonic clock do not (Envoy's
   * dispatcher runs on the monotonic clock).
   */
  stepWallClock(ms: number): void {
    this.wallStepMs += ms;
  }
  monotonicMs(): number {
    return this.nowMs() - this.startMs;
  }

  protected readonly timers = new TimerQueue();

  /** Runs `fn` when the virtual clock reaches `atMs` (during advance). */
  at(atMs: number, fn: () => void): void {
    this.timers.push({ at: Math.max(atMs, this.clockMs), run: fn });
  }

  /** A promise that resolves once the virtual clock has moved `ms` forward (during advance). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.at(this.clockMs + ms, resolve));
  }

  /** Counts VM calls and completed async work; settle() waits until it stops moving. */
  activity = 0;

  /**
   * Lets posted callbacks, http_call answers and stream continuations run until nothing moves
   * for a few turns of the event loop. Work waiting on the virtual clock (a `sleep`, a stream
   * paused until a tick) stays pending; `advance` moves it on.
   */
  async settle(): Promise<void> {
    let idle = 0;
    for (let i = 0; i < 10000 && idle < 3; i++) {
      const before = this.activity;
      await new Promise((r) => setImmediate(r));
      idle = this.activity === before ? idle + 1 : 0;
    }
  }

  /** Runs `fn` asynchronously, as a post to a worker's dispatcher. */
  post(fn: () => void): void {
    const p = new Promise<void>((resolve) => setImmediate(() => { try { fn(); } finally { resolve(); } }));
    this.track(p);
  }

  /** Counts the completion of async work as activity, so settle() sees it. */
  protected track(p: Promise<unknown>): void {
    p.finally(() => { this.activity++; }).catch(() => {});
  }

  // ------------------------------------------------------------ logging

  log(level: LogLevelName, logger: string, message: string, extra: Partial<LogEntry> = {}): void {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.logLevel)) return;
    this.logs.push({ level, logger, message, ...extra });
  }

  logsAt(level: LogLevelName): string[] {
    return this.logs.filter((l) => l.level === level).map((l) => l.message);
  }

  // ------------------------------------------------------------ clusters

  addCluster(name: string, handler: ClusterHandler): void {
    this.clusters.set(name, handler);
  }

  dispatchHttpCall(target: HttpCallTarget, token: number, cluster: string, headers: HeaderMap, body: Buffer, trailers: HeaderList, timeoutMs: number): void {
    const handler = this.clusters.get(cluster)!;
    const p = (async () => {
      // The answer never arrives while the VM is running: at least one turn of the loop first.
      await new Promise((r) => setImmediate(r));
      let res: CallResponse | "reset";
      try {
        res = await handler({ headers: headers.pairs(), body, trailers, timeoutMs });
      } catch {
        res = "reset";
      }
      if (res === "reset") {
        target.deliverHttpCallResponse(token, null);
        return;
      }
      const hs: HeaderList = [[":status", String(res.status ?? 200)], ...(res.headers ?? [])];
      const b = typeof res.body === "string" ? Buffer.from(res.body, "utf8") : Buffer.from(res.body ?? []);
      target.deliverHttpCallResponse(token, { headers: hs, body: b, trailers: res.trailers ?? [] });
    })();
    this.track(p);
  }

  metric(name: string): number | undefined {
    const v = this.metrics.get(name);
    return v === undefined ? undefined : Number(v);
  }

  // ------------------------------------------------------------ connections and workers

  newConnectionId(): number {
    return this.nextConnection++;
  }

  /** Round-robin worker choice for requests that do not name one. */
  pickWorker(): number {
    const w = this.nextWorker;
    this.nextWorker = (this.nextWorker + 1) % this.workers;
    return w;
  }
}
