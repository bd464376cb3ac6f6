// SSH from the machine running pulumi to the hosts, on ssh2: one connection per host for a whole
// deployment (every resource's requests share it, several channels at once), host keys checked
// against the known_hosts file, sudo for a non-root user. How kubeha reaches a host is the stack's
// SSH settings, read when the provider is configured — never a resource input — so a new key, user
// or port changes no resource and runs nothing on a host.
//
// Runs inside Pulumi's dynamic-provider process from a serialized copy of this code: modules are
// required where they are used (kubeha's own modules are imported: Pulumi serializes what they
// export), and nothing here captures a secret.
import type * as Ssh2 from "ssh2";
import type { Readable } from "node:stream";
import { SETTINGS } from "../spec/settings";
import { parseKnownHosts } from "../spec/known-hosts";
import { shellQuote } from "../render/shell";

export interface SshSettings {
    user: string;
    port: number;
    /** Run scripts through `sudo -n` (a non-root user). */
    sudo: boolean;
    privateKey?: string;
    /** ssh-agent socket, when no key is given. */
    agent?: string;
    hostKeyChecking: boolean;
    /** The known_hosts file's content and path (for messages). */
    knownHosts?: { path: string; text: string };
}

export interface Target {
    name: string;
    address: string;
}

export interface ExecResult {
    code: number;
    stdout: string;
    stderr: string;
}

export { shellQuote };

/** The command line for a fixed script: `sh -c`, under `sudo -n` for a non-root user. */
export function commandLine(settings: Pick<SshSettings, "sudo">, script: string): string {
    return `${settings.sudo ? "sudo -n " : ""}sh -c ${shellQuote(script)}`;
}

/** The stack's SSH settings (kubeha:ssh*), as Pulumi passes config to the provider; files are read here. */
export function sshSettingsFromConfig(get: (key: string) => string | undefined, env: Record<string, string | undefined> = process.env): SshSettings {
    const fs = require("node:fs") as typeof import("node:fs");
    const os = require("node:os") as typeof import("node:os");
    const value = (k: keyof typeof SETTINGS) => {
        const v = get(`kubeha:${k}`);
        return v === undefined || v === "" ? (SETTINGS[k] as { default?: unknown }).default : v;
    };
    const home = (p: string) => (p === "~" || p.startsWith("~/") ? os.homedir() + p.slice(1) : p);
    const user = String(value("sshUser"));
    const keyFile = String(value("sshPrivateKeyFile") ?? "");
    let privateKey = String(value("sshPrivateKey") ?? "") || undefined;
    if (!privateKey && keyFile) {
        try {
            privateKey = fs.readFileSync(home(keyFile), "utf8");
        } catch (e) {
            throw new Error(`kubeha:sshPrivateKeyFile: cannot read ${keyFile}: ${(e as Error).message}`, { cause: e });
        }
    }
    const hostKeyChecking = String(value("sshHostKeyChecking")) !== "false";
    const khPath = String(value("sshKnownHostsFile"));
    let knownHosts: SshSettings["knownHosts"];
    if (hostKeyChecking) {
        try {
            knownHosts = { path: khPath, text: fs.readFileSync(home(khPath), "utf8") };
        } catch (e) {
            throw new Error(`kubeha:sshKnownHostsFile: cannot read ${khPath}: ${(e as Error).message} (or set kubeha:sshHostKeyChecking to false)`, { cause: e });
        }
    }
    return {
        user, port: Number(value("sshPort")), sudo: user !== "root", privateKey,
        agent: privateKey ? undefined : env.SSH_AUTH_SOCK, hostKeyChecking, knownHosts,
    };
}

/** The host key the known_hosts file lists for a host (by address, then name), as [type, blob]. */
export function knownHostKey(settings: SshSettings, t: Target): [string, Buffer] | undefined {
    if (!settings.knownHosts) return undefined;
    const kh = parseKnownHosts(settings.knownHosts.text);
    const line = kh.get(t.address, settings.port) ?? kh.get(t.name, settings.port);
    if (!line) return undefined;
    const [type, blob] = line.split(" ");
    return [type, Buffer.from(blob, "base64")];
}

/**
 * Host-key algorithms to offer for a known key. An RSA key is verified with rsa-sha2-512/256 only:
 * the SHA-1 `ssh-rsa` signature that OpenSSH 8.8 and later refuse is never negotiated.
 */
export function hostKeyAlgorithms(type: string): string[] {
    if (type === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256"];
    return [type];
}

const MAX_CHANNELS = 8;

interface Connection {
    client: Ssh2.Client;
    busy: number;
    waiting: (() => void)[];
}

/** Connections by host, shared by every resource of one deployment. */
export class SshPool {
    private readonly conns = new Map<string, Promise<Connection>>();

    constructor(private readonly settings: () => SshSettings) {}

    private key(t: Target): string {
        const s = this.settings();
        return `${s.user}@${t.address}:${s.port}`;
    }

    private connect(t: Target): Promise<Connection> {
        const s = this.settings();
        const where = `${t.name} (${s.user}@${t.address}:${s.port})`;
        const known = s.hostKeyChecking ? knownHostKey(s, t) : undefined;
        if (s.hostKeyChecking && !known) {
            return Promise.reject(new Error(`${where}: no host key for ${t.address} in ${s.knownHosts?.path}; add it (ssh-keyscan -t ed25519 ${t.address} >> ${s.knownHosts?.path}, after checking its fingerprint) or set kubeha:sshHostKeyChecking to false`));
        }
        if (!s.privateKey && !s.agent) {
            return Promise.reject(new Error(`${where}: no SSH credentials: set kubeha:sshPrivateKey (secret) or kubeha:sshPrivateKeyFile, or run an ssh-agent (SSH_AUTH_SOCK)`));
        }
        const { Client } = require("ssh2") as typeof import("ssh2");
        const attempt = (left: number): Promise<Connection> => new Promise<Connection>((resolve, reject) => {
            const client = new Client();
            let mismatch = false;
            client.once("ready", () => resolve({ client, busy: 0, waiting: [] }));
            client.once("error", (e: Error & { level?: string }) => {
                const why = mismatch
                    ? `the host key does not match the one for ${t.address} in ${s.knownHosts?.path} (a reinstalled host? check its new fingerprint, then replace the line)`
                    : e.level === "client-authentication"
                        ? `authentication as ${s.user} failed: the key in kubeha:sshPrivateKey/sshPrivateKeyFile (or the ssh-agent) is not in ${s.user}'s authorized_keys`
                        : e.message;
                reject(Object.assign(new Error(`${where}: cannot connect: ${why}`), { retryable: !mismatch && e.level !== "client-authentication" }));
            });
            client.on("close", () => this.conns.delete(this.key(t)));
            client.connect({
                host: t.address, port: s.port, username: s.user,
                ...(s.privateKey ? { privateKey: s.privateKey } : { agent: s.agent }),
                readyTimeout: 15000, keepaliveInterval: 5000, keepaliveCountMax: 4,
                ...(known ? {
                    algorithms: { serverHostKey: hostKeyAlgorithms(known[0]) as Ssh2.ServerHostKeyAlgorithm[] },
                    hostVerifier: (key: Buffer) => {
                        mismatch = !key.equals(known[1]);
                        return !mismatch;
                    },
                } : {}),
            });
        }).catch(async (e: Error & { retryable?: boolean }) => {
            // A host that is booting refuses or times out for a while; a wrong key never heals.
            if (!e.retryable || left <= 0) throw e;
            await new Promise((r) => setTimeout(r, 2000));
            return attempt(left - 1);
        });
        return attempt(15);
    }

    private connection(t: Target): Promise<Connection> {
        const k = this.key(t);
        let c = this.conns.get(k);
        if (!c) {
            c = this.connect(t);
            this.conns.set(k, c);
            c.catch(() => this.conns.delete(k));
        }
        return c;
    }

    /** Runs a fixed script on a host (as root), feeding `stdin`; retries once on a broken connection. */
    async run(t: Target, script: string, stdin?: string | (() => Readable)): Promise<ExecResult> {
        try {
            return await this.execOnce(t, script, stdin);
        } catch (e) {
            if (!(e as { connectionLost?: boolean }).connectionLost) throw e;
            this.conns.delete(this.key(t));
            return this.execOnce(t, script, stdin);
        }
    }

    private async execOnce(t: Target, script: string, stdin?: string | (() => Readable)): Promise<ExecResult> {
        const conn = await this.connection(t);
        if (conn.busy >= MAX_CHANNELS) await new Promise<void>((r) => conn.waiting.push(r));
        conn.busy++;
        try {
            return await new Promise<ExecResult>((resolve, reject) => {
                conn.client.exec(commandLine(this.settings(), script), (err, stream) => {
                    if (err) {
                        reject(Object.assign(new Error(`${t.name}: ${err.message}`), { connectionLost: true }));
                        return;
                    }
                    const out: Buffer[] = [];
                    const errs: Buffer[] = [];
                    stream.on("data", (d: Buffer) => out.push(d));
                    stream.stderr.on("data", (d: Buffer) => errs.push(d));
                    // The exit status comes in its own message, before or with the channel's close.
                    let status: number | undefined;
                    stream.on("exit", (code: number | null) => { status = code ?? undefined; });
                    stream.on("close", (code: number | null) => resolve({ code: status ?? code ?? 255, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(errs).toString("utf8") }));
                    stream.on("error", reject);
                    if (typeof stdin === "function") stdin().on("error", reject).pipe(stream);
                    else stream.end(stdin ?? "");
                });
            });
        } finally {
            conn.busy--;
            conn.waiting.shift()?.();
        }
    }

    close(): void {
        for (const c of this.conns.values()) c.then((x) => x.client.end(), () => undefined);
        this.conns.clear();
    }
}
