// What each hostcall means: the interface the VM layer calls once it has decoded a hostcall's
// arguments from linear memory, and the Envoy model implements (as Envoy's Context implements
// proxy-wasm-cpp-host's ContextBase). Arguments and results are in the ABI's terms: byte
// strings, buffers, header lists, status codes; nothing here knows what a stream is.
import type { HeaderList } from "../abi/pairs.js";

/** A header map as the hostcalls read and write it. */
export interface GuestHeaderMap {
  get(key: string): string | undefined;
  pairs(): HeaderList;
  readonly size: number;
  byteSize(): number;
  setAll(pairs: HeaderList): void;
  add(key: string, value: string): void;
  replace(key: string, value: string): void;
  remove(key: string): void;
}

export interface LocalResponse {
  status: number;
  details: string;
  body: Buffer;
  headers: HeaderList;
  grpcStatus: number | undefined;
}

/** A status code, or a value with Ok. */
export type Result<T> = { status: number } | { value: T };

export interface VmHost {
  /** Before every call into the module (tracing and activity accounting). */
  beforeCall(name: string, args: number[]): void;
  /** The module trapped in `name`: the VM is failed from now on. */
  onTrap(name: string, err: Error): void;

  // logging and status (2.5)
  log(level: number, message: string): void;
  logLevel(): number;
  lastStatus(): { code: number; message: string };

  // time (2.6)
  wallClockNanos(): bigint;
  setTickPeriod(ms: number): void;

  // properties (2.10): the path already split into segments
  getProperty(path: string[]): Buffer | undefined;
  setProperty(path: string, value: Buffer): number;

  // stream control (2.9); the type is checked against the ABI's range
  continueStream(type: number): number;
  closeStream(type: number): number;
  sendLocalResponse(reply: LocalResponse): number;

  // shared data (2.11) and queues (2.12)
  getSharedData(key: string): { value: Buffer; cas: number } | undefined;
  setSharedData(key: string, value: Buffer, cas: number): number;
  registerQueue(name: string): number;
  resolveQueue(vmId: string, name: string): number | undefined;
  enqueue(token: number, data: Buffer): number;
  /** undefined: no such queue; null: empty. */
  dequeue(token: number): Buffer | null | undefined;

  // header maps (2.7)
  /** The map of `type`: "bad" for a type the hostcall refuses, null when the map does not exist now. */
  headerMap(type: number, forWrite: boolean): GuestHeaderMap | null | "bad";
  /** The status of a read from a map that does not exist now. */
  missingMapStatus(): number;
  /** A write to the map of `type` succeeded. */
  headerMapWritten(type: number): void;

  // buffers (2.8)
  buffer(type: number): Buffer | null | "bad";
  setBuffer(type: number, start: number, length: number, data: Buffer): number;

  // http callouts (2.13): a status, or the call's token and how to send it once the token is written
  httpCall(cluster: string, headers: HeaderList, body: Buffer, trailers: HeaderList, timeoutMs: number): { status: number } | { token: number; send(): void };
  /** Hostcalls the host answers with a fixed status (gRPC, DNS). */
  fixedStatus(name: string): number;

  // metrics (2.15)
  defineMetric(type: number, name: string): number;
  incrementMetric(id: number, offset: bigint): number;
  recordMetric(id: number, value: bigint): number;
  getMetric(id: number): Result<bigint>;

  // contexts and foreign functions (2.16, 2.17)
  contextExists(id: number): boolean;
  callForeignFunction(name: string, args: Buffer): Result<Uint8Array>;

  // WASI (2.18)
  /** clock_time_get: nanoseconds of clock 0 (realtime) or 1 (monotonic); undefined for others. */
  wasiClock(clock: number): bigint | undefined;
  consoleWrite(fd: number, text: string): void;
  environment(): Buffer[];
  procExit(code: number): void;
}
