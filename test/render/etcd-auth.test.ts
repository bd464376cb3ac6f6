// etcd auth (render/etcd-auth.ts): the users/roles table and the script's text, then the script run
// against a real single-member etcd (Debian's etcd-server) started from the rendered flags, with
// every client certificate of the table: who may read and write what once auth is on.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, AddressInfo, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HA_RAW, specOf } from "../fixtures";
import { CA_USAGES, CERT_ROWS, certificatesFor } from "../../pki/certlist";
import { createCertRequest, createSelfSignedCert, generateKey, signCertRequest } from "../../pki/x509";
import { etcdArgs, etcdctl, etcdEndpoints } from "../../render/etcd";
import { ETCD_AUTH_USERS, etcdAuthUsers, prefixRangeEnd, renderEtcdAuthScript } from "../../render/etcd-auth";
import { ClusterSpec } from "../../spec/types";
import { have, requireTool } from "./tools";

const cn = (spec: ClusterSpec, row: string) => certificatesFor(spec).find((c) => c.name === row)!.commonName;

/** Runs fn with one CERT_ROWS row changed, then puts it back. */
function withRow(name: string, change: Record<string, unknown>, fn: () => void): void {
    const row = CERT_ROWS.find((r) => r.name === name)! as unknown as Record<string, unknown>;
    const saved = Object.fromEntries(Object.keys(change).map((k) => [k, row[k]]));
    Object.assign(row, change);
    try {
        fn();
    } finally {
        Object.assign(row, saved);
    }
}

describe("etcd auth: users, roles and the script", () => {
    const spec = specOf(HA_RAW);

    it("names each user after its certificate's CN in pki/certlist.ts, with the roles each needs", () => {
        assert.deepEqual(etcdAuthUsers(spec).map((u) => [u.name, u.roles.map((r) => [r.name, r.permissions])]), [
            ["root", [["root", []]]],
            [cn(spec, "apiserver-etcd-client"), [["root", []]]],
            [cn(spec, "etcd-healthcheck-client"), [["root", []]]],
            [cn(spec, "flanneld"), [["flanneld", [{ type: "readwrite", prefix: "/kubernetes/network/" }]]]],
        ]);
        assert.deepEqual(etcdAuthUsers(spec).map((u) => u.name), ["root", "kube-apiserver-etcd-client", "kube-etcd-healthcheck-client", "flanneld"]);
    });

    it("gives every etcd client certificate of the table a user (a new one cannot go unnoticed)", () => {
        const clientRows = CERT_ROWS.filter((r) => r.signer === "etcd-ca" && r.usages.includes("client_auth") && !r.usages.includes("server_auth")).map((r) => r.name);
        const tableRows = ETCD_AUTH_USERS.flatMap((u) => "certRow" in u.user ? [u.user.certRow] : []);
        assert.deepEqual([...tableRows].sort(), [...clientRows].sort());
    });

    it("grants flanneld its prefix with the trailing slash (not /kubernetes/networkX), and nothing in kube-subnet-mgr mode", () => {
        const flanneld = (s: ClusterSpec) => etcdAuthUsers(s).find((u) => u.certRow === "flanneld")!.roles;
        assert.deepEqual(flanneld(specOf(HA_RAW, { flannelEtcdPrefix: "/coreos.com/network" })),
            [{ name: "flanneld", permissions: [{ type: "readwrite", prefix: "/coreos.com/network/" }] }]);
        const kube = specOf(HA_RAW, { flannelMode: "kube-subnet-mgr", mastersAreWorkers: true });
        assert.equal(kube.network.flannelMode, "kube-subnet-mgr");
        assert.deepEqual(flanneld(kube), [{ name: "flanneld", permissions: [] }]);
        assert.match(renderEtcdAuthScript(kube), /^ensure_role 'flanneld' 'Role flanneld\nKV Read:\nKV Write:'$/m);
    });

    it("computes prefix range ends as etcd does", () => {
        assert.equal(prefixRangeEnd("/kubernetes/network/"), "/kubernetes/network0");
        assert.equal(prefixRangeEnd("abc"), "abd");
        assert.equal(prefixRangeEnd(""), "\x00");
    });

    it("follows a renamed CN (user names come from the certificate table)", () => {
        withRow("flanneld", { commonName: () => "flanneld-v2" }, () => {
            assert.equal(etcdAuthUsers(spec).find((u) => u.certRow === "flanneld")!.name, "flanneld-v2");
            const script = renderEtcdAuthScript(spec);
            assert.match(script, /^ensure_user 'flanneld-v2' 'flanneld'$/m);
            assert.doesNotMatch(script, /^ensure_user 'flanneld' /m);
        });
        assert.match(renderEtcdAuthScript(spec), /^ensure_user 'flanneld' 'flanneld'$/m);
    });

    it("refuses a table where a CN cannot name one etcd user", () => {
        withRow("flanneld", { scope: "perHost" }, () => assert.throws(() => etcdAuthUsers(spec), /flanneld must be one client certificate/));
        withRow("flanneld", { signer: "ca" }, () => assert.throws(() => etcdAuthUsers(spec), /signed by etcd-ca/));
        withRow("flanneld", { commonName: () => "kube-etcd-healthcheck-client" }, () => assert.throws(() => etcdAuthUsers(spec), /two etcd users are named kube-etcd-healthcheck-client/));
        withRow("flanneld", { commonName: () => "root" }, () => assert.throws(() => etcdAuthUsers(spec), /two etcd users are named root/));
        withRow("flanneld", { name: "flannel" }, () => assert.throws(() => etcdAuthUsers(spec), /no certificate row flanneld/));
        withRow("flanneld", { commonName: () => "flan neld" }, () => assert.throws(() => etcdAuthUsers(spec), /must be letters/));
    });

    it("renders valid sh that runs the rendered etcdctl, adds users without passwords, and enables auth last", () => {
        const script = renderEtcdAuthScript(spec);
        const r = spawnSync("sh", ["-n"], { input: script, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.ok(script.includes(`ectl() { timeout 30 ${etcdctl(etcdEndpoints(spec))} "$@"; }`));
        assert.ok(etcdctl(etcdEndpoints(spec)).includes("/etc/kubernetes/pki/etcd/healthcheck-client.crt"));
        assert.ok(renderEtcdAuthScript(spec, "/opt/etcdctl --endpoints=x", 7).includes(`ectl() { timeout 7 /opt/etcdctl --endpoints=x "$@"; }`));
        assert.match(script, /call "\$kind" add "\$@"/);
        assert.match(script, /add user "\$1" --no-password/);
        assert.doesNotMatch(script, /--from-key|new-user-password|auth disable/);
        const body = script.split("\n");
        const calls = body.filter((l) => /^ensure_(role|user) /.test(l));
        assert.deepEqual(calls.map((l) => l.split(" ").slice(0, 2).join(" ")), [
            "ensure_role root", "ensure_role 'flanneld'",
            "ensure_user 'root'", "ensure_user 'kube-apiserver-etcd-client'", "ensure_user 'kube-etcd-healthcheck-client'", "ensure_user 'flanneld'",
        ]);
        const enable = body.indexOf("  run auth enable");
        assert.ok(enable > body.lastIndexOf(calls[calls.length - 1]), "auth enable comes after every user and role");
        assert.ok(script.includes(`readwrite:'/kubernetes/network/'`));
    });
});

async function freePorts(n: number): Promise<number[]> {
    const servers = await Promise.all(Array.from({ length: n }, () => new Promise<Server>((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => resolve(s));
    })));
    const ports = servers.map((s) => (s.address() as AddressInfo).port);
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    return ports;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("etcd auth on a real etcd from the rendered flags (Debian's etcd-server)", function () {
    this.timeout(60000);
    let dir: string;
    let spec: ClusterSpec;
    let ports: number[];
    const procs: ChildProcess[] = [];
    const pki = (f: string) => join(dir, "pki", f);
    const local = (text: string) => text.replace(/\/etc\/kubernetes\/pki\/etcd\//g, `${join(dir, "pki")}/`).replace(/\/usr\/local\/bin\//g, "");
    /** etcdctl as one client certificate (files <who>.crt/.key) against an endpoint. */
    const client = (who: string, endpoint = () => `https://127.0.0.1:${ports[0]}`) => (args: string[], input?: string) => {
        const r = spawnSync("etcdctl", [`--endpoints=${endpoint()}`, `--cacert=${pki("ca.crt")}`, `--cert=${pki(`${who}.crt`)}`, `--key=${pki(`${who}.key`)}`, "--command-timeout=5s", ...args],
            { encoding: "utf8", input, timeout: 15000 });
        return { status: r.status, out: r.stdout, err: r.stderr };
    };
    const health = client("healthcheck-client");
    const flanneld = client("flanneld");
    const apiserver = client("apiserver-etcd-client");
    const member = client("server");
    const ok = (r: { status: number | null; out: string; err: string }) => {
        assert.equal(r.status, 0, r.err);
        return r.out;
    };
    const denied = (r: { status: number | null; out: string; err: string }, what: string) => {
        assert.notEqual(r.status, 0, `${what} must be refused, got: ${r.out}`);
        assert.match(r.err, /permission denied|user name not found/, what);
    };
    const runScript = (endpoints = etcdEndpoints(spec), timeoutSeconds?: number) => {
        const file = join(dir, "etcd-auth.sh");
        writeFileSync(file, renderEtcdAuthScript(spec, local(etcdctl(endpoints)), timeoutSeconds));
        const r = spawnSync("/bin/sh", [file], { encoding: "utf8", timeout: 30000 });
        return { status: r.status, out: r.stdout, err: r.stderr };
    };
    const healthOutput = (ctl: ReturnType<typeof client>) => {
        const r = ctl(["endpoint", "health"]);
        assert.equal(r.status, 0, r.err);
        return r.out + r.err;
    };
    /** Waits up to 15 s for the member behind ctl; gives up at once when its etcd exited. */
    const waitHealthy = async (ctl: ReturnType<typeof client>, p: ChildProcess) => {
        const deadline = Date.now() + 15000;
        let r = ctl(["endpoint", "health", "--dial-timeout=1s", "--command-timeout=1s"]);
        while (r.status !== 0 && p.exitCode === null && Date.now() < deadline) {
            await sleep(200);
            r = ctl(["endpoint", "health", "--dial-timeout=1s", "--command-timeout=1s"]);
        }
        assert.equal(r.status, 0, `etcd ${p.exitCode === null ? "not healthy after 15 s" : `exited ${p.exitCode}`}: ${r.err}`);
    };
    const startEtcd = (name: string, args: Record<string, string | number | boolean>) => {
        const p = spawn("etcd", Object.entries(args).map(([k, v]) => local(`--${k}=${v}`)), { stdio: ["ignore", "ignore", "pipe"] });
        let log = "";
        p.stderr!.on("data", (d) => { log = (log + d).slice(-4000); });
        p.on("exit", (code) => { if (code) console.log(`etcd ${name} exited ${code}:\n${log}`); });
        procs.push(p);
        return p;
    };
    /** Users and roles as etcd reports them: unchanged when the script changes nothing. */
    const authDump = () => {
        const users = ok(health(["user", "list"])).trim().split("\n");
        const roles = ok(health(["role", "list"])).trim().split("\n");
        return [...users.map((u) => ok(health(["user", "get", u]))), ...roles.map((r) => ok(health(["role", "get", r])))].join("\n");
    };

    before(async function () {
        requireTool(this, "etcd", "etcd-server");
        requireTool(this, "etcdctl", "etcd-client");
        // client, peer, metrics of the cluster; client, peer of the restored member.
        ports = await freePorts(5);
        spec = specOf({
            masters: ["e1=127.0.0.1"], hostCidr: "127.0.0.0/8", etcdClientPort: ports[0], etcdPeerPort: ports[1],
            sshHostKeyChecking: false, sshPrivateKey: "x", binarySource: "local", binaryDir: "/srv",
        });
        dir = mkdtempSync(join(tmpdir(), "kubeha-etcd-auth-"));
        mkdirSync(join(dir, "pki"));
        const caKey = generateKey("ECDSA");
        const caCert = await createSelfSignedCert({ privateKeyPem: caKey.privateKeyPem, subject: { commonName: "etcd-ca" }, isCaCert: true, allowedUses: CA_USAGES, validityPeriodHours: 24 });
        writeFileSync(pki("ca.crt"), caCert);
        // The certificates as the table issues them (CN, usages, SANs), under their file names.
        const m = spec.masters[0];
        const certs = certificatesFor(spec);
        const files: [string, string][] = [["etcd-server", "server"], ["etcd-peer", "peer"], ["etcd-healthcheck-client", "healthcheck-client"],
            ["apiserver-etcd-client", "apiserver-etcd-client"], ["flanneld", "flanneld"]];
        for (const [name, file] of files) {
            const c = certs.find((x) => x.name === name || x.name === `${name}-${m.name}`)!;
            assert.equal(c.signer, "etcd-ca");
            const key = generateKey("ECDSA");
            const csr = await createCertRequest({ privateKeyPem: key.privateKeyPem, subject: { commonName: c.commonName }, ipAddresses: c.ipAddresses, dnsNames: c.dnsNames });
            const cert = await signCertRequest({ certRequestPem: csr, caCertPem: caCert, caPrivateKeyPem: caKey.privateKeyPem, validityPeriodHours: 24, allowedUses: c.usages });
            writeFileSync(pki(`${file}.crt`), cert, { mode: 0o600 });
            writeFileSync(pki(`${file}.key`), key.privateKeyPem, { mode: 0o600 });
        }
        const etcd = startEtcd("e1", {
            ...etcdArgs(spec, m), "data-dir": join(dir, "data"), "wal-dir": join(dir, "wal"),
            "listen-client-urls": `https://127.0.0.1:${ports[0]}`, "listen-metrics-urls": `http://127.0.0.1:${ports[2]}`,
        });
        await waitHealthy(health, etcd);
    });

    after(async () => {
        await Promise.all(procs.map((p) => p.exitCode !== null ? undefined
            : new Promise((resolve) => { p.once("exit", resolve); p.kill("SIGTERM"); setTimeout(resolve, 5000); })));
        if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("without auth, the flanneld certificate reads kube-apiserver's Secrets (the hole the script closes)", () => {
        ok(apiserver(["put", "/registry/secrets/default/x", "s3cret"]));
        assert.equal(ok(flanneld(["get", "/registry/secrets/default/x", "--print-value-only"])).trim(), "s3cret");
    });

    it("creates the roles and password-less users, then enables auth, printing each change", () => {
        const r = runScript();
        assert.equal(r.status, 0, r.err);
        assert.equal(r.err, "");
        assert.deepEqual(r.out.trim().split("\n"), [
            "created role root",
            "created role flanneld",
            "granted role flanneld readwrite on the key prefix /kubernetes/network/",
            "created user root",
            "granted role root to user root",
            "created user kube-apiserver-etcd-client",
            "granted role root to user kube-apiserver-etcd-client",
            "created user kube-etcd-healthcheck-client",
            "granted role root to user kube-etcd-healthcheck-client",
            "created user flanneld",
            "granted role flanneld to user flanneld",
            "enabled etcd authentication: clients are now the users named by their certificates' CNs",
        ]);
    });

    it("lets the healthcheck client (root) read and write anywhere, snapshot and check health", () => {
        ok(health(["put", "/kubeha/probe", "yes"]));
        assert.equal(ok(health(["get", "/registry/secrets/default/x", "--print-value-only"])).trim(), "s3cret");
        assert.match(healthOutput(health), /is healthy/);
        ok(health(["snapshot", "save", join(dir, "snap.db")]));
        assert.match(ok(health(["user", "get", "flanneld"])), /^Roles: flanneld$/m);
    });

    it("lets flanneld read and write under its prefix the way flanneld does (leases, transactions, revoke)", () => {
        ok(flanneld(["put", "/kubernetes/network/config", '{"Network":"10.244.0.0/16"}']));
        assert.match(ok(flanneld(["get", "/kubernetes/network/config", "--print-value-only"])), /10\.244/);
        const lease = ok(flanneld(["lease", "grant", "60"])).match(/lease ([0-9a-f]+) granted/)![1];
        const key = "/kubernetes/network/subnets/10.244.1.0-24";
        const txn = ok(flanneld(["txn", "--interactive=false"], `ver("${key}") = "0"\n\nput ${key} {"PublicIP":"127.0.0.1"}\n\n\n`));
        assert.match(txn, /^SUCCESS/);
        ok(flanneld(["put", `--lease=${lease}`, key, '{"PublicIP":"127.0.0.1"}']));
        assert.match(ok(flanneld(["lease", "timetolive", lease])), /remaining/);
        assert.match(ok(flanneld(["get", "/kubernetes/network/subnets", "--prefix", "--keys-only"])), /10\.244\.1\.0-24/);
        ok(flanneld(["lease", "revoke", lease]));
        assert.equal(ok(flanneld(["get", key])), "");
    });

    it("refuses flanneld kube-apiserver's /registry, keys beside its prefix, and admin operations", () => {
        denied(flanneld(["get", "/registry/secrets/default/x"]), "flanneld reading a Secret");
        denied(flanneld(["put", "/registry/secrets/default/x", "pwned"]), "flanneld writing a Secret");
        denied(flanneld(["del", "/registry/secrets/default/x"]), "flanneld deleting a Secret");
        denied(flanneld(["get", "/registry/", "--prefix", "--keys-only"]), "flanneld listing /registry");
        denied(flanneld(["get", "", "--from-key", "--keys-only"]), "flanneld listing everything");
        denied(flanneld(["put", "/kubernetes/networkX", "x"]), "flanneld writing beside its prefix");
        denied(flanneld(["get", "/kubernetes/networkX"]), "flanneld reading beside its prefix");
        denied(flanneld(["get", "/kubernetes/network", "--prefix"]), "flanneld reading the prefix without its slash");
        denied(flanneld(["user", "grant-role", "flanneld", "root"]), "flanneld granting itself root");
        denied(flanneld(["role", "grant-permission", "flanneld", "readwrite", "/registry/", "--prefix=true"]), "flanneld widening its role");
        denied(flanneld(["auth", "disable"]), "flanneld disabling auth");
        denied(flanneld(["snapshot", "save", join(dir, "stolen.db")]), "flanneld taking a snapshot of all of etcd");
        // The apiserver's lease (events carry one) cannot be revoked to delete its keys.
        const lease = ok(apiserver(["lease", "grant", "600"])).match(/lease ([0-9a-f]+) granted/)![1];
        ok(apiserver(["put", `--lease=${lease}`, "/registry/events/default/e", "x"]));
        denied(flanneld(["lease", "revoke", lease]), "flanneld revoking kube-apiserver's lease");
        assert.equal(ok(health(["get", "/registry/secrets/default/x", "--print-value-only"])).trim(), "s3cret");
    });

    it("lets kube-apiserver's client read and write /registry and compact", () => {
        const put = ok(apiserver(["put", "/registry/configmaps/default/c", "v", "-w", "json"]));
        assert.equal(ok(apiserver(["get", "/registry/configmaps/default/c", "--print-value-only"])).trim(), "v");
        const rev = JSON.parse(put).header.revision;
        assert.match(ok(apiserver(["compaction", String(rev)])), /compacted revision/);
    });

    it("gives a certificate whose CN is no user nothing, while endpoint health still answers", () => {
        // The member's own server certificate (client_auth, CN = the member name) as a client.
        denied(member(["get", "/registry/secrets/default/x"]), "a CN that is no etcd user reading");
        denied(member(["put", "/kubernetes/network/config", "x"]), "a CN that is no etcd user writing");
        assert.match(healthOutput(member), /is healthy/);
    });

    it("changes nothing when run again, printing one ok line", () => {
        const before = authDump();
        const r = runScript();
        assert.equal(r.status, 0, r.err);
        assert.equal(r.out, "ok: etcd authentication enabled, users and roles unchanged\n");
        assert.equal(r.err, "");
        assert.equal(authDump(), before);
        denied(flanneld(["get", "/registry/secrets/default/x"]), "flanneld after a second run");
    });

    it("repairs drift: takes away roles and permissions that are not kubeha's, leaves other users alone", () => {
        ok(health(["user", "grant-role", "flanneld", "root"]));
        ok(health(["role", "grant-permission", "flanneld", "read", "/registry/", "--prefix=true"]));
        ok(health(["user", "add", "backup-tool", "--no-password"]));
        assert.equal(ok(flanneld(["get", "/registry/secrets/default/x", "--print-value-only"])).trim(), "s3cret");
        const r = runScript();
        assert.equal(r.status, 0, r.err);
        assert.deepEqual(r.out.trim().split("\n"), [
            "deleted role flanneld: its permissions were not kubeha's; it is recreated with them",
            "created role flanneld",
            "granted role flanneld readwrite on the key prefix /kubernetes/network/",
            "granted role flanneld to user flanneld",
            "revoked role root from user flanneld: not kubeha's",
        ]);
        denied(flanneld(["get", "/registry/secrets/default/x"]), "flanneld after the repair");
        ok(flanneld(["get", "/kubernetes/network/config"]));
        assert.match(ok(health(["user", "list"])), /^backup-tool$/m);
        assert.equal(runScript().out, "ok: etcd authentication enabled, users and roles unchanged\n");
    });

    it("fails loudly, naming the command, when etcd does not answer (etcdctl's user commands would wait forever)", () => {
        const t0 = Date.now();
        const r = runScript(`https://127.0.0.1:${ports[4]}`, 2); // nothing listens there yet
        assert.notEqual(r.status, 0);
        assert.equal(r.err, "etcd auth: etcdctl user list: no answer from etcd within 2s\n");
        assert.equal(r.out, "");
        assert.ok(Date.now() - t0 < 10000);
    });

    it("keeps users, roles and auth in a snapshot: a member restored from it still refuses flanneld", async () => {
        const restored = join(dir, "restored");
        const peer = `http://127.0.0.1:${ports[4]}`;
        // etcd 3.6 restores with etcdutl; 3.4 (Debian bookworm) with etcdctl, same flags.
        const r = spawnSync(have("etcdutl") ? "etcdutl" : "etcdctl", ["snapshot", "restore", join(dir, "snap.db"), "--name", "e1", "--initial-cluster", `e1=${peer}`,
            "--initial-advertise-peer-urls", peer, "--data-dir", restored], { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" } });
        assert.equal(r.status, 0, r.stderr);
        const url = `https://127.0.0.1:${ports[3]}`;
        const etcd = startEtcd("restored", {
            "name": "e1", "data-dir": restored, "listen-client-urls": url, "advertise-client-urls": url, "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer, "initial-cluster": `e1=${peer}`, "client-cert-auth": true,
            "trusted-ca-file": pki("ca.crt"), "cert-file": pki("server.crt"), "key-file": pki("server.key"),
        });
        const at = () => url;
        await waitHealthy(client("healthcheck-client", at), etcd);
        assert.equal(ok(client("healthcheck-client", at)(["get", "/registry/secrets/default/x", "--print-value-only"])).trim(), "s3cret");
        denied(client("flanneld", at)(["get", "/registry/secrets/default/x"]), "flanneld on the restored member");
        ok(client("flanneld", at)(["get", "/kubernetes/network/config"]));
    });
});
