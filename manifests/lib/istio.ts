// Validates Istio resources with the schemas Istio publishes (@kubernetes-models/istio).
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";
import { Gateway } from "@kubernetes-models/istio/networking.istio.io/v1/Gateway";
import { EnvoyFilter } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";

type Model = { validate(): void };
const MODELS: Record<string, new (data: any) => Model> = {
  "networking.istio.io/v1/DestinationRule": DestinationRule,
  "networking.istio.io/v1/VirtualService": VirtualService,
  "networking.istio.io/v1/Gateway": Gateway,
  "networking.istio.io/v1alpha3/EnvoyFilter": EnvoyFilter,
  "extensions.istio.io/v1alpha1/WasmPlugin": WasmPlugin,
};

/** Throws with the schema's reason when `doc` is not a valid resource of its kind. */
export function validateIstio(doc: { apiVersion?: string; kind?: string }): void {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) throw new Error(`no schema for ${doc.apiVersion}/${doc.kind}`);
  new Model(doc).validate();
}
