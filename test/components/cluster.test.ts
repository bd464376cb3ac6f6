import { strict as assert } from "node:assert";
import * as pulumi from "@pulumi/pulumi";
import { promiseOf, Recorded, runProgram, settled, startMocks } from "../mocks";
import { HA_RAW } from "../fixtures";
import { loadClusterSpec } from "../../spec/config";
import type { Cluster } from "../../components/cluster";
import { parse } from "yaml";

describe("Cluster resource graph (mocks)", () => {
    const knownHosts = ["198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.21", "198.18.0.22", "198.18.0.31", "198.18.0.32"]
        .map((ip, i) => `${ip} ssh-ed25519 AAAAHOSTKEY${i}`).join("\n");
    const { spec } = loadClusterSpec({ ...HA_RAW, sshHostKeyChecking: true, sshUser: "kubeha" }, { knownHosts, strict: true });
    const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nSSH-KEY-MATERIAL\n-----END OPENSSH PRIVATE KEY-----\n";
    let recorded: Recorded[];
    let cluster: Cluster;

    before(async () => {
        recorded = await startMocks();
        const { Cluster } = await import("../../components/cluster");
        cluster = await runProgram(() => new Cluster("kubeha", { spec, sshPrivateKey: SSH_KEY }));
        await promiseOf(cluster.kubeconfig);
        await settled(recorded);
    });

    const commands = () => recorded.filter((r) => r.type === "command:remote:Command");

    it("is a component tree: Cluster > CertificateAuthority > tls resources; host commands under Cluster", () => {
        assert.equal(recorded.find((r) => r.type === "kubeha:index:Cluster")?.name, "kubeha");
        assert.equal(recorded.find((r) => r.type === "kubeha:pki:CertificateAuthority")?.parent, "kubeha");
        for (const r of recorded.filter((x) => x.type.startsWith("tls:"))) assert.equal(r.parent, "kubeha-pki", r.name);
        for (const r of recorded.filter((x) => x.type.startsWith("random:"))) assert.ok(["kubeha-pki", "kubeha-lb"].includes(r.parent!), r.name);
        const components = recorded.filter((r) => r.type.startsWith("kubeha:")).map((r) => r.name);
        for (const c of commands()) assert.ok(components.includes(c.parent!), `${c.name} is parented by a component (${c.parent})`);
        assert.equal(recorded.find((r) => r.type === "kubeha:etcd:EtcdCluster")?.parent, "kubeha");
        assert.equal(recorded.find((r) => r.type === "kubeha:controlplane:ControlPlane")?.parent, "kubeha");
    });

    it("puts PKI on every host with one command per host, over SSH with the host's pinned key", () => {
        const pki = commands().filter((c) => c.name.endsWith("-pki"));
        assert.deepEqual(pki.map((c) => c.name).sort(), spec.hosts.map((h) => `kubeha-${h.name}-pki`).sort());
        for (const c of pki) {
            const host = spec.hosts.find((h) => c.name === `kubeha-${h.name}-pki`)!;
            assert.equal(c.inputs.connection.host, host.ip);
            assert.equal(c.inputs.connection.user, "kubeha");
            assert.equal(c.inputs.connection.hostKey, host.hostKey);
            assert.match(c.inputs.create, /^sudo -n sh -c /, "non-root user goes through sudo");
            assert.equal(c.inputs.update, c.inputs.create, "a change re-runs the same idempotent script instead of delete+create");
        }
    });

    it("re-runs commands in place: no command uses triggers (a trigger change makes the provider replace it, running the old delete script)", () => {
        for (const c of commands()) {
            assert.equal(c.inputs.triggers, undefined, c.name);
            if (c.inputs.update !== undefined) assert.equal(c.inputs.update, c.inputs.create, c.name);
        }
    });

    it("sends file contents and the SSH key only as secrets, never on a command line", () => {
        for (const c of commands()) {
            assert.ok(c.secretInputs.includes("connection"), `${c.name}: connection (SSH key) is secret`);
            const stdin = String(c.inputs.stdin ?? "");
            const decoded = stdin.split("\n").map((l) => Buffer.from(l.split(" ")[2] ?? "", "base64").toString()).join("\n") + stdin;
            if (/PRIVATE KEY|client-key-data|token-secret|secretbox/.test(decoded)) assert.ok(c.secretInputs.includes("stdin"), `${c.name}: stdin with key material is secret`);
            for (const field of ["create", "update", "delete"]) {
                const text = String(c.inputs[field] ?? "");
                assert.ok(!text.includes("PRIVATE KEY"), `${c.name}.${field} has no key material`);
                assert.ok(!text.includes("SSH-KEY-MATERIAL"));
            }
        }
    });

    it("delivers to each host exactly its share: the stdin decodes to that host's files", () => {
        const decode = (stdin: string) => stdin.trim().split("\n").map((l) => {
            const [path, mode, b64] = l.split(" ");
            return { path, mode, content: Buffer.from(b64, "base64").toString() };
        });
        const lb = decode(commands().find((c) => c.name === "kubeha-lb1-pki")!.inputs.stdin);
        assert.deepEqual(lb.map((f) => f.path), ["/etc/kubernetes/pki/ca.crt"]);
        const m1 = decode(commands().find((c) => c.name === "kubeha-m1-pki")!.inputs.stdin);
        assert.ok(m1.some((f) => f.path === "/etc/kubernetes/pki/etcd/peer.key" && f.mode === "0600" && f.content.includes("PRIVATE KEY")));
        assert.match(commands().find((c) => c.name === "kubeha-m1-pki")!.inputs.delete, /rm -f .*'\/etc\/kubernetes\/pki\/etcd\/peer\.key'/);
    });

    it("exports the admin kubeconfig through the VIP as a secret", async () => {
        assert.equal(await pulumi.isSecret(cluster.kubeconfig), true);
        const kc = parse(await promiseOf(cluster.kubeconfig));
        assert.equal(kc.clusters[0].cluster.server, "https://198.18.0.10:8443");
        assert.equal(cluster.apiEndpoint, "https://198.18.0.10:8443");
    });
});
