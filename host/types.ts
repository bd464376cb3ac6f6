// What kubeha manages on the hosts of one role, as plain data: the inputs of a HostGroup resource
// (host/group.ts) and what its provider (host/provider.ts) compares with what a host really has.
// No Pulumi here: the provider process deserializes these types' users, and tests build them.

/** A file kubeha writes. Its content travels separately, as a secret (HostGroupInputs.payload). */
export interface FileEntry {
    sha256: string;
    /** Octal like "0644". */
    mode: string;
    /** "user:group"; default root:root. */
    owner?: string;
}

/** Where a binary comes from: a release URL checked against its published sha256, or an upload from the machine running pulumi. */
export type BinaryFrom =
    | { url: string; sha256: string; format: "binary" | "tar.gz"; member?: string }
    | { local: string };

export interface BinaryEntry {
    /**
     * What identifies the installed bytes: the file's sha256 (uploads, plain downloads) or
     * "<archive sha256>:<member>" (a file inside a release archive). The host records it next to
     * the sha256 of what it installed, so a binary replaced by hand shows as drift.
     */
    source: string;
    from: BinaryFrom;
}

/** A check run on the host until it passes; the failure names what was checked. */
export interface Gate {
    /** In the cluster's words: "kube-apiserver /readyz", "etcd cluster health". */
    what: string;
    /** POSIX sh; exit 0 = healthy. */
    check: string;
    timeoutSeconds: number;
}

interface StepBase {
    name: string;
    /**
     * Digest of everything the step depends on (its text and the files and binaries it reads):
     * recorded on the host once applied, so the same digest again does nothing there.
     */
    digest: string;
    /** Paths among this host's files and binaries the step reads: rewriting one re-runs the step. */
    reads: string[];
    /** Waits after the step (re)started before the next step or host. */
    health?: Gate;
}

/** A systemd unit kubeha runs (its unit file is one of the host's files). */
export interface UnitStep extends StepBase {
    kind: "unit";
    /** What a changed input does: restart, reload (the daemon re-reads its config) or nothing (run by a timer). */
    onChange: "restart" | "reload" | "none";
    /** Reads whose change needs only a reload (nginx's config); any other changed read restarts. */
    reloadOn?: string[];
    /** "running" (enabled and active) is what kubeha keeps it in; a refresh records what it found ("inactive", "failed", "disabled"). */
    state: string;
    /** POSIX sh run after the unit stops for good (interfaces, mounts, processes it left). */
    cleanup?: string;
    /** Paths the unit created (data directories): removed after it stops for good. */
    removeOnDelete?: string[];
    /** Other hosts to take this one out of rotation on around a restart or reload (an apiserver on the lb hosts). */
    drain?: Drain;
}

/**
 * Scripts run on other hosts around a restart of a running unit: `before` just before the restart,
 * `after` once the unit passed its health gate. If the restart or the gate fails, the host stays
 * drained; the next converge of its group puts it back once the unit is healthy. Both idempotent.
 */
export interface Drain {
    /** In the cluster's words: "the lb hosts' API proxy". */
    what: string;
    on: { name: string; address: string }[];
    before: string;
    after: string;
}

/** An idempotent script, run once per digest (host preparation, image imports, a preflight). */
export interface ScriptStep extends StepBase {
    kind: "script";
    script: string;
    /** Run when the host leaves the group, before its files go. */
    undo?: string;
}

export type Step = UnitStep | ScriptStep;

/** Everything kubeha manages on one host of the group. */
export interface HostManifest {
    address: string;
    files: Record<string, FileEntry>;
    binaries: Record<string, BinaryEntry>;
    /** In order: each waits for the one before (and its health gate). */
    steps: Step[];
    /** POSIX sh run on the group's controller before this host leaves the group (drain the node). */
    beforeRemove?: string;
}

export interface RollPolicy {
    /** Hosts changed at once when a change restarts something on hosts already running (default 1). */
    batch: number;
    /** POSIX sh run on each host before the roll: hosts where it succeeds go last (the VIP holder, the etcd leader). */
    lastIf?: string;
    /** Must pass on a host before anything on it restarts (e.g. the whole etcd cluster healthy). */
    preGate?: Gate;
}

export interface HostGroupInputs {
    /** The role in the cluster's words ("etcd", "control-plane", "nodes"); also the owner name on hosts. */
    group: string;
    /** Host name -> what kubeha manages there. */
    hosts: Record<string, HostManifest>;
    /** Host names in roll order. */
    order: string[];
    roll: RollPolicy;
    /** Where beforeRemove runs (the first master). */
    controller?: { name: string; address: string };
    /** Secret: host -> path -> file content. */
    payload: Record<string, Record<string, string>>;
}

/** What the provider records besides the inputs: the last run's actions, host by host. */
export interface HostGroupOutputs extends HostGroupInputs {
    lastApplied: string[];
}
