// header-normalizer: registers its root context under the name the manifests use as root_id.
export * from "@solo-io/proxy-runtime/assembly/proxy";
import { RootContext, registerRootContext } from "@solo-io/proxy-runtime/assembly";
import { NormalizerRoot, FILTER_NAME } from "./filter";

registerRootContext((context_id: u32): RootContext => new NormalizerRoot(context_id), FILTER_NAME);
