// Reading the host resources a program registers (mocks): HostGroups with their manifests, HostScripts,
// and what a change between two programs would do on hosts that run the first one — computed by the
// real planner (host/plan.ts) against the state the agent records after applying a manifest.
import { strict as assert } from "node:assert";
import { Observed } from "../../host/agent";
import { planHost } from "../../host/plan";
import { HostManifest, RollPolicy } from "../../host/types";
import { Recorded } from "../mocks";

export const GROUP = "pulumi-nodejs:dynamic/kubeha:HostGroup";
export const SCRIPT = "pulumi-nodejs:dynamic/kubeha:HostScript";

export interface GroupRec {
    name: string;
    group: string;
    hosts: Record<string, HostManifest>;
    order: string[];
    roll: RollPolicy;
    payload: Record<string, Record<string, string>>;
    controller?: { name: string; address: string };
    rec: Recorded;
}

export function groups(rs: Recorded[]): GroupRec[] {
    return rs.filter((r) => r.type === GROUP).map((r) => ({
        name: r.name, group: r.inputs.group, hosts: r.inputs.hosts, order: r.inputs.order, roll: r.inputs.roll,
        payload: r.inputs.payload, controller: r.inputs.controller, rec: r,
    }));
}

export function group(rs: Recorded[], name: string): GroupRec {
    const g = groups(rs).find((x) => x.name === name);
    assert.ok(g, `HostGroup ${name} exists (have ${groups(rs).map((x) => x.name).join(", ")})`);
    return g!;
}

export function named(rs: Recorded[], name: string): Recorded {
    const r = rs.find((x) => x.name === name);
    assert.ok(r, `resource ${name} exists`);
    return r!;
}

/** What a host holds after the agent applied `m` for `group` (every unit running). */
export function appliedState(group: string, m: HostManifest): Observed {
    const o: Observed = { files: {}, binaries: {}, units: {}, scripts: {}, staged: [], owners: {}, checks: {} };
    for (const [p, f] of Object.entries(m.files)) {
        o.files[p] = { sha256: f.sha256, mode: f.mode, owner: f.owner ?? "root:root" };
        o.owners[p] = [group];
    }
    for (const [p, b] of Object.entries(m.binaries)) {
        o.binaries[p] = { sha256: "installed", source: b.source, installedSha256: "installed" };
        o.owners[p] = [group];
    }
    for (const s of m.steps) {
        if (s.kind === "unit") o.units[s.name] = { active: "active", enabled: "enabled", applied: s.digest };
        else o.scripts[s.name] = { applied: s.digest };
    }
    return o;
}

/**
 * What moving from program `before` to `after` does to running units, host by host: the
 * "group host unit action" of every restart and reload, and every script re-run.
 */
export function disruptions(before: Recorded[], after: Recorded[]): string[] {
    const out: string[] = [];
    const old = new Map(groups(before).map((g) => [g.name, g]));
    for (const g of groups(after)) {
        const o = old.get(g.name);
        for (const host of g.order) {
            const prev = o?.hosts[host];
            if (!prev) continue;
            const plan = planHost(g.group, g.hosts[host], g.payload[host], appliedState(g.group, prev), prev, g.roll.preGate);
            for (const r of plan.requests) {
                if (r.op === "restart" || r.op === "reload") out.push(`${g.group} ${host} ${r.unit} ${r.op}`);
                if (r.op === "run") out.push(`${g.group} ${host} ${r.name} run`);
            }
        }
    }
    return out.sort();
}

/** Every resource `name` waits for through dependsOn, a component standing for all its descendants. */
export function ancestors(rs: Recorded[], name: string): Set<string> {
    const children = new Map<string, string[]>();
    for (const r of rs) if (r.parent) children.set(r.parent, [...(children.get(r.parent) ?? []), r.name]);
    const expand = (d: string): string[] => named(rs, d).type.startsWith("kubeha:") ? [d, ...(children.get(d) ?? []).flatMap(expand)] : [d];
    const seen = new Set<string>();
    const visit = (n: string) => {
        for (const d of named(rs, n).dependsOn.flatMap(expand)) {
            if (seen.has(d)) continue;
            seen.add(d);
            visit(d);
        }
    };
    visit(name);
    return seen;
}

/** Step names of one host in a group, in order. */
export const stepNames = (g: GroupRec, host: string) => g.hosts[host].steps.map((s) => s.name);
