// The resources that touch hosts, built on host/provider.ts:
//   HostGroup   everything kubeha manages on the hosts of one role (files, binaries, units,
//               scripts), converged host by host and rolled (one rolling primitive for every role);
//   HostScript  a one-off idempotent script on one host (kubectl apply, a cluster-wide gate).
// Components describe hosts with hostManifest() and say which hosts, which files, which order.
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname } from "node:path";
import { HostScriptInputs } from "./provider";
import { providerShim } from "./provider-shim";
import { BinaryEntry, FileEntry, Gate, HostManifest, RollPolicy, ScriptStep, UnitStep } from "./types";
import { Artifact } from "../spec/artifacts";
import { ClusterSpec, Host } from "../spec/types";
import { HostFile } from "../render/types";
import { expandHome } from "../spec/stack-config";
import { canonical } from "./provider";

const hostProvider = providerShim();

export const sha256 = (text: string | Buffer): string => createHash("sha256").update(text).digest("hex");

export type UnitSpec = Omit<UnitStep, "kind" | "digest" | "state" | "onChange"> & { onChange?: UnitStep["onChange"] };
export type ScriptSpec = Omit<ScriptStep, "kind" | "digest">;
export type StepSpec = ({ kind: "unit" } & UnitSpec) | ({ kind: "script" } & ScriptSpec);

export const unit = (u: UnitSpec): StepSpec => ({ kind: "unit", ...u });
export const script = (s: ScriptSpec): StepSpec => ({ kind: "script", ...s });

export interface HostBinary {
    path: string;
    entry: BinaryEntry;
}

export interface Member {
    name: string;
    manifest: HostManifest;
    /** path -> content (secret). */
    payload: Record<string, string>;
}

/** Step fields that say how a step is checked, drained or torn down: changing them restarts nothing. */
const NOT_DIGESTED = new Set(["health", "drain", "cleanup", "removeOnDelete", "undo"]);

/**
 * One host's manifest: files (content into the payload, digests into the manifest), binaries and
 * steps, each step's digest over its own definition and everything it reads.
 */
export function hostManifest(host: Host, args: { files: HostFile[]; binaries?: HostBinary[]; steps: StepSpec[]; beforeRemove?: string }): Member {
    const files: Record<string, FileEntry> = {};
    const payload: Record<string, string> = {};
    for (const f of args.files) {
        if (files[f.path]) throw new Error(`${host.name}: two files render to ${f.path}`);
        files[f.path] = { sha256: sha256(f.content), mode: f.secret ? "0600" : f.mode, ...(f.owner ? { owner: f.owner } : {}) };
        payload[f.path] = f.content;
    }
    const binaries = Object.fromEntries((args.binaries ?? []).map((b) => [b.path, b.entry]));
    const digestOf = (path: string) => files[path]?.sha256 ?? binaries[path]?.source;
    const steps = args.steps.map((s) => {
        const missing = s.reads.filter((r) => digestOf(r) === undefined);
        if (missing.length) throw new Error(`${host.name}: ${s.name} reads ${missing.join(", ")}, which are not among the host's files or binaries`);
        // What the step runs and reads; how it is checked, drained or torn down restarts nothing.
        const runs = Object.fromEntries(Object.entries(s).filter(([k]) => !NOT_DIGESTED.has(k)));
        const digest = sha256(canonical([runs, s.reads.map(digestOf)]));
        return s.kind === "unit"
            ? { ...s, onChange: s.onChange ?? "restart", state: "running", digest } as UnitStep
            : { ...s, digest } as ScriptStep;
    });
    return { name: host.name, manifest: { address: host.ip, files, binaries, steps, ...(args.beforeRemove ? { beforeRemove: args.beforeRemove } : {}) }, payload };
}

const localDigests = new Map<string, string>();
/**
 * Digests of local files from earlier runs, keyed by device, inode, size and mtime (ns), like
 * make and rsync decide a file is unchanged: hashing ~600 MB of release binaries at every
 * `pulumi preview` would cost seconds. KUBEHA_DIGEST_CACHE=off hashes every time.
 */
interface DigestCache { path: string; entries: Record<string, { stamp: string; sha256: string }> }
let digestCache: DigestCache | undefined;
function digestCacheFile(): DigestCache | undefined {
    if (process.env.KUBEHA_DIGEST_CACHE === "off") return undefined;
    const path = `${process.env.KUBEHA_CACHE ?? `${homedir()}/.cache/kubeha`}/local-digests.json`;
    if (digestCache?.path !== path) {
        let entries: DigestCache["entries"] = {};
        try {
            entries = JSON.parse(readFileSync(path, "utf8")).entries ?? {};
        } catch {
            // No cache yet, or unreadable: start afresh.
        }
        // Files that are gone (old toolchain builds, test directories) leave the cache.
        entries = Object.fromEntries(Object.entries(entries).filter(([p]) => existsSync(p)));
        digestCache = { path, entries };
    }
    return digestCache;
}

/** sha256 of a file on the machine running pulumi, hashed once per content stamp; a clear error names the setting. */
export function localDigest(path: string, setting: string, fix?: string): string {
    try {
        const st = statSync(path, { bigint: true });
        const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
        const memo = localDigests.get(`${path}@${stamp}`);
        if (memo) return memo;
        const cache = digestCacheFile();
        const known = cache?.entries[path];
        let digest = known?.stamp === stamp ? known.sha256 : undefined;
        if (!digest) {
            digest = sha256(readFileSync(path));
            if (cache) {
                cache.entries[path] = { stamp, sha256: digest };
                try {
                    mkdirSync(dirname(cache.path), { recursive: true });
                    writeFileSync(`${cache.path}.tmp`, JSON.stringify({ entries: cache.entries }));
                    renameSync(`${cache.path}.tmp`, cache.path);
                } catch {
                    // A cache that cannot be written only costs time.
                }
            }
        }
        localDigests.set(`${path}@${stamp}`, digest);
        return digest;
    } catch (e) {
        throw new Error(`kubeha:${setting}: ${path} cannot be read (${(e as Error).message})${fix ? `; ${fix}` : ""}`, { cause: e });
    }
}

export function localArtifactPath(dir: string, artifact: Artifact, file: string): string {
    return `${expandHome(dir)}/${artifact.installDir.endsWith("/cni/bin") ? "cni/" : ""}${file}`;
}

/** The installed files of a release artifact: downloaded and checked against its sha256, or uploaded from binaryDir. */
export function artifactBinaries(artifact: Artifact, source: ClusterSpec["binarySource"]): HostBinary[] {
    return Object.entries(artifact.members).map(([file, inside]) => {
        const path = `${artifact.installDir}/${file}`;
        if (source.kind === "local") {
            const local = localArtifactPath(source.localDir!, artifact, file);
            return { path, entry: { source: localDigest(local, "binaryDir", `put the ${artifact.key} ${artifact.version} release files there`), from: { local } } };
        }
        if (!artifact.sha256) throw new Error(`${artifact.key} ${artifact.version}: no sha256 pinned; refusing to download an unverified binary (pin it with kubeha:artifactChecksums or use binarySource=local)`);
        return artifact.format === "binary"
            ? { path, entry: { source: artifact.sha256, from: { url: artifact.url, sha256: artifact.sha256, format: "binary" } } }
            : { path, entry: { source: sha256(`${artifact.sha256}:${inside}`), from: { url: artifact.url, sha256: artifact.sha256, format: "tar.gz", member: inside } } };
    });
}

/** An image archive on the machine running pulumi, kept on the host for containerd to import. */
export function archiveBinary(localPath: string, hostDir: string): HostBinary {
    const local = expandHome(localPath);
    return { path: `${hostDir}/${local.replace(/^.*\//, "")}`, entry: { source: localDigest(local, "imageArchives"), from: { local } } };
}

export interface HostGroupArgs {
    /** The role in the cluster's words; also the owner name of its files on the hosts. */
    group: string;
    /** The hosts, in roll order. */
    members: pulumi.Input<Member[]>;
    roll?: Partial<RollPolicy>;
    /** Where each member's beforeRemove runs. */
    controller?: Host;
}

/** Everything kubeha manages on the hosts of one role; see host/provider.ts for how it converges and rolls. */
export class HostGroup extends pulumi.dynamic.Resource {
    /** What the last create or update did, one line per host and change. */
    declare readonly lastApplied: pulumi.Output<string[]>;

    constructor(name: string, args: HostGroupArgs, opts?: pulumi.CustomResourceOptions) {
        const members = pulumi.output(args.members);
        // The manifest holds digests only (a digest of a key reveals nothing): previews show it.
        const plain = pulumi.unsecret(members);
        super(hostProvider, name, {
            kind: "group",
            group: args.group,
            hosts: plain.apply((ms) => Object.fromEntries(ms.map((m) => [m.name, m.manifest]))),
            order: plain.apply((ms) => ms.map((m) => m.name)),
            roll: { batch: 1, ...args.roll },
            ...(args.controller ? { controller: { name: args.controller.name, address: args.controller.ip } } : {}),
            payload: pulumi.secret(members.apply((ms) => Object.fromEntries(ms.map((m) => [m.name, m.payload])))),
            lastApplied: undefined,
        }, { ...opts, additionalSecretOutputs: ["payload"] }, "kubeha", "HostGroup");
    }
}

export interface HostScriptArgs {
    /** In the cluster's words, for messages. */
    what: string;
    host: Host;
    /** The script, or a gate to wait for (run by the agent like a unit's health gate). */
    script?: string;
    gate?: Gate;
    stdin?: pulumi.Input<string>;
    /** The script runs again (in place) when any of these change. */
    rerunOn: pulumi.Input<string>[];
    delete?: string;
}

/** A one-off idempotent script on one host. */
export class HostScript extends pulumi.dynamic.Resource {
    declare readonly lastApplied: pulumi.Output<string[]>;

    constructor(name: string, args: HostScriptArgs, opts?: pulumi.CustomResourceOptions) {
        const inputs: Partial<Record<keyof HostScriptInputs | "lastApplied", unknown>> = {
            kind: "script",
            what: args.what,
            host: { name: args.host.name, address: args.host.ip },
            script: args.script ?? "",
            ...(args.gate ? { gate: args.gate } : {}),
            ...(args.stdin !== undefined ? { stdin: pulumi.secret(args.stdin) } : {}),
            // A digest of secrets reveals nothing: not secret, so previews show that it changes.
            digest: pulumi.unsecret(pulumi.all(args.rerunOn).apply((v) => sha256(v.join("\n")))),
            ...(args.delete ? { delete: args.delete } : {}),
            lastApplied: undefined,
        };
        super(hostProvider, name, inputs, { ...opts, additionalSecretOutputs: ["stdin"] }, "kubeha", "HostScript");
    }
}
