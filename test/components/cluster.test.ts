// The resource graph of a whole cluster (mocks): a handful of host resources per role instead of one
// command per file and unit, nothing about how kubeha reaches hosts in any resource, secrets only in
// the secret payload, and each host given exactly its share.
import { strict as assert } from "node:assert";
import { isDeepStrictEqual } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { buildCluster, promiseOf, Recorded, runProgram, settled, startMocks } from "../mocks";
import { HA_RAW, specOf } from "../fixtures";
import type { Cluster } from "../../components/cluster";
import { GROUP, groups, group, SCRIPT } from "./host-graph";

/** Every private key in a text: PEM blocks, and the base64 client-key-data of a kubeconfig. */
function privateKeys(content: string): string[] {
    const pem = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
    const embedded = [...content.matchAll(/client-key-data:\s*(\S+)/g)].map((m) => Buffer.from(m[1], "base64").toString());
    return [content, ...embedded].flatMap((c) => c.match(pem) ?? []);
}

/** A resource's inputs without the secret ones and the serialized provider. */
const publicInputs = (r: Recorded) => Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k) && k !== "__provider"));

describe("Cluster resource graph (mocks)", function () {
    this.timeout(60_000);
    let recorded: Recorded[];
    let cluster: Cluster;

    before(async () => {
        recorded = await startMocks();
        const { Cluster } = await import("../../components/cluster");
        cluster = await runProgram(() => new Cluster("kubeha", { spec: specOf(HA_RAW) }));
        await promiseOf(cluster.kubeconfig);
        await settled(recorded);
        recorded = [...recorded];
    });

    it("is a component tree: Cluster > components > host resources; tls resources under the CA", () => {
        assert.equal(recorded.find((r) => r.type === "kubeha:index:Cluster")?.name, "kubeha");
        for (const r of recorded.filter((x) => x.type.startsWith("tls:"))) assert.equal(r.parent, "kubeha-pki", r.name);
        const components = recorded.filter((r) => r.type.startsWith("kubeha:")).map((r) => r.name);
        for (const r of recorded.filter((x) => x.type === GROUP || x.type === SCRIPT)) assert.ok(components.includes(r.parent!), `${r.name} is parented by a component (${r.parent})`);
    });

    it("one HostGroup per role (and one per host for its preparation), each listing exactly the role's hosts", () => {
        const byName = Object.fromEntries(groups(recorded).map((g) => [g.name, g.order]));
        assert.deepEqual(byName, {
            "kubeha-host-m1": ["m1"], "kubeha-host-m2": ["m2"], "kubeha-host-m3": ["m3"], "kubeha-host-w1": ["w1"], "kubeha-host-w2": ["w2"],
            "kubeha-host-lb1": ["lb1"], "kubeha-host-lb2": ["lb2"],
            "kubeha-etcd-members": ["m1", "m2", "m3"],
            "kubeha-control-plane-masters": ["m1", "m2", "m3"],
            "kubeha-lb-hosts": ["lb1", "lb2"],
            "kubeha-network-masters": ["m1", "m2", "m3"],
            "kubeha-nodes-hosts": ["w1", "w2"],
        });
        const hostResources = recorded.filter((r) => r.type === GROUP || r.type === SCRIPT).length;
        assert.ok(hostResources < 30, `a few resources for 7 hosts, not one per file and unit (${hostResources})`);
    });

    it("no resource says how kubeha reaches a host: no user, port, key or host key in any input", () => {
        for (const r of recorded.filter((x) => x.type === GROUP || x.type === SCRIPT)) {
            const text = JSON.stringify(r.inputs);
            assert.ok(!/"(user|port|privateKey|hostKey|connection|password)"/.test(text), r.name);
            assert.ok(!text.includes("[secret]"), `${r.name} holds no SSH key`);
        }
    });

    it("key material travels only in secret inputs (the payload, a script's stdin), never in a manifest or script", () => {
        for (const r of recorded.filter((x) => x.type === GROUP || x.type === SCRIPT)) {
            const pub = JSON.stringify(publicInputs(r));
            assert.deepEqual(privateKeys(pub.replace(/\\n/g, "\n")), [], `${r.name}: no private key in its public inputs`);
            assert.ok(!/token-secret|secretbox|auth_pass/.test(pub), `${r.name}: no token, encryption key or VRRP password in its public inputs`);
        }
        for (const g of groups(recorded)) assert.ok(g.rec.secretInputs.includes("payload"), `${g.name}: the payload is secret`);
        const withKeys = groups(recorded).filter((g) => Object.values(g.payload).some((files) => Object.values(files).some((c) => privateKeys(c).length)));
        assert.ok(withKeys.length >= 3, "keys do reach the hosts, inside payloads");
    });

    it("a manifest lists a digest for every file whose content is in the payload, and nothing else", () => {
        const { createHash } = require("node:crypto") as typeof import("node:crypto");
        for (const g of groups(recorded)) {
            for (const host of g.order) {
                const files = g.hosts[host].files;
                assert.deepEqual(Object.keys(files).sort(), Object.keys(g.payload[host]).sort(), `${g.name} ${host}`);
                for (const [p, f] of Object.entries(files)) assert.equal(f.sha256, createHash("sha256").update(g.payload[host][p]).digest("hex"), `${g.name} ${host} ${p}`);
            }
        }
    });

    it("delivers to each host exactly its share: an lb host gets no private key; m1 gets its own etcd peer key, 0600", () => {
        const lb = group(recorded, "kubeha-lb-hosts");
        for (const c of Object.values(lb.payload.lb1)) assert.deepEqual(privateKeys(c), []);
        const etcd = group(recorded, "kubeha-etcd-members");
        const peer = etcd.hosts.m1.files["/etc/kubernetes/pki/etcd/peer.key"];
        assert.equal(peer.mode, "0600");
        assert.notEqual(etcd.payload.m1["/etc/kubernetes/pki/etcd/peer.key"], etcd.payload.m2["/etc/kubernetes/pki/etcd/peer.key"]);
    });

    it("exports the admin kubeconfig through the VIP as a secret", async () => {
        assert.equal(await pulumi.isSecret(cluster.kubeconfig), true);
        const kc = parse(await promiseOf(cluster.kubeconfig));
        assert.equal(kc.clusters[0].cluster.server, "https://198.18.0.10:8443");
        assert.equal(cluster.apiEndpoint, "https://198.18.0.10:8443");
    });
});

describe("how kubeha reaches hosts is not part of any resource (mocks)", function () {
    this.timeout(60_000);
    it("a new SSH key, user, port or host-key setting leaves every resource's inputs as they were", async () => {
        const strip = (rs: Recorded[]) => new Map(rs.filter((r) => r.type === GROUP || r.type === SCRIPT).map((r) => [r.name, { ...r.inputs, __provider: undefined }]));
        const before = strip(await buildCluster());
        const after = strip(await buildCluster({ sshPrivateKey: "[another secret]", sshUser: "deploy", sshPort: 2222 }));
        assert.deepEqual([...after.keys()], [...before.keys()]);
        const changed = [...after].filter(([n, i]) => !isDeepStrictEqual(before.get(n), i)).map(([n]) => n);
        assert.deepEqual(changed, []);
    });

    it("but a setting that ends up on a host does change the resource that writes it (the comparison can fail)", async () => {
        const strip = (rs: Recorded[]) => new Map(rs.filter((r) => r.type === GROUP).map((r) => [r.name, r.inputs.hosts]));
        const before = strip(await buildCluster());
        const after = strip(await buildCluster({ maxPods: 50 }));
        const changed = [...after].filter(([n, i]) => !isDeepStrictEqual(before.get(n), i)).map(([n]) => n);
        assert.deepEqual(changed, ["kubeha-nodes-hosts"]);
    });
});
