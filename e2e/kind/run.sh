#!/usr/bin/env bash
# E2E_TARGET=kind: the e2e suite against Istio in a kind cluster.
#   1. a kind cluster with a local OCI registry reachable from pods (kind-registry:5000),
#   2. Istio ${ISTIO_VERSION} (istioctl, the demo profile plus the gateways of e2e/kind/resources.ts:
#      the suite's, a control one without the suite, one per failure policy for the crash fixture),
#   3. the four filter images from `npm run package` and the crash fixture's, pushed to the registry,
#   4. the echo services, the Gateways, DestinationRules/VirtualServices, the WasmPlugins pinned by
#      digest and the strict stateful_session filter on the suite's gateway,
#   5. the suite through a port-forward to each gateway (cases, controls, failure policies),
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
    for pod in $(kubectl -n istio-system get pods -l istio -o name 2>/dev/null); do
      istioctl proxy-config all -n istio-system "${pod#pod/}" -o json >"${ARTIFACTS}/${pod#pod/}-config.json" 2>&1 || true
      kubectl -n istio-system logs "${pod}" >"${ARTIFACTS}/${pod#pod/}.log" 2>&1 || true
    done
    for pod in $(kubectl -n e2e get pods -o name 2>/dev/null); do
      kubectl -n e2e logs "${pod}" --all-containers >"${ARTIFACTS}/${pod#pod/}.log" 2>&1 || true
    done
    echo "e2e failed: proxy config and logs in ${ARTIFACTS}" >&2
  fi
  for pid in "${PORT_FORWARD_PIDS[@]}"; do kill "${pid}" 2>/dev/null || true; done
  if [ "${KEEP_CLUSTER:-0}" != "1" ]; then
    kind delete cluster --name "${CLUSTER}" >/dev/null 2>&1 || true
    # Only a registry this run started; one that was already there is someone else's.
    if [ "${CREATED_REGISTRY:-0}" = "1" ]; then docker rm -f kind-registry >/dev/null 2>&1 || true; fi
  fi
  exit "${status}"
}
PORT_FORWARD_PIDS=()
trap cleanup EXIT

# The renderer first: the IstioOperator and the gateway list come from e2e/kind/resources.ts.
npx --prefix "${ROOT}" esbuild "${ROOT}/e2e/kind/render.ts" --bundle --platform=node --format=esm --target=node20 --packages=external --outfile="${ROOT}/dist/kind-render.mjs" --log-level=warning
node "${ROOT}/dist/kind-render.mjs" operator "${WORK}"

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
# The agent pulls modules itself over plain HTTP from the in-cluster registry name
# (WASM_INSECURE_REGISTRIES in operator.yaml).
istioctl install -y -f "${WORK}/operator.yaml"
while read -r deployment _port _role; do
  kubectl -n istio-system rollout status "deploy/${deployment}" --timeout=180s
done <"${WORK}/gateways.txt"

echo "== build, package, push"
(cd "${ROOT}" && npm run build && node scripts/package.mjs --push-prefix "localhost:${REGISTRY_PORT}/suite" --insecure &&
  node e2e/kind/push-fixture.mjs "localhost:${REGISTRY_PORT}/suite")
npx --prefix "${ROOT}" esbuild "${ROOT}/e2e/kind/echo-main.ts" --bundle --platform=node --format=esm --target=node20 --outfile="${WORK}/echo.mjs" --log-level=warning
node "${ROOT}/dist/kind-render.mjs" resources "${ROOT}" "kind-registry:5000/suite" "${WORK}"

echo "== deploy"
kubectl apply -f "${WORK}/apps.yaml"
kubectl -n e2e wait --for=condition=available deploy --all --timeout=180s
kubectl apply -f "${WORK}/istio.yaml"

WEB_PODS="$(kubectl -n e2e get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP}:8080,{end}')"
CRASH_URLS=""
while read -r deployment port role; do
  kubectl -n istio-system port-forward "svc/${deployment}" "${port}:80" >/dev/null 2>&1 &
  PORT_FORWARD_PIDS+=("$!")
  case "${role}" in
    suite) GATEWAY_URL="http://127.0.0.1:${port}" ;;
    control) CONTROL_URL="http://127.0.0.1:${port}" ;;
    *) CRASH_URLS="${CRASH_URLS}${role}=http://127.0.0.1:${port}," ;;
  esac
done <"${WORK}/gateways.txt"

# wait_for <what> <url> <header>: until the gateway answers through its port-forward (with
# <header> when given: istiod has pushed and the agent has pulled the module), at most 180 s.
wait_for() {
  local deadline=$((SECONDS + 180)) headers=""
  until headers="$(curl -s -o /dev/null -D - -H 'Host: web.e2e.svc.cluster.local' "$2/api/ready" 2>/dev/null)" &&
    grep -q '^HTTP/1.1 200' <<<"${headers}" && { [ -z "$3" ] || grep -qi "^$3:" <<<"${headers}"; }; do
    if [ "${SECONDS}" -ge "${deadline}" ]; then
      echo "$1 not ready within 180 s; last response headers:" >&2
      echo "${headers:-none}" >&2
      exit 1
    fi
    sleep 1
  done
}

# Ready when each gateway answers with what it must run (no fixed sleep): the suite's with every
# filter's build stamp, the crash ones with the fixture's context header, the control with a 200.
echo "== waiting for the gateways and their modules"
for stamp in x-header-normalizer-build x-env-router-build x-adaptive-ratelimit-build x-podip-router-build; do
  wait_for "the suite's gateway (${stamp})" "${GATEWAY_URL}" "${stamp}"
done
wait_for "the control gateway" "${CONTROL_URL}" ""
for entry in ${CRASH_URLS//,/ }; do
  wait_for "the ${entry%%=*} crash gateway" "${entry#*=}" "x-fixture-context"
done

echo "== suite"
cd "${ROOT}"
E2E_TARGET=kind E2E_GATEWAY_URL="${GATEWAY_URL}" E2E_CONTROL_URL="${CONTROL_URL}" E2E_CRASH_URLS="${CRASH_URLS%,}" \
  E2E_WEB_PODS="${WEB_PODS%,}" E2E_POD_CIDR="10.244.0.0/16" npx vitest run e2e
