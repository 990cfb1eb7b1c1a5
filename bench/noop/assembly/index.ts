// The floor for the suite's filters: the SDK's dispatch plus the runtime/assembly base
// classes every filter extends, and nothing else. Built with the same toolchain and options.
export * from "@solo-io/proxy-runtime/assembly/proxy";
import { RootContext, Context, registerRootContext } from "@solo-io/proxy-runtime/assembly";
import { FilterRoot, FilterStream } from "../../../runtime/assembly/index";

class NoopRoot extends FilterRoot {
  get filterName(): string { return "noop"; }
  configure(text: string): string { return ""; }
  createContext(context_id: u32): Context {
    return new FilterStream(context_id, this);
  }
}

registerRootContext((context_id: u32): RootContext => new NoopRoot(context_id), "noop");
