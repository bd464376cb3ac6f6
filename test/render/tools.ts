// Real tools for artifact tests: say plainly when one is missing.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, chmodSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function have(tool: string): boolean {
    return spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
}

/** Skips the test with a plain message when a tool is missing. */
export function requireTool(ctx: Mocha.Context, tool: string, pkg: string): void {
    if (!have(tool)) {
        console.log(`      SKIPPED: ${tool} not installed (apt-get install ${pkg})`);
        ctx.skip();
    }
}

/**
 * systemd-analyze verify on a unit. It insists that ExecStart's binary exists on this machine, so
 * /usr/local/bin/<x> is pointed at a stub in a temp dir; everything else is checked as written.
 */
export function verifyUnit(name: string, content: string): { status: number; output: string } {
    const dir = mkdtempSync(join(tmpdir(), "kubeha-unit-"));
    mkdirSync(join(dir, "bin"));
    const rewritten = content.replace(/\/usr\/local\/(?:lib\/kubeha|bin)\/([A-Za-z0-9._-]+)/g, (_m, bin) => {
        const stub = join(dir, "bin", bin);
        writeFileSync(stub, "#!/bin/sh\n");
        chmodSync(stub, 0o755);
        return stub;
    });
    const file = join(dir, name);
    writeFileSync(file, rewritten);
    const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8" });
    // Without systemd as PID 1 it may warn about the host's own units; only lines naming ours count.
    const output = `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.includes(name)).join("\n");
    return { status: r.status ?? -1, output };
}
