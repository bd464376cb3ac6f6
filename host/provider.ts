// The provider behind HostGroup and HostScript (host/group.ts), a Pulumi dynamic provider:
//   create/update  probe every host, plan the difference (host/plan.ts), apply it. New hosts go in
//                  parallel; a change that restarts something already running rolls: one batch of
//                  hosts at a time (lastIf hosts last), each behind its health gates, and the first
//                  failure stops the roll there, leaving the other hosts as they were.
//   read           (pulumi refresh, preview --refresh, up --refresh) probes every host and records
//                  what it found, so a file edited by hand, a stopped unit or a replaced binary shows
//                  as a diff and the next update restores exactly that.
//   delete         stops and removes what the group put on each host, and nothing else.
// Preview and diff never touch a host. SSH settings come from the stack config (configure), so how
// kubeha reaches hosts is not part of any resource.
//
// Pulumi serializes this object and what it reaches into the dynamic-provider process: modules are
// required where they are used (kubeha's own are imported and serialized with it), and the only
// state is the SSH pool of one deployment.
import type * as pulumi from "@pulumi/pulumi";
import { APPLY_SCRIPT, encodeApply, encodeProbe, Observed, parseApply, parseProbe, PROBE_SCRIPT, SAFE_NAME, SAFE_PATH, uploadScript } from "./agent";
import { HostPlan, isEmpty, observedManifest, planHost, planRemoval, probeRequests, rollOrder } from "./plan";
import { ExecResult, SshPool, sshSettingsFromConfig, SshSettings, Target } from "./ssh";
import { Drain, Gate, HostGroupInputs, HostGroupOutputs, HostManifest, RollPolicy } from "./types";

/** A one-off script on one host (kubectl apply, a health gate of the whole cluster). */
export interface HostScriptInputs {
    kind: "script";
    /** In the cluster's words, for messages ("bootstrap RBAC"). */
    what: string;
    host: Target;
    /** POSIX sh; empty when the resource is a gate. */
    script: string;
    /** Instead of a script: waits until the check passes (the agent's gate, as a unit's health). */
    gate?: Gate;
    /** Secret. */
    stdin?: string;
    /** Re-run when this changes. */
    digest: string;
    /** Run when the resource goes. */
    delete?: string;
}

type Inputs = ({ kind: "group" } & HostGroupInputs) | HostScriptInputs;

/** Runs a fixed script as root on a host, feeding stdin: the SSH pool, or a local stand-in in tests. */
export interface Runner {
    run(t: Target, script: string, stdin?: string | (() => import("node:stream").Readable)): Promise<ExecResult>;
}

const runtime: { config?: (k: string) => string | undefined; settings?: SshSettings; pool?: SshPool } = {};

function sshRunner(): Runner {
    if (!runtime.pool) {
        runtime.pool = new SshPool(() => {
            runtime.settings ??= sshSettingsFromConfig(runtime.config ?? (() => undefined));
            return runtime.settings;
        });
    }
    return runtime.pool;
}

// ---------------------------------------------------------------- one host

async function probe(run: Runner, group: string, t: Target, m: HostManifest | undefined, previous: HostManifest | undefined, roll?: RollPolicy): Promise<Observed> {
    const r = await run.run(t, PROBE_SCRIPT, encodeProbe(probeRequests(group, m, previous, roll)));
    if (r.code !== 0) throw new Error(`${t.name}: cannot read the host's state (exit ${r.code}): ${(r.stderr || r.stdout).trim().split("\n").slice(-5).join("\n")}`);
    return parseProbe(r.stdout);
}

async function upload(run: Runner, t: Target, path: string, local: string, sha256: string): Promise<void> {
    const fs = require("node:fs") as typeof import("node:fs");
    try {
        fs.accessSync(local, fs.constants.R_OK);
    } catch (e) {
        throw new Error(`${t.name}: ${path} comes from ${local} on this machine, which cannot be read (${(e as Error).message}); check kubeha:binaryDir / kubeha:imageArchives`, { cause: e });
    }
    const r = await run.run(t, uploadScript(sha256), () => fs.createReadStream(local));
    if (r.code !== 0) throw new Error(`${t.name}: uploading ${local} for ${path} failed: ${r.stderr.trim()}`);
}

async function applyRequests(run: Runner, t: Target, requests: HostPlan["requests"]): Promise<string[]> {
    if (requests.length === 0) return [];
    const r = await run.run(t, APPLY_SCRIPT, encodeApply(requests));
    const result = parseApply(r.stdout);
    if (result.failure) throw new Error(`${t.name}: ${result.failure}`);
    if (r.code !== 0 || !result.complete) throw new Error(`${t.name}: applying the changes ended early (exit ${r.code}): ${(r.stderr || r.stdout).trim().split("\n").slice(-8).join("\n")}`);
    return result.done.map((d) => `${t.name}: ${d}`);
}

/** Runs a drain's `before` or `after` on every host it names, at once. */
async function drainStep(run: Runner, t: Target, d: Drain, phase: "before" | "after"): Promise<string[]> {
    return all(d.on.map((o) => async () => {
        const r = await run.run(o, `set -eu\n${d[phase]}`);
        if (r.code !== 0) {
            const tail = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-10).join("\n");
            throw new Error(`${t.name}: could not ${phase === "before" ? "take it out of" : "put it back in"} ${d.what} on ${o.name} (exit ${r.code}):\n${tail}`);
        }
        return r.stdout.trim().split("\n").filter(Boolean).map((l) => `${o.name}: ${l}`);
    }));
}

const drains = (m: HostManifest | undefined) => new Map((m?.steps ?? []).flatMap((s) => (s.kind === "unit" && s.drain ? [[s.name, s.drain] as const] : [])));

/**
 * Applies a host's plan. A restart or reload of a unit with a drain runs between the drain's
 * `before` and `after` on the other hosts, `after` once the unit's health gate passed.
 */
async function apply(run: Runner, t: Target, plan: HostPlan, m?: HostManifest): Promise<string[]> {
    for (const u of plan.uploads) await upload(run, t, u.path, u.local, u.sha256);
    const ds = drains(m);
    const done: string[] = [];
    let pending: HostPlan["requests"] = [];
    const flush = async () => {
        done.push(...await applyRequests(run, t, pending));
        pending = [];
    };
    let open: { unit: string; drain: Drain } | undefined;
    for (const r of plan.requests) {
        if ((r.op === "restart" || r.op === "reload") && ds.has(r.unit)) {
            await flush();
            open = { unit: r.unit, drain: ds.get(r.unit)! };
            done.push(...await drainStep(run, t, open.drain, "before"));
        }
        pending.push(r);
        if (open && r.op === "gate" && r.unit === open.unit) {
            await flush();
            done.push(...await drainStep(run, t, open.drain, "after"));
            open = undefined;
        }
    }
    await flush();
    if (open) done.push(...await drainStep(run, t, open.drain, "after"));
    return done;
}

/** Puts back every host of the group a drain still holds out (a restart that failed in an earlier run). */
async function undrainAll(run: Runner, news: HostGroupInputs): Promise<string[]> {
    return all(news.order.flatMap((n) => [...drains(news.hosts[n]).values()].map((d) => () => drainStep(run, target(n, news.hosts[n]), d, "after"))));
}

/** Runs every task; if any failed, one error listing each host's failure. */
async function all(tasks: (() => Promise<string[]>)[]): Promise<string[]> {
    const results = await Promise.allSettled(tasks.map((f) => f()));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => (r.reason as Error).message);
    if (failed.length === 1) throw new Error(failed[0]);
    if (failed.length > 1) throw new Error(`${failed.length} hosts failed:\n\n${failed.join("\n\n")}`);
    return results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
}

const target = (name: string, m: HostManifest): Target => ({ name, address: m.address });

// ---------------------------------------------------------------- the group

export async function converge(run: Runner, news: HostGroupInputs, olds?: HostGroupInputs): Promise<string[]> {
    const g = news.group;
    const previous = (n: string) => olds?.hosts?.[n];
    const removed = (olds?.order ?? []).filter((n) => !news.hosts[n] && olds?.hosts[n]);
    const observed = new Map<string, Observed>();
    await all(news.order.map((n) => async () => {
        observed.set(n, await probe(run, g, target(n, news.hosts[n]), news.hosts[n], previous(n), news.roll));
        return [];
    }));
    const plans = new Map(news.order.map((n) => [n, planHost(g, news.hosts[n], news.payload[n] ?? {}, observed.get(n)!, previous(n), news.roll.preGate)]));
    const done: string[] = [];

    // First installs and changes that restart nothing running: every host at once.
    const rolled = news.order.filter((n) => plans.get(n)!.disruptive && !plans.get(n)!.fresh);
    done.push(...await all(news.order.filter((n) => !rolled.includes(n) && !isEmpty(plans.get(n)!))
        .map((n) => () => apply(run, target(n, news.hosts[n]), plans.get(n)!, news.hosts[n]))));

    // Uploads for the roll go ahead in parallel: staged, not installed, until the host's turn.
    await all(rolled.map((n) => async () => {
        const t = target(n, news.hosts[n]);
        for (const u of plans.get(n)!.uploads) await upload(run, t, u.path, u.local, u.sha256);
        plans.get(n)!.uploads = [];
        return [];
    }));
    const order = rollOrder(rolled, (n) => observed.get(n)!.checks.last === true);
    const batch = Math.max(1, news.roll.batch || 1);
    for (let i = 0; i < order.length; i += batch) {
        const now = order.slice(i, i + batch);
        try {
            done.push(...await all(now.map((n) => () => apply(run, target(n, news.hosts[n]), plans.get(n)!, news.hosts[n]))));
        } catch (e) {
            const rest = order.slice(i + batch);
            const held = now.flatMap((n) => [...drains(news.hosts[n]).values()].map((d) => `${n} stays out of ${d.what} until it is healthy again`));
            throw new Error(`${(e as Error).message}\n\nThe ${g} roll stopped at ${now.join(", ")}${rest.length ? `; ${rest.join(", ")} were not changed and keep running as before` : ""}${held.length ? ` (${held.join("; ")})` : ""}. Fix the cause and run pulumi up again: what is already done stays done.`, { cause: e });
        }
    }

    // Every host is healthy now: none stays out of rotation (a failed earlier run may have left one).
    done.push(...await undrainAll(run, news));

    // Hosts that left the group: drained (beforeRemove on the controller), then cleaned.
    done.push(...await all(removed.map((n) => async () => {
        const m = olds!.hosts[n];
        const out: string[] = [];
        if (m.beforeRemove && olds!.controller) {
            const r = await run.run(olds!.controller, `set -u\n${m.beforeRemove}`);
            out.push(...r.stdout.trim().split("\n").filter(Boolean).map((l) => `${olds!.controller!.name}: ${l}`), ...r.stderr.trim().split("\n").filter(Boolean).map((l) => `${olds!.controller!.name}: ${l}`));
        }
        const t = target(n, m);
        out.push(...await apply(run, t, planRemoval(g, m, await probe(run, g, t, undefined, m))));
        return out;
    })));
    return done;
}

export async function teardown(run: Runner, olds: HostGroupInputs): Promise<void> {
    await all(olds.order.filter((n) => olds.hosts[n]).map((n) => async () => {
        const m = olds.hosts[n];
        if (m.beforeRemove && olds.controller) await run.run(olds.controller, `set -u\n${m.beforeRemove}`);
        const t = target(n, m);
        return apply(run, t, planRemoval(olds.group, m, await probe(run, olds.group, t, undefined, m)));
    }));
}

export async function refresh(run: Runner, olds: HostGroupOutputs): Promise<HostGroupOutputs> {
    const hosts: Record<string, HostManifest> = {};
    await all(olds.order.filter((n) => olds.hosts[n]).map((n) => async () => {
        const m = olds.hosts[n];
        hosts[n] = observedManifest(m, await probe(run, olds.group, target(n, m), m, undefined));
        return [];
    }));
    return { ...olds, hosts };
}

// ---------------------------------------------------------------- scripts

export async function runScript(run: Runner, i: HostScriptInputs, script: string): Promise<string[]> {
    if (i.gate && script === i.script) return applyRequests(run, i.host, [{ op: "gate", gate: i.gate }]);
    const r = await run.run(i.host, `set -eu\n${script}`, i.stdin);
    if (r.code !== 0) {
        const tail = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-20).join("\n");
        throw new Error(`${i.host.name}: ${i.what} failed (exit ${r.code}):\n${tail}`);
    }
    return r.stdout.trim().split("\n").filter(Boolean).map((l) => `${i.host.name}: ${l}`);
}

// ---------------------------------------------------------------- checks and diffs

/** Inputs with keys in a stable order, for comparing what came back from state with what the program says. */
export function canonical(v: unknown): string {
    const sort = (x: unknown): unknown => Array.isArray(x) ? x.map(sort)
        : x && typeof x === "object" ? Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])])) : x;
    return JSON.stringify(sort(v));
}

/** The parts of the inputs that describe the hosts (everything but what the provider added). */
function described(i: Record<string, unknown>): Record<string, unknown> {
    return Object.fromEntries(Object.entries(i).filter(([k]) => k !== "lastApplied" && k !== "__provider"));
}

export function checkGroup(i: HostGroupInputs): pulumi.dynamic.CheckFailure[] {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const fail = (property: string, reason: string) => failures.push({ property, reason });
    if (!SAFE_NAME.test(String(i.group))) fail("group", `${JSON.stringify(i.group)} is not a plain name`);
    const names = Array.isArray(i.order) ? i.order : [];
    if (names.length !== Object.keys(i.hosts ?? {}).length || names.some((n) => !i.hosts[n])) fail("order", "must list every host exactly once");
    for (const n of names) {
        const m = i.hosts[n];
        if (!m) continue;
        const paths = new Set([...Object.keys(m.files ?? {}), ...Object.keys(m.binaries ?? {})]);
        for (const p of paths) if (!SAFE_PATH.test(p)) fail(`hosts.${n}`, `unsafe path ${JSON.stringify(p)}`);
        const seen = new Set<string>();
        for (const s of m.steps ?? []) {
            if (!SAFE_NAME.test(s.name)) fail(`hosts.${n}.steps`, `unsafe step name ${JSON.stringify(s.name)}`);
            if (seen.has(s.name)) fail(`hosts.${n}.steps`, `step ${s.name} is listed twice`);
            seen.add(s.name);
            for (const r of s.reads ?? []) if (!paths.has(r)) fail(`hosts.${n}.steps`, `${s.name} reads ${r}, which this group does not manage on ${n}`);
        }
        for (const p of Object.keys(m.files ?? {})) {
            if (i.payload && typeof i.payload === "object" && typeof i.payload[n]?.[p] !== "string") fail(`payload.${n}`, `no content for ${p}`);
        }
    }
    return failures;
}

/** The provider object Pulumi serializes; exported for tests that run its serialized form. */
export const hostProvider: pulumi.dynamic.ResourceProvider = {
    async configure(req) {
        runtime.config = (k) => req.config.get(k);
    },
    async check(_olds, news: Inputs) {
        // Unknown values (preview) are checked once known.
        const failures = news.kind === "group" && Array.isArray(news.order) && news.hosts && typeof news.hosts === "object" ? checkGroup(news) : [];
        return { inputs: news, failures };
    },
    async diff(_id, olds: Record<string, unknown>, news: Record<string, unknown>) {
        return { changes: canonical(described(olds)) !== canonical(described(news)), replaces: [], deleteBeforeReplace: false };
    },
    async create(inputs: Inputs) {
        const crypto = require("node:crypto") as typeof import("node:crypto");
        if (inputs.kind === "script") {
            return { id: `script-${crypto.randomUUID()}`, outs: { ...inputs, lastApplied: await runScript(sshRunner(), inputs, inputs.script) } };
        }
        return { id: `${inputs.group}-${crypto.randomUUID()}`, outs: { ...inputs, lastApplied: await converge(sshRunner(), inputs) } };
    },
    async update(_id, olds: Inputs, news: Inputs) {
        if (news.kind === "script") {
            const o = olds as HostScriptInputs;
            const same = o.script === news.script && canonical(o.gate) === canonical(news.gate) && o.digest === news.digest && o.stdin === news.stdin && o.host?.address === news.host.address;
            return { outs: { ...news, lastApplied: same ? [] : await runScript(sshRunner(), news, news.script) } };
        }
        return { outs: { ...news, lastApplied: await converge(sshRunner(), news, olds as HostGroupInputs) } };
    },
    async read(id, props: Inputs & { lastApplied?: string[] }) {
        if (props.kind !== "group") return { id, props };
        const found = await refresh(sshRunner(), props as HostGroupOutputs);
        return { id, props: found, inputs: described(found as unknown as Record<string, unknown>) };
    },
    async delete(_id, props: Inputs) {
        if (props.kind === "script") {
            if (props.delete) await runScript(sshRunner(), props, props.delete);
            return;
        }
        await teardown(sshRunner(), props);
    },
};
