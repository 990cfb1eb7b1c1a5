// Reads the parts of a wasm binary a proxy-wasm host checks at load time: function
// signatures of imports and exports, and which custom sections are present.
// (Node 20's WebAssembly.Module.imports() does not report types.)

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "ref";
export interface FuncType { params: ValType[]; results: ValType[] }
export interface ImportEntry { module: string; name: string; kind: "function" | "table" | "memory" | "global" | "tag"; type?: FuncType }
export interface ExportEntry { name: string; kind: "function" | "table" | "memory" | "global" | "tag"; type?: FuncType }
export interface ModuleInfo { imports: ImportEntry[]; exports: ExportEntry[]; customSections: string[]; hasStartSection: boolean }

const VALTYPES: Record<number, ValType> = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128", 0x70: "ref", 0x6f: "ref" };
const KINDS = ["function", "table", "memory", "global", "tag"] as const;

class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.bytes.length) throw new Error("unexpected end of wasm binary");
    return this.bytes[this.pos++];
  }
  u32(): number {
    let result = 0, shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new Error("bad LEB128 in wasm binary");
    }
  }
  name(): string {
    const len = this.u32();
    const s = Buffer.from(this.bytes.subarray(this.pos, this.pos + len)).toString("utf8");
    this.pos += len;
    return s;
  }
  limits(): void {
    const flags = this.byte();
    this.u32();
    if (flags & 1) this.u32();
  }
}

export function readModuleInfo(bytes: Uint8Array): ModuleInfo {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error("not a wasm binary (bad magic)");
  }
  const r = new Reader(bytes);
  r.pos = 8;
  const types: FuncType[] = [];
  const funcTypes: number[] = []; // type index per function index (imports first)
  const imports: ImportEntry[] = [];
  const rawExports: { name: string; kind: number; index: number }[] = [];
  const customSections: string[] = [];
  let hasStartSection = false;
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.pos + size;
    switch (id) {
      case 0:
        customSections.push(r.name());
        break;
      case 1: {
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const form = r.byte();
          if (form !== 0x60) throw new Error(`unsupported type form 0x${form.toString(16)}`);
          const params = Array.from({ length: r.u32() }, () => VALTYPES[r.byte()] ?? "ref");
          const results = Array.from({ length: r.u32() }, () => VALTYPES[r.byte()] ?? "ref");
          types.push({ params, results });
        }
        break;
      }
      case 2: {
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const module = r.name();
          const name = r.name();
          const kind = r.byte();
          const entry: ImportEntry = { module, name, kind: KINDS[kind] ?? "function" };
          if (kind === 0) {
            const t = r.u32();
            entry.type = types[t];
            funcTypes.push(t);
          } else if (kind === 1) { r.byte(); r.limits(); }
          else if (kind === 2) r.limits();
          else if (kind === 3) { r.byte(); r.byte(); }
          else if (kind === 4) { r.byte(); r.u32(); }
          imports.push(entry);
        }
        break;
      }
      case 3: {
        const n = r.u32();
        for (let i = 0; i < n; i++) funcTypes.push(r.u32());
        break;
      }
      case 7: {
        const n = r.u32();
        for (let i = 0; i < n; i++) rawExports.push({ name: r.name(), kind: r.byte(), index: r.u32() });
        break;
      }
      case 8:
        hasStartSection = true;
        break;
    }
    r.pos = end;
  }
  const exports = rawExports.map((e): ExportEntry => ({
    name: e.name,
    kind: KINDS[e.kind] ?? "function",
    type: e.kind === 0 ? types[funcTypes[e.index]] : undefined,
  }));
  return { imports, exports, customSections, hasStartSection };
}

export function signature(t: FuncType | undefined): string {
  if (!t) return "?";
  return `(${t.params.join(",")})->(${t.results.join(",")})`;
}
