// The suite's shipped Istio resources, translated by Istio's own control-plane code in-process
// (istio.io/istio's fake discovery server: the config generator pilot runs), for a small mesh a
// user would have. The tests look at what Istio would push to an application sidecar and to the
// ingress gateway: where each filter lands, in which order, with which typed config.
package istio

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasmfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/proto"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/config/schema/collections"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository's root, from this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// envoyFilterPlacement lists the files a user applies to place the suite with EnvoyFilters
// (module files mounted into the pods), as the filters' READMEs describe it.
var envoyFilterPlacement = []string{
	"adaptive-ratelimit/istio.yaml",
	"env-router/istio.yaml",
	"header-normalizer/istio.yaml",
	"header-normalizer/preserve-case.envoyfilter.yaml",
	"podip-router/istio-session.yaml",
}

// shipped returns the resources of `files` (under manifests/) as one multi-document YAML
// string. The same resource in two files must be the same; it is kept once.
func shipped(t *testing.T, files []string) string {
	t.Helper()
	root := repoRoot(t)
	seen := map[string]string{}
	var docs []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, "manifests", f))
		if err != nil {
			t.Fatal(err)
		}
		// The committed WasmPlugins carry a placeholder digest on purpose (npm run package pins
		// it); give them a well-formed one so that Istio looks at the rest.
		text := strings.ReplaceAll(string(b), "unpinned-run-npm-run-package-for-the-digest", strings.Repeat("ab", 32))
		for _, doc := range strings.Split(text, "\n---\n") {
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if meta.Kind == "" {
				continue
			}
			key := meta.Kind + " " + meta.Metadata.Namespace + "/" + meta.Metadata.Name
			if prev, ok := seen[key]; ok {
				if stripComments(prev) != stripComments(doc) {
					t.Errorf("%s: %s differs from the copy in another file", f, key)
				}
				continue
			}
			seen[key] = doc
			docs = append(docs, doc)
		}
	}
	return strings.Join(docs, "\n---\n")
}

func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// workload is a Service with one Pod behind it and its EndpointSlice: pod `pod` at `ip`, with
// `labels` (a YAML flow map's inside), serving `port` named http; the Service selects app=<app>.
func workload(namespace, service, pod, app, labels, ip, clusterIP string, port int) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec: {clusterIP: %[7]s, selector: {app: %[4]s}, ports: [{name: http, port: %[8]d, targetPort: %[8]d}]}
---
apiVersion: v1
kind: Pod
metadata: {name: %[3]s, namespace: %[1]s, labels: {%[5]s}}
spec: {containers: [{name: app, image: app}]}
status: {podIP: %[6]s, phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[2]s, namespace: %[1]s, labels: {kubernetes.io/service-name: %[2]s}}
addressType: IPv4
endpoints: [{addresses: [%[6]s], conditions: {ready: true}, targetRef: {kind: Pod, name: %[3]s, namespace: %[1]s}}]
ports: [{name: http, port: %[8]d}]
`, namespace, service, pod, app, labels, ip, clusterIP, port)
}

// meshKube is the Kubernetes side of the mesh: the checkout workload in shop, which
// adaptive-ratelimit's resources select.
var meshKube = workload("shop", "checkout", "checkout-0", "checkout", "app: checkout", "10.0.0.10", "10.96.0.10", 8080)

// gatewayMesh is a gateway deployment in istio-system (Service and Pod labelled istio=<label>),
// a Gateway for http://<host> on it and a VirtualService from that host to checkout.
func gatewayMesh(label, ip, clusterIP, host string) (kube, config string) {
	kube = fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: istio-system}
spec:
  clusterIP: %[3]s
  selector: {istio: %[1]s}
  ports: [{name: http2, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: %[1]s-0, namespace: istio-system, labels: {istio: %[1]s}}
spec: {containers: [{name: istio-proxy, image: proxyv2}]}
status: {podIP: %[2]s, phase: Running, conditions: [{type: Ready, status: "True"}]}
`, label, ip, clusterIP)
	config = fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: %[1]s, namespace: istio-system}
spec:
  selector: {istio: %[1]s}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: [%[2]s]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s, namespace: shop}
spec:
  hosts: [%[2]s]
  gateways: [istio-system/%[1]s]
  http: [{route: [{destination: {host: checkout.shop.svc.cluster.local, port: {number: 8080}}}]}]
`, label, host)
	return kube, config
}

// The ingress gateway (istio: ingressgateway) with a Gateway for http://shop.example.com.
var meshGatewayKube, meshGatewayConfig = gatewayMesh("ingressgateway", "10.0.0.2", "10.96.0.2", "shop.example.com")

// podip-router's dedicated pin gateway (istio: pod-gateway), for http://pods.example.com.
var podGatewayKube, podGatewayConfig = gatewayMesh("pod-gateway", "10.0.0.3", "10.96.0.3", "pods.example.com")

// routerOf is the proxy of the gateway pod labelled istio=<label> at `ip`.
func routerOf(s *xds.FakeDiscoveryServer, version, label, ip string) *model.Proxy {
	labels := map[string]string{"istio": label}
	return s.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ConfigNamespace: "istio-system",
		IPAddresses:     []string{ip},
		Labels:          labels,
		Metadata:        &model.NodeMetadata{IstioVersion: version, Labels: labels, Namespace: "istio-system"},
		ID:              label + "-0.istio-system",
	})
}

// gatewayOf is the ingress gateway's proxy.
func gatewayOf(s *xds.FakeDiscoveryServer, version string) *model.Proxy {
	return routerOf(s, version, "ingressgateway", "10.0.0.2")
}

// sidecarOf is the proxy of a pod in the mesh.
func sidecarOf(s *xds.FakeDiscoveryServer, version, namespace, ip string, labels map[string]string) *model.Proxy {
	return s.SetupProxy(&model.Proxy{
		Type:            model.SidecarProxy,
		ConfigNamespace: namespace,
		IPAddresses:     []string{ip},
		Labels:          labels,
		Metadata:        &model.NodeMetadata{IstioVersion: version, Labels: labels, Namespace: namespace},
		ID:              "pod." + namespace,
	})
}

// connectionManagers decodes every HTTP connection manager of the listeners, by listener and
// filter chain name.
func connectionManagers(t *testing.T, ls []*listener.Listener) map[string]*hcm.HttpConnectionManager {
	t.Helper()
	out := map[string]*hcm.HttpConnectionManager{}
	for _, l := range ls {
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				if f.Name == "envoy.filters.network.http_connection_manager" {
					out[l.Name+" "+fc.Name] = xdstest.UnmarshalAny[hcm.HttpConnectionManager](t, f.GetTypedConfig())
				}
			}
		}
	}
	return out
}

// httpFilters lists, per listener and filter chain, the HTTP filter names of every HTTP
// connection manager of the listeners.
func httpFilters(t *testing.T, ls []*listener.Listener) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for chain, h := range connectionManagers(t, ls) {
		var names []string
		for _, hf := range h.HttpFilters {
			names = append(names, hf.Name)
		}
		out[chain] = names
	}
	return out
}

func has(list []string, name string) bool {
	for _, n := range list {
		if n == name {
			return true
		}
	}
	return false
}

// SupportedVersions are the Istio minors the manifests' proxyVersion guard admits (1.28-1.32,
// Envoy 1.36-1.40); Unsupported is the next one, which the guard leaves alone.
var SupportedVersions = []string{"1.28.0", "1.29.0", "1.30.0", "1.31.0", "1.32.0"}

const Unsupported = "1.33.0"

// adaptive-ratelimit's README: on the inbound sidecar of app=checkout in shop, before the
// router, and nowhere else; on every supported Istio, and not on the next minor.
func TestAdaptiveRatelimitOnTheCheckoutSidecarInbound(t *testing.T) {
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, envoyFilterPlacement), KubernetesObjectString: meshKube})
	for _, version := range append(append([]string{}, SupportedVersions...), Unsupported) {
		t.Run("Istio "+version, func(t *testing.T) {
			chains := httpFilters(t, s.Listeners(sidecarOf(s, version, "shop", "10.0.0.10", map[string]string{"app": "checkout"})))
			inbound := 0
			for name, filters := range chains {
				if !has(filters, "adaptive-ratelimit") {
					continue
				}
				if !strings.HasPrefix(name, "virtualInbound ") {
					t.Errorf("%s: adaptive-ratelimit on an outbound chain: %v", name, filters)
					continue
				}
				inbound++
				if filters[len(filters)-1] != "envoy.filters.http.router" || filters[len(filters)-2] != "adaptive-ratelimit" {
					t.Errorf("%s: adaptive-ratelimit is not just before the router: %v", name, filters)
				}
			}
			if version == Unsupported && inbound != 0 {
				t.Errorf("Istio %s is outside the guard, yet the filter was placed", version)
			}
			if version != Unsupported && inbound == 0 {
				t.Errorf("adaptive-ratelimit is on no inbound HTTP filter chain of the checkout sidecar (Istio %s); chains: %v", version, chains)
			}
		})
	}
}

// The ingress gateway gets env-router, header-normalizer and podip-router (istio-session.yaml),
// on its HTTP chain, and nothing else of the suite's four.
func TestGatewayFilters(t *testing.T) {
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, envoyFilterPlacement) + "\n---\n" + meshGatewayConfig, KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube})
	for _, version := range SupportedVersions {
		t.Run("Istio "+version, func(t *testing.T) {
			chains := httpFilters(t, s.Listeners(gatewayOf(s, version)))
			if len(chains) == 0 {
				t.Fatalf("the gateway has no HTTP filter chain")
			}
			for name, filters := range chains {
				t.Logf("%s: %v", name, filters)
				for _, want := range []string{"env-router", "header-normalizer", "podip-router"} {
					if !has(filters, want) {
						t.Errorf("%s: %s missing: %v", name, want, filters)
					}
				}
				if has(filters, "adaptive-ratelimit") {
					t.Errorf("%s: adaptive-ratelimit on the gateway: %v", name, filters)
				}
			}
		})
	}
}

// SuiteOrder is the order manifests/README.md documents for the suite's filters in one HTTP
// filter chain: header-normalizer first (everything after it, routing and authorisation
// included, reads normalised headers), podip-router (strips and checks what the client sent
// to steer routing), env-router (routes on the sanitised headers), adaptive-ratelimit last
// (limits what is actually forwarded, per env if its rules match on it).
var SuiteOrder = []string{"header-normalizer", "podip-router", "env-router", "adaptive-ratelimit"}

// createdInOrder sets each EnvoyFilter's creation time so that the filters named in `order`
// were created in that order (a fresh cluster applies files in whatever order the user did).
func createdInOrder(resources string, order []string) string {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	docs := strings.Split(resources, "\n---\n")
	for i, doc := range docs {
		if !strings.Contains(doc, "kind: EnvoyFilter") {
			continue
		}
		rank := len(order)
		for k, f := range order {
			if strings.Contains(doc, "filter-suite/filter: "+f+"\n") {
				rank = k
			}
		}
		ts := base.Add(time.Duration(rank) * time.Minute).Format(time.RFC3339)
		docs[i] = strings.Replace(doc, "\nmetadata:\n", fmt.Sprintf("\nmetadata:\n  creationTimestamp: %q\n", ts), 1)
	}
	return strings.Join(docs, "\n---\n")
}

// The suite's filters on the gateway come in SuiteOrder, whatever order they were created in.
func TestGatewayOrderDoesNotDependOnCreationTime(t *testing.T) {
	reversed := []string{}
	for i := len(SuiteOrder) - 1; i >= 0; i-- {
		reversed = append(reversed, SuiteOrder[i])
	}
	for _, order := range [][]string{SuiteOrder, reversed} {
		t.Run("created "+strings.Join(order, ", "), func(t *testing.T) {
			config := createdInOrder(shipped(t, envoyFilterPlacement), order) + "\n---\n" + meshGatewayConfig
			s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: config, KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube})
			for name, filters := range httpFilters(t, s.Listeners(gatewayOf(s, SupportedVersions[len(SupportedVersions)-1]))) {
				var ours []string
				for _, f := range filters {
					for _, o := range SuiteOrder {
						if f == o {
							ours = append(ours, f)
						}
					}
				}
				want := []string{"header-normalizer", "podip-router", "env-router"}
				if strings.Join(ours, ",") != strings.Join(want, ",") {
					t.Errorf("%s: the suite's filters are %v, want %v (whole chain: %v)", name, ours, want, filters)
				}
			}
		})
	}
}

// wasmConfigs returns the wasm PluginConfig of every HTTP filter named `name` on the listeners.
func wasmConfigs(t *testing.T, ls []*listener.Listener, name string) []*wasmv3.PluginConfig {
	t.Helper()
	var out []*wasmv3.PluginConfig
	for _, h := range connectionManagers(t, ls) {
		for _, hf := range h.HttpFilters {
			if hf.Name == name {
				out = append(out, xdstest.UnmarshalAny[wasmfilter.Wasm](t, hf.GetTypedConfig()).Config)
			}
		}
	}
	return out
}

// The typed config Istio pushes is the one meant: root_id and vm_id the module's name, the
// module from the mounted file, the failure policy the filter's README argues for.
func TestTypedConfig(t *testing.T) {
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, envoyFilterPlacement) + "\n---\n" + meshGatewayConfig, KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube})
	version := SupportedVersions[len(SupportedVersions)-1]
	sidecar := s.Listeners(sidecarOf(s, version, "shop", "10.0.0.10", map[string]string{"app": "checkout"}))
	gateway := s.Listeners(gatewayOf(s, version))
	cases := []struct {
		filter string
		ls     []*listener.Listener
		policy wasmv3.FailurePolicy
	}{
		{"adaptive-ratelimit", sidecar, wasmv3.FailurePolicy_FAIL_OPEN},
		{"header-normalizer", gateway, wasmv3.FailurePolicy_FAIL_OPEN},
		{"env-router", gateway, wasmv3.FailurePolicy_FAIL_OPEN},
		{"podip-router", gateway, wasmv3.FailurePolicy_FAIL_RELOAD},
	}
	for _, c := range cases {
		configs := wasmConfigs(t, c.ls, c.filter)
		if len(configs) == 0 {
			t.Errorf("%s: not found", c.filter)
			continue
		}
		for _, cfg := range configs {
			if cfg.RootId != c.filter || cfg.GetVmConfig().GetVmId() != c.filter {
				t.Errorf("%s: root_id %q, vm_id %q", c.filter, cfg.RootId, cfg.GetVmConfig().GetVmId())
			}
			if got := cfg.GetVmConfig().GetCode().GetLocal().GetFilename(); got != "/var/local/lib/wasm/"+c.filter+".wasm" {
				t.Errorf("%s: module from %q", c.filter, got)
			}
			if cfg.FailurePolicy != c.policy || cfg.FailOpen {
				t.Errorf("%s: failure_policy %v, fail_open %v; want %v and no legacy fail_open", c.filter, cfg.FailurePolicy, cfg.FailOpen, c.policy)
			}
			if cfg.GetConfiguration().GetTypeUrl() != "type.googleapis.com/google.protobuf.StringValue" {
				t.Errorf("%s: configuration is a %s, not a StringValue", c.filter, cfg.GetConfiguration().GetTypeUrl())
			}
		}
	}
}

// everyShippedFile lists every Istio resource file the suite ships (all placements and modes).
func everyShippedFile(t *testing.T) []string {
	t.Helper()
	var out []string
	root := repoRoot(t)
	dirs, err := os.ReadDir(filepath.Join(root, "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		switch d.Name() {
		case "envoy", "grafana", "src", "lib", "test":
			continue
		}
		if !d.IsDir() {
			continue
		}
		entries, _ := os.ReadDir(filepath.Join(root, "manifests", d.Name()))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".yaml") {
				out = append(out, d.Name()+"/"+e.Name())
			}
		}
	}
	return out
}

// Istio's own validation (what its admission webhook runs) accepts every shipped resource.
func TestIstioValidationAcceptsEveryResource(t *testing.T) {
	for _, f := range everyShippedFile(t) {
		configs, _, err := crd.ParseInputs(shipped(t, []string{f}))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(configs) == 0 {
			t.Errorf("%s: no resources", f)
		}
		for _, c := range configs {
			schema, ok := collections.All.FindByGroupVersionAliasesKind(c.GroupVersionKind)
			if !ok {
				t.Errorf("%s: %s is not a kind Istio knows", f, c.GroupVersionKind)
				continue
			}
			warnings, err := schema.ValidateConfig(c)
			if err != nil {
				t.Errorf("%s: %s %s/%s: %v", f, c.GroupVersionKind.Kind, c.Namespace, c.Name, err)
			}
			if warnings != nil {
				t.Logf("%s: %s %s/%s: warning: %v", f, c.GroupVersionKind.Kind, c.Namespace, c.Name, warnings)
			}
		}
	}
}

// legacy-app in default, header-normalizer's app (a caller is modelled by its proxy's labels).
var legacyKube = workload("default", "legacy-app", "legacy-app-0", "legacy-app", "app: legacy-app", "10.0.0.20", "10.96.0.20", 8080)

// The HttpProtocolOptions of a cluster, or nil.
func httpOptions(t *testing.T, s *xds.FakeDiscoveryServer, p *model.Proxy, cluster string) *upstreamhttp.HttpProtocolOptions {
	t.Helper()
	c := xdstest.ExtractCluster(cluster, s.Clusters(p))
	if c == nil {
		t.Fatalf("no cluster %s", cluster)
	}
	a := c.TypedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if a == nil {
		return nil
	}
	return xdstest.UnmarshalAny[upstreamhttp.HttpProtocolOptions](t, a)
}

// Patches add to Istio's settings and replace none. The preserve-case EnvoyFilters MERGE the
// app's cluster's typed_extension_protocol_options, a map entry that Istio's merge replaces
// whole: a DestinationRule's connection pool (common_http_protocol_options) would be lost. So
// they are guarded to Istio 1.20-1.24, which lack Istio's own option: on every supported Istio
// the caller's cluster is exactly what Istio makes of the DestinationRule; on 1.24 the patch
// applies (and replaces, which its file says).
func TestPreserveCaseLeavesIstiosClusterSettingsOnSupportedIstio(t *testing.T) {
	callerLabels := map[string]string{"app": "caller", "filter-suite/preserve-header-case": "true"}
	kube := meshKube + "\n---\n" + legacyKube
	cluster := "outbound|8080||legacy-app.default.svc.cluster.local"
	// A user's DestinationRule for the app: Istio turns its connection pool into
	// common_http_protocol_options on the cluster.
	dr := `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy-app, namespace: default}
spec:
  host: legacy-app.default.svc.cluster.local
  trafficPolicy: {connectionPool: {http: {idleTimeout: 30s, maxRequestsPerConnection: 10}}}
`
	without := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: dr, KubernetesObjectString: kube})
	with := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: dr + "\n---\n" + shipped(t, envoyFilterPlacement), KubernetesObjectString: kube})
	for _, version := range append(append([]string{}, SupportedVersions...), "1.24.0") {
		t.Run("Istio "+version, func(t *testing.T) {
			base := httpOptions(t, without, sidecarOf(without, version, "default", "10.0.0.30", callerLabels), cluster)
			if base.GetCommonHttpProtocolOptions() == nil {
				t.Fatalf("Istio set no common_http_protocol_options from the DestinationRule: %v", base)
			}
			patched := httpOptions(t, with, sidecarOf(with, version, "default", "10.0.0.30", callerLabels), cluster)
			if version == "1.24.0" {
				if patched.GetExplicitHttpConfig().GetHttpProtocolOptions().GetHeaderKeyFormat().GetStatefulFormatter() == nil {
					t.Errorf("the preserve-case patch did not apply on Istio 1.24: %v", patched)
				}
				t.Logf("Istio 1.24, with the patch: %v (without: %v)", patched, base)
				return
			}
			if !proto.Equal(base, patched) {
				t.Errorf("the shipped resources changed Istio's settings of the caller's cluster:\nwithout them: %v\nwith them:    %v", base, patched)
			}
		})
	}
}

// bookinfo with env-labelled workloads (env-router's example): reviews in feature-x has the
// label that opts a workload in; ratings in default does not.
var bookinfoKube = workload("bookinfo", "reviews", "reviews-feature-x-0", "reviews", `app: reviews, env: feature-x, env-router.filter-suite/enabled: "true"`, "10.0.1.2", "10.96.1.2", 9080) +
	"\n---\n" + workload("bookinfo", "ratings", "ratings-default-0", "ratings", "app: ratings, env: default", "10.0.1.3", "10.96.1.3", 9080)

// Where env-router's and header-normalizer's READMEs put them on sidecars: env-router on both
// directions of an opted-in bookinfo workload and nowhere on one that did not opt in;
// header-normalizer on legacy-app's inbound only.
func TestSidecarPlacements(t *testing.T) {
	kube := meshKube + "\n---\n" + legacyKube + "\n---\n" + bookinfoKube
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, envoyFilterPlacement), KubernetesObjectString: kube})
	count := func(chains map[string][]string, filter string) (in, out int) {
		for name, filters := range chains {
			if !has(filters, filter) {
				continue
			}
			if strings.HasPrefix(name, "virtualInbound ") {
				in++
			} else {
				out++
			}
		}
		return
	}
	for _, version := range SupportedVersions {
		t.Run("Istio "+version, func(t *testing.T) {
			reviews := httpFilters(t, s.Listeners(sidecarOf(s, version, "bookinfo", "10.0.1.2", map[string]string{"app": "reviews", "env": "feature-x", "env-router.filter-suite/enabled": "true"})))
			if in, out := count(reviews, "env-router"); in == 0 || out == 0 {
				t.Errorf("reviews (opted in): env-router on %d inbound and %d outbound chains, want both; chains %v", in, out, reviews)
			}
			ratings := httpFilters(t, s.Listeners(sidecarOf(s, version, "bookinfo", "10.0.1.3", map[string]string{"app": "ratings", "env": "default"})))
			if in, out := count(ratings, "env-router"); in+out != 0 {
				t.Errorf("ratings (not opted in): env-router on %d inbound and %d outbound chains", in, out)
			}
			legacy := httpFilters(t, s.Listeners(sidecarOf(s, version, "default", "10.0.0.20", map[string]string{"app": "legacy-app"})))
			if in, out := count(legacy, "header-normalizer"); in == 0 || out != 0 {
				t.Errorf("legacy-app: header-normalizer on %d inbound and %d outbound chains, want inbound only; chains %v", in, out, legacy)
			}
			for _, chains := range []map[string][]string{reviews, ratings, legacy} {
				for name, filters := range chains {
					if has(filters, "podip-router") || (has(filters, "adaptive-ratelimit")) {
						t.Errorf("%s: a gateway or checkout filter on this sidecar: %v", name, filters)
					}
				}
			}
		})
	}
}

// wasmPluginPlacement: the same placements as WasmPlugins (pulled from a registry, becoming
// extension configs Istio serves over ECDS).
var wasmPluginPlacement = []string{
	"adaptive-ratelimit/wasmplugin.yaml",
	"env-router/wasmplugin.yaml",
	"header-normalizer/wasmplugin.yaml",
	"podip-router/wasmplugin.yaml",
}

// The WasmPlugins land where the EnvoyFilters do: the ingress gateway's chain carries
// header-normalizer before env-router (phase STATS, priority 300 before 10), and each becomes an
// extension config with the module from its OCI image and the README's failure policy.
func TestWasmPluginPlacement(t *testing.T) {
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, wasmPluginPlacement) + "\n---\n" + meshGatewayConfig, KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube})
	for _, version := range SupportedVersions {
		t.Run("Istio "+version, func(t *testing.T) {
			p := gatewayOf(s, version)
			chains := httpFilters(t, s.Listeners(p))
			if len(chains) == 0 {
				t.Fatal("no HTTP chain on the gateway")
			}
			// Istio names the filter of a WasmPlugin after it (this Istio: a traffic extension
			// "extensions.istio.io/trafficextension/<namespace>.<name>~istio-translated-wasmplugin").
			seen := map[string]bool{}
			for name, filters := range chains {
				hn, er := -1, -1
				for i, f := range filters {
					switch {
					case strings.Contains(f, "istio-system.header-normalizer-gateway"):
						hn = i
						seen[f] = true
					case strings.Contains(f, "istio-system.env-router-gateway"):
						er = i
						seen[f] = true
					case strings.Contains(f, "shop.adaptive-ratelimit"), strings.Contains(f, "istio-system.podip-router"):
						t.Errorf("%s: %s on the ingress gateway: %v", name, f, filters)
					}
				}
				if hn < 0 || er < 0 || hn > er {
					t.Errorf("%s: want header-normalizer then env-router: %v", name, filters)
				}
			}
			var names []string
			for f := range seen {
				names = append(names, f)
			}
			ecds := s.ConfigGen.BuildExtensionConfiguration(p, s.PushContext(), names, nil)
			if len(ecds) != 2 {
				t.Fatalf("extension configs: %d, want 2", len(ecds))
			}
			for _, ec := range ecds {
				w := xdstest.UnmarshalAny[wasmfilter.Wasm](t, ec.TypedConfig)
				remote := w.GetConfig().GetVmConfig().GetCode().GetRemote().GetHttpUri().GetUri()
				if !strings.HasPrefix(remote, "oci://ghcr.io/example/filter-suite/") {
					t.Errorf("%s: module from %q", ec.Name, remote)
				}
				if w.GetConfig().GetFailurePolicy() != wasmv3.FailurePolicy_FAIL_OPEN && !w.GetConfig().GetFailOpen() {
					t.Errorf("%s: does not fail open: %v", ec.Name, w.GetConfig())
				}
			}
		})
	}
}

// An AuthorizationPolicy on the gateway makes Istio add its RBAC filter; header-normalizer must
// run before it (manifests/README.md: the edge normalises before anything judges the request),
// in both placements.
func TestHeaderNormalizerBeforeIstiosRBACOnTheGateway(t *testing.T) {
	policy := `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: shop-gateway, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: ALLOW
  rules: [{to: [{operation: {hosts: [shop.example.com]}}]}]
`
	for _, placement := range []struct {
		name  string
		files []string
	}{{"EnvoyFilter", envoyFilterPlacement}, {"WasmPlugin", wasmPluginPlacement}} {
		t.Run(placement.name, func(t *testing.T) {
			s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, placement.files) + "\n---\n" + meshGatewayConfig + "\n---\n" + policy, KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube})
			for name, filters := range httpFilters(t, s.Listeners(gatewayOf(s, SupportedVersions[len(SupportedVersions)-1]))) {
				hn, rbac := -1, -1
				for i, f := range filters {
					if strings.Contains(f, "header-normalizer") {
						hn = i
					}
					if f == "envoy.filters.http.rbac" && rbac < 0 {
						rbac = i
					}
				}
				if rbac < 0 {
					t.Fatalf("%s: Istio added no RBAC filter for the policy: %v", name, filters)
				}
				if hn < 0 || hn > rbac {
					t.Errorf("%s: header-normalizer (at %d) does not run before RBAC (at %d): %v", name, hn, rbac, filters)
				}
			}
		})
	}
}

// podip-router as a WasmPlugin lands on its own pin gateway only: the authorisation-header guard
// first, the filter, and Envoy's strict stateful_session just before the router.
func TestPodipRouterOnItsPinGateway(t *testing.T) {
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           shipped(t, wasmPluginPlacement) + "\n---\n" + meshGatewayConfig + "\n---\n" + podGatewayConfig,
		KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube + "\n---\n" + podGatewayKube,
	})
	p := routerOf(s, SupportedVersions[len(SupportedVersions)-1], "pod-gateway", "10.0.0.3")
	chains := httpFilters(t, s.Listeners(p))
	if len(chains) == 0 {
		t.Fatal("the pin gateway has no HTTP chain")
	}
	for name, filters := range chains {
		guard, podip, session := -1, -1, -1
		for i, f := range filters {
			switch {
			case f == "podip-router-auth-guard":
				guard = i
			case strings.Contains(f, "istio-system.podip-router"):
				podip = i
			case f == "envoy.filters.http.stateful_session":
				session = i
			}
		}
		if guard != 0 || podip < 0 || session != len(filters)-2 || podip > session {
			t.Errorf("%s: want podip-router-auth-guard first, podip-router, stateful_session just before the router: %v", name, filters)
		}
	}
	// And not on the shared ingress gateway.
	for name, filters := range httpFilters(t, s.Listeners(gatewayOf(s, SupportedVersions[len(SupportedVersions)-1]))) {
		for _, f := range filters {
			if strings.Contains(f, "podip-router") || f == "envoy.filters.http.stateful_session" {
				t.Errorf("%s: %s on the shared ingress gateway: %v", name, f, filters)
			}
		}
	}
}

// hcmSettings is every HTTP connection manager of the listeners, by listener and chain, with
// its HTTP filters removed: Istio's own settings (use_remote_address, path normalisation,
// timeouts, headers...), which the shipped patches must leave as they are.
func hcmSettings(t *testing.T, ls []*listener.Listener) map[string]*hcm.HttpConnectionManager {
	t.Helper()
	out := connectionManagers(t, ls)
	for _, h := range out {
		h.HttpFilters = nil
	}
	return out
}

// The shipped resources add filters and change no listener setting Istio made: every HTTP
// connection manager on the gateway, checkout's sidecar and legacy-app's sidecar is the same
// with and without them, but for its HTTP filter list.
func TestListenerSettingsLeftIntact(t *testing.T) {
	kube := meshKube + "\n---\n" + legacyKube + "\n---\n" + meshGatewayKube
	version := SupportedVersions[len(SupportedVersions)-1]
	without := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: meshGatewayConfig, KubernetesObjectString: kube})
	with := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, envoyFilterPlacement) + "\n---\n" + meshGatewayConfig, KubernetesObjectString: kube})
	proxies := map[string]func(s *xds.FakeDiscoveryServer) *model.Proxy{
		"gateway": func(s *xds.FakeDiscoveryServer) *model.Proxy { return gatewayOf(s, version) },
		"checkout": func(s *xds.FakeDiscoveryServer) *model.Proxy {
			return sidecarOf(s, version, "shop", "10.0.0.10", map[string]string{"app": "checkout"})
		},
		"legacy-app": func(s *xds.FakeDiscoveryServer) *model.Proxy {
			return sidecarOf(s, version, "default", "10.0.0.20", map[string]string{"app": "legacy-app"})
		},
	}
	for name, proxy := range proxies {
		t.Run(name, func(t *testing.T) {
			base := hcmSettings(t, without.Listeners(proxy(without)))
			patched := hcmSettings(t, with.Listeners(proxy(with)))
			if len(base) == 0 || len(base) != len(patched) {
				t.Fatalf("%d connection managers without the shipped resources, %d with them", len(base), len(patched))
			}
			for chain, h := range base {
				if !proto.Equal(h, patched[chain]) {
					t.Errorf("%s: Istio's connection manager settings changed:\nwithout: %v\nwith:    %v", chain, h, patched[chain])
				}
			}
		})
	}
}
