// Ordering and restart scope of the control plane, read from the resource graph the program builds.
import { strict as assert } from "node:assert";
import { buildCluster, Recorded } from "../mocks";
import { RawConfig } from "../../spec/config";

const build = buildCluster;

const named = (rs: Recorded[], name: string) => {
    const r = rs.find((x) => x.name === name);
    assert.ok(r, `resource ${name} exists`);
    return r!;
};

/** Every resource `name` depends on, directly or through others (dependsOn only). */
function ancestors(rs: Recorded[], name: string, seen = new Set<string>()): Set<string> {
    for (const d of named(rs, name).dependsOn) {
        if (!seen.has(d)) {
            seen.add(d);
            ancestors(rs, d, seen);
        }
    }
    return seen;
}

/** What makes each remote command re-run (its script, with the inputs digest in its first line), by resource name. */
const triggers = (rs: Recorded[]) => new Map(rs.filter((r) => r.type === "command:remote:Command").map((r) => [r.name, JSON.stringify([r.inputs.create, r.inputs.update])]));

describe("control plane ordering (mocks)", () => {
    let rs: Recorded[];
    before(async () => {
        rs = await build();
    });

    it("installs binaries and puts certificates before starting etcd", () => {
        const deps = ancestors(rs, "kubeha-etcd-m2-etcd");
        assert.ok(deps.has("kubeha-etcd-m2-etcd-binaries"));
        assert.ok(deps.has("kubeha-m2-pki"));
    });

    it("starts etcd members in order and gates on the whole cluster being healthy", () => {
        assert.ok(ancestors(rs, "kubeha-etcd-m3-etcd").has("kubeha-etcd-m2-etcd"));
        assert.ok(ancestors(rs, "kubeha-etcd-m2-etcd").has("kubeha-etcd-m1-etcd"));
        for (const m of ["m1", "m2", "m3"]) {
            const gate = ancestors(rs, `kubeha-etcd-${m}-etcd-healthy`);
            for (const other of ["m1", "m2", "m3"]) assert.ok(gate.has(`kubeha-etcd-${other}-etcd`), `${m}'s gate waits for ${other}`);
            assert.match(named(rs, `kubeha-etcd-${m}-etcd-healthy`).inputs.create, /etcdctl --endpoints=https:\/\/198\.18\.0\.11:2379,https:\/\/198\.18\.0\.12:2379,https:\/\/198\.18\.0\.13:2379 .* endpoint health/);
        }
    });

    it("a running member restarts only when every member is healthy (never two down)", () => {
        const create = named(rs, "kubeha-etcd-m2-etcd").inputs.create as string;
        assert.match(create, /if systemctl is-active --quiet etcd\.service && \[ -f \/var\/lib\/kubeha\/etcd-was-healthy \]; then/);
        assert.match(create, /until [^\n]*endpoint health[^\n]*\n[\s\S]*?done\n {2}systemctl restart etcd\.service\nelse\n {2}systemctl restart --no-block etcd\.service/);
    });

    it("no apiserver starts before etcd is healthy", () => {
        for (const m of ["m1", "m2", "m3"]) {
            const deps = ancestors(rs, `kubeha-control-plane-${m}-apiserver`);
            for (const e of ["m1", "m2", "m3"]) assert.ok(deps.has(`kubeha-etcd-${e}-etcd-healthy`), `${m} apiserver after etcd gate ${e}`);
        }
    });

    it("rolls each component one master at a time behind the previous master's health gate", () => {
        for (const c of ["apiserver", "controllerManager", "scheduler"]) {
            assert.ok(named(rs, `kubeha-control-plane-m2-${c}`).dependsOn.includes(`kubeha-control-plane-m1-${c}-healthy`), c);
            assert.ok(named(rs, `kubeha-control-plane-m3-${c}`).dependsOn.includes(`kubeha-control-plane-m2-${c}-healthy`), c);
        }
        assert.ok(ancestors(rs, "kubeha-control-plane-m1-controllerManager").has("kubeha-control-plane-m1-apiserver-healthy"));
    });

    it("applies the bootstrap token and RBAC through the first apiserver once it is ready", () => {
        const b = named(rs, "kubeha-control-plane-bootstrap-rbac");
        assert.ok(b.dependsOn.includes("kubeha-control-plane-m1-apiserver-healthy"));
        assert.ok(b.secretInputs.includes("stdin"), "the token travels as a secret");
        assert.match(b.inputs.stdin, /type: bootstrap\.kubernetes\.io\/token/);
        assert.match(b.inputs.create, /kubectl --kubeconfig=\/etc\/kubernetes\/admin\.conf --server=https:\/\/127\.0\.0\.1:6443 apply/);
        assert.ok(!b.inputs.create.includes("token-secret"));
    });
});

describe("API load balancer (mocks)", () => {
    let rs: Recorded[];
    before(async () => {
        rs = await build();
    });

    it("puts the proxy up before keepalived claims the VIP, on both lb hosts", () => {
        for (const h of ["lb1", "lb2"]) {
            const ka = ancestors(rs, `kubeha-lb-${h}-keepalived`);
            assert.ok(ka.has(`kubeha-lb-${h}-proxy-listening`) && ka.has(`kubeha-lb-${h}-proxy`) && ka.has(`kubeha-lb-${h}-vrrp-config`));
        }
    });

    it("keeps the VRRP password secret: keepalived.conf travels as a secret, never on a command line", () => {
        const files = named(rs, "kubeha-lb-lb1-vrrp-config");
        assert.ok(files.secretInputs.includes("stdin"));
        const conf = files.inputs.stdin.split("\n").map((l: string) => Buffer.from(l.split(" ")[2] ?? "", "base64").toString()).join("\n");
        const pass = /auth_pass\s+(\S+)/.exec(conf)![1];
        assert.equal(pass.length, 8);
        for (const r of rs.filter((x) => x.type === "command:remote:Command")) assert.ok(!String(r.inputs.create).includes(pass), r.name);
    });

    it("nothing uses the VIP before the lb hosts and every master's control plane are ready", () => {
        const gate = named(rs, "kubeha-api-endpoint-ready");
        assert.match(gate.inputs.create, /https:\/\/198\.18\.0\.10:8443\/readyz/);
        const deps = ancestors(rs, "kubeha-api-endpoint-ready");
        for (const d of ["kubeha-lb-lb1-keepalived", "kubeha-lb-lb2-keepalived", "kubeha-control-plane-m3-apiserver-healthy", "kubeha-control-plane-bootstrap-rbac"]) assert.ok(deps.has(d), d);
    });

    it("without lb hosts there is no load balancer and clients use the first master", async () => {
        const single = await build({ loadBalancers: [], vip: "" });
        assert.ok(!single.some((r) => r.type === "kubeha:lb:ApiLoadBalancer"));
        assert.match(named(single, "kubeha-api-endpoint-ready").inputs.create, /https:\/\/198\.18\.0\.11:6443\/readyz/);
    });
});

describe("restart scope: a change restarts exactly the units that read it (mocks)", () => {
    let base: Map<string, string>;
    before(async () => {
        base = triggers(await build());
    });
    const changed = async (overrides: RawConfig) => {
        const next = triggers(await build(overrides));
        return [...next].filter(([n, t]) => base.get(n) !== t).map(([n]) => n).sort();
    };

    it("the same config twice changes nothing", async () => {
        assert.deepEqual(await changed({}), []);
    });

    it("an etcd flag re-runs only the etcd members (and the gates after them)", async () => {
        const c = await changed({ etcdHeartbeatMs: 200 });
        assert.deepEqual(c.filter((n) => !n.endsWith("-healthy")), ["kubeha-etcd-m1-etcd", "kubeha-etcd-m2-etcd", "kubeha-etcd-m3-etcd"]);
    });

    it("an apiserver flag restarts only the apiservers", async () => {
        const c = await changed({ apiserverExtraArgs: ["--v=2"] });
        assert.deepEqual(c.filter((n) => !n.endsWith("-healthy")), ["kubeha-control-plane-m1-apiserver", "kubeha-control-plane-m2-apiserver", "kubeha-control-plane-m3-apiserver"]);
    });

    it("a scheduler flag restarts only the schedulers", async () => {
        const c = await changed({ schedulerExtraArgs: ["--v=3"] });
        assert.deepEqual(c.filter((n) => !n.endsWith("-healthy")), ["kubeha-control-plane-m1-scheduler", "kubeha-control-plane-m2-scheduler", "kubeha-control-plane-m3-scheduler"]);
    });
});
