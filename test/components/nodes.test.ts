// Nodes, read from the resource graph the program builds (mocks): the order a node joins in, that
// adding or removing a worker touches only that worker, that keys and the bootstrap token stay
// secret, and that a worker receives only the key material it uses.
import { strict as assert } from "node:assert";
import { isDeepStrictEqual } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { buildCluster, Recorded } from "../mocks";
import { HA_RAW } from "../fixtures";
import { RawConfig } from "../../spec/config";

/** One extra worker inside HA_RAW's hostCidr (198.18.0.0/24), named so that no other name contains it. */
const NEW = { name: "k8s-node03", ip: "198.18.0.23" };
const WITH_NEW: RawConfig = { workers: [...(HA_RAW.workers as string[]), `${NEW.name}=${NEW.ip}`] };
const FIRST_MASTER_IP = "198.18.0.11";

/** A FileAsset's path is a promise: resolved here so that recorded inputs compare as plain data. */
async function plain(v: unknown): Promise<unknown> {
    if (v instanceof pulumi.asset.FileAsset) return { fileAsset: await v.path };
    if (v instanceof pulumi.asset.Asset) return { asset: await (v as unknown as { text?: Promise<string> }).text };
    if (Array.isArray(v)) return Promise.all(v.map(plain));
    if (v && typeof v === "object") return Object.fromEntries(await Promise.all(Object.entries(v).map(async ([k, x]) => [k, await plain(x)])));
    return v;
}

async function build(overrides: RawConfig = {}): Promise<Recorded[]> {
    const recorded = await buildCluster(overrides);
    return Promise.all(recorded.map(async (r) => ({ ...r, inputs: await plain(r.inputs) as Record<string, any> })));
}

/** The recorded resources as the engine orders them: by dependsOn only (a parent is no dependency). */
class Graph {
    private readonly byName = new Map<string, Recorded>();
    private readonly children = new Map<string, string[]>();
    private readonly memo = new Map<string, Set<string>>();

    constructor(readonly rs: Recorded[]) {
        for (const r of rs) {
            assert.ok(!this.byName.has(r.name), `resource names are unique: ${r.name}`);
            this.byName.set(r.name, r);
            if (r.parent) this.children.set(r.parent, [...(this.children.get(r.parent) ?? []), r.name]);
        }
    }

    get(name: string): Recorded {
        const r = this.byName.get(name);
        assert.ok(r, `resource ${name} exists`);
        return r!;
    }

    has(name: string): boolean {
        return this.byName.has(name);
    }

    /** Every resource `name` waits for, directly or through others; a component in dependsOn stands for all its descendants. */
    ancestors(name: string): Set<string> {
        const cached = this.memo.get(name);
        if (cached) return cached;
        const seen = new Set<string>();
        const expand = (d: string): string[] => this.get(d).type.startsWith("kubeha:") ? [d, ...(this.children.get(d) ?? []).flatMap(expand)] : [d];
        const visit = (n: string) => {
            for (const d of this.get(n).dependsOn.flatMap(expand)) {
                if (seen.has(d)) continue;
                seen.add(d);
                visit(d);
            }
        };
        visit(name);
        this.memo.set(name, seen);
        return seen;
    }

    /**
     * The resources `name` depends on directly, as the engine's DependencyGraph.DependenciesOf sees
     * them: its dependsOn (a component standing for its descendants) and its parent.
     */
    directDependencies(name: string): Set<string> {
        const r = this.get(name);
        const expand = (d: string): string[] => this.get(d).type.startsWith("kubeha:") ? [d, ...(this.children.get(d) ?? []).flatMap(expand)] : [d];
        return new Set([...r.dependsOn.flatMap(expand), ...(r.parent ? [r.parent] : [])]);
    }

    /**
     * The rounds in which `pulumi up` deletes `condemned` (pkg/resource/deploy/step_generator.go,
     * ScheduleDeletes): repeatedly take the condemned resources none of whose *direct* dependencies is
     * still condemned, then reverse. Round 0 is deleted first; one round finishes before the next
     * starts. A path through a resource that stays (is only updated) orders nothing.
     */
    deleteRounds(condemned: string[]): Map<string, number> {
        const left = new Set(condemned);
        const layers: string[][] = [];
        while (left.size) {
            const layer = [...left].filter((n) => ![...this.directDependencies(n)].some((d) => left.has(d)));
            assert.ok(layer.length, "the condemned resources have no dependency cycle");
            for (const n of layer) left.delete(n);
            layers.push(layer);
        }
        return new Map(layers.reverse().flatMap((layer, i) => layer.map((n): [string, number] => [n, i])));
    }

    /** `later` transitively depends on `earlier`. */
    waitsFor(later: string, earlier: string): boolean {
        this.get(earlier);
        return this.ancestors(later).has(earlier);
    }

    ofType(prefix: string): Recorded[] {
        return this.rs.filter((r) => r.type.startsWith(prefix));
    }

    approval(): Recorded {
        const a = this.ofType("pulumi-nodejs:dynamic");
        assert.equal(a.length, 1, "one serving-certificate approval");
        assert.match(a[0].type, /ServingCertApproval$/);
        return a[0];
    }
}

/** The stdin of a putFiles command: "path mode base64" lines (host/remote.ts encodeFiles). */
function decodeFiles(stdin: string): { path: string; mode: string; content: string }[] {
    return stdin.trim().split("\n").map((l) => {
        const [path, mode, b64] = l.split(" ");
        return { path, mode, content: Buffer.from(b64, "base64").toString() };
    });
}

const isFileList = (stdin: string) => stdin.trim() !== "" && stdin.trim().split("\n").every((l) => /^\/\S+ 0[0-7]{3} [A-Za-z0-9+/=]*$/.test(l));

/** Every private key in a file: PEM blocks, and the base64 client-key-data of a kubeconfig. */
function privateKeys(content: string): string[] {
    const pem = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
    const embedded = [...content.matchAll(/client-key-data:\s*(\S+)/g)].map((m) => Buffer.from(m[1], "base64").toString());
    return [content, ...embedded].flatMap((c) => c.match(pem) ?? []).map((k) => k.trim());
}

/** The join chain of one node, as (earlier, later) pairs: `later` must wait for `earlier`. */
function joinOrder(g: Graph, node: string): [string, string][] {
    const n = (s: string) => `kubeha-nodes-${node}-${s}`;
    const flannel = (s: string) => `kubeha-network-${node}-${s}`;
    const etcdGates = g.rs.filter((r) => /^kubeha-etcd-.*-etcd-healthy$/.test(r.name)).map((r) => r.name);
    assert.equal(etcdGates.length, 3, "an etcd health gate per master");
    const addons = g.rs.filter((r) => r.parent === "kubeha-addons").map((r) => r.name);
    assert.deepEqual(addons, ["kubeha-addons-coredns", "kubeha-addons-metrics-server", "kubeha-addons-headlamp"]);
    const approval = g.approval().name;
    return [
        // The pod network: its config goes into etcd once etcd is healthy, then flanneld on this node.
        ...etcdGates.map((e): [string, string] => [e, "kubeha-network-config"]),
        // etcd authentication is on before any flanneld (its certificate is limited to the prefix).
        ...etcdGates.map((e): [string, string] => [e, "kubeha-etcd-auth"]),
        ["kubeha-etcd-auth", flannel("flanneld")],
        ["kubeha-network-config", flannel("flanneld")],
        [flannel("flanneld"), flannel("flanneld-ready")],
        // Host preparation, then the runtime. containerd itself does not wait for flanneld: neither it
        // nor its CRI plugin reads /run/flannel/subnet.env; the flannel CNI plugin does, when the
        // kubelet creates a pod sandbox, so flanneld's subnet file gates the kubelet (below).
        [n("preflight"), n("containerd")],
        [n("containerd"), n("containerd-ready")],
        // kubelet: runtime up, pod network up, and the API (endpoint + TLS-bootstrap RBAC) answering.
        [n("containerd-ready"), n("kubelet")],
        [flannel("flanneld-ready"), n("kubelet")],
        ["kubeha-api-endpoint-ready", n("kubelet")],
        ["kubeha-control-plane-bootstrap-rbac", n("kubelet")],
        [`kubeha-${node}-pki`, n("kubelet")],
        [n("kubelet"), n("kubelet-healthy")],
        // kube-proxy talks to the API too.
        ["kubeha-api-endpoint-ready", n("kube-proxy")],
        [n("preflight"), n("kube-proxy")],
        // Serving certificates approved once the kubelet asked, then the node is Ready, then add-ons.
        [n("kubelet-healthy"), approval],
        [approval, n("member")],
        [n("kube-proxy-healthy"), n("member")],
        ...addons.map((a): [string, string] => [n("member"), a]),
    ];
}

/** What differs between two runs: resources only in one, and per shared resource the inputs that differ. */
function diff(before: Recorded[], after: Recorded[]) {
    const a = new Map(before.map((r) => [r.name, r]));
    const b = new Map(after.map((r) => [r.name, r]));
    const changed = new Map<string, string[]>();
    for (const [name, r] of b) {
        const old = a.get(name);
        if (!old) continue;
        const keys = [...new Set([...Object.keys(old.inputs), ...Object.keys(r.inputs)])]
            .filter((k) => !isDeepStrictEqual(old.inputs[k], r.inputs[k])).sort();
        if (keys.length) changed.set(name, keys);
    }
    return {
        added: [...b.keys()].filter((n) => !a.has(n)).sort(),
        removed: [...a.keys()].filter((n) => !b.has(n)).sort(),
        changed,
    };
}

/** The script inside a command line (host/remote.ts wrap: `[sudo -n ]sh -c '<script>'`). */
function scriptOf(commandLine: string): string {
    const m = /^(?:sudo -n )?sh -c '([\s\S]*)'$/.exec(commandLine);
    assert.ok(m, `a wrapped script: ${commandLine}`);
    return m![1].replace(/'\\''/g, "'");
}

const isCommand = (r: Recorded) => r.type === "command:remote:Command";
const SCRIPTS = ["create", "update", "delete"] as const;

describe("nodes (mocks)", function () {
    // Three program runs of a few seconds each, shared by every test below.
    this.timeout(120_000);
    /** HA_RAW: workers w1, w2. */
    let base: Graph;
    /** HA_RAW plus the worker k8s-node03. */
    let grown: Graph;
    /** HA_RAW with mastersAreWorkers: masters join as nodes too. */
    let mastersToo: Graph;

    before(async () => {
        base = new Graph(await build());
        grown = new Graph(await build(WITH_NEW));
        mastersToo = new Graph(await build({ mastersAreWorkers: true }));
    });

    describe("join order", () => {
        it("the graph helper follows dependsOn transitively, not parents, and says no when there is no path", () => {
            assert.ok(grown.waitsFor("kubeha-addons-coredns", "kubeha-etcd-m1-etcd"), "through many hops");
            assert.ok(!grown.waitsFor("kubeha-etcd-m1-etcd", "kubeha-addons-coredns"));
            assert.ok(!grown.waitsFor("kubeha-nodes-w1-kubelet", "kubeha-nodes"), "a parent is not a dependency");
            assert.ok(!grown.waitsFor("kubeha-nodes-w1-kubelet", "kubeha-nodes-w2-kubelet"), "no path between two workers' kubelets");
            assert.ok(grown.waitsFor("kubeha-nodes-w1-kubelet", "kubeha-etcd-m1-etcd-healthy") && grown.directDependencies("kubeha-nodes-w1-kubelet").has("kubeha-nodes"),
                "a parent is a direct dependency only for the engine's delete order");
        });

        for (const [label, graph, nodes] of [
            ["every worker, the added one included", () => grown, ["w1", "w2", NEW.name]],
            ["masters that are workers too", () => mastersToo, ["m1", "m2", "m3", "w1", "w2"]],
        ] as const) {
            it(`${label}: etcd gates -> network config -> flanneld -> (containerd) -> kubelet -> serving-cert approval -> Ready -> add-ons`, () => {
                const g = graph();
                const missing: string[] = [];
                for (const node of nodes) {
                    for (const [earlier, later] of joinOrder(g, node)) {
                        if (!g.waitsFor(later, earlier)) missing.push(`${later} does not wait for ${earlier}`);
                    }
                }
                assert.deepEqual(missing, []);
            });
        }

        it("an add-on dropped or destroyed is deleted by its labels, after the API has applied it", () => {
            for (const a of grown.rs.filter((r) => r.parent === "kubeha-addons")) {
                const addon = a.name.replace("kubeha-addons-", "");
                const del = scriptOf(a.inputs.delete as string);
                assert.match(del, new RegExp(`kubectl .* delete [a-z,]*deployment[a-z,]* --all-namespaces --ignore-not-found --wait=false -l app\\.kubernetes\\.io/name=${addon},app\\.kubernetes\\.io/managed-by=kubeha`), a.name);
            }
        });

        it("a node's kubelet and kube-proxy wait for no other worker (nodes join independently)", () => {
            const workers = ["w1", "w2", NEW.name];
            const ownedBy = (name: string) => workers.find((w) => [`kubeha-${w}-`, `kubeha-nodes-${w}-`, `kubeha-network-${w}-`].some((p) => name.startsWith(p)));
            const crossed: string[] = [];
            for (const w of workers) {
                for (const r of [`kubeha-nodes-${w}-kubelet-healthy`, `kubeha-nodes-${w}-kube-proxy-healthy`]) {
                    for (const d of grown.ancestors(r)) {
                        const owner = ownedBy(d);
                        if (owner && owner !== w) crossed.push(`${r} waits for ${d}`);
                    }
                }
            }
            assert.deepEqual(crossed, []);
        });
    });

    describe("adding or removing a worker touches only that worker", () => {
        // Inputs are compared whole, key material included: the tls mocks (test/mocks.ts) return the same
        // keys and certificates for the same resource name and args across runs in one process, as the
        // engine keeps unchanged resources, so a difference here is a difference the engine would see.
        const shared = () => diff(base.rs, grown.rs);

        it("the two runs differ only by resources named after the new worker", () => {
            const { added, removed } = shared();
            const foreign = added.filter((n) => !n.includes(NEW.name));
            assert.deepEqual(foreign, [], `added resources not named after ${NEW.name}: ${foreign.join(", ")}`);
            assert.deepEqual(removed, [], `resources gone when a worker is added: ${removed.join(", ")}`);
            assert.deepEqual(added, grown.rs.map((r) => r.name).filter((n) => n.includes(NEW.name)).sort(), `added: ${added.join(", ")}`);
            for (const kind of ["state", "pki"]) assert.ok(added.includes(`kubeha-${NEW.name}-${kind}`), kind);
            for (const kind of ["flanneld", "flanneld-ready"]) assert.ok(added.includes(`kubeha-network-${NEW.name}-${kind}`), kind);
            for (const kind of ["preflight", "containerd", "kubelet", "kube-proxy", "member"]) assert.ok(added.includes(`kubeha-nodes-${NEW.name}-${kind}`), kind);
        });

        it("the new resources run on the new worker, except its Ready gate, which runs on the first master", () => {
            const elsewhere = shared().added.map((n) => grown.get(n))
                .filter((r) => r.inputs.connection?.host !== NEW.ip).map((r) => `${r.name}@${r.inputs.connection?.host}`);
            assert.deepEqual(elsewhere, [`kubeha-nodes-${NEW.name}-member@${FIRST_MASTER_IP}`]);
        });

        it("every shared resource keeps its inputs, except the approval's node list, which gains exactly the new worker", () => {
            const { changed } = shared();
            const approval = base.approval().name;
            assert.deepEqual([...changed].map(([n, keys]) => `${n}: ${keys.join(",")}`), [`${approval}: nodes`],
                "the only input that changes when a worker is added");
            assert.deepEqual(grown.get(approval).inputs.nodes, [...base.get(approval).inputs.nodes, { name: NEW.name, ip: NEW.ip }]);
        });

        it("no remote command on another host changes its create, update or delete script", () => {
            const moved: string[] = [];
            for (const r of grown.rs.filter(isCommand)) {
                if (!base.has(r.name) || r.inputs.connection.host === NEW.ip) continue;
                const old = base.get(r.name);
                assert.equal(old.inputs.connection.host, r.inputs.connection.host, r.name);
                for (const s of SCRIPTS) if (old.inputs[s] !== r.inputs[s]) moved.push(`${r.name}.${s}`);
            }
            assert.deepEqual(moved, []);
        });

        it("removing it again: only its resources go, the rest is unchanged but the approval's node list", () => {
            const { added, removed, changed } = diff(grown.rs, base.rs);
            assert.deepEqual(added, []);
            const foreign = removed.filter((n) => !n.includes(NEW.name));
            assert.deepEqual(foreign, [], `removed resources not named after ${NEW.name}: ${foreign.join(", ")}`);
            assert.ok(removed.includes(`kubeha-nodes-${NEW.name}-member`) && removed.includes(`kubeha-${NEW.name}-state`));
            assert.deepEqual([...changed.keys()], [base.approval().name]);
        });

        it("the removed worker's Ready gate drains it (bounded) and deletes its Node, from the first master", () => {
            const member = grown.get(`kubeha-nodes-${NEW.name}-member`);
            assert.equal(member.inputs.connection.host, FIRST_MASTER_IP);
            const del = scriptOf(String(member.inputs.delete));
            const drain = del.search(new RegExp(`kubectl [^\\n]*drain '${NEW.name}' [^\\n]*--timeout=\\d+s`));
            const deleteNode = del.search(new RegExp(`kubectl [^\\n]*delete node '${NEW.name}'`));
            assert.ok(drain >= 0, `drains with a timeout:\n${del}`);
            assert.ok(deleteNode > drain, `then deletes the Node:\n${del}`);
        });

        it("on destroy, the drain runs before the node's kubelet, runtime, network and proxy stop", () => {
            const rounds = grown.deleteRounds(grown.rs.map((r) => r.name));
            const member = `kubeha-nodes-${NEW.name}-member`;
            for (const r of [`kubeha-nodes-${NEW.name}-kubelet`, `kubeha-nodes-${NEW.name}-containerd`, `kubeha-network-${NEW.name}-flanneld`,
                `kubeha-nodes-${NEW.name}-kube-proxy`, `kubeha-${NEW.name}-state`]) {
                assert.ok(rounds.get(member)! < rounds.get(r)!, `${member} (round ${rounds.get(member)}) is deleted before ${r} (round ${rounds.get(r)})`);
            }
        });

        // The Ready gate (`-member`) depends on the node's kubelet gate directly: when one worker is removed,
        // the shared approval is only updated, so that direct edge is what orders the drain first.
        it("when one worker is removed, the drain runs before its kubelet, runtime, network and proxy stop", () => {
            const rounds = grown.deleteRounds(diff(grown.rs, base.rs).removed);
            const member = `kubeha-nodes-${NEW.name}-member`;
            const early: string[] = [];
            for (const r of [`kubeha-nodes-${NEW.name}-kubelet`, `kubeha-nodes-${NEW.name}-containerd`, `kubeha-network-${NEW.name}-flanneld`,
                `kubeha-nodes-${NEW.name}-kube-proxy`, `kubeha-${NEW.name}-state`]) {
                if (!(rounds.get(member)! < rounds.get(r)!)) early.push(`${r} (round ${rounds.get(r)}) is not deleted after ${member} (round ${rounds.get(member)})`);
            }
            assert.deepEqual(early, []);
        });
    });

    describe("secrecy", () => {
        it("the serving-certificate approval gets the admin key only as a secret", () => {
            const a = grown.approval();
            assert.ok(a.secretInputs.includes("adminKeyPem"), `secret inputs: ${a.secretInputs.join(", ")}`);
            assert.match(a.inputs.adminKeyPem, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
            for (const [k, v] of Object.entries(a.inputs)) {
                if (!a.secretInputs.includes(k)) assert.ok(!/PRIVATE KEY/.test(JSON.stringify(v)), `${a.name}.${k} (not secret) has no private key`);
            }
        });

        it("no command line holds a private key or the bootstrap token", () => {
            const bootstrap = decodeFiles(grown.get("kubeha-w1-pki").inputs.stdin).find((f) => f.path === "/etc/kubernetes/bootstrap-kubelet.conf")!;
            const [, id, secret] = /token: ([a-z0-9]{6})\.([a-z0-9]{16})/.exec(bootstrap.content)!;
            assert.ok(id && secret, "the bootstrap kubeconfig holds the token");
            const leaks: string[] = [];
            for (const r of grown.rs.filter(isCommand)) {
                for (const s of SCRIPTS) {
                    const text = String(r.inputs[s] ?? "");
                    if (/PRIVATE KEY/.test(text)) leaks.push(`${r.name}.${s}: private key`);
                    // File contents travel on stdin: base64 of a PEM ("-----BEGIN") has no place on a command line.
                    if (text.includes("LS0tLS1CRUdJTi")) leaks.push(`${r.name}.${s}: base64 PEM`);
                    if (text.includes(secret)) leaks.push(`${r.name}.${s}: bootstrap token`);
                }
            }
            assert.deepEqual(leaks, []);
            assert.ok(!JSON.stringify(grown.approval().inputs.__provider ?? "").includes(secret), "the serialized provider captured no token");
        });
    });

    describe("a worker receives only what it uses", () => {
        const WORKER_FILES = [
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/flanneld-etcd-client.crt", "/etc/kubernetes/pki/flanneld-etcd-client.key",
            "/etc/kubernetes/kube-proxy.conf", "/etc/kubernetes/bootstrap-kubelet.conf",
        ].sort();

        it("its PKI: the cluster and etcd CA certificates, flanneld's etcd client, kube-proxy's and the bootstrap kubeconfig", () => {
            for (const w of ["w1", "w2", NEW.name]) {
                const files = decodeFiles(grown.get(`kubeha-${w}-pki`).inputs.stdin);
                assert.deepEqual(files.map((f) => f.path).sort(), WORKER_FILES, w);
                for (const f of files) if (privateKeys(f.content).length || /token:/.test(f.content)) assert.equal(f.mode, "0600", `${w}:${f.path}`);
            }
        });

        it("no etcd server or peer key, no CA key, no service-account key, whatever the path", () => {
            // Keys a worker must never hold: every CA key (the self-signed certificates' keys), and every
            // master key but flanneld's shared etcd client key.
            const forbidden = new Map<string, string>();
            for (const r of grown.ofType("tls:index/selfSignedCert")) forbidden.set(r.inputs.privateKeyPem.trim(), `${r.name} key`);
            assert.equal(forbidden.size, 3, "three CAs");
            for (const m of ["m1", "m2", "m3"]) {
                for (const f of decodeFiles(grown.get(`kubeha-${m}-pki`).inputs.stdin)) {
                    if (f.path.endsWith("/flanneld-etcd-client.key")) continue;
                    for (const k of privateKeys(f.content)) forbidden.set(k, `${m}:${f.path}`);
                }
            }
            assert.ok([...forbidden.values()].some((v) => v.endsWith("/etcd/peer.key")) && [...forbidden.values()].some((v) => v.endsWith("/sa.key")));
            for (const w of ["w1", "w2", NEW.name]) {
                const held = new Map<string, string>();
                for (const r of grown.rs.filter((x) => isCommand(x) && x.inputs.connection.host === grown.get(`kubeha-${w}-pki`).inputs.connection.host)) {
                    const stdin = String(r.inputs.stdin ?? "");
                    const contents = isFileList(stdin) ? decodeFiles(stdin).map((f) => [`${r.name}:${f.path}`, f.content]) : [[r.name, stdin]];
                    for (const [where, content] of contents) for (const k of privateKeys(content)) held.set(k, where);
                }
                assert.deepEqual([...held.values()].sort(), [`kubeha-${w}-pki:/etc/kubernetes/kube-proxy.conf`, `kubeha-${w}-pki:/etc/kubernetes/pki/flanneld-etcd-client.key`],
                    `${w} holds two private keys, both in its PKI`);
                const bad = [...held].filter(([k]) => forbidden.has(k)).map(([k, where]) => `${where} is ${forbidden.get(k)}`);
                assert.deepEqual(bad, [], w);
            }
        });
    });
});
