#!/usr/bin/env bash
# E2E_TARGET=kind: the e2e suite against Istio in a kind cluster.
#   1. a kind cluster with a local OCI registry reachable from pods (kind-registry:5000),
#   2. Istio ${ISTIO_VERSION} (istioctl, demo profile),
#   3. the four filter images from `npm run package`, pushed to the registry,
#   4. the echo services, the Gateway, DestinationRules/VirtualServices, the WasmPlugins pinned by
#      digest and the strict stateful_session filter on the ingress gateway,
#   5. the suite through a port-forward to the ingress gateway,
#   6. on failure: proxy config and logs in ${ARTIFACTS}; always: the cluster is deleted
#      (KEEP_CLUSTER=1 keeps it).
set -euo pipefail

ISTIO_VERSION="${ISTIO_VERSION:-1.28.0}"
# Every image is pinned: the kind node, the registry, and the echo pods' Node (resources.ts);
# Istio's come from the pinned istioctl.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
REGISTRY_IMAGE="${REGISTRY_IMAGE:-registry:2.8.3}"
CLUSTER="${CLUSTER:-filter-suite-e2e}"
REGISTRY_PORT="${REGISTRY_PORT:-5001}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${WORK:-$(mktemp -d)}"
ARTIFACTS="${ARTIFACTS:-${ROOT}/e2e-artifacts}"

missing=()
for tool in docker kind kubectl istioctl node npm; do
  command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "E2E_TARGET=kind needs: ${missing[*]} (not found on PATH). See e2e/README.md." >&2
  exit 2
fi
if ! istioctl version --remote=false 2>/dev/null | grep -q "${ISTIO_VERSION}"; then
  echo "istioctl ${ISTIO_VERSION} expected (set ISTIO_VERSION to use another supported minor, 1.28-1.32)." >&2
  exit 2
fi

cleanup() {
  status=$?
  if [ "${status}" -ne 0 ]; then
    mkdir -p "${ARTIFACTS}"
    kubectl get pods -A -o wide >"${ARTIFACTS}/pods.txt" 2>&1 || true
    for pod in $(kubectl -n istio-system get pods -l istio=ingressgateway -o name 2>/dev/null); do
      istioctl proxy-config all -n istio-system "${pod#pod/}" -o json >"${ARTIFACTS}/${pod#pod/}-config.json" 2>&1 || true
      kubectl -n istio-system logs "${pod}" >"${ARTIFACTS}/${pod#pod/}.log" 2>&1 || true
    done
    for pod in $(kubectl -n e2e get pods -o name 2>/dev/null); do
      kubectl -n e2e logs "${pod}" --all-containers >"${ARTIFACTS}/${pod#pod/}.log" 2>&1 || true
    done
    echo "e2e failed: proxy config and logs in ${ARTIFACTS}" >&2
  fi
  if [ -n "${PORT_FORWARD_PID:-}" ]; then kill "${PORT_FORWARD_PID}" 2>/dev/null || true; fi
  if [ "${KEEP_CLUSTER:-0}" != "1" ]; then
    kind delete cluster --name "${CLUSTER}" >/dev/null 2>&1 || true
    # Only a registry this run started; one that was already there is someone else's.
    if [ "${CREATED_REGISTRY:-0}" = "1" ]; then docker rm -f kind-registry >/dev/null 2>&1 || true; fi
  fi
  exit "${status}"
}
trap cleanup EXIT

echo "== registry and cluster"
if [ "$(docker inspect -f '{{.State.Running}}' kind-registry 2>/dev/null || true)" != "true" ]; then
  if docker inspect kind-registry >/dev/null 2>&1; then
    echo "a stopped container named kind-registry exists and is not this script's: remove it or start it" >&2
    exit 2
  fi
  docker run -d --restart=always -p "127.0.0.1:${REGISTRY_PORT}:5000" --name kind-registry "${REGISTRY_IMAGE}" >/dev/null
  CREATED_REGISTRY=1
fi
cat >"${WORK}/kind.yaml" <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  podSubnet: "10.244.0.0/16"
KIND
kind create cluster --name "${CLUSTER}" --image "${KIND_NODE_IMAGE}" --config "${WORK}/kind.yaml" --wait 120s
docker network connect kind kind-registry 2>/dev/null || true

echo "== Istio ${ISTIO_VERSION}"
# The agent pulls modules itself over plain HTTP from the in-cluster registry name.
istioctl install -y --set profile=demo \
  --set meshConfig.defaultConfig.proxyMetadata.WASM_INSECURE_REGISTRIES='kind-registry:5000'
kubectl -n istio-system rollout status deploy/istio-ingressgateway --timeout=180s

echo "== build, package, push"
(cd "${ROOT}" && npm run build && node scripts/package.mjs --push-prefix "localhost:${REGISTRY_PORT}/suite" --insecure)
npx --prefix "${ROOT}" esbuild "${ROOT}/e2e/kind/echo-main.ts" --bundle --platform=node --format=esm --target=node20 --outfile="${WORK}/echo.mjs" --log-level=warning
npx --prefix "${ROOT}" esbuild "${ROOT}/e2e/kind/render.ts" --bundle --platform=node --format=esm --target=node20 --packages=external --outfile="${ROOT}/dist/kind-render.mjs" --log-level=warning
node "${ROOT}/dist/kind-render.mjs" "${ROOT}" "kind-registry:5000/suite" "${WORK}"

echo "== deploy"
kubectl apply -f "${WORK}/apps.yaml"
kubectl -n e2e wait --for=condition=available deploy --all --timeout=180s
kubectl apply -f "${WORK}/istio.yaml"

WEB_PODS="$(kubectl -n e2e get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP}:8080,{end}')"
kubectl -n istio-system port-forward svc/istio-ingressgateway 18080:80 >/dev/null 2>&1 &
PORT_FORWARD_PID=$!

# Ready when the gateway answers through the port-forward with every filter's build stamp: istiod
# has pushed and the agent has pulled each module (no fixed sleep).
echo "== waiting for the modules on the gateway"
deadline=$((SECONDS + 180))
until headers="$(curl -s -o /dev/null -D - -H 'Host: web.e2e.svc.cluster.local' http://127.0.0.1:18080/api/ready 2>/dev/null)" &&
  grep -qi '^x-header-normalizer-build:' <<<"${headers}" && grep -qi '^x-env-router-build:' <<<"${headers}" &&
  grep -qi '^x-adaptive-ratelimit-build:' <<<"${headers}" && grep -qi '^x-podip-router-build:' <<<"${headers}"; do
  if [ "${SECONDS}" -ge "${deadline}" ]; then
    echo "the gateway did not serve all four modules within 180 s; last response headers:" >&2
    echo "${headers:-none}" >&2
    exit 1
  fi
  sleep 1
done

echo "== suite"
cd "${ROOT}"
E2E_TARGET=kind E2E_GATEWAY_URL="http://127.0.0.1:18080" E2E_WEB_PODS="${WEB_PODS%,}" E2E_POD_CIDR="10.244.0.0/16" \
  npx vitest run e2e
