// The ingress gateway configuration Istio generates, run in real Envoy with the built modules.
// What Istio produced is kept but for the alterations listed in gatewayBootstrap, each needed
// because a test has no istiod, no SDS and no Istio proxy build.
package istio

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasmfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pilot/test/xdstest"
)

// envoyBinary is the real Envoy the suite runs (ENVOY_BIN, or the newest of envoy-versions.json
// through scripts/envoy.mjs, which installs it into .envoy/ if needed).
func envoyBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("ENVOY_BIN"); bin != "" {
		return bin
	}
	out, err := exec.Command("node", filepath.Join(repoRoot(t), "scripts", "envoy.mjs")).Output()
	if err != nil {
		t.Fatalf("no Envoy: node scripts/envoy.mjs: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func freePort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

// gatewayBootstrap turns what Istio pushes to the gateway into a static bootstrap. Alterations:
//  1. listener addresses: 127.0.0.1 and a free port instead of 0.0.0.0:8080;
//  2. RDS: the route configuration Istio generated for the listener, inlined;
//  3. Istio's own proxy extensions (istio.metadata_exchange, istio.alpn, istio.stats), which only
//     Istio's Envoy build has, removed from HTTP filter chains and clusters;
//  4. EDS clusters the routes use: STATIC, with the test upstream's address, plaintext (no SDS
//     certificates: transport sockets removed);
//  5. wasm modules from dist/ instead of the pod's /var/local/lib/wasm/;
//  6. (bootstrapOf with pinnable ports only) podip-router's configuration allows 127.0.0.1 on
//     the test pods' ports, as the pods are loopback listeners;
//  7. (bootstrapOf for a sidecar's inbound port) of the virtualInbound listener only the
//     plaintext chain for that port, without its match and without the listener filters that
//     pick a chain from the iptables-redirected destination, TLS and ALPN; the inbound cluster
//     (ORIGINAL_DST, bound to 127.0.0.6) STATIC on the test upstream, round robin, unbound.
//
// With `control`, the suite's HTTP filters (the four and their guards) are left out too: the
// same configuration without the suite, to show each case depends on it.
func gatewayBootstrap(t *testing.T, s *xds.FakeDiscoveryServer, upstream uint32, control bool) (*bootstrap.Bootstrap, map[string]uint32) {
	t.Helper()
	return bootstrapOf(t, s, gatewayOf(s, SupportedVersions[len(SupportedVersions)-1]), run{endpoints: func(string) []uint32 { return []uint32{upstream} }, control: control})
}

// run says how a proxy's configuration becomes a bootstrap: the test upstreams each cluster's
// endpoints are (every cluster a route uses must have some), whether the suite's filters are
// left out (the control), and the loopback ports podip-router may pin in this test.
type run struct {
	endpoints func(cluster string) []uint32
	control   bool
	// pinnable: alteration 6, podip-router's configuration also allows 127.0.0.1 on these ports
	// (allow_loopback), since the test's pods are loopback listeners.
	pinnable []uint32
	// inbound: a sidecar's inbound port. Only the plaintext chain for that port of the
	// sidecar's virtualInbound listener is kept (alteration 7), and the cluster it routes to
	// (Istio's ORIGINAL_DST inbound|<port>||, bound to 127.0.0.6) becomes STATIC on the upstream.
	inbound uint32
}

// bootstrapOf turns what Istio pushes to proxy p into a static bootstrap, with the alterations
// listed at gatewayBootstrap.
func bootstrapOf(t *testing.T, s *xds.FakeDiscoveryServer, p *model.Proxy, o run) (*bootstrap.Bootstrap, map[string]uint32) {
	t.Helper()
	ls := s.Listeners(p)
	routes := xdstest.ExtractRouteConfigurations(s.RoutesFromListeners(p, ls))
	used := map[string]bool{}
	ports := map[string]uint32{}
	b := &bootstrap.Bootstrap{Admin: &bootstrap.Admin{Address: sockAddr(freePort(t))}}
	b.StaticResources = &bootstrap.Bootstrap_StaticResources{}
	for _, l := range ls {
		if o.inbound != 0 {
			if l.Name != "virtualInbound" {
				continue
			}
			l.FilterChains = []*listener.FilterChain{inboundChain(t, l, o.inbound)}
			l.DefaultFilterChain = nil
			l.ListenerFilters = nil
			l.UseOriginalDst = nil
		}
		port := freePort(t)
		ports[l.Name] = port
		l.Address = sockAddr(port)
		l.AdditionalAddresses = nil
		for _, fc := range l.FilterChains {
			var network []*listener.Filter
			for _, f := range fc.Filters {
				if !strings.HasPrefix(f.Name, "istio.") {
					network = append(network, f)
				}
			}
			fc.Filters = network
			for _, f := range fc.Filters {
				if f.Name != "envoy.filters.network.http_connection_manager" {
					continue
				}
				h := xdstest.UnmarshalAny[hcm.HttpConnectionManager](t, f.GetTypedConfig())
				if rds := h.GetRds(); rds != nil {
					rc := routes[rds.RouteConfigName]
					if rc == nil {
						t.Fatalf("listener %s: no route configuration %s", l.Name, rds.RouteConfigName)
					}
					h.RouteSpecifier = &hcm.HttpConnectionManager_RouteConfig{RouteConfig: rc}
				}
				for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
					for _, r := range vh.Routes {
						if c := r.GetRoute().GetCluster(); c != "" {
							used[c] = true
						}
					}
				}
				var kept []*hcm.HttpFilter
				for _, hf := range h.HttpFilters {
					if strings.HasPrefix(hf.Name, "istio.") {
						continue
					}
					if o.control && (hf.Name == "header-normalizer" || hf.Name == "env-router" || hf.Name == "podip-router" || hf.Name == "adaptive-ratelimit" || strings.HasSuffix(hf.Name, "-guard")) {
						continue
					}
					if w := xdstest.SilentlyUnmarshalAny[wasmfilter.Wasm](hf.GetTypedConfig()); w != nil && w.Config != nil && strings.Contains(hf.GetTypedConfig().GetTypeUrl(), "filters.http.wasm") {
						if local := w.Config.GetVmConfig().GetCode().GetLocal(); local != nil {
							local.Specifier = &core.DataSource_Filename{Filename: filepath.Join(repoRoot(t), "dist", filepath.Base(local.GetFilename()))}
						}
						if hf.Name == "podip-router" && len(o.pinnable) > 0 {
							w.Config.Configuration = mustAny(t, wrapperspb.String(allowLoopbackPins(t, w.Config.GetConfiguration(), o.pinnable)))
						}
						hf.ConfigType = &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, w)}
					}
					kept = append(kept, hf)
				}
				h.HttpFilters = kept
				h.Tracing = nil
				f.ConfigType = &listener.Filter_TypedConfig{TypedConfig: mustAny(t, h)}
			}
		}
		b.StaticResources.Listeners = append(b.StaticResources.Listeners, l)
	}
	for _, c := range s.Clusters(p) {
		if !used[c.Name] {
			continue
		}
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}
		c.EdsClusterConfig = nil
		c.TransportSocket = nil
		c.TransportSocketMatches = nil
		c.Filters = nil
		c.Metadata = nil
		if c.LbPolicy == cluster.Cluster_CLUSTER_PROVIDED {
			c.LbPolicy = cluster.Cluster_ROUND_ROBIN
		}
		c.UpstreamBindConfig = nil
		ports := o.endpoints(c.Name)
		if len(ports) == 0 {
			t.Fatalf("cluster %s: no test upstream for it", c.Name)
		}
		var eps []*endpoint.LbEndpoint
		for _, port := range ports {
			eps = append(eps, &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: sockAddr(port)}}})
		}
		c.LoadAssignment = &endpoint.ClusterLoadAssignment{ClusterName: c.Name, Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: eps}}}
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, c)
	}
	return b, ports
}

// inboundChain is the plaintext filter chain of a sidecar's virtualInbound listener for
// `port`, without its match (the test connects to it directly, with no iptables redirect).
func inboundChain(t *testing.T, l *listener.Listener, port uint32) *listener.FilterChain {
	t.Helper()
	for _, fc := range l.FilterChains {
		m := fc.GetFilterChainMatch()
		if m.GetDestinationPort().GetValue() == port && m.GetTransportProtocol() == "raw_buffer" {
			fc.FilterChainMatch = nil
			return fc
		}
	}
	t.Fatalf("%s: no plaintext filter chain for port %d", l.Name, port)
	return nil
}

func sockAddr(port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// allowLoopbackPins is podip-router's configuration (a StringValue) with 127.0.0.1 added to its
// allowed_cidrs, `ports` to its allowed_ports, and allow_loopback on.
func allowLoopbackPins(t *testing.T, configuration *anypb.Any, ports []uint32) string {
	t.Helper()
	var sv wrapperspb.StringValue
	if err := configuration.UnmarshalTo(&sv); err != nil {
		t.Fatalf("podip-router configuration: %v", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(sv.Value), &cfg); err != nil {
		t.Fatalf("podip-router configuration: %v", err)
	}
	cfg["allowed_cidrs"] = append(cfg["allowed_cidrs"].([]any), "127.0.0.1/32")
	allowed := cfg["allowed_ports"].([]any)
	for _, p := range ports {
		allowed = append(allowed, p)
	}
	cfg["allowed_ports"] = allowed
	cfg["allow_loopback"] = true
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// echo answers with what it received: the header lines.
func echo() *httptest.Server { return namedEcho("") }

// namedEcho is an echo that also names itself in its answer (`server`).
func namedEcho(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lines [][2]string
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, [2]string{strings.ToLower(k), v})
			}
		}
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"server": name, "path": r.URL.Path, "headers": lines})
	}))
}

// runEnvoy starts Envoy on the bootstrap, waits until its admin says LIVE, and stops it when the
// test ends (also on failure).
func runEnvoy(t *testing.T, b *bootstrap.Bootstrap) {
	t.Helper()
	js, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(file, js, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(envoyBinary(t), "-c", file, "--concurrency", "2", "--base-id-path", filepath.Join(dir, "base-id"), "--use-dynamic-base-id", "-l", "warning")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	admin := fmt.Sprintf("http://127.0.0.1:%d/ready", b.Admin.Address.GetSocketAddress().GetPortValue())
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("Envoy exited:\n%s", log.String())
		default:
		}
		if r, err := http.Get(admin); err == nil {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if strings.TrimSpace(string(body)) == "LIVE" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Envoy not ready in 30 s:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// call sends one request to 127.0.0.1:port with Host `host` and the header lines given, and
// returns the status, what the echo upstream saw (empty when it answered nothing) and the
// response headers.
func call(t *testing.T, method string, port uint32, host, path string, headers [][2]string) (int, seen, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	req.Host = host
	for _, h := range headers {
		req.Header.Add(h[0], h[1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	var got seen
	_ = json.Unmarshal(body, &got)
	return r.StatusCode, got, r.Header
}

type seen struct {
	Server  string      `json:"server"`
	Path    string      `json:"path"`
	Headers [][2]string `json:"headers"`
}

func (s seen) all(name string) []string {
	var out []string
	for _, h := range s.Headers {
		if h[0] == name {
			out = append(out, h[1])
		}
	}
	return out
}

// The e2e cases of the gateway's filters, through what Istio generated, on real Envoy.
func TestGatewayConfigurationOnRealEnvoy(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot(t), "dist", "header-normalizer.wasm")); err != nil {
		t.Fatalf("the modules are not built (npm run build): %v", err)
	}
	up := echo()
	defer up.Close()
	upPort := uint32(up.Listener.Addr().(*net.TCPAddr).Port)
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, envoyFilterPlacement) + "\n---\n" + meshGatewayConfig, KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube})
	b, ports := gatewayBootstrap(t, s, upPort, false)
	runEnvoy(t, b)
	port := ports["0.0.0.0_8080"]
	c, controlPorts := gatewayBootstrap(t, s, upPort, true)
	runEnvoy(t, c)
	controlPort := controlPorts["0.0.0.0_8080"]
	if port == 0 || controlPort == 0 {
		t.Fatalf("no gateway listener 0.0.0.0_8080 among %v", ports)
	}
	sendTo := func(t *testing.T, port uint32, path string, headers [][2]string) (int, seen, http.Header) {
		t.Helper()
		return call(t, "GET", port, "shop.example.com", path, headers)
	}
	send := func(t *testing.T, path string, headers [][2]string) (int, seen, http.Header) {
		t.Helper()
		return sendTo(t, port, path, headers)
	}
	t.Run("control (the same configuration without the suite's filters): each header below does pass", func(t *testing.T) {
		_, got, _ := sendTo(t, controlPort, "/orders", [][2]string{{"content-type", "application/json"}, {"content-type", "application/json"}, {"x-env-trusted", "1"}, {"x-ops-authenticated", "true"}})
		// Envoy joins the two lines into one comma-joined value: what Spring answers with 415.
		if strings.Join(got.all("content-type"), "|") != "application/json,application/json" || len(got.all("x-env-trusted")) != 1 || len(got.all("x-ops-authenticated")) != 1 {
			t.Fatalf("the control front changed the request: %+v", got)
		}
	})
	t.Run("a plain request reaches checkout", func(t *testing.T) {
		status, got, _ := send(t, "/orders", nil)
		if status != 200 || got.Path != "/orders" {
			t.Fatalf("status %d, upstream saw %+v", status, got)
		}
	})
	t.Run("header-normalizer: two Content-Type lines in, one out", func(t *testing.T) {
		status, got, _ := send(t, "/orders", [][2]string{{"content-type", "application/json"}, {"content-type", "application/json"}})
		if status != 200 || strings.Join(got.all("content-type"), "|") != "application/json" {
			t.Fatalf("status %d, upstream saw content-type %v", status, got.all("content-type"))
		}
	})
	t.Run("env-router's trust guard: a client's x-env-trusted never reaches the upstream", func(t *testing.T) {
		status, got, _ := send(t, "/orders", [][2]string{{"x-env-trusted", "1"}})
		if status != 200 || len(got.all("x-env-trusted")) != 0 {
			t.Fatalf("status %d, upstream saw x-env-trusted %v", status, got.all("x-env-trusted"))
		}
	})
	t.Run("env-router: an untrusted client cannot pick an env (its x-env-route does not reach the upstream as sent)", func(t *testing.T) {
		status, got, _ := send(t, "/orders", [][2]string{{"x-env-route", "feature-x"}})
		if status != 200 || has(got.all("x-env-route"), "feature-x") {
			t.Fatalf("status %d, upstream saw x-env-route %v", status, got.all("x-env-route"))
		}
		_, control, _ := sendTo(t, controlPort, "/orders", [][2]string{{"x-env-route", "feature-x"}})
		if !has(control.all("x-env-route"), "feature-x") {
			t.Fatalf("control: upstream saw x-env-route %v", control.all("x-env-route"))
		}
	})
	t.Run("podip-router: an unauthorised pin gets 403 and nothing is forwarded; a client's session header is stripped both ways", func(t *testing.T) {
		status, got, _ := send(t, "/_pod/10.8.3.17:8080/actuator/health", nil)
		if status != 403 || got.Path != "" {
			t.Fatalf("status %d, upstream saw %+v", status, got)
		}
		status, got, h := send(t, "/orders", [][2]string{{"x-podip-session", "MTAuOC4zLjE3OjgwODA="}})
		if status != 200 || len(got.all("x-podip-session")) != 0 || h.Get("x-podip-session") != "" {
			t.Fatalf("status %d, upstream saw x-podip-session %v, client got %q", status, got.all("x-podip-session"), h.Get("x-podip-session"))
		}
		cstatus, control, _ := sendTo(t, controlPort, "/_pod/10.8.3.17:8080/actuator/health", nil)
		if cstatus != 200 || control.Path != "/_pod/10.8.3.17:8080/actuator/health" {
			t.Fatalf("control: status %d, upstream saw %+v", cstatus, control)
		}
	})
	t.Run("podip-router's guard: a client's x-ops-authenticated never reaches the upstream", func(t *testing.T) {
		status, got, _ := send(t, "/orders", [][2]string{{"x-ops-authenticated", "true"}})
		if status != 200 || len(got.all("x-ops-authenticated")) != 0 {
			t.Fatalf("status %d, upstream saw x-ops-authenticated %v", status, got.all("x-ops-authenticated"))
		}
	})
}

// bookinfoProductpage is productpage in bookinfo with one pod per env (env=default at
// 10.0.1.10, env=feature-x at 10.0.1.11), the subsets env-router's DestinationRule names.
const bookinfoProductpage = `
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: bookinfo}
spec: {clusterIP: 10.96.1.10, selector: {app: productpage}, ports: [{name: http, port: 9080, targetPort: 9080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: productpage-default-0, namespace: bookinfo, labels: {app: productpage, env: default}}
spec: {containers: [{name: app, image: app}]}
status: {podIP: 10.0.1.10, phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: productpage-feature-x-0, namespace: bookinfo, labels: {app: productpage, env: feature-x}}
spec: {containers: [{name: app, image: app}]}
status: {podIP: 10.0.1.11, phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: productpage, namespace: bookinfo, labels: {kubernetes.io/service-name: productpage}}
addressType: IPv4
endpoints:
  - {addresses: [10.0.1.10], conditions: {ready: true}, targetRef: {kind: Pod, name: productpage-default-0, namespace: bookinfo}}
  - {addresses: [10.0.1.11], conditions: {ready: true}, targetRef: {kind: Pod, name: productpage-feature-x-0, namespace: bookinfo}}
ports: [{name: http, port: 9080}]
`

// issuer signs the test's tokens (RS256) and publishes its key as a JWKS.
type issuer struct {
	key  *rsa.PrivateKey
	name string
}

func newIssuer(t *testing.T, name string) issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return issuer{key: key, name: name}
}

func (i issuer) jwks() string {
	b64 := base64.RawURLEncoding.EncodeToString
	e := big.NewInt(int64(i.key.PublicKey.E)).Bytes()
	js, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "test", "n": b64(i.key.PublicKey.N.Bytes()), "e": b64(e)}}})
	return string(js)
}

// token is a JWT from this issuer with `claims` (iss and exp added).
func (i issuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	claims["iss"] = i.name
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "test"})
	body, _ := json.Marshal(claims)
	signed := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, i.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64(sig)
}

// The trusted hops the filters' READMEs describe, on the gateway configuration Istio generated,
// in real Envoy: Istio's RequestAuthentication (jwt_authn) sets x-ops-authenticated and
// x-env-trusted from a verified token's claims, after the suite's guards removed every client
// copy. With them: a tester's env tag routes to that env's subset of productpage (env-router's
// DestinationRule and VirtualService, bound to the gateway), and an operator pins one checkout
// pod through Envoy's strict stateful session.
func TestTrustedHopsOnTheGeneratedGateway(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot(t), "dist", "podip-router.wasm")); err != nil {
		t.Fatalf("the modules are not built (npm run build): %v", err)
	}
	auth := newIssuer(t, "https://auth.example.com")
	forger := newIssuer(t, "https://auth.example.com")
	config := bindToGateway(t, shipped(t, envoyFilterPlacement), "productpage-env", "istio-system/bookinfo-ingress") + "\n---\n" + meshGatewayConfig + fmt.Sprintf(`
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: [productpage.bookinfo.svc.cluster.local]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: gateway-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
    - issuer: %q
      jwks: %q
      outputClaimToHeaders:
        - {header: x-ops-authenticated, claim: sub}
        - {header: x-env-trusted, claim: env_tester}
`, auth.name, auth.jwks())
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: config, KubernetesObjectString: meshKube + "\n---\n" + meshGatewayKube + "\n---\n" + bookinfoProductpage})

	podA, podB := namedEcho("checkout-a"), namedEcho("checkout-b")
	ppDefault, ppFeature := namedEcho("productpage-default"), namedEcho("productpage-feature-x")
	for _, e := range []*httptest.Server{podA, podB, ppDefault, ppFeature} {
		defer e.Close()
	}
	portOf := func(e *httptest.Server) uint32 { return uint32(e.Listener.Addr().(*net.TCPAddr).Port) }
	a, b, gone := portOf(podA), portOf(podB), freePort(t)
	clusters := map[string][]uint32{
		"outbound|8080||checkout.shop.svc.cluster.local":                 {a, b},
		"outbound|9080|default|productpage.bookinfo.svc.cluster.local":   {portOf(ppDefault)},
		"outbound|9080|feature-x|productpage.bookinfo.svc.cluster.local": {portOf(ppFeature)},
	}
	endpoints := func(c string) []uint32 { return clusters[c] }
	p := gatewayOf(s, SupportedVersions[len(SupportedVersions)-1])
	chain := httpFilters(t, s.Listeners(p))["0.0.0.0_8080 "]
	if !has(chain, "envoy.filters.http.jwt_authn") {
		t.Fatalf("no jwt_authn on the gateway: %v", chain)
	}
	t.Logf("the gateway's HTTP filters: %v", chain)
	gw, ports := bootstrapOf(t, s, p, run{endpoints: endpoints, pinnable: []uint32{a, b, gone}})
	runEnvoy(t, gw)
	control, controlPorts := bootstrapOf(t, s, p, run{endpoints: endpoints, control: true})
	runEnvoy(t, control)

	sendTo := func(t *testing.T, port uint32, host, path string, headers [][2]string) (int, seen, http.Header) {
		t.Helper()
		return call(t, "GET", port, host, path, headers)
	}
	port, controlPort := ports["0.0.0.0_8080"], controlPorts["0.0.0.0_8080"]
	const productpage = "productpage.bookinfo.svc.cluster.local"
	bearer := func(token string) [2]string { return [2]string{"authorization", "Bearer " + token} }
	tester := auth.token(t, map[string]any{"sub": "tester-bob", "env_tester": "true"})
	operator := auth.token(t, map[string]any{"sub": "ops-alice"})

	t.Run("a tester's token: x-env: feature-x reaches productpage's feature-x pod, and the trust header stays on the gateway", func(t *testing.T) {
		status, got, _ := sendTo(t, port, productpage, "/", [][2]string{bearer(tester), {"x-env", "feature-x"}})
		if status != 200 || got.Server != "productpage-feature-x" || !has(got.all("x-env-route"), "feature-x") || len(got.all("x-env-trusted")) != 0 {
			t.Fatalf("status %d, served by %q, saw %+v", status, got.Server, got.Headers)
		}
		// The control: the same request without the suite's filters goes to the default subset.
		_, control, _ := sendTo(t, controlPort, productpage, "/", [][2]string{bearer(tester), {"x-env", "feature-x"}})
		if control.Server != "productpage-default" {
			t.Fatalf("control: served by %q", control.Server)
		}
	})
	t.Run("an env productpage has no pod of goes to default, and the tag still names the origin env", func(t *testing.T) {
		status, got, _ := sendTo(t, port, productpage, "/", [][2]string{bearer(tester), {"x-env", "team-a"}})
		if status != 200 || got.Server != "productpage-default" || !has(got.all("x-env"), "team-a") {
			t.Fatalf("status %d, served by %q, saw %+v", status, got.Server, got.Headers)
		}
	})
	t.Run("without the tester claim, or without a token, or with a client's own x-env-trusted, the tag is not believed", func(t *testing.T) {
		for name, headers := range map[string][][2]string{
			"operator token": {bearer(operator), {"x-env", "feature-x"}},
			"no token":       {{"x-env", "feature-x"}},
			"forged header":  {{"x-env-trusted", "true"}, {"x-env", "feature-x"}},
		} {
			status, got, _ := sendTo(t, port, productpage, "/", headers)
			if status != 200 || got.Server != "productpage-default" || has(got.all("x-env"), "feature-x") {
				t.Fatalf("%s: status %d, served by %q, saw %+v", name, status, got.Server, got.Headers)
			}
		}
	})
	t.Run("a token signed by another key is refused by Istio's jwt_authn", func(t *testing.T) {
		status, got, _ := sendTo(t, port, productpage, "/", [][2]string{bearer(forger.token(t, map[string]any{"sub": "mallory", "env_tester": "true"})), {"x-env", "feature-x"}})
		if status != 401 || got.Server != "" {
			t.Fatalf("status %d, served by %q", status, got.Server)
		}
	})
	t.Run("an operator's token pins each checkout pod, every time, through the strict stateful session", func(t *testing.T) {
		for _, pod := range []struct {
			port uint32
			name string
		}{{a, "checkout-a"}, {b, "checkout-b"}, {a, "checkout-a"}, {b, "checkout-b"}, {b, "checkout-b"}} {
			target := fmt.Sprintf("127.0.0.1:%d", pod.port)
			status, got, h := sendTo(t, port, "shop.example.com", "/_pod/"+target+"/actuator/health", [][2]string{bearer(operator)})
			if status != 200 || got.Server != pod.name || got.Path != "/actuator/health" || h.Get("x-pinned-upstream") != target || len(got.all("x-ops-authenticated")) != 0 {
				t.Fatalf("pin %s: status %d, served by %q at %q, x-pinned-upstream %q, saw %+v", target, status, got.Server, got.Path, h.Get("x-pinned-upstream"), got.Headers)
			}
			if h.Get("x-podip-session") != "" {
				t.Fatalf("pin %s: the session header came back to the client: %q", target, h.Get("x-podip-session"))
			}
		}
	})
	t.Run("a pin to an allowed address that is no endpoint of the route's cluster gets 503", func(t *testing.T) {
		status, got, _ := sendTo(t, port, "shop.example.com", fmt.Sprintf("/_pod/127.0.0.1:%d/actuator/health", gone), [][2]string{bearer(operator)})
		if status != 503 || got.Server != "" {
			t.Fatalf("status %d, served by %q", status, got.Server)
		}
	})
	t.Run("a pin with a client's own x-ops-authenticated and no token gets 403", func(t *testing.T) {
		status, got, _ := sendTo(t, port, "shop.example.com", fmt.Sprintf("/_pod/127.0.0.1:%d/actuator/health", a), [][2]string{{"x-ops-authenticated", "ops-alice"}})
		if status != 403 || got.Server != "" {
			t.Fatalf("status %d, served by %q", status, got.Server)
		}
	})
}

// bindToGateway is `resources` with env-router's VirtualService `name` bound to the mesh and to
// `gateway` too, as manifests/src/env-router.ts writes it when its spec names an ingressGateway.
func bindToGateway(t *testing.T, resources, name, gateway string) string {
	t.Helper()
	docs := strings.Split(resources, "\n---\n")
	for i, doc := range docs {
		if !strings.Contains(doc, "kind: VirtualService") || !strings.Contains(doc, "  name: "+name+"\n") {
			continue
		}
		docs[i] = strings.Replace(doc, "\n  http:\n", "\n  gateways:\n    - mesh\n    - "+gateway+"\n  http:\n", 1)
		if docs[i] == doc {
			t.Fatalf("VirtualService %s: no http routes to bind", name)
		}
		return strings.Join(docs, "\n---\n")
	}
	t.Fatalf("no shipped VirtualService %s", name)
	return ""
}

// A sidecar's inbound side, as Istio generated it for an Istio 1.32 proxy, in real Envoy:
// adaptive-ratelimit on checkout's, header-normalizer on legacy-app's, each next to a control
// without the suite's filters.
func TestSidecarInboundOnRealEnvoy(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot(t), "dist", "adaptive-ratelimit.wasm")); err != nil {
		t.Fatalf("the modules are not built (npm run build): %v", err)
	}
	up := echo()
	defer up.Close()
	upPort := uint32(up.Listener.Addr().(*net.TCPAddr).Port)
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{ConfigString: shipped(t, envoyFilterPlacement), KubernetesObjectString: meshKube + "\n---\n" + legacyKube})
	version := SupportedVersions[len(SupportedVersions)-1]
	start := func(t *testing.T, p *model.Proxy, control bool) (port, admin uint32) {
		t.Helper()
		b, ports := bootstrapOf(t, s, p, run{endpoints: func(string) []uint32 { return []uint32{upPort} }, control: control, inbound: 8080})
		runEnvoy(t, b)
		return ports["virtualInbound"], b.Admin.Address.GetSocketAddress().GetPortValue()
	}
	checkout := sidecarOf(s, version, "shop", "10.0.0.10", map[string]string{"app": "checkout"})
	legacy := sidecarOf(s, version, "default", "10.0.0.20", map[string]string{"app": "legacy-app"})
	checkoutPort, checkoutAdmin := start(t, checkout, false)
	checkoutControl, _ := start(t, checkout, true)
	legacyPort, _ := start(t, legacy, false)
	legacyControl, _ := start(t, legacy, true)

	do := func(t *testing.T, port uint32, method, path string, headers [][2]string) (int, seen, http.Header) {
		t.Helper()
		return call(t, method, port, "checkout.shop.svc.cluster.local", path, headers)
	}
	// counted sums checkout's Envoy stats whose names start with `prefix` (admin /stats; a
	// module's own metrics are under wasmcustom.).
	counted := func(t *testing.T, prefix string) int {
		t.Helper()
		r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats", checkoutAdmin))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		body, _ := io.ReadAll(r.Body)
		total := 0
		for _, line := range strings.Split(string(body), "\n") {
			name, value, ok := strings.Cut(line, ": ")
			if ok && strings.HasPrefix(name, prefix) {
				var n int
				fmt.Sscanf(value, "%d", &n)
				total += n
			}
		}
		return total
	}
	t.Run("checkout: a request is admitted by adaptive-ratelimit's api rule and says its quota; the control says none", func(t *testing.T) {
		before := counted(t, "wasmcustom.adaptive_ratelimit.api.admitted.")
		status, got, h := do(t, checkoutPort, "GET", "/orders", nil)
		var limit int
		if _, err := fmt.Sscanf(h.Get("ratelimit-limit"), "%d", &limit); status != 200 || got.Path != "/orders" || err != nil || limit <= 0 {
			t.Fatalf("status %d, upstream saw %q, ratelimit-limit %q", status, got.Path, h.Get("ratelimit-limit"))
		}
		if after := counted(t, "wasmcustom.adaptive_ratelimit.api.admitted."); after != before+1 {
			t.Fatalf("adaptive_ratelimit.api.admitted: %d before, %d after one request", before, after)
		}
		if _, _, ch := do(t, checkoutControl, "GET", "/orders", nil); ch.Get("ratelimit-limit") != "" {
			t.Fatalf("control: ratelimit-limit %q", ch.Get("ratelimit-limit"))
		}
	})
	t.Run("checkout: a POST to /checkout falls under the checkout rule (error ratio)", func(t *testing.T) {
		before := counted(t, "wasmcustom.adaptive_ratelimit.checkout.admitted.")
		if status, _, _ := do(t, checkoutPort, "POST", "/checkout/cart-1", nil); status != 200 {
			t.Fatalf("status %d", status)
		}
		if after := counted(t, "wasmcustom.adaptive_ratelimit.checkout.admitted."); after != before+1 {
			t.Fatalf("adaptive_ratelimit.checkout.admitted: %d before, %d after one request", before, after)
		}
	})
	t.Run("legacy-app: two Content-Type lines reach the app as one; the control joins them with a comma", func(t *testing.T) {
		twice := [][2]string{{"content-type", "application/json"}, {"content-type", "application/json"}}
		status, got, _ := do(t, legacyPort, "GET", "/orders", twice)
		if status != 200 || strings.Join(got.all("content-type"), "|") != "application/json" {
			t.Fatalf("status %d, upstream saw content-type %v", status, got.all("content-type"))
		}
		_, control, _ := do(t, legacyControl, "GET", "/orders", twice)
		if strings.Join(control.all("content-type"), "|") != "application/json,application/json" {
			t.Fatalf("control: upstream saw content-type %v", control.all("content-type"))
		}
	})
}
