// The contexts a VM's hostcalls act on (reference section 1.4-1.6): a plugin's root context
// and a stream's context, and what a stream context lets the hostcalls reach. stream.ts
// implements StreamSide; envoy-vm.ts and properties.ts only see this side of it.
import type { HeaderList } from "../abi/pairs.js";
import type { HeaderMap } from "./headers.js";

export interface ConnectionInfo {
  mtls?: boolean;
  requestedServerName?: string;
  uriSanPeerCertificate?: string;
  uriSanLocalCertificate?: string;
  dnsSanPeerCertificate?: string;
  subjectPeerCertificate?: string;
  tlsVersion?: string;
}

export interface LocalReply {
  status: number;
  details: string;
  body: Buffer;
  headers: HeaderList;
  grpcStatus?: number;
}

export interface StreamInfo {
  connectionId: number;
  protocol: string;
  source?: string;
  destination?: string;
  connection?: ConnectionInfo;
  routeName?: string;
  clusterName?: string;
  /** The route's filter_metadata: namespace -> its Struct's fields (xds.route_metadata). */
  routeMetadata?: Record<string, Record<string, string | number | boolean>>;
}

/** A filter's place in a stream's chain, as the stream identifies it to its own methods. */
export type SlotRef = object;

/** What a stream context's hostcalls and properties reach of the stream (stream.ts is the implementation). */
export interface StreamSide {
  readonly info: StreamInfo;
  readonly startMs: number;
  readonly filterState: Map<string, Buffer>;
  readonly response: { status: number; details: string } | null;
  readonly upstreamAddress?: string;
  inLogPhase: boolean;
  routeCacheClears: number;
  headerMapFor(slot: SlotRef, type: number, forWrite: boolean): HeaderMap | null;
  requestHeadersForProperties(slot: SlotRef): HeaderMap | null;
  responseHeadersForProperties(): HeaderMap | null;
  onRequestHeadersMutated(): void;
  dropRequestPointers(slot: SlotRef): void;
  continueFrom(slot: SlotRef, dir: "request" | "response"): void;
  reset(details: string): void;
  requestLocalReply(slot: SlotRef, reply: LocalReply): void;
  bodyView(slot: SlotRef, type: number): Buffer | null;
  setBody(slot: SlotRef, type: number, start: number, length: number, data: Buffer): boolean;
}

export interface RootState {
  kind: "root";
  id: number;
  tickPeriodMs: number;
  nextTickAt: number;
  httpCalls: Map<number, { cluster: string }>;
  /** During proxy_on_http_call_response: the response maps and body. */
  callResponse?: { headers: HeaderMap; trailers: HeaderMap; body: Buffer; status: number; message: string };
  configReadable: boolean;
  /** Last status reported by proxy_get_status. */
  lastStatus: { code: number; message: string };
}

export interface StreamState {
  kind: "stream";
  id: number;
  rootId: number;
  stream: StreamSide;
  slot: SlotRef;
}

export type ContextState = RootState | StreamState;
