// The offline commands, run as a user runs them.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { certificatesFor } from "../pki/certlist";
import { describeCertificate } from "../pki/x509";
import { SEED_RAW, specOf } from "./fixtures";

const ROOT = resolve(__dirname, "..");
function cli(name: string, args: string[], cwd = ROOT) {
    const r = spawnSync(process.execPath, ["-r", require.resolve("ts-node/register/transpile-only"), join(ROOT, "cli", `${name}.ts`), ...args],
        { cwd, encoding: "utf8", env: { ...process.env, TS_NODE_PROJECT: join(ROOT, "tsconfig.json"), SSH_AUTH_SOCK: "" } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("npm run check / render", function () {
    this.timeout(60000);

    it("check prints the seed's plan: hosts, VIP, versions, artifacts with sha256, every certificate", () => {
        const r = cli("check", ["dev"]);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /https:\/\/172\.16\.60\.250:8443 +\(VIP 172\.16\.60\.250 held by keepalived on k8s-ha01, k8s-ha02/);
        assert.match(r.stdout, /k8s-master01 +172\.16\.60\.241 +master/);
        assert.match(r.stdout, /kube-apiserver +1\.37\.1 .*\n.*dl\.k8s\.io.*\n +sha256 [0-9a-f]{64}/);
        for (const c of certificatesFor(specOf(SEED_RAW))) assert.ok(r.stdout.includes(`  ${c.name} `), `certificate ${c.name} listed`);
        assert.match(r.stdout, /SANs: kubernetes, kubernetes\.default.*10\.254\.0\.1, 172\.16\.60\.250/);
    });

    it("check exits 1 with every problem of a bad stack file, each naming its setting", () => {
        const dir = mkdtempSync(join(tmpdir(), "kubeha-cli-"));
        writeFileSync(join(dir, "Pulumi.bad.yaml"), [
            "config:",
            "  kubeha:masters: [a=10.0.0.1, b=10.0.0.2]",
            "  kubeha:loadBalancers: [lb=10.0.0.9]",
            "  kubeha:hostCidr: 10.0.0.0/24",
            "  kubeha:kubeProxyMode: userspace",
            "  kubeha:mastres: typo",
        ].join("\n"));
        const r = cli("check", ["bad"], dir);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /kubeha:masters: has 2 hosts/);
        assert.match(r.stderr, /kubeha:loadBalancers: has 1 host/);
        assert.match(r.stderr, /kubeha:kubeProxyMode: must be one of/);
        assert.match(r.stderr, /kubeha:mastres: unknown setting/);
        assert.equal(r.stdout, "");
    });

    it("check names a missing stack file", () => {
        const r = cli("check", ["nope"]);
        assert.equal(r.status, 2);
        assert.match(r.stderr, /Pulumi\.nope\.yaml not found/);
    });

    it("render writes each host's files at their real paths; keys are placeholders; certificates are real", () => {
        const out = mkdtempSync(join(tmpdir(), "kubeha-render-"));
        const r = cli("render", ["dev", out]);
        assert.equal(r.status, 0, r.stderr);
        const f = (host: string, path: string) => join(out, host, path);
        for (const m of ["k8s-master01", "k8s-master02", "k8s-master03"]) {
            for (const p of ["etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/etcd/server.key", "etc/kubernetes/admin.conf", "etc/kubernetes/encryption-config.yaml"]) {
                assert.ok(existsSync(f(m, p)), `${m}:/${p}`);
            }
        }
        assert.ok(existsSync(f("k8s-node02", "etc/kubernetes/bootstrap-kubelet.conf")));
        assert.ok(existsSync(f("k8s-ha01", "etc/kubernetes/pki/ca.crt")));
        for (const p of ["etc/kubeha/apiserver-lb/nginx.conf", "etc/systemd/system/kubeha-apiserver-lb.service", "etc/keepalived/keepalived.conf", "etc/keepalived/check-apiserver.sh"]) {
            assert.ok(existsSync(f("k8s-ha02", p)), `k8s-ha02:/${p}`);
        }
        for (const p of ["etc/systemd/system/etcd.service", "etc/systemd/system/kube-apiserver.service", "etc/kubernetes/audit-policy.yaml", "usr/local/lib/kubeha/etcd-backup.sh"]) {
            assert.ok(existsSync(f("k8s-master03", p)), `k8s-master03:/${p}`);
        }
        assert.match(readFileSync(f("k8s-master02", "etc/systemd/system/etcd.service"), "utf8"), /--initial-advertise-peer-urls=https:\/\/172\.16\.60\.242:2380/);
        const key = readFileSync(f("k8s-master01", "etc/kubernetes/pki/apiserver.key"), "utf8");
        assert.ok(!key.includes("PRIVATE KEY-----"), "no private key is rendered");
        assert.match(readFileSync(join(out, "_cluster/addons/coredns.yaml"), "utf8"), /clusterIP: 10\.254\.0\.2/);
        assert.match(readFileSync(join(out, "_cluster/etcd-auth.sh"), "utf8"), /auth enable/);
        assert.equal(statSync(f("k8s-master01", "etc/kubernetes/pki/apiserver.key")).mode & 0o777, 0o600);
        const etcd2 = describeCertificate(readFileSync(f("k8s-master02", "etc/kubernetes/pki/etcd/server.crt"), "utf8"));
        assert.ok(etcd2.ipAddresses.includes("172.16.60.242"));
        const v = spawnSync("openssl", ["verify", "-CAfile", f("k8s-master01", "etc/kubernetes/pki/ca.crt"), f("k8s-master01", "etc/kubernetes/pki/apiserver.crt")], { encoding: "utf8" });
        if (v.error) console.log("      (openssl not installed: chain checked by the parser only)");
        else assert.match(v.stdout, /OK/);
    });
});
