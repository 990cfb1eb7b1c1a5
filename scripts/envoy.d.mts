export const root: string;
export const cacheDir: string;
export class EnvoyUnavailable extends Error {}
export function supportedVersions(): string[];
export function defaultVersion(): string;
export function envoyVersionOf(bin: string): string;
export function envoyBinary(version?: string, opts?: { log?: (line: string) => void }): string;
export function resolveEnvoy(version?: string, opts?: { log?: (line: string) => void }): { bin: string; version: string };
