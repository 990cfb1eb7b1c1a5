// The floor for any AssemblyScript proxy-wasm filter: the SDK's dispatch and nothing else.
export * from "@solo-io/proxy-runtime/assembly/proxy";
import { RootContext, Context, registerRootContext } from "@solo-io/proxy-runtime/assembly";

class NoopRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Context(context_id, this);
  }
}

registerRootContext((context_id: u32): RootContext => new NoopRoot(context_id), "noop");
