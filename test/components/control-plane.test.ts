// The control plane and its load balancer as host resources (mocks): what each role's hosts run and
// in which order, how each group rolls, and what a change restarts on hosts that already run the
// previous config — computed by the real planner (host/plan.ts), so "a change restarts exactly the
// units that read it" is checked end to end through the components.
import { strict as assert } from "node:assert";
import { buildCluster, Recorded } from "../mocks";
import { ancestors, disruptions, group, named, stepNames } from "./host-graph";
import { UnitStep } from "../../host/types";
import { hostManifest, unit } from "../../host/group";

const ETCD_ENDPOINTS = "https://198.18.0.11:2379,https://198.18.0.12:2379,https://198.18.0.13:2379";

describe("etcd and the control plane (mocks)", function () {
    this.timeout(60_000);
    let rs: Recorded[];
    before(async () => {
        rs = await buildCluster();
    });

    it("etcd members come after each master's preparation, with their certificates and binary read by the unit", () => {
        const deps = ancestors(rs, "kubeha-etcd-members");
        for (const m of ["m1", "m2", "m3"]) assert.ok(deps.has(`kubeha-host-${m}`), m);
        assert.ok(!deps.has("kubeha-host-w1"), "not after the workers' preparation");
        const etcd = group(rs, "kubeha-etcd-members");
        assert.deepEqual(stepNames(etcd, "m2"), ["etcd.service", "kubeha-etcd-backup.timer"]);
        const unit = etcd.hosts.m2.steps[0] as UnitStep;
        for (const r of ["/etc/kubernetes/pki/etcd/peer.key", "/etc/kubernetes/pki/etcd/server.crt", "/usr/local/bin/etcd", "/etc/systemd/system/etcd.service"]) assert.ok(unit.reads.includes(r), r);
    });

    it("etcd rolls one member at a time, the leader last, each behind the whole cluster's health", () => {
        const etcd = group(rs, "kubeha-etcd-members");
        assert.equal(etcd.roll.batch, 1);
        assert.match(etcd.roll.lastIf!, /endpoint status/);
        const health = (etcd.hosts.m1.steps[0] as UnitStep).health!;
        assert.ok(health.check.includes(ETCD_ENDPOINTS) && /endpoint health/.test(health.check), health.check);
        assert.deepEqual(etcd.roll.preGate, health, "nothing restarts unless every member is healthy");
    });

    it("no apiserver starts before etcd converged; each master runs apiserver, controller-manager, scheduler in that order, each behind its gate", () => {
        assert.ok(ancestors(rs, "kubeha-control-plane-masters").has("kubeha-etcd-members"));
        const cp = group(rs, "kubeha-control-plane-masters");
        assert.equal(cp.roll.batch, 1);
        for (const m of ["m1", "m2", "m3"]) {
            assert.deepEqual(stepNames(cp, m), ["kube-apiserver.service", "kube-controller-manager.service", "kube-scheduler.service"]);
            assert.deepEqual(cp.hosts[m].steps.map((s) => s.health?.what), ["kube-apiserver /readyz", "kube-controller-manager /healthz", "kube-scheduler /healthz"]);
        }
    });

    it("applies the bootstrap token and RBAC through the first apiserver once the masters converged, the token as a secret", () => {
        const b = named(rs, "kubeha-control-plane-bootstrap-rbac");
        assert.ok(ancestors(rs, b.name).has("kubeha-control-plane-masters"));
        assert.ok(b.secretInputs.includes("stdin"));
        assert.match(b.inputs.stdin, /type: bootstrap\.kubernetes\.io\/token/);
        assert.match(b.inputs.script, /kubectl --kubeconfig=\/etc\/kubernetes\/admin\.conf --server=https:\/\/127\.0\.0\.1:6443 apply/);
        assert.ok(!b.inputs.script.includes("token-secret"));
        assert.equal(b.inputs.host.address, "198.18.0.11");
    });
});

describe("API load balancer (mocks)", function () {
    this.timeout(60_000);
    let rs: Recorded[];
    before(async () => {
        rs = await buildCluster();
    });

    it("the proxy listens before keepalived claims the VIP; a config change reloads nginx and keepalived instead of restarting them", () => {
        const lb = group(rs, "kubeha-lb-hosts");
        for (const h of ["lb1", "lb2"]) {
            const [nginx, ka] = lb.hosts[h].steps as UnitStep[];
            assert.deepEqual([nginx.name, ka.name], ["kubeha-apiserver-lb.service", "keepalived.service"]);
            assert.deepEqual(nginx.reloadOn, ["/etc/kubeha/apiserver-lb/nginx.conf"]);
            assert.equal(ka.onChange, "reload");
        }
    });

    it("rolls one lb host at a time, the VIP holder last (the VIP moves at most once)", () => {
        const lb = group(rs, "kubeha-lb-hosts");
        assert.equal(lb.roll.batch, 1);
        assert.match(lb.roll.lastIf!, /198\.18\.0\.10/);
    });

    it("keeps the VRRP password secret: keepalived.conf is a 0600 file whose content is only in the payload", () => {
        const lb = group(rs, "kubeha-lb-hosts");
        assert.equal(lb.hosts.lb1.files["/etc/keepalived/keepalived.conf"].mode, "0600");
        const pass = /auth_pass\s+(\S+)/.exec(lb.payload.lb1["/etc/keepalived/keepalived.conf"])![1];
        assert.equal(pass.length, 8);
        for (const r of rs) {
            const pub = JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k))));
            assert.ok(!pub.includes(pass), r.name);
        }
    });

    it("nothing uses the VIP before the lb hosts and every master's control plane converged", () => {
        const gate = named(rs, "kubeha-api-endpoint-ready");
        assert.match(gate.inputs.gate.check, /https:\/\/198\.18\.0\.10:8443\/readyz/);
        const deps = ancestors(rs, gate.name);
        for (const d of ["kubeha-lb-hosts", "kubeha-control-plane-masters"]) assert.ok(deps.has(d), d);
    });

    it("without lb hosts there is no load balancer and clients use the first master", async () => {
        const single = await buildCluster({ loadBalancers: [], vip: "" });
        assert.ok(!single.some((r) => r.type === "kubeha:lb:ApiLoadBalancer"));
        assert.match(named(single, "kubeha-api-endpoint-ready").inputs.gate.check, /https:\/\/198\.18\.0\.11:6443\/readyz/);
    });
});

describe("restart scope: a change restarts exactly the units that read it (mocks + the real planner)", function () {
    this.timeout(120_000);
    let base: Recorded[];
    before(async () => {
        base = await buildCluster();
    });
    const changed = async (overrides: Parameters<typeof buildCluster>[0]) => disruptions(base, await buildCluster(overrides));
    const on = (hosts: string[], group: string, unit: string, op = "restart") => hosts.map((h) => `${group} ${h} ${unit} ${op}`);
    const MASTERS = ["m1", "m2", "m3"];

    it("the same config twice changes nothing on any host", async () => {
        assert.deepEqual(await changed({}), []);
    });

    it("an etcd flag restarts only the etcd members", async () => {
        assert.deepEqual(await changed({ etcdHeartbeatMs: 200 }), on(MASTERS, "etcd", "etcd.service"));
    });

    it("an apiserver flag restarts only the apiservers", async () => {
        assert.deepEqual(await changed({ apiserverExtraArgs: ["--v=2"] }), on(MASTERS, "control-plane", "kube-apiserver.service"));
    });

    it("a scheduler flag restarts only the schedulers", async () => {
        assert.deepEqual(await changed({ schedulerExtraArgs: ["--v=3"] }), on(MASTERS, "control-plane", "kube-scheduler.service"));
    });

    it("an nginx setting reloads the API proxy on the lb hosts and nothing else", async () => {
        assert.deepEqual(await changed({ apiLoadBalancerWorkerConnections: 16384 }), on(["lb1", "lb2"], "lb", "kubeha-apiserver-lb.service", "reload"));
    });

    it("a VRRP setting reloads keepalived on the lb hosts and nothing else", async () => {
        assert.deepEqual(await changed({ vrrpRouterId: 77 }), on(["lb1", "lb2"], "lb", "keepalived.service", "reload"));
    });

    it("the apiservers are drained from the lb hosts around their restart (the drain is not part of what restarts them)", async () => {
        const cp = group(base, "kubeha-control-plane-masters");
        const drain = (cp.hosts.m2.steps[0] as UnitStep).drain!;
        assert.deepEqual(drain.on.map((h) => h.name), ["lb1", "lb2"]);
        assert.match(drain.before, /server 198\.18\.0\.12:6443 max_fails=3 fail_timeout=10s down; # m2/);
        const m2 = cp.hosts.m2.steps[0];
        const h = { name: "m2", ip: "198.18.0.12", roles: ["master" as const] };
        const file = { path: "/etc/x.conf", content: "x", mode: "0644", secret: false };
        const step = { name: m2.name, reads: ["/etc/x.conf"], health: m2.health };
        const digest = (extra: object) => hostManifest(h, { files: [file], steps: [unit({ ...step, ...extra })] }).manifest.steps[0].digest;
        assert.equal(digest({ drain }), digest({}), "adding or changing a drain restarts nothing");
        assert.equal(digest({ drain, health: { ...m2.health!, timeoutSeconds: 999 } }), digest({}), "nor does a gate's timeout");
        assert.notEqual(digest({ onChange: "reload" }), digest({}), "what the step does is digested");
    });

    it("a kubelet setting restarts only the kubelets", async () => {
        assert.deepEqual(await changed({ maxPods: 50 }), on(["w1", "w2"], "nodes", "kubelet.service"));
    });
});
