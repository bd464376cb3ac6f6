// The SSH pool against a real SSH server on loopback (ssh2's server, running each exec with
// /bin/sh): host keys checked against known_hosts (a mismatch is refused and said so), key
// authentication (a wrong key is named as such), stdin carried to the script, one connection for
// many requests, RSA host keys verified with SHA-2 only.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { AddressInfo } from "node:net";
import { Server, utils } from "ssh2";
import { hostKeyAlgorithms, SshPool, SshSettings, sshSettingsFromConfig } from "../../host/ssh";

const keyPair = (type: "ed25519" | "rsa") => (type === "rsa" ? utils.generateKeyPairSync("rsa", { bits: 2048 }) : utils.generateKeyPairSync("ed25519"));

describe("SSH pool (real SSH protocol on loopback)", function () {
    this.timeout(20000);
    const hostKey = keyPair("ed25519");
    const clientKey = keyPair("ed25519");
    const allowed = utils.parseKey(clientKey.public);
    let server: Server;
    let port: number;
    let connections = 0;
    const commands: string[] = [];

    before(async () => {
        server = new Server({ hostKeys: [hostKey.private] }, (client) => {
            connections++;
            client.on("authentication", (ctx) => {
                const key = !(allowed instanceof Error) && ctx.method === "publickey" && ctx.key.algo === allowed.type && ctx.key.data.equals(allowed.getPublicSSH());
                if (key) ctx.accept(); else ctx.reject(["publickey"]);
            }).on("ready", () => {
                client.on("session", (accept) => {
                    accept().on("exec", (acc, _rej, info) => {
                        commands.push(info.command);
                        const stream = acc();
                        const p = spawn("/bin/sh", ["-c", info.command]);
                        stream.pipe(p.stdin);
                        p.stdout.pipe(stream, { end: false });
                        p.stderr.pipe(stream.stderr, { end: false });
                        p.on("close", (code) => {
                            stream.exit(code ?? 1);
                            stream.end();
                        });
                    });
                });
            }).on("error", () => undefined);
        });
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        port = (server.address() as AddressInfo).port;
    });
    after(() => server.close());

    // A non-22 port is listed the OpenSSH way: [address]:port.
    const known = (pub: string) => ({ path: "/tmp/known_hosts", text: `[127.0.0.1]:${port} ${pub}\n` });
    const settings = (over: Partial<SshSettings> = {}): SshSettings => ({
        user: "root", port, sudo: false, privateKey: clientKey.private, hostKeyChecking: true, knownHosts: known(hostKey.public), ...over,
    });
    const host = { name: "m1", address: "127.0.0.1" };

    it("runs scripts with stdin over one connection, several at once", async () => {
        const pool = new SshPool(() => settings());
        const before = connections;
        const results = await Promise.all([1, 2, 3, 4, 5].map((i) => pool.run(host, "read -r x; echo \"got $x\"; echo err >&2; exit 3", `line${i}\n`)));
        results.forEach((r, i) => assert.deepEqual(r, { code: 3, stdout: `got line${i + 1}\n`, stderr: "err\n" }));
        assert.equal(connections - before, 1, "one connection for every request");
        pool.close();
    });

    it("wraps scripts in sudo -n sh -c for a non-root user, never putting stdin on the command line", async () => {
        const pool = new SshPool(() => settings({ sudo: true }));
        const r = await pool.run(host, "cat", "SECRET-CONTENT");
        // There is no sudo in this test server's PATH, or there is: either way the command line is what matters.
        assert.ok(commands.at(-1)!.startsWith("sudo -n sh -c 'cat'"), commands.at(-1));
        assert.ok(!commands.some((c) => c.includes("SECRET-CONTENT")));
        assert.notEqual(r, undefined);
        pool.close();
    });

    it("refuses a host whose key differs from known_hosts, and says what to do", async () => {
        const other = keyPair("ed25519");
        const pool = new SshPool(() => settings({ knownHosts: known(other.public) }));
        await assert.rejects(pool.run(host, "true"), /m1 \(root@127\.0\.0\.1:\d+\): cannot connect: the host key does not match the one for 127\.0\.0\.1 in \/tmp\/known_hosts/);
        pool.close();
    });

    it("refuses a host missing from known_hosts with the ssh-keyscan fix", async () => {
        const pool = new SshPool(() => settings({ knownHosts: { path: "/tmp/known_hosts", text: "" } }));
        await assert.rejects(pool.run(host, "true"), /no host key for 127\.0\.0\.1 in \/tmp\/known_hosts; add it \(ssh-keyscan -t ed25519 127\.0\.0\.1/);
        pool.close();
    });

    it("names a key the host does not accept (without retrying it)", async () => {
        const pool = new SshPool(() => settings({ privateKey: keyPair("ed25519").private }));
        const t0 = Date.now();
        await assert.rejects(pool.run(host, "true"), /authentication as root failed: the key in kubeha:sshPrivateKey\/sshPrivateKeyFile \(or the ssh-agent\) is not in root's authorized_keys/);
        assert.ok(Date.now() - t0 < 5000, "no retries for a refused key");
        pool.close();
    });

    it("verifies an RSA host key with rsa-sha2 only (never the SHA-1 ssh-rsa signature OpenSSH 8.8+ refuses)", () => {
        assert.deepEqual(hostKeyAlgorithms("ssh-rsa"), ["rsa-sha2-512", "rsa-sha2-256"]);
        assert.deepEqual(hostKeyAlgorithms("ssh-ed25519"), ["ssh-ed25519"]);
    });

    it("reads the stack's SSH settings, with defaults, and the key file", () => {
        const s = sshSettingsFromConfig((k) => ({ "kubeha:sshUser": "kubeha", "kubeha:sshHostKeyChecking": "false", "kubeha:sshPrivateKey": "KEY" } as Record<string, string>)[k], {});
        assert.deepEqual({ ...s }, { user: "kubeha", port: 22, sudo: true, privateKey: "KEY", agent: undefined, hostKeyChecking: false, knownHosts: undefined });
        assert.throws(() => sshSettingsFromConfig((k) => (k === "kubeha:sshPrivateKeyFile" ? "/nonexistent/key" : undefined), {}), /kubeha:sshPrivateKeyFile: cannot read \/nonexistent\/key/);
    });
});
