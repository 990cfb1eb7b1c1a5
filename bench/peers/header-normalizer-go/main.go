// A Go proxy-wasm module doing header-normalizer's clean path, the peer `npm run bench:envoy`
// measures the AssemblyScript filter against. Standard Go builds it for wasip1 as a reactor
// (go build -buildmode=c-shared); the proxy-wasm ABI (0.2.1) is bound here directly with
// go:wasmimport/go:wasmexport because the Go module proxy does not serve the proxy-wasm Go SDK
// that supports standard Go (github.com/proxy-wasm/proxy-wasm-go-sdk), and the release it does
// serve (github.com/tetratelabs/proxy-wasm-go-sdk v0.24.0) builds only with TinyGo. With no SDK
// layer this is the cheapest a Go module can be: a lower bound for Go's cost per request.
//
// Per header map (request, then response): one hostcall reads every pair; each singleton
// header from header-normalizer's built-in table is looked for; a second entry, or a
// content-type holding a comma, is replaced by the first value (one more hostcall).
package main

import "unsafe"

const (
	mapRequestHeaders  = 0
	mapResponseHeaders = 2
	actionContinue     = 0
)

//go:wasmimport env proxy_get_header_map_pairs
func proxyGetHeaderMapPairs(mapType uint32, data unsafe.Pointer, size unsafe.Pointer) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

// The buffers the host asked for, kept reachable until the call that filled them has read them.
var hostBuffers [][]byte

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion() {}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) unsafe.Pointer {
	if size == 0 {
		size = 1
	}
	buf := make([]byte, size)
	hostBuffers = append(hostBuffers, buf)
	return unsafe.Pointer(&buf[0])
}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(contextID uint32, parentID uint32) {}

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(rootID uint32, size uint32) uint32 { return 1 }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(rootID uint32, size uint32) uint32 { return 1 }

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(contextID uint32, headers uint32, endOfStream uint32) uint32 {
	normalize(mapRequestHeaders, true)
	return actionContinue
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(contextID uint32, headers uint32, endOfStream uint32) uint32 {
	normalize(mapResponseHeaders, false)
	return actionContinue
}

//go:wasmexport proxy_on_done
func proxyOnDone(contextID uint32) uint32 { return 1 }

//go:wasmexport proxy_on_log
func proxyOnLog(contextID uint32) {}

//go:wasmexport proxy_on_delete
func proxyOnDelete(contextID uint32) {}

type rule struct {
	name     string
	request  bool
	response bool
}

// header-normalizer's built-in singleton table (filters/header-normalizer/assembly/policy.ts).
var rules = []rule{
	{"content-type", true, true}, {"content-length", true, true}, {":authority", true, false},
	{"authorization", true, false}, {"proxy-authorization", true, false}, {"max-forwards", true, false},
	{"referer", true, false}, {"if-modified-since", true, false}, {"if-unmodified-since", true, false},
	{"location", false, true}, {"content-location", false, true}, {"etag", false, true},
	{"last-modified", false, true}, {"expires", false, true}, {"date", false, true},
	{"age", false, true}, {"retry-after", false, true}, {"content-range", false, true},
}

func le32(b []byte, at int) int {
	return int(b[at]) | int(b[at+1])<<8 | int(b[at+2])<<16 | int(b[at+3])<<24
}

func normalize(mapType uint32, request bool) {
	var data unsafe.Pointer
	var size uint32
	if proxyGetHeaderMapPairs(mapType, unsafe.Pointer(&data), unsafe.Pointer(&size)) != 0 || data == nil {
		return
	}
	raw := unsafe.Slice((*byte)(data), size)
	hostBuffers = hostBuffers[:0]
	if len(raw) < 4 {
		return
	}
	// Pairs: count, then (name length, value length) per pair, then each name and value NUL-terminated.
	count := le32(raw, 0)
	if 4+8*count > len(raw) {
		return
	}
	var first [32]int // first value's pair index per rule, -1 if none
	var seen [32]int
	for i := range rules {
		first[i] = -1
	}
	at := 4 + 8*count
	names := make([]int, count)
	values := make([]int, count)
	for i := 0; i < count; i++ {
		n, v := le32(raw, 4+8*i), le32(raw, 8+8*i)
		names[i], values[i] = at, at+n+1
		at += n + 1 + v + 1
		if at > len(raw) {
			return
		}
		name := raw[names[i] : names[i]+n]
		for r := range rules {
			if (request && !rules[r].request) || (!request && !rules[r].response) || len(rules[r].name) != n || string(name) != rules[r].name {
				continue
			}
			seen[r]++
			if first[r] < 0 {
				first[r] = i
			}
			break
		}
	}
	for r := range rules {
		if first[r] < 0 {
			continue
		}
		i := first[r]
		vlen := le32(raw, 8+8*i)
		value := raw[values[i] : values[i]+vlen]
		if rules[r].name == "content-type" {
			for k, c := range value {
				if c == ',' {
					value = value[:k]
					break
				}
			}
		}
		if seen[r] > 1 || len(value) != vlen {
			key := []byte(rules[r].name)
			v := append([]byte(nil), value...)
			if len(v) == 0 {
				v = append(v, 0)
				proxyReplaceHeaderMapValue(mapType, unsafe.Pointer(&key[0]), uint32(len(key)), unsafe.Pointer(&v[0]), 0)
			} else {
				proxyReplaceHeaderMapValue(mapType, unsafe.Pointer(&key[0]), uint32(len(key)), unsafe.Pointer(&v[0]), uint32(len(v)))
			}
		}
	}
}

func main() {}
