// Nodes as host resources (mocks): the order a node joins in, that adding or removing a worker
// changes nothing on the other hosts, that keys and the bootstrap token stay secret, and that a
// worker receives only the key material it uses.
import { strict as assert } from "node:assert";
import { isDeepStrictEqual } from "node:util";
import { buildCluster, Recorded } from "../mocks";
import { HA_RAW } from "../fixtures";
import { RawConfig } from "../../spec/config";
import { ancestors, disruptions, group, groups, named, stepNames } from "./host-graph";
import { UnitStep } from "../../host/types";

/** One extra worker inside HA_RAW's hostCidr (198.18.0.0/24). */
const NEW = { name: "k8s-node03", ip: "198.18.0.23" };
const WITH_NEW: RawConfig = { workers: [...(HA_RAW.workers as string[]), `${NEW.name}=${NEW.ip}`] };

/** Every private key in a text: PEM blocks, and the base64 client-key-data of a kubeconfig. */
function privateKeys(content: string): string[] {
    const pem = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
    const embedded = [...content.matchAll(/client-key-data:\s*(\S+)/g)].map((m) => Buffer.from(m[1], "base64").toString());
    return [content, ...embedded].flatMap((c) => c.match(pem) ?? []).map((k) => k.trim());
}

describe("nodes (mocks)", function () {
    this.timeout(120_000);
    let base: Recorded[];
    let grown: Recorded[];
    let mastersToo: Recorded[];

    before(async () => {
        base = await buildCluster();
        grown = await buildCluster(WITH_NEW);
        mastersToo = await buildCluster({ mastersAreWorkers: true });
    });

    describe("join order", () => {
        it("nodes join after the pod network config, the API endpoint, bootstrap RBAC and their own preparation", () => {
            const deps = ancestors(grown, "kubeha-nodes-hosts");
            for (const d of ["kubeha-network-config", "kubeha-etcd-auth", "kubeha-api-endpoint-ready", "kubeha-control-plane-bootstrap-rbac", "kubeha-host-w1", `kubeha-host-${NEW.name}`]) assert.ok(deps.has(d), d);
        });

        for (const [label, rs, nodes] of [
            ["every worker, the added one included", () => grown, ["w1", "w2", NEW.name]],
            ["masters that are workers too", () => mastersToo, ["m1", "m2", "m3", "w1", "w2"]],
        ] as const) {
            it(`${label}: containerd -> flanneld -> kubelet (Ready) -> kube-proxy on each node, each behind its gate`, () => {
                const g = group(rs(), "kubeha-nodes-hosts");
                assert.deepEqual(g.order, nodes);
                for (const n of nodes) {
                    assert.deepEqual(stepNames(g, n), ["containerd.service", "flanneld.service", "kubelet.service", "kube-proxy.service"], n);
                    const kubelet = g.hosts[n].steps[2] as UnitStep;
                    assert.match(kubelet.health!.what, new RegExp(`Node ${n} Ready`));
                    assert.match(kubelet.health!.check, new RegExp(`/api/v1/nodes/${n} [\\s\\S]*"type":"Ready","status":"True"`));
                }
            });
        }

        it("masters that are nodes run flanneld once, in the nodes group (no separate master network group)", () => {
            assert.ok(!groups(mastersToo).some((g) => g.name === "kubeha-network-masters"));
            assert.deepEqual(group(base, "kubeha-network-masters").order, ["m1", "m2", "m3"]);
            const flanneldHosts = groups(mastersToo).flatMap((g) => g.order.filter((h) => g.hosts[h].steps.some((s) => s.name === "flanneld.service")));
            assert.deepEqual(flanneldHosts.sort(), ["m1", "m2", "m3", "w1", "w2"]);
        });

        it("the serving certificates are approved after the nodes converged, then the add-ons go in", () => {
            const approval = grown.find((r) => r.type.endsWith(":ServingCertApproval"))!;
            assert.ok(ancestors(grown, approval.name).has("kubeha-nodes-hosts"));
            for (const a of grown.filter((r) => r.parent === "kubeha-addons")) assert.ok(ancestors(grown, a.name).has(approval.name), a.name);
        });

        it("an add-on dropped or destroyed is deleted by its labels", () => {
            for (const a of grown.filter((r) => r.parent === "kubeha-addons")) {
                const addon = a.name.replace("kubeha-addons-", "");
                assert.match(a.inputs.delete, new RegExp(`kubectl .* delete [a-z,]*deployment[a-z,]* --all-namespaces --ignore-not-found --wait=false -l app\\.kubernetes\\.io/name=${addon},app\\.kubernetes\\.io/managed-by=kubeha`), a.name);
            }
        });

        it("nodes roll one at a time by default, nodeRollBatchSize at a time when set", async () => {
            assert.equal(group(base, "kubeha-nodes-hosts").roll.batch, 1);
            assert.equal(group(await buildCluster({ nodeRollBatchSize: 3 }), "kubeha-nodes-hosts").roll.batch, 3);
        });
    });

    describe("adding or removing a worker touches only that worker", () => {
        it("the new worker gets its own preparation; every other host resource keeps its inputs but the nodes group and the approval", () => {
            const a = new Map(base.map((r) => [r.name, r]));
            const added = grown.filter((r) => !a.has(r.name)).map((r) => r.name);
            assert.deepEqual(added, [`kubeha-host-${NEW.name}`]);
            const changed = grown.filter((r) => a.has(r.name) && !isDeepStrictEqual({ ...a.get(r.name)!.inputs, __provider: 0 }, { ...r.inputs, __provider: 0 })).map((r) => r.name);
            assert.deepEqual(changed.sort(), ["kubeha-nodes-hosts", "kubeha-nodes-serving-certs"]);
            const approval = named(grown, "kubeha-nodes-serving-certs");
            assert.deepEqual(approval.inputs.nodes, [...named(base, "kubeha-nodes-serving-certs").inputs.nodes, NEW]);
        });

        it("within the nodes group the other nodes' manifests and files are unchanged: nothing restarts anywhere", () => {
            const before = group(base, "kubeha-nodes-hosts");
            const after = group(grown, "kubeha-nodes-hosts");
            for (const w of ["w1", "w2"]) {
                assert.deepEqual(after.hosts[w], before.hosts[w], w);
                assert.deepEqual(after.payload[w], before.payload[w], w);
            }
            assert.equal(after.hosts[NEW.name].address, NEW.ip);
            assert.deepEqual(disruptions(base, grown), []);
            assert.deepEqual(disruptions(grown, base), []);
        });

        it("a removed worker is drained (bounded) and its Node deleted from the first master before its host is cleaned", () => {
            const g = group(grown, "kubeha-nodes-hosts");
            assert.deepEqual(g.controller, { name: "m1", address: "198.18.0.11" });
            const script = g.hosts[NEW.name].beforeRemove!;
            const drain = script.search(new RegExp(`kubectl [^\\n]*drain '${NEW.name}' [^\\n]*--timeout=\\d+s`));
            const del = script.search(new RegExp(`kubectl [^\\n]*delete node '${NEW.name}'`));
            assert.ok(drain >= 0 && del > drain, script);
        });
    });

    describe("secrecy", () => {
        it("the serving-certificate approval gets the admin key only as a secret", () => {
            const a = named(grown, "kubeha-nodes-serving-certs");
            assert.ok(a.secretInputs.includes("adminKeyPem"), `secret inputs: ${a.secretInputs.join(", ")}`);
            for (const [k, v] of Object.entries(a.inputs)) {
                if (!a.secretInputs.includes(k)) assert.ok(!/PRIVATE KEY/.test(JSON.stringify(v)), `${a.name}.${k} (not secret) has no private key`);
            }
        });

        it("the bootstrap token is in the payload only: no manifest, script or serialized provider holds it", () => {
            const conf = group(grown, "kubeha-nodes-hosts").payload.w1["/etc/kubernetes/bootstrap-kubelet.conf"];
            const [, id, secret] = /token: ([a-z0-9]{6})\.([a-z0-9]{16})/.exec(conf)!;
            assert.ok(id && secret);
            for (const r of grown) {
                const pub = JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k))));
                assert.ok(!pub.includes(secret), `${r.name} holds the bootstrap token outside its secret inputs`);
            }
        });
    });

    describe("a worker receives only what it uses", () => {
        const WORKER_PKI = [
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/flanneld-etcd-client.crt", "/etc/kubernetes/pki/flanneld-etcd-client.key",
            "/etc/kubernetes/kube-proxy.conf", "/etc/kubernetes/bootstrap-kubelet.conf",
        ];

        it("its PKI: the cluster and etcd CA certificates, flanneld's etcd client, kube-proxy's and the bootstrap kubeconfig; key files 0600", () => {
            const g = group(grown, "kubeha-nodes-hosts");
            for (const w of ["w1", "w2", NEW.name]) {
                const pki = Object.keys(g.hosts[w].files).filter((p) => p.startsWith("/etc/kubernetes/"));
                assert.deepEqual(pki.sort(), [...WORKER_PKI].sort(), w);
                for (const [p, c] of Object.entries(g.payload[w])) if (privateKeys(c).length || /token:/.test(c)) assert.equal(g.hosts[w].files[p].mode, "0600", `${w}:${p}`);
            }
        });

        it("no etcd server or peer key, no CA key, no service-account key, whatever the path", () => {
            const forbidden = new Map<string, string>();
            for (const r of grown.filter((x) => x.type.startsWith("tls:index/selfSignedCert"))) forbidden.set(r.inputs.privateKeyPem.trim(), `${r.name} key`);
            assert.equal(forbidden.size, 3, "three CAs");
            for (const g of groups(grown).filter((x) => ["etcd", "control-plane"].includes(x.group))) {
                for (const m of g.order) for (const [p, c] of Object.entries(g.payload[m])) for (const k of privateKeys(c)) forbidden.set(k, `${m}:${p}`);
            }
            assert.ok([...forbidden.values()].some((v) => v.endsWith("/etcd/peer.key")) && [...forbidden.values()].some((v) => v.endsWith("/sa.key")));
            for (const w of ["w1", "w2", NEW.name]) {
                const held = new Map<string, string>();
                for (const g of groups(grown).filter((x) => x.order.includes(w))) {
                    for (const [p, c] of Object.entries(g.payload[w])) for (const k of privateKeys(c)) held.set(k, `${g.group}:${p}`);
                }
                assert.deepEqual([...held.values()].sort(), ["nodes:/etc/kubernetes/kube-proxy.conf", "nodes:/etc/kubernetes/pki/flanneld-etcd-client.key"], w);
                assert.deepEqual([...held].filter(([k]) => forbidden.has(k)).map(([k, where]) => `${where} is ${forbidden.get(k)}`), [], w);
            }
        });
    });
});
