// systemd units and component command lines. Arguments are data (a map of flag -> value) merged
// with the user's overrides in one place, like kubeadm's ArgumentsToCommand.
export type Args = Record<string, string | number | boolean>;

/** Defaults overridden by `extra` ("--flag=value" strings from config); keys keep their first position. */
export function mergeArgs(defaults: Args, extra: string[] = []): Args {
    const merged: Args = { ...defaults };
    for (const e of extra) {
        const m = /^--([A-Za-z0-9-]+)(?:=(.*))?$/.exec(e);
        if (!m) throw new Error(`extra argument ${JSON.stringify(e)} must look like --flag=value`);
        merged[m[1]] = m[2] ?? true;
    }
    return merged;
}

export function argsToCommandLine(binary: string, args: Args): string {
    const parts = Object.entries(args).map(([k, v]) => `--${k}=${v}`);
    return [binary, ...parts].join(" \\\n    ");
}

export interface UnitSpec {
    description: string;
    documentation: string;
    after?: string[];
    wants?: string[];
    requires?: string[];
    type?: "simple" | "notify" | "oneshot";
    execStart: string;
    execStartPre?: string[];
    /** Extra [Service] lines. */
    service?: Record<string, string | number>;
    /** Omit [Install] (units started only by timers). */
    noInstall?: boolean;
}

export function renderUnit(u: UnitSpec): string {
    const lines = ["# Managed by kubeha: changes are overwritten by `pulumi up`.", "[Unit]", `Description=${u.description}`, `Documentation=${u.documentation}`];
    const after = u.after ?? ["network-online.target"];
    if (after.length) lines.push(`After=${after.join(" ")}`);
    const wants = u.wants ?? ["network-online.target"];
    if (wants.length) lines.push(`Wants=${wants.join(" ")}`);
    if (u.requires?.length) lines.push(`Requires=${u.requires.join(" ")}`);
    lines.push("", "[Service]", `Type=${u.type ?? "simple"}`);
    for (const pre of u.execStartPre ?? []) lines.push(`ExecStartPre=${pre}`);
    lines.push(`ExecStart=${u.execStart}`);
    const service = u.type === "oneshot" ? (u.service ?? {}) : { Restart: "on-failure", RestartSec: 5, LimitNOFILE: 1048576, ...u.service };
    for (const [k, v] of Object.entries(service)) lines.push(`${k}=${v}`);
    if (!u.noInstall) lines.push("", "[Install]", "WantedBy=multi-user.target");
    return lines.join("\n") + "\n";
}
