// The few Pulumi resources that touch a host, written once on @pulumi/command's remote.Command:
// put files, install release binaries, run a systemd unit, wait until healthy.
// Rules: file contents travel on stdin (a Pulumi secret), never on a command line or in stdout;
// every script is idempotent; `update` re-runs the same script so a change never deletes first.
// What a script depends on is a digest in its first line ("# inputs: …"), not in `triggers`:
// the command provider *replaces* a resource whose triggers change, which would run the old
// resource's delete script (stop the service, remove the files) after the new one started.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { ClusterSpec, Host } from "../spec/types";
import { Artifact } from "../spec/artifacts";
import { HostFile } from "../render/types";
import { STATE_DIR, SYSTEMD_DIR } from "../render/paths";
import { expandHome } from "../spec/stack-config";

export type Connection = command.types.input.remote.ConnectionArgs;

export interface HostTarget {
    host: Host;
    connection: Connection;
    /** Run scripts through `sudo -n` (non-root SSH user). */
    sudo: boolean;
}

/** SSH connection from the stack config: host-key checking on unless disabled, key as a secret. */
export function hostTarget(spec: ClusterSpec, host: Host, privateKey?: pulumi.Input<string>): HostTarget {
    return {
        host,
        sudo: spec.ssh.sudo,
        connection: {
            host: host.ip,
            port: spec.ssh.port,
            user: spec.ssh.user,
            ...(privateKey ? { privateKey: pulumi.secret(privateKey) } : {}),
            ...(spec.ssh.hostKeyChecking && host.hostKey ? { hostKey: host.hostKey } : {}),
            dialErrorLimit: 20,
            perDialTimeout: 10,
        },
    };
}

/**
 * Where binaries are uploaded (binarySource=local): owned by the SSH user, since uploads travel
 * over SFTP without sudo; each upload is checked against its sha256 before root installs it.
 */
export const UPLOAD_DIR = "/var/lib/kubeha-uploads";

/** kubeha's own directories on a host: the root-only state dir and the SSH user's upload dir. */
export function hostStateScript(sshUser: string): string {
    return [`mkdir -p ${STATE_DIR}`, `chmod 700 ${STATE_DIR}`, `install -d -m 0700 -o ${shellQuote(sshUser)} ${UPLOAD_DIR}`].join("\n");
}

export function shellQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command line for a script: `sh -c`, under `sudo -n` for a non-root user. Stdin passes through. */
export function wrap(target: HostTarget, script: string): string {
    const body = `set -eu\n${script}`;
    return `${target.sudo ? "sudo -n " : ""}sh -c ${shellQuote(body)}`;
}

export function sha256(text: string | Buffer): string {
    return createHash("sha256").update(text).digest("hex");
}

/**
 * The command line for a script that must re-run (as an update, in place) whenever `inputs`
 * change. Digests of secrets reveal nothing, so the line is not secret and previews show it.
 */
export function wrapWithInputs(target: HostTarget, script: string, inputs: pulumi.Input<string>[]): pulumi.Output<string> {
    return pulumi.unsecret(pulumi.all(inputs).apply((values) =>
        wrap(target, `# inputs: ${values.length ? sha256(values.join("\n")) : "none"}\n${script}`)));
}

/** Stable digest of a file set (paths, modes, contents): goes in the inputs line of what reads them. */
export function filesDigest(files: HostFile[]): string {
    return sha256(JSON.stringify([...files].sort((a, b) => a.path.localeCompare(b.path)).map((f) => [f.path, f.mode, sha256(f.content)])));
}

// Reads "path mode base64" lines from stdin; replaces a file only when its content or mode differ.
export const WRITE_FILES = `umask 077
while IFS=' ' read -r path mode data; do
  [ -n "$path" ] || continue
  dir=\${path%/*}
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.kubeha.XXXXXX")
  printf '%s' "$data" | base64 -d > "$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path" && [ "$(stat -c %a "$path")" = "\${mode#0}" ]; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$path"
    echo "wrote $path"
  fi
done`;

export function encodeFiles(files: HostFile[]): string {
    for (const f of files) {
        if (!/^\/[A-Za-z0-9._/@+-]+$/.test(f.path)) throw new Error(`refusing to write to unsafe path ${JSON.stringify(f.path)}`);
        if (!/^0[0-7]{3}$/.test(f.mode)) throw new Error(`${f.path}: mode ${f.mode} is not octal like 0644`);
    }
    return files.map((f) => `${f.path} ${f.mode} ${Buffer.from(f.content).toString("base64")}\n`).join("");
}

/** Puts a set of files on a host in one SSH session; removes them on destroy. */
export function putFiles(name: string, target: HostTarget, files: pulumi.Input<HostFile[]>, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const out = pulumi.output(files);
    const script = wrap(target, WRITE_FILES);
    return new command.remote.Command(name, {
        connection: target.connection,
        create: script,
        update: script,
        stdin: pulumi.secret(out.apply(encodeFiles)),
        delete: out.apply((fs) => wrap(target, [`rm -f ${fs.map((f) => shellQuote(f.path)).join(" ")}`,
            // Directories kubeha created and left empty go too (never a non-empty one).
            `for d in ${[...new Set(fs.map((f) => f.path.replace(/\/[^/]+$/, "")))].map(shellQuote).join(" ")}; do rmdir -p --ignore-fail-on-non-empty "$d" 2>/dev/null || true; done`].join("\n"))),
        addPreviousOutputInEnv: false,
    }, opts);
}

/**
 * The script that installs an artifact's files: fetch once into a cache keyed by sha256, verify,
 * extract, and replace an installed file only when it differs. `from` is "download" or the upload dir.
 */
export function artifactInstallScript(hostName: string, artifact: Artifact,
    from: { download: true; cacheDir: string } | { uploadDir: string; sha256: Record<string, string> }): string {
    const members = Object.entries(artifact.members);
    // `src` is a shell word (may expand $tmp); install only when the content differs.
    const installOne = (src: string, file: string) => {
        const to = shellQuote(`${artifact.installDir}/${file}`);
        return `if ! cmp -s ${src} ${to} 2>/dev/null; then install -m 0755 ${src} ${to}; echo "installed ${artifact.installDir}/${file}"; fi`;
    };
    if ("uploadDir" in from) {
        // The upload is checked against the digest of the file on the machine running pulumi, then
        // installed and removed; a file already installed with that digest needs no upload.
        return [`mkdir -p ${shellQuote(artifact.installDir)}`, ...members.map(([f]) => {
            const up = shellQuote(`${from.uploadDir}/${f}`);
            const to = shellQuote(`${artifact.installDir}/${f}`);
            const sum = from.sha256[f];
            return [
                `if echo "${sum}  "${to} | sha256sum -c --status 2>/dev/null; then rm -f ${up}`,
                `elif echo "${sum}  "${up} | sha256sum -c --status 2>/dev/null; then install -m 0755 ${up} ${to} && rm -f ${up} && echo "installed ${artifact.installDir}/${f}"`,
                `else echo "${hostName}: the upload ${from.uploadDir}/${f} is missing or does not match sha256 ${sum}; run pulumi up again (it re-uploads)" >&2; exit 1`,
                "fi",
            ].join("\n");
        })].join("\n");
    }
    if (!artifact.sha256) throw new Error(`${artifact.key} ${artifact.version}: no sha256 pinned; refusing to download an unverified binary`);
    const file = shellQuote(`${from.cacheDir}/${artifact.sha256}`);
    const part = shellQuote(`${from.cacheDir}/${artifact.sha256}.part`);
    const fetch = [
        `mkdir -p ${shellQuote(from.cacheDir)} ${shellQuote(artifact.installDir)}`,
        `if ! echo "${artifact.sha256}  "${file} | sha256sum -c --status 2>/dev/null; then`,
        `  curl -fsSL --retry 3 -o ${part} ${shellQuote(artifact.url)}`,
        `  if ! echo "${artifact.sha256}  "${part} | sha256sum -c --status; then`,
        `    rm -f ${part}; echo "${hostName}: ${artifact.url} does not match sha256 ${artifact.sha256}" >&2; exit 1`,
        `  fi`,
        `  mv ${part} ${file}`,
        "fi",
    ];
    const place = artifact.format === "binary"
        ? members.map(([f]) => installOne(file, f))
        : [`tmp=$(mktemp -d)`, `trap 'rm -rf "$tmp"' EXIT`,
            `tar -xzf ${file} -C "$tmp" ${members.map(([, inside]) => shellQuote(inside)).join(" ")}`,
            ...members.map(([f, inside]) => installOne(`"$tmp"/${shellQuote(inside)}`, f))];
    return [...fetch, ...place].join("\n");
}

export function localArtifactPath(dir: string, artifact: Artifact, file: string): string {
    return `${expandHome(dir)}/${artifact.installDir.endsWith("/cni/bin") ? "cni/" : ""}${file}`;
}

const localDigests = new Map<string, string>();
/** What identifies the installed bytes: the published sha256, or the local files' own digests. */
export function artifactDigest(artifact: Artifact, source: ClusterSpec["binarySource"]): string {
    if (source.kind === "download") return artifact.sha256 ?? "";
    return Object.values(localFileDigests(artifact, source.localDir!)).join(",");
}

/** sha256 of each of an artifact's files in the local binary directory, by file name. */
export function localFileDigests(artifact: Artifact, localDir: string): Record<string, string> {
    return Object.fromEntries(Object.keys(artifact.members).map((file) => [file,
        localDigest(localArtifactPath(localDir, artifact, file), "binaryDir", `put the ${artifact.key} ${artifact.version} release files there`)]));
}

/** "/opt/cni/bin" -> ["/opt/cni/bin", "/opt/cni"]: the directories below /opt, deepest first. */
export function optChain(dir: string): string[] {
    const out: string[] = [];
    for (let d = dir; d.startsWith("/opt/"); d = d.replace(/\/[^/]+$/, "")) out.push(d);
    return out;
}

/** Installs the files of a release artifact: downloaded and checked against its sha256, or uploaded from a local directory. */
export function installArtifact(name: string, target: HostTarget, artifact: Artifact, source: ClusterSpec["binarySource"],
    opts: { parent: pulumi.Resource; dependsOn?: pulumi.Resource[] }): command.remote.Command {
    const installed = Object.keys(artifact.members).map((file) => `${artifact.installDir}/${file}`);
    const dependsOn: pulumi.Resource[] = [...(opts.dependsOn ?? [])];
    let script: string;
    if (source.kind === "download") {
        script = artifactInstallScript(target.host.name, artifact, { download: true, cacheDir: `${STATE_DIR}/downloads` });
    } else {
        // Air-gapped: binaries come from the machine running pulumi, one upload per file.
        const uploadDir = `${UPLOAD_DIR}/${artifact.key}`;
        for (const file of Object.keys(artifact.members)) {
            const local = localArtifactPath(source.localDir!, artifact, file);
            dependsOn.push(new command.remote.CopyToRemote(`${name}-upload-${file}`, {
                connection: target.connection, source: new pulumi.asset.FileAsset(local), remotePath: `${uploadDir}/${file}`,
            }, { parent: opts.parent, dependsOn: opts.dependsOn }));
        }
        script = artifactInstallScript(target.host.name, artifact, { uploadDir, sha256: localFileDigests(artifact, source.localDir!) });
    }
    const create = wrapWithInputs(target, script, [artifact.url, artifact.version, artifactDigest(artifact, source)]);
    return new command.remote.Command(name, {
        connection: target.connection,
        create,
        update: create,
        // A directory of kubeha's own under /opt (the CNI plugins') goes too once empty; never /usr/local/bin.
        delete: wrap(target, [`rm -f ${installed.map(shellQuote).join(" ")}`,
            ...(artifact.installDir.startsWith("/opt/") ? [`rmdir ${optChain(artifact.installDir).map(shellQuote).join(" ")} 2>/dev/null || true`] : [])].join("\n")),
    }, { parent: opts.parent, dependsOn });
}

/** sha256 of a file on the machine running pulumi, read once; a clear error names the setting. */
function localDigest(path: string, setting: string, fix?: string): string {
    if (!localDigests.has(path)) {
        try {
            localDigests.set(path, sha256(readFileSync(path)));
        } catch (e) {
            throw new Error(`kubeha:${setting}: ${path} cannot be read (${(e as Error).message})${fix ? `; ${fix}` : ""}`, { cause: e });
        }
    }
    return localDigests.get(path)!;
}

/**
 * The script importing uploaded image archives into containerd's k8s.io namespace: each checked
 * against its local sha256, imported once (a marker per digest), and its upload removed.
 */
export function imageImportScript(hostName: string, ctr: string, archives: { upload: string; sha256: string }[]): string {
    return [`mkdir -p ${STATE_DIR}/images`, ...archives.map((a) => {
        const up = shellQuote(a.upload);
        const marker = `${STATE_DIR}/images/${a.sha256}`;
        return [
            `if [ -e ${marker} ]; then rm -f ${up}`,
            `elif echo "${a.sha256}  "${up} | sha256sum -c --status 2>/dev/null; then`,
            `  ${ctr} -n k8s.io images import ${up} >/dev/null && touch ${marker} && rm -f ${up} && echo "imported ${a.upload.replace(/^.*\//, "")}"`,
            `else echo "${hostName}: the upload ${a.upload} is missing or does not match sha256 ${a.sha256}; run pulumi up again (it re-uploads)" >&2; exit 1`,
            "fi",
        ].join("\n");
    })].join("\n");
}

/** Uploads image archives from the machine running pulumi and imports them into containerd. */
export function importImages(name: string, target: HostTarget, archives: string[], ctr: string,
    opts: { parent: pulumi.Resource; dependsOn?: pulumi.Resource[] }): command.remote.Command {
    const uploads = archives.map((path) => {
        const local = expandHome(path);
        return { local, upload: `${UPLOAD_DIR}/images/${local.replace(/^.*\//, "")}`, sha256: localDigest(local, "imageArchives") };
    });
    const copies = uploads.map((u) => new command.remote.CopyToRemote(`${name}-upload-${u.upload.replace(/^.*\//, "")}`, {
        connection: target.connection, source: new pulumi.asset.FileAsset(u.local), remotePath: u.upload,
    }, { parent: opts.parent, dependsOn: opts.dependsOn }));
    const create = wrapWithInputs(target, imageImportScript(target.host.name, ctr, uploads), uploads.map((u) => u.sha256));
    return new command.remote.Command(name, {
        connection: target.connection, create, update: create,
        delete: wrap(target, `rm -rf ${STATE_DIR}/images`),
    }, { parent: opts.parent, dependsOn: [...(opts.dependsOn ?? []), ...copies] });
}

export interface UnitArgs {
    unit: string;
    content: string;
    /** Digests of every file the service reads: a change restarts it, nothing else does. */
    inputs: pulumi.Input<string>[];
    /** How to (re)start it; default `systemctl restart <unit>`. */
    restart?: string;
    /** Extra units to write next to it (a timer's service), same lifecycle. */
    companions?: { unit: string; content: string }[];
    /** Paths the service created (data directories), removed after it stops on destroy. */
    removeOnDelete?: string[];
    /** Shell run after the service stops on destroy, before removeOnDelete (interfaces, mounts). */
    cleanupOnDelete?: string;
}

/** Writes a systemd unit, enables it and (re)starts it exactly when the unit or its inputs change; stops and removes it on destroy. */
export function systemdService(name: string, target: HostTarget, args: UnitArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const units = [{ unit: args.unit, content: args.content }, ...(args.companions ?? [])];
    const files = units.map((u) => ({ path: `${SYSTEMD_DIR}/${u.unit}`, content: u.content, mode: "0644", secret: false }));
    const start = wrapWithInputs(target, [WRITE_FILES, "systemctl daemon-reload", `systemctl enable ${args.unit} >/dev/null 2>&1`,
        args.restart ?? `systemctl restart ${args.unit}`, `echo "started ${args.unit}"`].join("\n"), [sha256(JSON.stringify(units)), ...args.inputs]);
    return new command.remote.Command(name, {
        connection: target.connection,
        create: start,
        update: start,
        stdin: encodeFiles(files),
        delete: wrap(target, [`systemctl disable --now ${units.map((u) => u.unit).join(" ")} 2>/dev/null || true`,
            `rm -f ${files.map((f) => f.path).join(" ")}`, "systemctl daemon-reload",
            ...(args.cleanupOnDelete ? [args.cleanupOnDelete] : []),
            // A mount point (a dedicated disk for /var/lib/containerd) is emptied, not removed.
            ...(args.removeOnDelete?.length ? [`for p in ${args.removeOnDelete.map(shellQuote).join(" ")}; do if mountpoint -q "$p" 2>/dev/null; then find "$p" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; else rm -rf "$p"; fi; done`,
                // Parents kubeha created (e.g. /var/lib/etcd) go too once empty; a non-empty one stays.
                `for d in ${[...new Set(args.removeOnDelete.map((p) => p.replace(/\/[^/]+\/?$/, "")))].filter(Boolean).map(shellQuote).join(" ")}; do rmdir -p --ignore-fail-on-non-empty "$d" 2>/dev/null || true; done`] : [])].join("\n")),
    }, opts);
}

/** Digest of the files among `files` at `paths` (the inputs of one service). */
export function digestOf(files: pulumi.Output<HostFile[]>, paths: string[]): pulumi.Output<string> {
    return files.apply((fs) => {
        const picked = fs.filter((f) => paths.includes(f.path));
        const missing = paths.filter((p) => !picked.some((f) => f.path === p));
        if (missing.length) throw new Error(`inputs not rendered for this host: ${missing.join(", ")}`);
        return filesDigest(picked);
    });
}

/** A one-off idempotent script (e.g. `kubectl apply`), re-run in place when `rerunOn` changes. */
export function runScript(name: string, target: HostTarget, args: { script: string; stdin?: pulumi.Input<string>; rerunOn: pulumi.Input<string>[]; delete?: string },
    opts: pulumi.CustomResourceOptions): command.remote.Command {
    const script = wrapWithInputs(target, args.script, args.rerunOn);
    return new command.remote.Command(name, {
        connection: target.connection,
        create: script,
        update: script,
        ...(args.stdin !== undefined ? { stdin: pulumi.secret(args.stdin) } : {}),
        ...(args.delete ? { delete: wrap(target, args.delete) } : {}),
    }, opts);
}

export interface HealthArgs {
    /** What is checked, in the cluster's words ("etcd member", "kube-apiserver /readyz"). */
    what: string;
    /** Shell test that exits 0 when healthy. */
    check: string;
    timeoutSeconds: number;
    /** Re-run the gate whenever these change (the restarts it guards). */
    rerunOn: pulumi.Input<string>[];
}

/** The wait loop: runs the check every second until it passes or the timeout; the failure names host, check and last output. */
export function healthScript(hostName: string, args: Pick<HealthArgs, "what" | "check" | "timeoutSeconds">): string {
    return [
        `deadline=$(( $(date +%s) + ${args.timeoutSeconds} ))`,
        `while :; do`,
        `  if out=$( { ${args.check} ; } 2>&1 ); then echo "${hostName}: ${args.what} healthy"; exit 0; fi`,
        `  if [ "$(date +%s)" -ge "$deadline" ]; then`,
        `    echo "${hostName}: ${args.what} not healthy after ${args.timeoutSeconds}s; last output:" >&2`,
        `    printf '%s\\n' "$out" | tail -n 20 >&2`,
        `    exit 1`,
        `  fi`,
        `  sleep 1`,
        `done`,
    ].join("\n");
}

/** Waits until a check passes on a host, or fails with a message naming the host, the check and its last output. */
export function waitHealthy(name: string, target: HostTarget, args: HealthArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const script = wrapWithInputs(target, healthScript(target.host.name, args), args.rerunOn);
    return new command.remote.Command(name, {
        connection: target.connection,
        create: script,
        update: script,
    }, opts);
}
