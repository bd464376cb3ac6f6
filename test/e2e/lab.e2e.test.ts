// End to end on real hosts: `npm run lab` (toolchain, nspawn hosts, the real Pulumi engine), then
// the HA control plane is checked through the VIP, faults are injected, a second `pulumi up` must
// change nothing, a one-setting change must preview only its resources, and destroy must leave the
// hosts clean. Per-phase wall times go to test-results/e2e-timings.json.
import { strict as assert } from "node:assert";
import { spawnSync, SpawnSyncReturns } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { ProbeResult, startProbe } from "./probe";

const ROOT = resolve(__dirname, "../..");
const CACHE = process.env.KUBEHA_CACHE ?? join(homedir(), ".cache/kubeha");
const KUBECONFIG = join(CACHE, "lab/admin.conf");
const KUBECTL = join(CACHE, "artifacts/current/kubectl");
const timings: Record<string, number> = {};
/** Per changing step: how long it took and what the probe through the VIP saw meanwhile. */
const steps: Record<string, { seconds: number; failedRequests: number; requests: number; readyNodesMin: number | null; failures: string[] }> = {};
const MASTERS = ["k8s-master01", "k8s-master02", "k8s-master03"];
const LBS = ["k8s-ha01", "k8s-ha02"];
const WORKERS = ["k8s-node01", "k8s-node02"];
const PROJECT = join(CACHE, "lab/project");
const VIP = "198.18.0.10";

function run(cmd: string, args: string[], opts: { quiet?: boolean; input?: string } = {}): SpawnSyncReturns<string> {
    return spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", input: opts.input, stdio: opts.quiet === false ? "inherit" : "pipe", maxBuffer: 64 << 20 });
}
function timed<T>(phase: string, f: () => T): T {
    const t0 = Date.now();
    try {
        return f();
    } finally {
        timings[phase] = Math.round((Date.now() - t0) / 100) / 10;
    }
}
const lab = (...args: string[]) => run("bash", ["lab/run.sh", ...args]);
const ssh = (host: string, cmd: string) => run("bash", ["lab/hosts.sh", "ssh", host, cmd]);
const kubectl = (...args: string[]) => run(KUBECTL, ["--kubeconfig", KUBECONFIG, "--request-timeout=10s", ...args]);
/** A copy of the lab stack's config with `edit` applied, for `--config-file` (Pulumi's `--config` would save to the stack). */
function stackFileWith(name: string, edit: (yaml: string) => string): string {
    const original = readFileSync(join(PROJECT, "Pulumi.lab.yaml"), "utf8");
    const edited = edit(original);
    assert.notEqual(edited, original, `${name}: the edit changes the stack config`);
    const path = join(PROJECT, `Pulumi.lab-${name}.yaml`);
    writeFileSync(path, edited);
    return path;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually(what: string, f: () => boolean, seconds = 60): Promise<void> {
    for (let i = 0; i < seconds; i++) {
        if (f()) return;
        await sleep(1000);
    }
    assert.fail(`${what}: not true after ${seconds}s`);
}
const etcdctl = "/usr/local/bin/etcdctl --endpoints=https://198.18.0.11:2379,https://198.18.0.12:2379,https://198.18.0.13:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key";


/**
 * Runs a changing step while a probe reads and writes through the VIP (one attempt per request,
 * 2 s deadline, no retries) and counts Ready nodes; records the step's duration and failures.
 */
async function probed<T>(step: string, f: () => T): Promise<{ result: T; probe: ProbeResult }> {
    const probe = startProbe({ kubeconfig: KUBECONFIG, label: step });
    await probe.ready;
    const t0 = Date.now();
    let result: T;
    try {
        result = f();
    } finally {
        const seconds = Math.round((Date.now() - t0) / 100) / 10;
        const p = await probe.stop();
        steps[step] = {
            seconds, failedRequests: p.reads.failed + p.writes.failed, requests: p.reads.ok + p.reads.failed + p.writes.ok + p.writes.failed,
            readyNodesMin: p.readyNodes.min, failures: p.failures.filter((x) => x.kind !== "nodes").slice(0, 10).map((x) => `${x.at} ${x.kind}: ${x.error}`),
        };
        timings[step] = seconds;
    }
    return { result: result!, probe: (await probe.stop()) };
}

const HOST_UNITS: Record<string, string[]> = {
    ...Object.fromEntries(MASTERS.map((m) => [m, ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "flanneld"]])),
    ...Object.fromEntries(WORKERS.map((w) => [w, ["containerd", "flanneld", "kubelet", "kube-proxy"]])),
    ...Object.fromEntries(LBS.map((l) => [l, ["kubeha-apiserver-lb", "keepalived"]])),
};
interface UnitTimes { pid: string; started: string; inactiveAt: number; activeAt: number }
/** Per "host/unit": its main process and when it last stopped and became active (realtime, seconds). */
function unitTimes(): Record<string, UnitTimes> {
    const out: Record<string, UnitTimes> = {};
    for (const [host, units] of Object.entries(HOST_UNITS)) {
        const r = ssh(host, `systemctl show --timestamp=unix -p Id -p MainPID -p ExecMainStartTimestampMonotonic -p InactiveEnterTimestamp -p ActiveEnterTimestamp ${units.join(" ")}`);
        assert.equal(r.status, 0, `${host}: ${r.stderr}`);
        for (const block of r.stdout.trim().split(/\n\n/)) {
            const p = Object.fromEntries(block.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
            const at = (v: string) => Number((v ?? "").replace(/^@/, "")) || 0;
            out[`${host}/${p.Id.replace(/\.service$/, "")}`] = { pid: p.MainPID, started: p.ExecMainStartTimestampMonotonic, inactiveAt: at(p.InactiveEnterTimestamp), activeAt: at(p.ActiveEnterTimestamp) };
        }
    }
    return out;
}
/**
 * "host/unit" of every unit whose main process changed (restarted; a reload keeps it), except
 * restarts systemd made itself (Restart=, "Scheduled restart job" in the unit's journal): a
 * controller-manager that lost its leader lease after the fault tests exits and comes back on its
 * own, which is not a restart kubeha made. Those are printed.
 */
function restarted(before: Record<string, UnitTimes>, after: Record<string, UnitTimes>): string[] {
    const moved = Object.keys(after).filter((k) => before[k]?.started !== after[k].started || before[k]?.pid !== after[k].pid).sort();
    return moved.filter((k) => {
        const [host, unit] = k.split("/");
        const since = Math.floor(before[k]?.activeAt ?? 0) + 1;
        const bySystemd = ssh(host, `journalctl --no-pager -o cat -u ${unit} --since @${since} | grep -q 'Scheduled restart job'`).status === 0;
        if (bySystemd) console.log(`      (${k} was restarted by systemd's Restart=, not by kubeha)`);
        return !bySystemd;
    });
}
/** Restarts that overlapped in time: each must have been active again before the next one stopped. */
function overlapping(units: string[], after: Record<string, UnitTimes>): string[] {
    const rs = units.map((u) => ({ u, ...after[u] })).sort((a, b) => a.inactiveAt - b.inactiveAt);
    return rs.slice(1).filter((r, i) => r.inactiveAt < rs[i].activeAt).map((r, i) => `${r.u} stopped at ${r.inactiveAt} while ${rs[i].u} was not active again until ${rs[i].activeAt}`);
}
/** When systemd last reloaded `unit` on `host` after `since` (seconds), from its journal; 0 when it did not. */
function reloadedAt(host: string, unit: string, since: number): number {
    const r = ssh(host, `journalctl -o short-unix --no-pager -u ${unit} --since @${Math.floor(since)} | grep -E 'Reloaded|Reloading' | tail -1`);
    return Number(r.stdout.trim().split(" ")[0]) || 0;
}
const vipHolder = () => LBS.filter((h) => ssh(h, `ip -4 -o addr show | grep -q ' ${VIP}/'`).status === 0);
const up = (...args: string[]) => lab("pulumi", "up", "--yes", "--skip-preview", "--suppress-progress", ...args);

/**
 * `pulumi up` with a day-2 stack file under the probe: it must succeed, restart exactly `units`
 * (none other), one after the other; the probe's result for the step's own assertions.
 */
async function rollsExactly(step: string, stackFile: string, units: string[]): Promise<ProbeResult> {
    const before = unitTimes();
    const { result, probe } = await probed(step, () => up("--config-file", stackFile));
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const after = unitTimes();
    assert.deepEqual(restarted(before, after), units);
    assert.deepEqual(overlapping(units, after), []);
    return probe;
}

describe("kubeha on lab hosts (real Pulumi engine, real binaries)", function () {
    before(function () {
        if (process.getuid?.() !== 0) {
            console.log("      SKIPPED: the lab needs root (systemd-nspawn, bridges, cgroups)");
            this.skip();
        }
        const up = timed("lab_total_up", () => run("bash", ["lab/run.sh", "up"], { quiet: false }));
        assert.equal(up.status, 0, "npm run lab failed (output above)");
        Object.assign(timings, JSON.parse(readFileSync(join(CACHE, "lab/timings.json"), "utf8")));
    });

    after(function () {
        const down = timed("lab_down_total", () => run("bash", ["lab/run.sh", "down"], { quiet: false }));
        if (down.status !== 0) console.log("lab down failed");
        mkdirSync(join(ROOT, "test-results"), { recursive: true });
        writeFileSync(join(ROOT, "test-results/e2e-timings.json"), JSON.stringify({ ...timings, steps }, null, 1) + "\n");
        console.log(`e2e timings (s): ${JSON.stringify(timings)}`);
        for (const [k, v] of Object.entries(steps)) console.log(`  ${k}: ${v.seconds}s, ${v.failedRequests} of ${v.requests} requests through the VIP failed, Ready nodes >= ${v.readyNodesMin}`);
    });

    it("answers /readyz through the VIP with the stack's kubeconfig", () => {
        const r = kubectl("get", "--raw", "/readyz");
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), "ok");
        assert.match(readFileSync(KUBECONFIG, "utf8"), new RegExp(`server: https://${VIP.replace(/\./g, "\\.")}:8443`));
    });

    it("runs every etcd member healthy", () => {
        const r = ssh("k8s-master01", `${etcdctl} endpoint health`);
        assert.equal(r.status, 0, r.stderr + r.stdout);
        assert.equal((r.stdout + r.stderr).match(/is healthy/g)?.length, 3);
    });

    it("has leaders for kube-controller-manager and kube-scheduler", async () => {
        for (const lease of ["kube-controller-manager", "kube-scheduler"]) {
            await eventually(`${lease} leader`, () => /k8s-master0[123]/.test(kubectl("get", "lease", "-n", "kube-system", lease, "-o", "jsonpath={.spec.holderIdentity}").stdout), 90);
        }
    });

    it("applied the bootstrap token and TLS-bootstrap RBAC", () => {
        const r = kubectl("get", "secrets", "-n", "kube-system", "--field-selector", "type=bootstrap.kubernetes.io/token", "-o", "name");
        assert.match(r.stdout, /secret\/bootstrap-token-[a-z0-9]{6}/);
        assert.equal(kubectl("get", "clusterrolebinding", "kubeha:kubelet-bootstrap").status, 0);
    });

    it("encrypts Secrets at rest in etcd", () => {
        kubectl("delete", "secret", "e2e-probe", "--ignore-not-found");
        assert.equal(kubectl("create", "secret", "generic", "e2e-probe", "--from-literal=k=plain-value").status, 0);
        const raw = ssh("k8s-master01", `${etcdctl} get /registry/secrets/default/e2e-probe --print-value-only | head -c 64`);
        assert.match(raw.stdout, /^k8s:enc:secretbox:v1:key1:/);
        assert.ok(!raw.stdout.includes("plain-value"));
    });

    it("registers every worker Ready, with serving certificates approved for exactly that node", async () => {
        await eventually("workers Ready", () => WORKERS.every((w) =>
            kubectl("get", "node", w, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}").stdout === "True"), 60);
        const csrs = JSON.parse(kubectl("get", "csr", "-o", "json").stdout).items as { spec: { signerName: string; username: string }; status: { conditions?: { type: string }[] } }[];
        for (const w of WORKERS) {
            const serving = csrs.filter((c) => c.spec.signerName === "kubernetes.io/kubelet-serving" && c.spec.username === `system:node:${w}`);
            assert.ok(serving.some((c) => c.status.conditions?.some((x) => x.type === "Approved")), `${w}: an approved serving CSR`);
        }
    });

    it("reaches kubelets over TLS verified against the cluster CA (--kubelet-certificate-authority)", () => {
        for (const w of WORKERS) {
            const r = kubectl("get", "--raw", `/api/v1/nodes/${w}/proxy/healthz`);
            assert.equal(r.status, 0, r.stderr);
            assert.equal(r.stdout.trim(), "ok");
        }
        const cert = ssh(WORKERS[0], "openssl x509 -noout -issuer -ext subjectAltName -in /var/lib/kubelet/pki/kubelet-server-current.pem 2>&1 || cat /var/lib/kubelet/pki/kubelet-server-current.pem | head -1");
        if (/subject Alternative Name/i.test(cert.stdout)) {
            assert.match(cert.stdout, /issuer=CN\s*=\s*kubernetes-ca/);
            assert.match(cert.stdout, new RegExp(`DNS:${WORKERS[0]}`));
            assert.match(cert.stdout, /IP Address:198\.18\.0\.21/);
        } else {
            assert.match(cert.stdout, /BEGIN CERTIFICATE/, "the kubelet wrote its approved serving certificate");
        }
    });

    it("gives every master and worker a flannel subnet lease from the pod CIDR in etcd", () => {
        const r = ssh("k8s-master01", `${etcdctl} get --prefix --keys-only /kubernetes/network/subnets`);
        assert.equal(r.status, 0, r.stderr);
        const leases = r.stdout.split("\n").filter(Boolean);
        assert.equal(leases.length, MASTERS.length + WORKERS.length, r.stdout);
        for (const l of leases) assert.match(l, /^\/kubernetes\/network\/subnets\/172\.30\.\d+\.0-21$/);
    });

    it("limits the flanneld etcd certificate every node holds to flannel's prefix (etcd auth)", () => {
        const flannel = etcdctl.replace(/--cert=\S+ --key=\S+/, "--cert=/etc/kubernetes/pki/flanneld-etcd-client.crt --key=/etc/kubernetes/pki/flanneld-etcd-client.key");
        // The same certificate as on every worker; etcdctl is installed on the masters only.
        const denied = ssh("k8s-master01", `${flannel} get --prefix --keys-only /registry/secrets 2>&1; ${flannel} put /registry/e2e x 2>&1`);
        assert.equal((denied.stdout.match(/^Error: etcdserver: permission denied$/gm) ?? []).length, 2, denied.stdout + denied.stderr);
        const allowed = ssh("k8s-master01", `${flannel} get --keys-only /kubernetes/network/config`);
        assert.equal(allowed.status, 0, allowed.stderr);
        assert.equal(allowed.stdout.trim(), "/kubernetes/network/config");
    });

    it("applied the add-ons: CoreDNS behind the cluster DNS IP, metrics-server's APIService, Headlamp", () => {
        assert.equal(kubectl("get", "svc", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}").stdout, "10.254.0.2");
        for (const d of ["coredns", "metrics-server", "headlamp"]) assert.equal(kubectl("get", "deployment", "-n", "kube-system", d).status, 0, d);
        assert.equal(kubectl("get", "apiservice", "v1beta1.metrics.k8s.io").status, 0);
    });

    it("runs pods: CoreDNS answers cluster names at the cluster DNS IP on every node (Service VIP, pod network across nodes)", async () => {
        await eventually("CoreDNS available", () => kubectl("get", "deployment", "-n", "kube-system", "coredns", "-o", "jsonpath={.status.availableReplicas}").stdout === "2", 180);
        for (const w of WORKERS) {
            // getent through a resolv.conf naming only the cluster DNS Service, in a private mount namespace.
            const r = ssh(w, "printf 'nameserver 10.254.0.2\\n' >/run/e2e-resolv.conf && unshare -m sh -c 'mount --bind /run/e2e-resolv.conf /etc/resolv.conf && getent ahostsv4 kubernetes.default.svc.cluster.local'");
            assert.equal(r.status, 0, r.stdout + r.stderr);
            assert.match(r.stdout, /^10\.254\.0\.1\s/m, `${w}: kubernetes.default resolves to the first service IP`);
        }
    });

    it("serves resource metrics through metrics-server, which verifies the kubelets' serving certificates", async () => {
        await eventually("kubectl top nodes", () => {
            const r = kubectl("top", "nodes", "--no-headers");
            return r.status === 0 && WORKERS.every((w) => new RegExp(`^${w}\\s+\\d+m`, "m").test(r.stdout));
        }, 180);
        const args = kubectl("get", "deployment", "-n", "kube-system", "metrics-server", "-o", "jsonpath={.spec.template.spec.containers[0].args}").stdout;
        assert.doesNotMatch(args, /kubelet-insecure-tls/);
    });

    it("keeps the API reachable when keepalived stops on the VIP holder", async () => {
        const holder = LBS.find((h) => ssh(h, `ip -4 -o addr show | grep -q ' ${VIP}/'`).status === 0);
        assert.ok(holder, "one lb host holds the VIP");
        try {
            assert.equal(ssh(holder!, "systemctl stop keepalived").status, 0);
            const other = LBS.find((h) => h !== holder)!;
            await eventually("VIP moves to the other lb host", () => ssh(other, `ip -4 -o addr show | grep -q ' ${VIP}/'`).status === 0, 20);
            await eventually("/readyz through the VIP", () => kubectl("get", "--raw", "/readyz").stdout.trim() === "ok", 20);
        } finally {
            ssh(holder!, "systemctl start keepalived");
        }
    });

    it("still accepts writes with one apiserver and one etcd member stopped", async () => {
        try {
            assert.equal(ssh("k8s-master02", "systemctl stop kube-apiserver").status, 0);
            assert.equal(ssh("k8s-master03", "systemctl stop etcd").status, 0);
            for (let i = 0; i < 5; i++) {
                await eventually(`write ${i}`, () => kubectl("create", "configmap", `e2e-write-${Date.now()}-${i}`, "--from-literal=a=b").status === 0, 30);
            }
        } finally {
            ssh("k8s-master03", "systemctl start etcd");
            ssh("k8s-master02", "systemctl start kube-apiserver");
        }
        await eventually("etcd healthy again", () => ssh("k8s-master01", `${etcdctl} endpoint health`).status === 0, 60);
        await eventually("apiserver on master02 ready again", () => ssh("k8s-master02", "curl -fsS --cacert /etc/kubernetes/pki/ca.crt https://127.0.0.1:6443/readyz").status === 0, 60);
    });

    it("a second `pulumi up` changes nothing and restarts nothing; `pulumi preview` sees no change", () => {
        const before = unitTimes();
        const r = timed("second_up", () => up("--expect-no-changes"));
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.doesNotMatch(r.stdout, /\b(updated|created|replaced|deleted)\b/);
        const p = timed("preview", () => lab("pulumi", "preview", "--expect-no-changes"));
        assert.equal(p.status, 0, p.stdout + p.stderr);
        assert.deepEqual(restarted(before, unitTimes()), []);
    });

    it("changing one setting previews a change to only the resource that writes it, and its up restarts nothing", () => {
        const alt = stackFileWith("retention", (y) => y.replace(/\nconfig:\n/, "\nconfig:\n  kubeha:etcdBackupRetention: 5\n"));
        const r = lab("pulumi", "preview", "--json", "--config-file", alt);
        assert.equal(r.status, 0, r.stderr);
        const changed = ((JSON.parse(r.stdout).steps ?? []) as { op: string; urn: string }[]).filter((s) => s.op !== "same").map((s) => s.urn.split("::").pop());
        assert.deepEqual(changed, ["kubernetes-etcd-members"], JSON.stringify(changed));
    });

    it("removing a worker from the config drains it, deletes its Node and cleans only that host; adding it back joins it", async () => {
        const alt = stackFileWith("without-node02", (y) => y.replace(/\n\s+- k8s-node02=198\.18\.0\.22/, ""));
        const before01 = ssh("k8s-node01", "systemctl show -p ActiveEnterTimestampMonotonic kubelet containerd flanneld kube-proxy").stdout;
        const removed = timed("remove_worker", () => lab("pulumi", "up", "--yes", "--skip-preview", "--suppress-progress", "--config-file", alt));
        assert.equal(removed.status, 0, removed.stdout + removed.stderr);
        assert.match(kubectl("get", "node", "k8s-node02").stderr, /NotFound/);
        const left = ssh("k8s-node02", "ls -d /var/lib/kubelet /etc/kubernetes /usr/local/bin/kubelet /etc/containerd 2>/dev/null; pgrep -l 'kubelet|containerd|flanneld|kube-proxy' || true");
        assert.equal(left.stdout.trim(), "", `k8s-node02 still has: ${left.stdout}`);
        assert.equal(ssh("k8s-node01", "systemctl show -p ActiveEnterTimestampMonotonic kubelet containerd flanneld kube-proxy").stdout, before01, "k8s-node01 was not restarted");

        const added = timed("add_worker", () => lab("pulumi", "up", "--yes", "--skip-preview", "--suppress-progress"));
        assert.equal(added.status, 0, added.stdout + added.stderr);
        assert.equal(kubectl("get", "node", "k8s-node02", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}").stdout, "True");
        assert.equal(ssh("k8s-node01", "systemctl show -p ActiveEnterTimestampMonotonic kubelet containerd flanneld kube-proxy").stdout, before01, "k8s-node01 was not restarted");
    });


    // Day 2: each change below builds on the one before (one stack file each), so the lab never
    // rolls back; destroy uses the last one (its SSH key is the one the hosts accept by then).
    let day2 = "";
    /** A stack file with `line` ("kubeha:key: value") set: replacing the key's line where the file has one. */
    const day2With = (name: string, line: string) => {
        const from = day2 ? readFileSync(day2, "utf8") : undefined;
        const key = line.slice(0, line.indexOf(":", "kubeha:".length));
        day2 = stackFileWith(name, (y) => {
            const text = from ?? y;
            const existing = new RegExp(`^  ${key}:.*$`, "m");
            return existing.test(text) ? text.replace(existing, `  ${line}`) : text.replace(/\nconfig:\n/, `\nconfig:\n  ${line}\n`);
        });
        return day2;
    };

    it("an apiserver flag restarts the three apiservers one at a time and nothing else, with no failed request through the VIP", async () => {
        const alt = day2With("apiserver-flag", "kubeha:apiserverExtraArgs: ['--v=2']");
        const probe = await rollsExactly("apiserver_flag", alt, MASTERS.map((m) => `${m}/kube-apiserver`));
        assert.equal(probe.reads.failed + probe.writes.failed, 0, JSON.stringify(probe.failures.slice(0, 5)));
        for (const m of MASTERS) assert.match(ssh(m, "cat /etc/systemd/system/kube-apiserver.service").stdout, /--v=2/);
    });

    it("an lb change (nginx) reloads the API proxy on both lb hosts, the VIP holder last, restarting nothing, with no failed request", async () => {
        const alt = day2With("lb-connections", "kubeha:apiLoadBalancerWorkerConnections: 16384");
        const holders = vipHolder();
        assert.equal(holders.length, 1, `one VIP holder: ${holders.join(", ")}`);
        const before = unitTimes();
        const since = Date.now() / 1000;
        const { result, probe } = await probed("lb_change", () => up("--config-file", alt));
        assert.equal(result.status, 0, result.stdout + result.stderr);
        assert.deepEqual(restarted(before, unitTimes()), []);
        const backup = LBS.find((h) => h !== holders[0])!;
        const [b, h] = [reloadedAt(backup, "kubeha-apiserver-lb", since), reloadedAt(holders[0], "kubeha-apiserver-lb", since)];
        assert.ok(b > 0 && h > 0, `nginx reloaded on both (backup ${b}, holder ${h})`);
        assert.ok(b <= h, `the backup (${backup}, ${b}) reloads before the VIP holder (${holders[0]}, ${h})`);
        for (const x of LBS) assert.match(ssh(x, "cat /etc/kubeha/apiserver-lb/nginx.conf").stdout, /worker_connections 16384;/);
        assert.equal(probe.reads.failed + probe.writes.failed, 0, JSON.stringify(probe.failures.slice(0, 5)));
        assert.deepEqual(vipHolder(), holders, "the VIP did not move");
    });

    it("a VRRP router id change reloads keepalived one lb host at a time, the holder last, restarting nothing (its VIP gap is measured, not hidden)", async () => {
        // A new virtual_router_id is a new VRRP instance: keepalived re-enters BACKUP and takes the
        // VIP back after the master-down interval (~3 s), so requests fail meanwhile (README).
        const alt = day2With("vrrp", "kubeha:vrrpRouterId: 52");
        const holders = vipHolder();
        const before = unitTimes();
        const since = Date.now() / 1000;
        const { result } = await probed("vrrp_router_id_change", () => up("--config-file", alt));
        assert.equal(result.status, 0, result.stdout + result.stderr);
        assert.deepEqual(restarted(before, unitTimes()), []);
        const backup = LBS.find((h) => h !== holders[0])!;
        const [b, h] = [reloadedAt(backup, "keepalived", since), reloadedAt(holders[0], "keepalived", since)];
        assert.ok(b > 0 && h > 0 && b <= h, `the backup (${backup}, ${b}) reloads before the VIP holder (${holders[0]}, ${h})`);
        for (const x of LBS) assert.match(ssh(x, "cat /etc/keepalived/keepalived.conf").stdout, /virtual_router_id 52/);
        await eventually("one VIP holder again", () => vipHolder().length === 1, 30);
    });

    it("an SSH key rotation changes no resource and restarts no unit: the old key is gone, refresh and up go through the new one", async () => {
        const dir = join(CACHE, "lab/kubeha");
        const key = join(dir, "id_ed25519_rotated");
        run("rm", ["-f", key, `${key}.pub`]);
        assert.equal(run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kubeha-rotated", "-f", key]).status, 0);
        const pub = readFileSync(`${key}.pub`, "utf8").trim();
        // The new key replaces the old one: kubeha can only be using the new key afterwards.
        for (const h of Object.keys(HOST_UNITS)) {
            assert.equal(ssh(h, `printf '%s\\n' '${pub}' > ~kubeha/.ssh/authorized_keys.new && chown kubeha: ~kubeha/.ssh/authorized_keys.new && chmod 600 ~kubeha/.ssh/authorized_keys.new && mv ~kubeha/.ssh/authorized_keys.new ~kubeha/.ssh/authorized_keys`).status, 0, h);
        }
        const alt = day2With("rotated-key", `kubeha:sshPrivateKeyFile: ${key}`);
        const p = lab("pulumi", "preview", "--expect-no-changes", "--config-file", alt);
        assert.equal(p.status, 0, `a key rotation previews no change:\n${p.stdout}${p.stderr}`);
        const before = unitTimes();
        // --run-program: the refresh reads the hosts with the program's (new) SSH settings, not
        // those the last update recorded for kubeha's provider.
        const { result, probe } = await probed("ssh_key_rotation", () => up("--refresh", "--run-program", "--expect-no-changes", "--config-file", alt));
        assert.equal(result.status, 0, result.stdout + result.stderr);
        assert.deepEqual(restarted(before, unitTimes()), []);
        assert.equal(probe.reads.failed + probe.writes.failed, 0, JSON.stringify(probe.failures.slice(0, 5)));
    });

    it("a node-wide kubelet change restarts the kubelets one node at a time, each Ready before the next", async () => {
        const alt = day2With("max-pods", "kubeha:maxPods: 100");
        const probe = await rollsExactly("kubelet_change", alt, WORKERS.map((w) => `${w}/kubelet`));
        assert.ok((probe.readyNodes.min ?? 0) >= WORKERS.length - 1, `never more than one node not Ready (min ${probe.readyNodes.min})`);
        for (const w of WORKERS) assert.match(ssh(w, "cat /var/lib/kubelet/config.yaml").stdout, /maxPods: 100/);
    });

    it("drift by hand on a node: plain preview stays offline and sees nothing, preview --refresh shows it, up --refresh heals exactly it", async () => {
        const node = "k8s-node01";
        const other = "k8s-node02";
        assert.equal(ssh(node, "systemctl disable --now kube-proxy && echo '# edited by hand' >> /var/lib/kubelet/config.yaml && echo mine > /etc/kubernetes/not-kubehas.txt").status, 0);
        const offline = lab("pulumi", "preview", "--expect-no-changes", "--config-file", day2);
        assert.equal(offline.status, 0, `a plain preview does not read the hosts:\n${offline.stdout}${offline.stderr}`);
        const t0 = Date.now();
        const seen = lab("pulumi", "preview", "--refresh", "--diff", "--config-file", day2);
        timings.preview_refresh = Math.round((Date.now() - t0) / 100) / 10;
        assert.equal(seen.status, 0, seen.stderr);
        const report = seen.stdout;
        // The refresh records what it found; the diff lines (~) name the host, the file and the unit state.
        assert.match(report, /kubernetes-nodes-hosts/, report);
        assert.match(report, new RegExp(`~ ${node}: \\{`), report);
        assert.doesNotMatch(report, new RegExp(`~ ${other}: \\{`), `only the drifted host shows:\n${report}`);
        assert.match(report, /~ \/var\/lib\/kubelet\/config\.yaml/, `the edited file shows:\n${report}`);
        assert.match(report, /~ state\s*: "running" => "inactive"/, `kube-proxy's state shows:\n${report}`);
        assert.doesNotMatch(report, /not-kubehas/, "a file kubeha does not manage is not read");
        assert.match(report, /~ 1 to update/, report);
        const before = unitTimes();
        const { result, probe } = await probed("drift_heal", () => up("--refresh", "--config-file", day2));
        assert.equal(result.status, 0, result.stdout + result.stderr);
        assert.equal(ssh(node, "systemctl is-enabled kube-proxy && systemctl is-active kube-proxy").status, 0, "kube-proxy enabled and running again");
        assert.doesNotMatch(ssh(node, "cat /var/lib/kubelet/config.yaml").stdout, /edited by hand/);
        assert.equal(ssh(node, "cat /etc/kubernetes/not-kubehas.txt && rm /etc/kubernetes/not-kubehas.txt").stdout.trim(), "mine", "a file kubeha does not manage is left alone");
        assert.deepEqual(restarted(before, unitTimes()), [`${node}/kube-proxy`, `${node}/kubelet`], `only the drifted units restart (${other} untouched)`);
        assert.equal(probe.reads.failed + probe.writes.failed, 0, JSON.stringify(probe.failures.slice(0, 5)));
        const again = up("--refresh", "--expect-no-changes", "--config-file", day2);
        assert.equal(again.status, 0, `healed: the next up --refresh changes nothing\n${again.stdout}${again.stderr}`);
    });

    it("`pulumi destroy` leaves the hosts clean", () => {
        const r = timed("destroy", () => lab("pulumi", "destroy", "--yes", "--skip-preview", "--suppress-progress", ...(day2 ? ["--config-file", day2] : [])));
        assert.equal(r.status, 0, r.stdout + r.stderr);
        for (const h of [...MASTERS, "k8s-node01", "k8s-node02", ...LBS]) {
            const left = ssh(h, "ls -d /etc/kubernetes /var/lib/etcd /var/lib/kubeha /usr/local/bin/kube* /usr/local/bin/etcd* /etc/systemd/system/etcd.service /etc/systemd/system/kube-* /etc/systemd/system/kubelet.service /etc/systemd/system/flanneld.service /etc/systemd/system/containerd.service /etc/systemd/system/kubeha-apiserver-lb.service /etc/keepalived/keepalived.conf /etc/kubeha /var/lib/kubelet /var/lib/kube-proxy /var/lib/containerd/* /etc/containerd /opt/cni /etc/cni /run/flannel /var/lib/kubeha-uploads /usr/local/lib/kubeha 2>/dev/null; ip -o link show | grep -E 'flannel|cni0' || true; pgrep -l 'etcd|kube|nginx|keepalived|containerd|flanneld' || true");
            assert.equal(left.stdout.trim(), "", `${h} still has: ${left.stdout}`);
        }
    });
});
