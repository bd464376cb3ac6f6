// An API availability probe for the e2e: reads and writes through the VIP at a fixed rate while a
// changing step runs, and counts Ready nodes. Every request is one attempt on a new TCP+TLS
// connection (no keep-alive: a dead lb host or apiserver cannot hide behind a pooled connection)
// with a hard deadline; nothing is retried, every failed tick is counted with its time and error.
//
// The e2e runs `pulumi up` with spawnSync, which blocks its event loop, so the probe runs in a
// child process (`startProbe`, forking probe-cli.ts) and reports once, when stopped.
// `startProbeInProcess` runs the same loop in this process (unit tests, non-blocking callers).
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import type * as Http from "node:http";
import * as https from "node:https";
import { homedir } from "node:os";
import { extname, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";

/** Where and as whom to talk: what a kubeconfig's current context names. */
export interface ProbeTarget {
    /** `https://host:port`, e.g. https://198.18.0.10:8443. */
    server: string;
    caCertPem: string;
    clientCertPem: string;
    clientKeyPem: string;
}

export interface ProbeOptions {
    /** Path of a kubeconfig with client-certificate auth (data or file fields). */
    kubeconfig: string;
    /** Names this probe in its result (the e2e step it watched). */
    label: string;
    /** One read and one write per tick; default 300 ms. */
    intervalMs?: number;
    /** Hard deadline per request, connect to last byte; default 2000 ms. */
    timeoutMs?: number;
    /** Ready nodes are counted every this often; default 2000 ms. */
    nodesIntervalMs?: number;
    /** The ConfigMap in `default` that is read and written; default kubeha-probe. */
    configMap?: string;
    /** How long to keep trying to create the ConfigMap before the first tick; default 15000 ms. */
    setupTimeoutMs?: number;
    /** At most this many failures are listed (all are counted); default 500. */
    maxFailuresListed?: number;
}

export type ProbeKind = "read" | "write" | "nodes";

export interface ProbeFailure {
    /** ISO time the tick was due (for a request: when it was issued). */
    at: string;
    kind: ProbeKind;
    error: string;
    /** How long the request ran before it failed. */
    ms: number;
}

export interface ProbeCounts {
    ok: number;
    /** Errors and requests not answered within timeoutMs. */
    failed: number;
    /** Ticks that came while the previous request of that kind was still running (slow, not failed: it is counted when it ends). */
    skipped: number;
}

export interface ProbeResult {
    label: string;
    startedAt: string;
    durationSeconds: number;
    intervalMs: number;
    timeoutMs: number;
    reads: ProbeCounts;
    writes: ProbeCounts;
    /** In time order; at most maxFailuresListed of them (failuresNotListed counts the rest). */
    failures: ProbeFailure[];
    failuresNotListed: number;
    readyNodes: {
        /** Fewest and most nodes with condition Ready=True in one successful sample; null without samples. */
        min: number | null;
        max: number | null;
        /** Successful node lists. */
        samples: number;
        /** Node lists that failed (also in failures, kind "nodes"). */
        failed: number;
        /** Every node seen not Ready (or without a Ready condition) in some sample, sorted. */
        notReadySeen: string[];
    };
    /** Ticks that came due while this process could not run (its own event loop lagged); not API failures. */
    ticksLate: number;
    /** Set when the ConfigMap could not be created: then nothing was measured. */
    setupError?: string;
}

export interface RunningProbe {
    /** Resolves when the ConfigMap exists and the ticks have started; rejects with the setup error. */
    ready: Promise<void>;
    /** Stops ticking, waits for requests in flight (at most timeoutMs) and gives the counts. Idempotent. */
    stop(): Promise<ProbeResult>;
}

const DEFAULTS = { intervalMs: 300, timeoutMs: 2000, nodesIntervalMs: 2000, configMap: "kubeha-probe", setupTimeoutMs: 15_000, maxFailuresListed: 500 };
type Settings = typeof DEFAULTS & { label: string };

function settingsOf(opts: Omit<ProbeOptions, "kubeconfig">): Settings {
    const s = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Settings;
    for (const k of ["intervalMs", "timeoutMs", "nodesIntervalMs"] as const) {
        if (!(s[k] > 0)) throw new Error(`probe: ${k} must be > 0, got ${s[k]}`);
    }
    return s;
}

// ---------------------------------------------------------------- kubeconfig

const expandHome = (p: string) => p.replace(/^~(?=$|\/)/, homedir());

/** The current context's server, CA and client certificate of a kubeconfig (inline data or files relative to it). */
export function readKubeconfig(path: string): ProbeTarget {
    const file = resolve(expandHome(path));
    const cfg = parseYaml(readFileSync(file, "utf8")) as any;
    const named = (list: any[] | undefined, name: string | undefined, what: string) => {
        const items = list ?? [];
        const hit = name === undefined && items.length === 1 ? items[0] : items.find((x) => x?.name === name);
        if (!hit) throw new Error(`${path}: no ${what} named ${JSON.stringify(name)}`);
        return hit;
    };
    const contextName = cfg?.["current-context"] || (cfg?.contexts?.length === 1 ? cfg.contexts[0].name : undefined);
    const context = named(cfg?.contexts, contextName, "context").context ?? {};
    const cluster = named(cfg?.clusters, context.cluster, "cluster").cluster ?? {};
    const user = named(cfg?.users, context.user, "user").user ?? {};
    const pem = (obj: any, field: string): string => {
        if (obj[`${field}-data`]) return Buffer.from(String(obj[`${field}-data`]), "base64").toString("utf8");
        if (obj[field]) return readFileSync(resolve(join(file, ".."), expandHome(String(obj[field]))), "utf8");
        throw new Error(`${path}: ${field}(-data) missing (the probe needs client-certificate auth and the cluster CA)`);
    };
    if (typeof cluster.server !== "string" || !cluster.server.startsWith("https://")) {
        throw new Error(`${path}: cluster server must be https://…, got ${JSON.stringify(cluster.server)}`);
    }
    return {
        server: cluster.server, caCertPem: pem(cluster, "certificate-authority"),
        clientCertPem: pem(user, "client-certificate"), clientKeyPem: pem(user, "client-key"),
    };
}

// ---------------------------------------------------------------- one request

interface Answer {
    status: number;
    body: any;
}

/**
 * One HTTPS request on a connection of its own, rejected after `timeoutMs` whatever stage it is
 * in. Rejects with a one-line error for connection errors, HTTP ≥ 300 and non-JSON answers.
 */
export function requestOnce(target: ProbeTarget, method: string, path: string, timeoutMs: number, body?: { contentType: string; value: unknown }): Promise<Answer> {
    const base = new URL(target.server);
    const payload = body ? Buffer.from(JSON.stringify(body.value)) : undefined;
    return new Promise<Answer>((resolveAnswer, reject) => {
        let done = false;
        let req: Http.ClientRequest | undefined = undefined;
        const finish = (err: Error | undefined, answer?: Answer) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            if (err) {
                reject(err);
                req?.destroy();
            } else {
                resolveAnswer(answer!);
            }
        };
        const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        try {
            req = https.request({
                protocol: "https:",
                hostname: base.hostname.replace(/^\[(.*)\]$/, "$1"),
                port: base.port || 443,
                path: base.pathname.replace(/\/+$/, "") + path,
                method,
                ca: target.caCertPem,
                cert: target.clientCertPem,
                key: target.clientKeyPem,
                // A connection of its own, closed after the answer: no pool can hide a dead backend.
                agent: false,
                headers: {
                    Accept: "application/json",
                    "User-Agent": "kubeha-e2e-probe",
                    Connection: "close",
                    ...(payload ? { "Content-Type": body!.contentType, "Content-Length": payload.length } : {}),
                },
            }, (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("error", (e) => finish(oneLine(e)));
                res.on("aborted", () => finish(new Error("connection closed before the whole answer")));
                res.on("end", () => {
                    const text = Buffer.concat(chunks).toString("utf8");
                    const status = res.statusCode ?? 0;
                    let parsed: any;
                    try {
                        parsed = text ? JSON.parse(text) : undefined;
                    } catch {
                        parsed = undefined;
                    }
                    if (status < 200 || status >= 300) {
                        const detail = parsed?.message ?? text.slice(0, 160);
                        return finish(new Error(`HTTP ${status}${parsed?.reason ? ` ${parsed.reason}` : ""}${detail ? `: ${String(detail).replace(/\s+/g, " ")}` : ""}`));
                    }
                    if (parsed === undefined) return finish(new Error(`HTTP ${status} but the answer is not JSON: ${text.slice(0, 80)}`));
                    finish(undefined, { status, body: parsed });
                });
            });
            req.on("error", (e) => finish(oneLine(e)));
            req.end(payload);
        } catch (e) {
            finish(oneLine(e as Error));
        }
    });
}

function oneLine(e: Error & { code?: string }): Error {
    const msg = (e.message || String(e)).replace(/\s+/g, " ");
    return new Error(e.code && !msg.includes(e.code) ? `${e.code}: ${msg}` : msg);
}

// ---------------------------------------------------------------- the loop

const CM_PATH = (name: string) => `/api/v1/namespaces/default/configmaps/${encodeURIComponent(name)}`;

/** Counts the nodes whose Ready condition is True; lists the others. */
export function readyNodesOf(list: any): { ready: number; notReady: string[] } {
    if (!Array.isArray(list?.items)) throw new Error("node list without items");
    const notReady: string[] = [];
    let ready = 0;
    for (const n of list.items) {
        const cond = (n?.status?.conditions ?? []).find((c: any) => c?.type === "Ready");
        if (cond?.status === "True") ready++;
        else notReady.push(String(n?.metadata?.name ?? "?"));
    }
    return { ready, notReady };
}

/** Creates the ConfigMap (an existing one is fine), trying until `setupTimeoutMs`. */
async function setUp(target: ProbeTarget, s: Settings, stopped: () => boolean): Promise<void> {
    const deadline = Date.now() + s.setupTimeoutMs;
    for (;;) {
        try {
            await requestOnce(target, "POST", "/api/v1/namespaces/default/configmaps", s.timeoutMs, {
                contentType: "application/json",
                value: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: s.configMap, labels: { "app.kubernetes.io/managed-by": "kubeha-e2e-probe" } }, data: { counter: "0" } },
            });
            return;
        } catch (e) {
            const msg = (e as Error).message;
            if (/^HTTP 409\b/.test(msg)) return;
            if (stopped() || Date.now() + 500 > deadline) throw new Error(`creating ConfigMap default/${s.configMap}: ${msg}`, { cause: e });
            await new Promise((r) => setTimeout(r, 500));
        }
    }
}

/** The probe loop in this process (its timers need this event loop to run: not for spawnSync callers). */
export function startProbeInProcess(target: ProbeTarget, opts: Omit<ProbeOptions, "kubeconfig">): RunningProbe {
    const s = settingsOf(opts);
    const startedAt = new Date();
    // Schedules and durations on the monotonic clock; failure times as wall-clock ISO strings.
    const mono0 = performance.now();
    const mono = () => performance.now();
    const wallOf = (m: number) => startedAt.getTime() + (m - mono0);
    const result: ProbeResult = {
        label: s.label, startedAt: startedAt.toISOString(), durationSeconds: 0, intervalMs: s.intervalMs, timeoutMs: s.timeoutMs,
        reads: { ok: 0, failed: 0, skipped: 0 }, writes: { ok: 0, failed: 0, skipped: 0 }, failures: [], failuresNotListed: 0,
        readyNodes: { min: null, max: null, samples: 0, failed: 0, notReadySeen: [] }, ticksLate: 0,
    };
    const notReady = new Set<string>();
    const inFlight: Partial<Record<ProbeKind, { since: number; done: Promise<void> }>> = {};
    let stopping = false;
    let timer: NodeJS.Timeout | undefined;
    let counter = 0;

    const fail = (kind: ProbeKind, at: number, error: string, ms: number) => {
        if (kind === "read") result.reads.failed++;
        else if (kind === "write") result.writes.failed++;
        else result.readyNodes.failed++;
        if (result.failures.length < s.maxFailuresListed) result.failures.push({ at: new Date(at).toISOString(), kind, error, ms });
        else result.failuresNotListed++;
    };

    /**
     * Issues one request of `kind` unless the previous one still runs: then the tick is skipped
     * (that request has its own deadline and is counted as failed if it misses it).
     */
    const attempt = (kind: ProbeKind, run: () => Promise<void>) => {
        if (inFlight[kind]) {
            if (kind === "read") result.reads.skipped++;
            else if (kind === "write") result.writes.skipped++;
            return;
        }
        const since = mono();
        const done = run().then(
            () => { if (kind === "read") result.reads.ok++; else if (kind === "write") result.writes.ok++; },
            (e) => fail(kind, wallOf(since), (e as Error).message, Math.round(mono() - since)),
        ).finally(() => { delete inFlight[kind]; });
        inFlight[kind] = { since, done };
    };

    const read = async () => {
        const a = await requestOnce(target, "GET", CM_PATH(s.configMap), s.timeoutMs);
        if (a.body?.metadata?.name !== s.configMap) throw new Error(`read answered without ConfigMap ${s.configMap}`);
    };
    const write = async () => {
        const n = String(++counter);
        const a = await requestOnce(target, "PATCH", CM_PATH(s.configMap), s.timeoutMs, {
            contentType: "application/merge-patch+json", value: { data: { counter: n, at: new Date().toISOString(), label: s.label } },
        });
        if (a.body?.data?.counter !== n) throw new Error(`write answered counter ${JSON.stringify(a.body?.data?.counter)}, sent ${n}`);
    };
    const nodes = async () => {
        const a = await requestOnce(target, "GET", "/api/v1/nodes", s.timeoutMs);
        const { ready, notReady: names } = readyNodesOf(a.body);
        const r = result.readyNodes;
        r.samples++;
        r.min = r.min === null ? ready : Math.min(r.min, ready);
        r.max = r.max === null ? ready : Math.max(r.max, ready);
        for (const n of names) notReady.add(n);
    };

    // Fixed rate: tick n is due at t0 + n·interval, however long requests take. Ticks this process
    // could not run in time (its own event loop lagged) are counted apart, not as API failures.
    let t0 = 0;
    let tick = 0;
    const nodesEvery = Math.max(1, Math.round(s.nodesIntervalMs / s.intervalMs));
    const onTick = () => {
        if (stopping) return;
        const due = Math.floor((mono() - t0) / s.intervalMs);
        if (due > tick) {
            result.ticksLate += due - tick;
            tick = due;
        }
        attempt("read", read);
        attempt("write", write);
        if (tick % nodesEvery === 0) attempt("nodes", nodes);
        tick++;
        timer = setTimeout(onTick, Math.max(0, t0 + tick * s.intervalMs - mono()));
    };

    const ready = setUp(target, s, () => stopping).then(() => {
        if (stopping) return;
        t0 = mono();
        onTick();
    }, (e: Error) => {
        result.setupError = e.message;
        throw e;
    });
    ready.catch(() => undefined); // reported by stop() as setupError

    let stopped: Promise<ProbeResult> | undefined;
    const stop = () => {
        stopped ??= (async () => {
            stopping = true;
            clearTimeout(timer);
            await ready.catch(() => undefined);
            await Promise.all(Object.values(inFlight).map((f) => f!.done));
            result.durationSeconds = Math.round((mono() - mono0) / 100) / 10;
            result.readyNodes.notReadySeen = [...notReady].sort();
            result.failures.sort((a, b) => a.at.localeCompare(b.at));
            return result;
        })();
        return stopped;
    };
    return { ready, stop };
}

// ---------------------------------------------------------------- the child process

/** Messages between startProbe and probe-cli.ts. */
export type ToChild = { type: "stop" };
export type FromChild = { type: "ready" } | { type: "setup-failed"; error: string } | { type: "result"; result: ProbeResult };

/**
 * Starts the probe in a child process (its own event loop keeps ticking while this one is blocked
 * in spawnSync). Throws at once for a bad kubeconfig; setup errors reject `ready` and appear in
 * the result's setupError.
 */
export function startProbe(opts: ProbeOptions): RunningProbe {
    readKubeconfig(opts.kubeconfig); // fail here, not in the child, for a bad path or missing field
    settingsOf(opts);
    const ts = extname(__filename) === ".ts";
    const cli = join(__dirname, `probe-cli${ts ? ".ts" : ".js"}`);
    const child = fork(cli, ["--ipc", JSON.stringify(opts)], {
        execArgv: ts ? ["-r", require.resolve("ts-node/register/transpile-only")] : [],
        // The repository's tsconfig whatever the cwd (ts-node looks for one from the cwd).
        env: ts ? { TS_NODE_PROJECT: resolve(__dirname, "../../tsconfig.json"), ...process.env } : process.env,
        stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let gone: string | undefined;
    const onMessage: ((m: FromChild) => void)[] = [];
    const onGone: (() => void)[] = [];
    const kill = () => child.kill("SIGKILL");
    process.once("exit", kill);
    child.on("message", (m: FromChild) => onMessage.forEach((l) => l(m)));
    // "close": after the last message; the child exits right after reporting.
    child.on("close", (code, signal) => {
        gone ??= `probe ${opts.label}: child process exited (${signal ?? `code ${code}`}) before reporting`;
        process.removeListener("exit", kill);
        onGone.forEach((l) => l());
    });
    child.on("error", (e) => {
        gone ??= `probe ${opts.label}: child process: ${e.message}`;
        onGone.forEach((l) => l());
    });
    // The child alone does not keep this process alive (a forgotten probe cannot hang mocha);
    // awaiting ready or stop() does, through a timer of its own.
    child.unref();
    (child as unknown as { channel?: { unref(): void } }).channel?.unref();
    const holding = <T>(p: Promise<T>): Promise<T> => {
        const hold = setInterval(() => undefined, 1000);
        return p.finally(() => clearInterval(hold));
    };

    const ready = holding(new Promise<void>((res, rej) => {
        onMessage.push((m) => {
            if (m.type === "ready") res();
            if (m.type === "setup-failed") rej(new Error(m.error));
        });
        onGone.push(() => rej(new Error(gone)));
    }));
    ready.catch(() => undefined); // stop() reports it too, as setupError

    let stopped: Promise<ProbeResult> | undefined;
    const stop = () => {
        stopped ??= new Promise<ProbeResult>((res, rej) => {
            if (gone) return rej(new Error(gone));
            // The child may still be setting up, then waits for requests in flight.
            const waitMs = (opts.setupTimeoutMs ?? DEFAULTS.setupTimeoutMs) + 2 * (opts.timeoutMs ?? DEFAULTS.timeoutMs) + 10_000;
            const limit = setTimeout(() => {
                kill();
                rej(new Error(`probe ${opts.label}: no result within ${waitMs} ms of stop`));
            }, waitMs);
            onMessage.push((m) => {
                if (m.type !== "result") return;
                clearTimeout(limit);
                res(m.result);
            });
            onGone.push(() => {
                clearTimeout(limit);
                rej(new Error(gone));
            });
            child.send({ type: "stop" } satisfies ToChild);
        });
        return stopped;
    };
    return { ready, stop };
}
