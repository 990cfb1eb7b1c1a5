export const toolsDir: string;
export const WRK_PACKAGES: string[];
export const VEGETA_MODULE: string;
export class ToolUnavailable extends Error {}
export interface Tool { bin: string; env: Record<string, string> }
export function resolveWrk(opts?: { log?: (line: string) => void }): Tool;
export function resolveVegeta(opts?: { log?: (line: string) => void }): Tool;
export function buildGoPeer(name: string, opts?: { log?: (line: string) => void }): string;
