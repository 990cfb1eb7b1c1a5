export interface Image { blobs: Map<string, Buffer>; manifest: Buffer; digest: string; wasmDigest: string }
export const MEDIA: { manifest: string; config: string; layer: string };
export function tarOneFile(name: string, data: Buffer): Buffer;
export function buildImage(name: string, wasm: Buffer, version: string): Image;
export function writeLayout(dir: string, image: Image, refName: string): void;
export function parseRef(ref: string): { registry: string; repo: string; tag: string };
export function push(image: Image, ref: string, opts?: { insecure?: boolean; env?: Record<string, string | undefined> }): Promise<string>;
export function packageAll(version: string, repository?: string): Array<{ name: string; image: Image }>;
export function pinnedWasmPlugins(name: string, image: Image, repository: string): string;
