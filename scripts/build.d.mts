export interface BuiltModule { name: string; entry: string; out: string; kind: "filter" | "fixture" }
export function modules(): BuiltModule[];
export function build(opts?: { force?: boolean; quiet?: boolean }): Promise<Array<BuiltModule & { size: number; rebuilt: boolean }>>;
