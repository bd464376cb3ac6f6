// From what a host should have (HostManifest) and what it has (Observed, from the probe) to the
// requests that close the gap, and nothing more: a file is written only when its content, mode or
// owner differ; a unit restarts only when its own digest changed or a file or binary it reads was
// rewritten; what is already right is left alone. Pure: the provider runs the result, tests read it.
import { ApplyRequest, Observed, ProbeRequest } from "./agent";
import { HostManifest, RollPolicy, Step } from "./types";
import { SYSTEMD_DIR } from "../render/paths";

export const DEFAULT_OWNER = "root:root";
const ACTIVE = new Set(["active", "activating", "reloading"]);
const ENABLED = new Set(["enabled", "enabled-runtime", "static", "alias", "indirect", "generated"]);

export const recordOf = (group: string, step: Step) => `${group}/${step.name}`;

/** What to ask the probe for this host (and, for the roll, who should go last). */
export function probeRequests(group: string, m: HostManifest | undefined, previous?: HostManifest, roll?: RollPolicy): ProbeRequest[] {
    const files = new Set([...Object.keys(m?.files ?? {}), ...Object.keys(previous?.files ?? {})]);
    const bins = new Set([...Object.keys(m?.binaries ?? {}), ...Object.keys(previous?.binaries ?? {})]);
    const steps = new Map<string, Step>([...(previous?.steps ?? []), ...(m?.steps ?? [])].map((s) => [s.name, s]));
    return [
        ...[...files].map((path) => ({ op: "file" as const, path })),
        ...[...bins].map((path) => ({ op: "bin" as const, path })),
        ...[...steps.values()].map((s) => s.kind === "unit"
            ? { op: "unit" as const, unit: s.name, record: recordOf(group, s) }
            : { op: "script" as const, name: s.name, record: recordOf(group, s) }),
        ...Object.values(m?.binaries ?? {}).filter((b) => "local" in b.from).map((b) => ({ op: "staged" as const, sha256: b.source })),
        { op: "owners" as const },
        ...(roll?.lastIf ? [{ op: "check" as const, name: "last", script: roll.lastIf }] : []),
    ];
}

export interface Upload { path: string; local: string; sha256: string }

export interface HostPlan {
    requests: ApplyRequest[];
    /** Uploads to stage before the requests run (binarySource=local). */
    uploads: Upload[];
    /** Restarts or reloads a unit that is running: goes through the roll, one batch at a time. */
    disruptive: boolean;
    /** Nothing of this group was ever applied here: a first install, run in parallel with the others. */
    fresh: boolean;
    /** One line per change, for the resource's lastApplied and the operator. */
    summary: string[];
}

export function isEmpty(p: HostPlan): boolean {
    return p.requests.length === 0 && p.uploads.length === 0;
}

function fileRight(m: HostManifest, path: string, o: Observed): boolean {
    const want = m.files[path];
    const have = o.files[path];
    return !!have?.sha256 && have.sha256 === want.sha256 && have.mode === want.mode && have.owner === (want.owner ?? DEFAULT_OWNER);
}

function binaryRight(m: HostManifest, path: string, o: Observed): boolean {
    const have = o.binaries[path];
    return !!have?.sha256 && have.source === m.binaries[path].source && have.sha256 === have.installedSha256;
}

const isUnitFile = (path: string) => path.startsWith(`${SYSTEMD_DIR}/`);

/** Stops and removes what a step left; its files go with the rest of the host's files. */
function teardownStep(group: string, s: Step): ApplyRequest[] {
    if (s.kind === "script") return [...(s.undo ? [{ op: "run" as const, name: `undo-${s.name}`, script: s.undo }] : []), { op: "forget", record: recordOf(group, s) }];
    return [
        { op: "stop", unit: s.name }, { op: "disable", unit: s.name },
        ...(s.cleanup ? [{ op: "run" as const, name: `cleanup-${s.name}`, script: s.cleanup }] : []),
        ...(s.removeOnDelete ?? []).map((path) => ({ op: "rmtree" as const, path })),
        { op: "forget", record: recordOf(group, s) },
    ];
}

/** Removes (or, when another group still manages it, only disowns) each path. */
function releasePaths(group: string, paths: string[], o: Observed): ApplyRequest[] {
    return paths.flatMap((path): ApplyRequest[] => {
        const others = (o.owners[path] ?? []).filter((g) => g !== group);
        return others.length ? [{ op: "disown", group, path }] : [{ op: "rm", path }, { op: "disown", group, path }];
    });
}

/**
 * The plan for one host that stays in (or joins) the group. `payload` holds the files' contents.
 * `preGate` is checked before the first restart or reload of a running unit.
 */
export function planHost(group: string, m: HostManifest, payload: Record<string, string>, o: Observed, previous?: HostManifest, preGate?: RollPolicy["preGate"]): HostPlan {
    const summary: string[] = [];
    const head: ApplyRequest[] = [];
    const changed = new Set<string>();
    const wanted = new Set(m.steps.map((s) => s.name));
    const fresh = !previous && m.steps.every((s) => (s.kind === "unit" ? o.units[s.name]?.applied : o.scripts[s.name]?.applied) === undefined);

    // Steps the group no longer runs here stop before their files go.
    for (const s of previous?.steps ?? []) {
        if (wanted.has(s.name)) continue;
        head.push(...teardownStep(group, s));
        summary.push(`remove ${s.name}`);
    }

    const uploads: Upload[] = [];
    for (const path of Object.keys(m.files).sort()) {
        if (!(o.owners[path] ?? []).includes(group)) head.push({ op: "own", group, path });
        if (fileRight(m, path, o)) continue;
        const content = payload[path];
        if (content === undefined) throw new Error(`${path}: no content given`);
        head.push({ op: "write", path, mode: m.files[path].mode, owner: m.files[path].owner ?? DEFAULT_OWNER, content });
        changed.add(path);
        summary.push(o.files[path]?.sha256 ? `write ${path}` : `create ${path}`);
    }
    for (const path of Object.keys(m.binaries).sort()) {
        if (!(o.owners[path] ?? []).includes(group)) head.push({ op: "own", group, path });
        if (binaryRight(m, path, o)) continue;
        const b = m.binaries[path];
        if ("local" in b.from) {
            if (!o.staged.includes(b.source)) uploads.push({ path, local: b.from.local, sha256: b.source });
            head.push({ op: "install", path, source: b.source, staged: b.source });
        } else {
            head.push({ op: "fetch", path, source: b.source, url: b.from.url, sha256: b.from.sha256, member: b.from.format === "tar.gz" ? b.from.member : undefined });
        }
        changed.add(path);
        summary.push(`install ${path}`);
    }
    const gone = [...Object.keys(previous?.files ?? {}).filter((p) => !m.files[p]), ...Object.keys(previous?.binaries ?? {}).filter((p) => !m.binaries[p])];
    head.push(...releasePaths(group, gone, o));
    summary.push(...gone.map((p) => `remove ${p}`));
    if ([...changed, ...gone].some(isUnitFile)) head.push({ op: "daemon-reload" });

    const steps: ApplyRequest[] = [];
    let disruptive = false;
    let gated = !preGate;
    const beforeDisruption = () => {
        if (!gated && preGate) steps.push({ op: "gate", gate: preGate });
        gated = true;
    };
    // A first install starts the units one after another and checks their gates (then records
    // them) before the next script and at the end: the units wait for each other themselves, and
    // their start-up times overlap. A change on a running host checks each gate before going on.
    const deferred: ApplyRequest[] = [];
    const after = (...rs: ApplyRequest[]) => (fresh ? deferred : steps).push(...rs);
    const settle = () => steps.push(...deferred.splice(0));
    for (const s of m.steps) {
        const record = recordOf(group, s);
        const readChanged = s.reads.some((r) => changed.has(r));
        if (s.kind === "script") {
            if (o.scripts[s.name]?.applied !== s.digest || readChanged) {
                settle();
                steps.push({ op: "run", name: s.name, script: s.script });
                if (s.health) steps.push({ op: "gate", gate: s.health });
                steps.push({ op: "record", record, digest: s.digest });
                summary.push(`run ${s.name}`);
            }
            continue;
        }
        const u = o.units[s.name] ?? {};
        const active = ACTIVE.has(u.active ?? "");
        if (!ENABLED.has(u.enabled ?? "")) steps.push({ op: "enable", unit: s.name });
        const inputsChanged = u.applied !== s.digest || readChanged;
        let started = false;
        if (!active) {
            steps.push({ op: "start", unit: s.name });
            summary.push(`start ${s.name}`);
            started = true;
        } else if (inputsChanged && s.onChange !== "none") {
            const changedReads = s.reads.filter((r) => changed.has(r));
            const reloadOnly = s.onChange === "restart" && !!s.reloadOn && changedReads.length > 0 && changedReads.every((r) => s.reloadOn!.includes(r));
            const action = reloadOnly ? "reload" : s.onChange;
            beforeDisruption();
            steps.push({ op: action, unit: s.name });
            summary.push(`${action} ${s.name}`);
            disruptive = true;
            started = true;
        }
        if (started && s.health) after({ op: "gate", unit: s.name, gate: s.health });
        if (u.applied !== s.digest) after({ op: "record", record, digest: s.digest });
    }
    settle();
    return { requests: [...head, ...steps], uploads, disruptive, fresh, summary };
}

/** Everything the group put on a host that leaves it, in reverse order; shared files only disowned. */
export function planRemoval(group: string, previous: HostManifest, o: Observed): HostPlan {
    const requests: ApplyRequest[] = [...previous.steps].reverse().flatMap((s) => teardownStep(group, s));
    const paths = [...Object.keys(previous.files), ...Object.keys(previous.binaries)];
    requests.push(...releasePaths(group, paths, o));
    if (paths.some(isUnitFile)) requests.push({ op: "daemon-reload" });
    return { requests, uploads: [], disruptive: true, fresh: false, summary: [`leave ${group}`] };
}

/** Roll order: as listed, except that hosts whose lastIf check passed go last. */
export function rollOrder(names: string[], last: (name: string) => boolean): string[] {
    return [...names.filter((n) => !last(n)), ...names.filter((n) => last(n))];
}

/** The manifest as the probe found it: what `pulumi refresh` records, so a diff shows the drift. */
export function observedManifest(m: HostManifest, o: Observed): HostManifest {
    const files = Object.fromEntries(Object.entries(m.files).map(([path, want]) => {
        const have = o.files[path];
        return [path, have?.sha256 ? { sha256: have.sha256, mode: have.mode ?? "", ...(have.owner !== DEFAULT_OWNER || want.owner ? { owner: have.owner } : {}) } : { sha256: "missing", mode: "missing" }];
    }));
    const binaries = Object.fromEntries(Object.entries(m.binaries).map(([path, want]) => {
        const have = o.binaries[path];
        const source = !have?.sha256 ? "missing" : have.sha256 !== have.installedSha256 ? `changed on the host (sha256 ${have.sha256})` : have.source ?? "unknown";
        return [path, { ...want, source }];
    }));
    const steps = m.steps.map((s): Step => {
        if (s.kind === "script") return { ...s, digest: o.scripts[s.name]?.applied ?? "not applied" };
        const u = o.units[s.name] ?? {};
        const state = !ACTIVE.has(u.active ?? "") ? u.active ?? "unknown" : !ENABLED.has(u.enabled ?? "") ? "disabled" : "running";
        return { ...s, digest: u.applied ?? "not applied", state };
    });
    return { ...m, files, binaries, steps };
}
