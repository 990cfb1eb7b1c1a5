// Environment variables of the VM (Envoy's vm_config.environment_variables), read through
// WASI, which Envoy provides and allows even during start-up.

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "environ_sizes_get")
declare function environ_sizes_get(count: usize, size: usize): u16;
// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "environ_get")
declare function environ_get(ptrs: usize, buf: usize): u16;

const SIZES = memory.data(8, 4);

/** The value of `name`, or null when unset (or the environment cannot be read). */
export function getEnv(name: string): string | null {
  if (environ_sizes_get(SIZES, SIZES + 4) != 0) return null;
  const count = load<u32>(SIZES);
  const size = load<u32>(SIZES + 4);
  if (count == 0 || size == 0 || count > 4096 || size > (1 << 20)) return null;
  const ptrs = new ArrayBuffer(<i32>count * 4);
  const buf = new ArrayBuffer(<i32>size);
  if (environ_get(changetype<usize>(ptrs), changetype<usize>(buf)) != 0) return null;
  const prefix = name + "=";
  const base = changetype<usize>(buf);
  const end = base + <usize>size;
  for (let i: u32 = 0; i < count; i++) {
    const p = <usize>load<u32>(changetype<usize>(ptrs) + <usize>i * 4);
    if (p < base || p >= end) continue;
    let q = p;
    while (q < end && load<u8>(q) != 0) q++;
    const entry = String.UTF8.decodeUnsafe(p, q - p);
    if (entry.startsWith(prefix)) return entry.substring(prefix.length);
  }
  return null;
}
