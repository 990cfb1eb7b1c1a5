// The ingress gateway configuration Istio generates, run in real Envoy with the built modules.
// What Istio produced is kept but for the alterations listed in gatewayBootstrap, each needed
// because a test has no istiod, no SDS and no Istio proxy build.
package istio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
//  5. wasm modules from dist/ instead of the pod's /var/local/lib/wasm/.
//
// With `control`, the suite's HTTP filters (the four and their guards) are left out too: the
// same configuration without the suite, to show each case depends on it.
func gatewayBootstrap(t *testing.T, s *xds.FakeDiscoveryServer, upstream uint32, control bool) (*bootstrap.Bootstrap, map[string]uint32) {
	t.Helper()
	p := gatewayOf(s, SupportedVersions[len(SupportedVersions)-1])
	ls := s.Listeners(p)
	routes := xdstest.ExtractRouteConfigurations(s.RoutesFromListeners(p, ls))
	used := map[string]bool{}
	ports := map[string]uint32{}
	b := &bootstrap.Bootstrap{Admin: &bootstrap.Admin{Address: sockAddr(freePort(t))}}
	b.StaticResources = &bootstrap.Bootstrap_StaticResources{}
	for _, l := range ls {
		port := freePort(t)
		ports[l.Name] = port
		l.Address = sockAddr(port)
		l.AdditionalAddresses = nil
		for _, fc := range l.FilterChains {
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
					for _, vh := range rc.VirtualHosts {
						for _, r := range vh.Routes {
							if c := r.GetRoute().GetCluster(); c != "" {
								used[c] = true
							}
						}
					}
					h.RouteSpecifier = &hcm.HttpConnectionManager_RouteConfig{RouteConfig: rc}
				}
				var kept []*hcm.HttpFilter
				for _, hf := range h.HttpFilters {
					if strings.HasPrefix(hf.Name, "istio.") {
						continue
					}
					if control && (hf.Name == "header-normalizer" || hf.Name == "env-router" || hf.Name == "podip-router" || hf.Name == "adaptive-ratelimit" || strings.HasSuffix(hf.Name, "-guard")) {
						continue
					}
					if w := xdstest.SilentlyUnmarshalAny[wasmfilter.Wasm](hf.GetTypedConfig()); w != nil && w.Config != nil && strings.Contains(hf.GetTypedConfig().GetTypeUrl(), "filters.http.wasm") {
						if local := w.Config.GetVmConfig().GetCode().GetLocal(); local != nil {
							local.Specifier = &core.DataSource_Filename{Filename: filepath.Join(repoRoot(t), "dist", filepath.Base(local.GetFilename()))}
							hf.ConfigType = &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, w)}
						}
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
		c.LoadAssignment = &endpoint.ClusterLoadAssignment{ClusterName: c.Name, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: sockAddr(upstream)}}}},
		}}}
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, c)
	}
	return b, ports
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

// echo answers with what it received: the header lines.
func echo() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lines [][2]string
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, [2]string{strings.ToLower(k), v})
			}
		}
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": lines})
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

type seen struct {
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
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		req.Host = "shop.example.com"
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
