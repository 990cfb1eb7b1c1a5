// Result codes and enum values of the proxy-wasm ABI 0.2.x (values fixed by the spec).

export namespace Status {
  export const Ok: u32 = 0;
  export const NotFound: u32 = 1;
  export const BadArgument: u32 = 2;
  export const SerializationFailure: u32 = 3;
  export const ParseFailure: u32 = 4;
  export const InvalidMemoryAccess: u32 = 6;
  export const Empty: u32 = 7;
  export const CasMismatch: u32 = 8;
  export const InternalFailure: u32 = 10;
  export const BrokenConnection: u32 = 11;
  export const Unimplemented: u32 = 12;
}

export namespace MapType {
  export const RequestHeaders: i32 = 0;
  export const RequestTrailers: i32 = 1;
  export const ResponseHeaders: i32 = 2;
  export const ResponseTrailers: i32 = 3;
  export const HttpCallResponseHeaders: i32 = 6;
  export const HttpCallResponseTrailers: i32 = 7;
}

export namespace BufferType {
  export const RequestBody: i32 = 0;
  export const ResponseBody: i32 = 1;
  export const HttpCallResponseBody: i32 = 4;
  export const VmConfiguration: i32 = 6;
  export const PluginConfiguration: i32 = 7;
}

export namespace LogLevel {
  export const Trace: i32 = 0;
  export const Debug: i32 = 1;
  export const Info: i32 = 2;
  export const Warn: i32 = 3;
  export const Error: i32 = 4;
  export const Critical: i32 = 5;
  export const Off: i32 = 6;
}

export namespace MetricKind {
  export const Counter: i32 = 0;
  export const Gauge: i32 = 1;
  export const Histogram: i32 = 2;
}
