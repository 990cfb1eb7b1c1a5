// A module's linear memory as the hostcalls see it: bounds-checked reads and writes, and the
// copy-out protocol of section 2.3 (the host asks the module's allocator for room, copies
// the bytes there and writes the pointer and size where the module asked).
import { Status } from "../abi/abi.js";
import { fromBytes } from "../abi/pairs.js";

export class GuestMemory {
  constructor(private readonly memory: WebAssembly.Memory, private readonly malloc: (size: number) => number) {}

  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  u8(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  inBounds(ptr: number, len: number): boolean {
    return ptr >= 0 && len >= 0 && ptr + len <= this.memory.buffer.byteLength;
  }

  read(ptr: number, len: number): Buffer | null {
    if (!this.inBounds(ptr, len)) return null;
    return Buffer.from(this.u8().slice(ptr, ptr + len));
  }

  /** Bytes as a byte string (one char per byte). */
  readStr(ptr: number, len: number): string | null {
    const b = this.read(ptr, len);
    return b === null ? null : fromBytes(b);
  }

  writeU32(ptr: number, v: number): boolean {
    if (!this.inBounds(ptr, 4)) return false;
    new DataView(this.memory.buffer).setUint32(ptr, v >>> 0, true);
    return true;
  }

  writeU64(ptr: number, v: bigint): boolean {
    if (!this.inBounds(ptr, 8)) return false;
    new DataView(this.memory.buffer).setBigUint64(ptr, BigInt.asUintN(64, v), true);
    return true;
  }

  /** Allocates in the module and copies `bytes` there; writes the pointer and size (section 2.3). */
  copyOut(bytes: Uint8Array, ptrPtr: number, sizePtr: number): number {
    if (!this.inBounds(ptrPtr, 4) || !this.inBounds(sizePtr, 4)) return Status.InvalidMemoryAccess;
    if (bytes.length === 0) {
      this.writeU32(ptrPtr, 0);
      this.writeU32(sizePtr, 0);
      return Status.Ok;
    }
    const ptr = this.malloc(bytes.length);
    if (ptr === 0 || !this.inBounds(ptr, bytes.length)) return Status.InvalidMemoryAccess;
    this.u8().set(bytes, ptr);
    this.writeU32(ptrPtr, ptr);
    this.writeU32(sizePtr, bytes.length);
    return Status.Ok;
  }
}
