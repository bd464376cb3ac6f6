// Rendered control-plane files checked with the real tools: systemd-analyze on every unit, and a
// real 3-member etcd cluster started from the rendered flags and certificates from the table.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { specOf } from "../fixtures";
import { etcdArgs, etcdClusterHealthCheck, etcdIsLeaderCheck, renderEtcdBackupScript, renderEtcdBackupUnits, renderEtcdUnit, ETCD } from "../../render/etcd";
import { renderApiserverUnit, renderControllerManagerUnit, renderSchedulerUnit, renderAuditPolicy, renderAuthenticationConfig, renderSchedulerConfig, apiserverArgs } from "../../render/control-plane";
import { CA_USAGES } from "../../pki/certlist";
import { createCertRequest, createSelfSignedCert, generateKey, signCertRequest } from "../../pki/x509";
import { requireTool, verifyUnit } from "./tools";
import { HA_RAW } from "../fixtures";

describe("control-plane rendering", () => {
    const spec = specOf(HA_RAW);

    it("renders current flags only: none of the removed ones, all of the HA ones", () => {
        const a = apiserverArgs(spec, spec.masters[0]);
        for (const gone of ["insecure-port", "insecure-bind-address", "experimental-encryption-provider-config", "kubelet-https", "apiserver-count", "logtostderr", "log-dir", "anonymous-auth"]) {
            assert.ok(!(gone in a), `--${gone} must not be rendered`);
        }
        assert.equal(a["etcd-servers"], "https://198.18.0.11:2379,https://198.18.0.12:2379,https://198.18.0.13:2379");
        assert.equal(a["authorization-mode"], "Node,RBAC");
        assert.equal(a["enable-admission-plugins"], "NodeRestriction");
        assert.equal(a["profiling"], false);
        assert.equal(a["service-account-issuer"], "https://kubernetes.default.svc.cluster.local");
        assert.equal(a["advertise-address"], "198.18.0.11");
    });

    it("lets user overrides replace kubeha's flags", () => {
        const s = specOf(HA_RAW, { apiserverExtraArgs: ["--profiling=true", "--v=2"] });
        const a = apiserverArgs(s, s.masters[0]);
        assert.equal(a.profiling, "true");
        assert.equal(a.v, "2");
    });

    it("renders structured configs that parse with their current apiVersions", () => {
        assert.equal(parse(renderAuditPolicy()).apiVersion, "audit.k8s.io/v1");
        const auth = parse(renderAuthenticationConfig());
        assert.equal(auth.apiVersion, "apiserver.config.k8s.io/v1");
        assert.deepEqual(auth.anonymous.conditions.map((c: { path: string }) => c.path), ["/livez", "/readyz", "/healthz"]);
        const sched = parse(renderSchedulerConfig());
        assert.equal(sched.apiVersion, "kubescheduler.config.k8s.io/v1");
        assert.equal(sched.leaderElection.leaderElect, true);
    });

    it("every unit passes systemd-analyze verify", function () {
        requireTool(this, "systemd-analyze", "systemd");
        const m = spec.masters[0];
        const backup = renderEtcdBackupUnits(spec);
        const units: [string, string][] = [
            ["etcd.service", renderEtcdUnit(spec, m)], ["kube-apiserver.service", renderApiserverUnit(spec, m)],
            ["kube-controller-manager.service", renderControllerManagerUnit(spec)], ["kube-scheduler.service", renderSchedulerUnit(spec)],
            [ETCD.backupService, backup.service], [ETCD.backupTimer, backup.timer],
        ];
        for (const [name, content] of units) {
            const r = verifyUnit(name, content);
            assert.equal(r.output, "", `${name}:\n${r.output}`);
        }
        // The check can fail: a misspelt directive is reported.
        assert.notEqual(verifyUnit("broken.service", renderSchedulerUnit(spec).replace("Restart=", "Restrat=")).output, "");
    });
});

describe("a real etcd cluster from the rendered flags (Debian's etcd-server)", function () {
    this.timeout(120000);
    // Three members on loopback addresses; only the two fixed localhost URLs (client and metrics)
    // are moved to each member's own address, since all three share this machine's loopback.
    const spec = specOf({
        masters: ["e1=127.0.33.1", "e2=127.0.33.2", "e3=127.0.33.3"], hostCidr: "127.0.33.0/24",
        etcdClientPort: 12379, etcdPeerPort: 12380, sshHostKeyChecking: false, sshPrivateKey: "x",
        binarySource: "local", binaryDir: "/srv", etcdBackupRetention: 2,
    });
    let dir: string;
    const procs: ChildProcess[] = [];
    const pkiDir = (name: string) => join(dir, name, "pki");
    const local = (text: string, member: string) => text.replace(/\/etc\/kubernetes\/pki\/etcd\//g, `${pkiDir(member)}/`).replace(/\/usr\/local\/bin\//g, "");

    before(async function () {
        requireTool(this, "etcd", "etcd-server");
        requireTool(this, "etcdctl", "etcd-client");
        dir = mkdtempSync(join(tmpdir(), "kubeha-etcd-"));
        const caKey = generateKey("ECDSA");
        const caCert = await createSelfSignedCert({ privateKeyPem: caKey.privateKeyPem, subject: { commonName: "etcd-ca" }, isCaCert: true, allowedUses: CA_USAGES, validityPeriodHours: 24 });
        const issue = async (cn: string, usages: ("server_auth" | "client_auth")[], ips: string[], dns: string[]) => {
            const key = generateKey("ECDSA");
            const csr = await createCertRequest({ privateKeyPem: key.privateKeyPem, subject: { commonName: cn }, ipAddresses: ips, dnsNames: dns });
            return { key: key.privateKeyPem, cert: await signCertRequest({ certRequestPem: csr, caCertPem: caCert, caPrivateKeyPem: caKey.privateKeyPem, validityPeriodHours: 24, allowedUses: ["digital_signature", "key_encipherment", ...usages] }) };
        };
        const health = await issue("kube-etcd-healthcheck-client", ["client_auth"], [], []);
        for (const m of spec.masters) {
            mkdirSync(pkiDir(m.name), { recursive: true });
            const both = await issue(m.name, ["server_auth", "client_auth"], [m.ip, "127.0.0.1"], [m.name, "localhost"]);
            for (const [f, v] of Object.entries({ "ca.crt": caCert, "server.crt": both.cert, "server.key": both.key, "peer.crt": both.cert, "peer.key": both.key, "healthcheck-client.crt": health.cert, "healthcheck-client.key": health.key })) {
                writeFileSync(join(pkiDir(m.name), f), v, { mode: 0o600 });
            }
            const args: Record<string, string | number | boolean> = { ...etcdArgs(spec, m), "data-dir": join(dir, m.name, "data"), "wal-dir": join(dir, m.name, "wal") };
            args["listen-client-urls"] = `https://${m.ip}:12379`;
            args["listen-metrics-urls"] = `http://${m.ip}:12381`;
            const argv = Object.entries(args).map(([k, v]) => local(`--${k}=${v}`, m.name));
            const p = spawn("etcd", argv, { stdio: ["ignore", "ignore", "pipe"] });
            let log = "";
            p.stderr!.on("data", (d) => { log = (log + d).slice(-4000); });
            p.on("exit", (code) => { if (code) console.log(`etcd ${m.name} exited ${code}:\n${log}`); });
            procs.push(p);
        }
    });

    after(() => {
        for (const p of procs) p.kill("SIGTERM");
    });

    const sh = (script: string) => spawnSync("sh", ["-c", script], { encoding: "utf8" });

    it("becomes healthy with a leader, checked by the rendered health check", async () => {
        const check = local(etcdClusterHealthCheck(spec), "e1");
        let r = sh(check);
        for (let i = 0; i < 60 && r.status !== 0; i++) {
            await new Promise((res) => setTimeout(res, 500));
            r = sh(check);
        }
        assert.equal(r.status, 0, r.stderr);
        assert.equal((r.stdout + r.stderr).match(/is healthy/g)?.length, 3);
    });

    it("the leader check (the etcd roll restarts the leader last) passes on exactly one member", () => {
        const leaders = spec.masters.filter((m) => sh(local(etcdIsLeaderCheck(spec), m.name).replace("https://127.0.0.1:12379", `https://${m.ip}:12379`)).status === 0);
        assert.equal(leaders.length, 1, `leaders: ${leaders.map((m) => m.name).join(", ") || "none"}`);
    });

    it("serves writes and reads over mutual TLS", () => {
        const ctl = local(etcdClusterHealthCheck(spec), "e1").replace(/ endpoint health$/, "");
        assert.equal(sh(`${ctl} put /kubeha/probe yes`).status, 0);
        assert.match(sh(`${ctl} get /kubeha/probe --print-value-only`).stdout, /^yes/);
    });

    it("refuses a client without a certificate", () => {
        const r = sh(`etcdctl --endpoints=https://127.0.33.1:12379 --cacert=${pkiDir("e1")}/ca.crt --command-timeout=3s endpoint health`);
        assert.notEqual(r.status, 0);
    });

    it("backs up with the rendered script, keeping the newest N, and restores from the snapshot", async () => {
        const backupDir = join(dir, "backups");
        const script = local(renderEtcdBackupScript(spec), "e1").replace(`dir=${spec.etcd.backup.dir}`, `dir=${backupDir}`).replace("https://127.0.0.1:12379", "https://127.0.33.1:12379");
        writeFileSync(join(dir, "backup.sh"), script, { mode: 0o755 });
        for (let i = 0; i < 3; i++) {
            const r = sh(join(dir, "backup.sh"));
            assert.equal(r.status, 0, r.stderr);
            await new Promise((res) => setTimeout(res, 1100));
        }
        const snaps = readdirSync(backupDir);
        assert.equal(snaps.length, 2, `retention 2 keeps 2: ${snaps}`);
        // Restore (etcd 3.4's etcdctl; 3.6 moves this to etcdutl with the same flags) into a new
        // single-member cluster and read the key back: the README's procedure, tried.
        const restored = join(dir, "restored");
        const snap = join(backupDir, snaps.sort().pop()!);
        const r = sh(`ETCDCTL_API=3 etcdctl snapshot restore ${snap} --name e1 --initial-cluster e1=http://127.0.33.9:12380 --initial-advertise-peer-urls http://127.0.33.9:12380 --data-dir ${restored}`);
        assert.equal(r.status, 0, r.stderr);
        const p = spawn("etcd", [`--name=e1`, `--data-dir=${restored}`, "--listen-client-urls=http://127.0.33.9:12379", "--advertise-client-urls=http://127.0.33.9:12379", "--listen-peer-urls=http://127.0.33.9:12380", "--initial-advertise-peer-urls=http://127.0.33.9:12380", "--initial-cluster=e1=http://127.0.33.9:12380"], { stdio: "ignore" });
        procs.push(p);
        let got = "";
        for (let i = 0; i < 40 && !got.startsWith("yes"); i++) {
            await new Promise((res) => setTimeout(res, 250));
            got = sh("etcdctl --endpoints=http://127.0.33.9:12379 get /kubeha/probe --print-value-only").stdout;
        }
        assert.match(got, /^yes/);
    });
});
