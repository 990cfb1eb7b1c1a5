// The suite's guest library: what every filter needs and none should write twice.
export * from "./status";
export * from "./pairs";
export * from "./hostcalls";
export * from "./json";
export * from "./config";
export * from "./ip";
export * from "./httplist";
export * from "./filter";
export * from "./environ";
