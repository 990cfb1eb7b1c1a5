// adaptive-ratelimit: registers its root context under the name the manifests use as root_id.
export * from "@solo-io/proxy-runtime/assembly/proxy";
import { RootContext, registerRootContext } from "@solo-io/proxy-runtime/assembly";
import { RateLimitRoot, FILTER_NAME } from "./filter";

registerRootContext((context_id: u32): RootContext => new RateLimitRoot(context_id), FILTER_NAME);
