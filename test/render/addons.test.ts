// Add-on manifests parsed back with the yaml package and checked field by field: kinds, names,
// namespaces, the DNS Service IP and Corefile, images, metrics-server's TLS stance, the APIService,
// Headlamp's login objects, labels on every object, and the parameter checks.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import {
    AddonName, AddonParams, HEADLAMP_LOGIN_HELP, METRICS_SERVER_ARGS, renderAddonManifests, renderCorefile, validateAddonParams,
} from "../../render/addons";
import { have } from "./tools";

type Obj = Record<string, any>;

const IMAGES = {
    coredns: "registry.example/coredns/coredns:v1.12.4",
    metricsServer: "registry.example/metrics-server/metrics-server:v0.8.1",
    headlamp: "registry.example/headlamp-k8s/headlamp:v0.40.1",
};

const ALL: AddonName[] = ["coredns", "metrics-server", "headlamp"];

function params(over: Partial<AddonParams> = {}): AddonParams {
    return { clusterDns: "10.254.0.2", clusterDomain: "cluster.local", images: IMAGES, enabled: ALL, ...over };
}

/** Parses a multi-document YAML strictly: any error or warning fails the test. */
function parseDocs(text: string): Obj[] {
    return parseAllDocuments(text).map((d, i) => {
        assert.deepEqual(d.errors, [], `document ${i} has YAML errors`);
        assert.deepEqual(d.warnings, [], `document ${i} has YAML warnings`);
        const o = d.toJS() as Obj;
        assert.ok(o && typeof o === "object", `document ${i} is not a mapping`);
        return o;
    });
}

function render(over: Partial<AddonParams> = {}): Map<AddonName, Obj[]> {
    return new Map(renderAddonManifests(params(over)).map((m) => [m.name, parseDocs(m.yaml)]));
}

function find(objs: Obj[], kind: string, name: string): Obj {
    const hits = objs.filter((o) => o.kind === kind && o.metadata?.name === name);
    assert.equal(hits.length, 1, `expected exactly one ${kind}/${name}, found ${hits.length}`);
    return hits[0];
}

const ids = (objs: Obj[]) => objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`).sort();

/** Every `image:` value anywhere in the object. */
function images(o: unknown): string[] {
    if (Array.isArray(o)) return o.flatMap(images);
    if (o && typeof o === "object") {
        return Object.entries(o).flatMap(([k, v]) => (k === "image" && typeof v === "string" ? [v] : images(v)));
    }
    return [];
}

function container(deploy: Obj): Obj {
    const cs = deploy.spec.template.spec.containers;
    assert.equal(cs.length, 1);
    return cs[0];
}

/** The directive names of the server block, in order (lines indented by exactly four spaces). */
function corefileDirectives(corefile: string): string[] {
    return corefile.split("\n").filter((l) => /^ {4}[^\s}]/.test(l)).map((l) => l.trim().split(/\s+/)[0]);
}

async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = createServer().listen(0, "127.0.0.1", () => {
            const port = (srv.address() as { port: number }).port;
            srv.close(() => resolve(port));
        }).on("error", reject);
    });
}

/**
 * Runs a real CoreDNS on the Corefile, moved to free local ports and pointed at an API server that
 * is not there (the kubernetes plugin then starts unsynced, after ~5 s). Resolves when the server
 * is up and /health answers 200;
 * rejects with CoreDNS's output when it exits first (a Corefile it cannot set up) or never answers.
 */
async function runCoredns(corefile: string): Promise<string> {
    const [dns, health, ready, metrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const local = corefile
        .replace(/^\.:53 \{$/m, `.:${dns} {`)
        .replace(/^(\s+)health \{$/m, `$1health 127.0.0.1:${health} {`)
        .replace(/^(\s+)ready$/m, `$1ready 127.0.0.1:${ready}`)
        .replace(/^(\s+)prometheus :9153$/m, `$1prometheus 127.0.0.1:${metrics}`)
        .replace(/^(\s+kubernetes .*\{)$/m, "$1\n       endpoint http://127.0.0.1:9");
    const dir = mkdtempSync(join(tmpdir(), "kubeha-coredns-"));
    writeFileSync(join(dir, "Corefile"), local);
    const proc = spawn("coredns", ["-conf", join(dir, "Corefile")], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    proc.stdout.on("data", (d) => { log += d; });
    proc.stderr.on("data", (d) => { log += d; });
    let exited = false;
    proc.on("exit", () => { exited = true; });
    try {
        for (let i = 0; i < 150; i++) {
            if (exited) throw new Error(`coredns exited:\n${log}`);
            // The version banner is printed once every plugin is set up and the server listens.
            const ok = log.includes("CoreDNS-") && await fetch(`http://127.0.0.1:${health}/health`).then((r) => r.status === 200, () => false);
            if (ok) return log;
            await new Promise((r) => setTimeout(r, 200));
        }
        throw new Error(`coredns /health never answered:\n${log}`);
    } finally {
        proc.kill("SIGKILL");
    }
}

describe("add-on manifests", () => {
    describe("selection", () => {
        it("renders one multi-document YAML per enabled add-on, in a fixed order", () => {
            const out = renderAddonManifests(params({ enabled: ["headlamp", "coredns"] }));
            assert.deepEqual(out.map((m) => m.name), ["coredns", "headlamp"]);
            for (const m of out) assert.ok(parseDocs(m.yaml).length > 1, `${m.name} has several objects`);
        });

        it("renders nothing for disabled add-ons", () => {
            assert.deepEqual(renderAddonManifests(params({ enabled: [] })), []);
            const only = render({ enabled: ["metrics-server"] });
            assert.deepEqual([...only.keys()], ["metrics-server"]);
            const text = renderAddonManifests(params({ enabled: ["metrics-server"] }))[0].yaml;
            assert.doesNotMatch(text, /coredns|headlamp|kube-dns/);
        });

        it("renders each add-on once even when it is listed twice", () => {
            assert.deepEqual(renderAddonManifests(params({ enabled: ["coredns", "coredns"] })).map((m) => m.name), ["coredns"]);
        });
    });

    describe("every object", () => {
        const rendered = render({ headlampAdmin: true });

        it("has apiVersion, kind and a name, and no two objects share kind/namespace/name", () => {
            const all = [...rendered.values()].flat();
            for (const o of all) {
                assert.equal(typeof o.apiVersion, "string");
                assert.equal(typeof o.kind, "string");
                assert.equal(typeof o.metadata?.name, "string");
            }
            const keys = ids(all);
            assert.equal(new Set(keys).size, keys.length, `duplicates in ${keys.join(", ")}`);
        });

        it("is labelled with its add-on and managed-by kubeha, pod templates included", () => {
            for (const [addon, objs] of rendered) {
                for (const o of objs) {
                    const where = `${addon}: ${o.kind}/${o.metadata.name}`;
                    assert.equal(o.metadata.labels?.["app.kubernetes.io/name"], addon, where);
                    assert.equal(o.metadata.labels?.["app.kubernetes.io/managed-by"], "kubeha", where);
                    if (o.kind === "Deployment") {
                        const t = o.spec.template.metadata.labels;
                        assert.equal(t["app.kubernetes.io/name"], addon, `${where} pod template`);
                        assert.equal(t["app.kubernetes.io/managed-by"], "kubeha", `${where} pod template`);
                        for (const [k, v] of Object.entries(o.spec.selector.matchLabels)) {
                            assert.equal(t[k], v, `${where}: selector ${k} does not match the pod template`);
                        }
                    }
                }
            }
        });

        it("takes every image from the parameters", () => {
            const expected: Record<AddonName, string> = {
                "coredns": IMAGES.coredns, "metrics-server": IMAGES.metricsServer, "headlamp": IMAGES.headlamp,
            };
            for (const [addon, objs] of rendered) {
                const used = images(objs);
                assert.ok(used.length > 0, `${addon} has no image`);
                for (const img of used) assert.equal(img, expected[addon], addon);
            }
            const other = render({ images: { coredns: "a/c:1", metricsServer: "a/m:v0.8.0", headlamp: "a/h:2" } });
            assert.deepEqual(images(other.get("coredns")), ["a/c:1"]);
            assert.deepEqual(images(other.get("metrics-server")), ["a/m:v0.8.0"]);
            assert.deepEqual(images(other.get("headlamp")), ["a/h:2"]);
        });

        it("creates no long-lived service-account token Secret", () => {
            for (const o of [...rendered.values()].flat()) {
                assert.notEqual(o.kind, "Secret", `${o.kind}/${o.metadata.name}`);
            }
        });
    });

    describe("CoreDNS", () => {
        const objs = render().get("coredns")!;
        const deploy = find(objs, "Deployment", "coredns");
        const corefile = find(objs, "ConfigMap", "coredns").data.Corefile as string;

        it("renders the kubeadm set of objects in kube-system", () => {
            assert.deepEqual(ids(objs), [
                "ClusterRole//system:coredns",
                "ClusterRoleBinding//system:coredns",
                "ConfigMap/kube-system/coredns",
                "Deployment/kube-system/coredns",
                "PodDisruptionBudget/kube-system/coredns",
                "Service/kube-system/kube-dns",
                "ServiceAccount/kube-system/coredns",
            ]);
        });

        it("lets the service account list/watch what the kubernetes plugin reads, EndpointSlices included", () => {
            const role = find(objs, "ClusterRole", "system:coredns");
            assert.deepEqual(role.rules, [
                { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
                { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
            ]);
            const binding = find(objs, "ClusterRoleBinding", "system:coredns");
            assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" });
            assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "coredns", namespace: "kube-system" }]);
            assert.equal(deploy.spec.template.spec.serviceAccountName, "coredns");
        });

        it("gives the kube-dns Service the cluster DNS IP and ports 53/UDP, 53/TCP, 9153/TCP", () => {
            const svc = find(objs, "Service", "kube-dns");
            assert.equal(svc.spec.clusterIP, "10.254.0.2");
            assert.deepEqual(svc.spec.ports.map((p: Obj) => `${p.port}/${p.protocol}`), ["53/UDP", "53/TCP", "9153/TCP"]);
            assert.deepEqual(svc.spec.selector, { "k8s-app": "kube-dns" });
            assert.equal(deploy.spec.template.metadata.labels["k8s-app"], "kube-dns");
            const other = find(render({ clusterDns: "10.96.0.10" }).get("coredns")!, "Service", "kube-dns");
            assert.equal(other.spec.clusterIP, "10.96.0.10");
        });

        it("serves the cluster domain and forwards the rest to /etc/resolv.conf by default", () => {
            assert.match(corefile, /^\.:53 \{$/m);
            assert.deepEqual(corefileDirectives(corefile),
                ["errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload", "loadbalance"]);
            assert.match(corefile, /^ {4}kubernetes cluster\.local in-addr\.arpa ip6\.arpa \{$/m);
            assert.match(corefile, /^\s+pods insecure$/m);
            assert.match(corefile, /^\s+fallthrough in-addr\.arpa ip6\.arpa$/m);
            assert.match(corefile, /^\s+ttl 30$/m);
            assert.match(corefile, /^\s+lameduck 5s$/m);
            assert.match(corefile, /^ {4}prometheus :9153$/m);
            assert.match(corefile, /^ {4}forward \. \/etc\/resolv\.conf \{$/m);
            assert.match(corefile, /^\s+max_concurrent 1000$/m);
            assert.match(corefile, /^ {4}cache 30( \{)?$/m);
            const opens = corefile.split("{").length - 1;
            assert.equal(corefile.split("}").length - 1, opens, "unbalanced braces");
        });

        it("uses the given cluster domain and upstream resolvers", () => {
            const cm = find(render({ clusterDomain: "k8s.example.org", upstreamDns: ["1.1.1.1", "9.9.9.9:53"] }).get("coredns")!, "ConfigMap", "coredns");
            const text = cm.data.Corefile as string;
            assert.match(text, /^ {4}kubernetes k8s\.example\.org in-addr\.arpa ip6\.arpa \{$/m);
            assert.match(text, /^ {4}forward \. 1\.1\.1\.1 9\.9\.9\.9:53 \{$/m);
            assert.doesNotMatch(text, /cluster\.local|resolv\.conf/);
        });

        it("runs replicated, spread over nodes, critical, on Linux, tolerating the control-plane taint", () => {
            const s = deploy.spec.template.spec;
            assert.equal(deploy.spec.replicas, 2);
            assert.equal(find(render({ corednsReplicas: 3 }).get("coredns")!, "Deployment", "coredns").spec.replicas, 3);
            assert.equal(s.priorityClassName, "system-cluster-critical");
            assert.deepEqual(s.nodeSelector, { "kubernetes.io/os": "linux" });
            assert.equal(s.dnsPolicy, "Default");
            assert.ok(s.tolerations.some((t: Obj) => t.key === "node-role.kubernetes.io/control-plane" && t.effect === "NoSchedule"));
            assert.ok(s.tolerations.some((t: Obj) => t.key === "CriticalAddonsOnly" && t.operator === "Exists"));
            const pref = s.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
            assert.equal(pref.length, 1);
            assert.equal(pref[0].podAffinityTerm.topologyKey, "kubernetes.io/hostname");
            assert.deepEqual(pref[0].podAffinityTerm.labelSelector.matchExpressions, [{ key: "k8s-app", operator: "In", values: ["kube-dns"] }]);
            assert.equal(s.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution, undefined);
            const pdb = find(objs, "PodDisruptionBudget", "coredns");
            assert.deepEqual(pdb.spec.selector.matchLabels, deploy.spec.selector.matchLabels);
        });

        it("runs non-root on a read-only root with only NET_BIND_SERVICE, with health and ready probes", () => {
            const c = container(deploy);
            assert.equal(c.image, IMAGES.coredns);
            assert.deepEqual(c.args, ["-conf", "/etc/coredns/Corefile"]);
            const sc = c.securityContext;
            assert.equal(sc.runAsNonRoot, true);
            assert.ok(Number.isInteger(sc.runAsUser) && sc.runAsUser > 0, "a numeric non-root uid");
            assert.equal(sc.readOnlyRootFilesystem, true);
            assert.equal(sc.allowPrivilegeEscalation, false);
            assert.deepEqual(sc.capabilities, { add: ["NET_BIND_SERVICE"], drop: ["ALL"] });
            assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
            const port = (name: string) => c.ports.find((p: Obj) => p.name === name)?.containerPort;
            assert.equal(c.livenessProbe.httpGet.path, "/health");
            assert.equal(port(c.livenessProbe.httpGet.port), 8080);
            assert.equal(c.readinessProbe.httpGet.path, "/ready");
            assert.equal(port(c.readinessProbe.httpGet.port), 8181);
            const mount = c.volumeMounts.find((m: Obj) => m.mountPath === "/etc/coredns");
            const vol = deploy.spec.template.spec.volumes.find((v: Obj) => v.name === mount.name);
            assert.equal(vol.configMap.name, "coredns");
        });
    });

    describe("CoreDNS with the real binary", function () {
        this.timeout(60000);
        before(function () {
            if (!have("coredns")) {
                console.log("      SKIPPED: coredns not on PATH (go install github.com/coredns/coredns@v1.14.7)");
                this.skip();
            }
        });

        it("starts every plugin of the rendered Corefile", async () => {
            const corefile = find(render().get("coredns")!, "ConfigMap", "coredns").data.Corefile;
            const log = await runCoredns(corefile);
            assert.doesNotMatch(log, /\[ERROR\]|\[FATAL\]/);
        });

        it("refuses a Corefile with a broken directive (the check above has teeth)", async () => {
            const broken = renderCorefile("cluster.local", ["/etc/resolv.conf"]).replace("ttl 30", "ttl thirty");
            await assert.rejects(runCoredns(broken), /coredns exited/);
        });
    });

    describe("metrics-server", () => {
        const yamlText = renderAddonManifests(params({ enabled: ["metrics-server"] }))[0].yaml;
        const objs = parseDocs(yamlText);
        const deploy = find(objs, "Deployment", "metrics-server");

        it("renders upstream's components.yaml set of objects", () => {
            assert.deepEqual(ids(objs), [
                "APIService//v1beta1.metrics.k8s.io",
                "ClusterRole//system:aggregated-metrics-reader",
                "ClusterRole//system:metrics-server",
                "ClusterRoleBinding//metrics-server:system:auth-delegator",
                "ClusterRoleBinding//system:metrics-server",
                "Deployment/kube-system/metrics-server",
                "RoleBinding/kube-system/metrics-server-auth-reader",
                "Service/kube-system/metrics-server",
                "ServiceAccount/kube-system/metrics-server",
            ]);
        });

        it("verifies kubelet certificates: upstream's args and never --kubelet-insecure-tls", () => {
            const c = container(deploy);
            assert.deepEqual(c.args, [
                "--cert-dir=/tmp",
                "--secure-port=10250",
                "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                "--kubelet-use-node-status-port",
                "--metric-resolution=15s",
            ]);
            assert.deepEqual(METRICS_SERVER_ARGS, c.args);
            assert.doesNotMatch(yamlText, /kubelet-insecure-tls/);
            assert.equal(c.command, undefined);
            assert.equal(c.image, IMAGES.metricsServer);
        });

        it("registers v1beta1.metrics.k8s.io on the metrics-server Service", () => {
            const api = find(objs, "APIService", "v1beta1.metrics.k8s.io");
            assert.equal(api.apiVersion, "apiregistration.k8s.io/v1");
            assert.equal(api.spec.group, "metrics.k8s.io");
            assert.equal(api.spec.version, "v1beta1");
            assert.deepEqual(api.spec.service, { name: "metrics-server", namespace: "kube-system" });
            assert.equal(api.spec.insecureSkipTLSVerify, true);
            assert.equal(api.spec.groupPriorityMinimum, 100);
            assert.equal(api.spec.versionPriority, 100);
            const svc = find(objs, "Service", "metrics-server");
            assert.equal(svc.spec.ports[0].port, 443);
            const target = container(deploy).ports.find((p: Obj) => p.name === svc.spec.ports[0].targetPort);
            assert.equal(target?.containerPort, 10250, "the Service targets the https container port");
            for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(deploy.spec.template.metadata.labels[k], v);
        });

        it("binds its service account to what an aggregated API server needs", () => {
            const sa = [{ kind: "ServiceAccount", name: "metrics-server", namespace: "kube-system" }];
            const auth = find(objs, "RoleBinding", "metrics-server-auth-reader");
            assert.deepEqual(auth.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "extension-apiserver-authentication-reader" });
            assert.deepEqual(auth.subjects, sa);
            assert.equal(find(objs, "ClusterRoleBinding", "metrics-server:system:auth-delegator").roleRef.name, "system:auth-delegator");
            assert.deepEqual(find(objs, "ClusterRoleBinding", "metrics-server:system:auth-delegator").subjects, sa);
            assert.equal(find(objs, "ClusterRoleBinding", "system:metrics-server").roleRef.name, "system:metrics-server");
            const rules = find(objs, "ClusterRole", "system:metrics-server").rules as Obj[];
            assert.ok(rules.some((r) => r.resources.includes("nodes/metrics") && r.verbs.includes("get")));
            const reader = find(objs, "ClusterRole", "system:aggregated-metrics-reader");
            for (const r of ["view", "edit", "admin"]) {
                assert.equal(reader.metadata.labels[`rbac.authorization.k8s.io/aggregate-to-${r}`], "true");
            }
            assert.equal(deploy.spec.template.spec.serviceAccountName, "metrics-server");
        });

        it("runs non-root on a read-only root with a writable /tmp for its certificate", () => {
            const c = container(deploy);
            assert.equal(c.securityContext.runAsNonRoot, true);
            assert.equal(c.securityContext.readOnlyRootFilesystem, true);
            assert.equal(c.securityContext.allowPrivilegeEscalation, false);
            const tmp = c.volumeMounts.find((m: Obj) => m.mountPath === "/tmp");
            assert.ok(deploy.spec.template.spec.volumes.find((v: Obj) => v.name === tmp.name).emptyDir);
            assert.equal(deploy.spec.template.spec.priorityClassName, "system-cluster-critical");
        });
    });

    describe("Headlamp", () => {
        const objs = render().get("headlamp")!;
        const deploy = find(objs, "Deployment", "headlamp");

        it("follows upstream's plain manifest in kube-system, without the admin account by default", () => {
            assert.deepEqual(ids(objs), [
                "Deployment/kube-system/headlamp",
                "Service/kube-system/headlamp",
                "ServiceAccount/kube-system/headlamp",
            ]);
            assert.equal(objs.some((o) => o.metadata.name === "headlamp-admin"), false);
        });

        it("runs in-cluster with the plugins dir, behind a ClusterIP Service on port 80 -> 4466", () => {
            const c = container(deploy);
            assert.deepEqual(c.args, ["-in-cluster", "-plugins-dir=/headlamp/plugins"]);
            assert.equal(c.image, IMAGES.headlamp);
            assert.deepEqual(c.ports.map((p: Obj) => p.containerPort), [4466]);
            const svc = find(objs, "Service", "headlamp");
            assert.equal(svc.spec.type, "ClusterIP");
            assert.deepEqual(svc.spec.ports.map((p: Obj) => [p.port, p.targetPort]), [[80, 4466]]);
            for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(deploy.spec.template.metadata.labels[k], v);
            assert.equal(c.securityContext.runAsNonRoot, true);
            assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        });

        it("gives the Headlamp pod itself no RBAC binding", () => {
            const sa = deploy.spec.template.spec.serviceAccountName;
            assert.equal(sa, "headlamp");
            for (const o of [...render({ headlampAdmin: true }).values()].flat()) {
                if (!/Binding$/.test(o.kind)) continue;
                assert.ok(!o.subjects.some((s: Obj) => s.name === sa && s.namespace === "kube-system"), `${o.kind}/${o.metadata.name}`);
            }
        });

        it("renders the headlamp-admin account and cluster-admin binding only when asked", () => {
            const admin = render({ headlampAdmin: true }).get("headlamp")!;
            const sa = find(admin, "ServiceAccount", "headlamp-admin");
            assert.equal(sa.metadata.namespace, "kube-system");
            const crb = find(admin, "ClusterRoleBinding", "headlamp-admin");
            assert.deepEqual(crb.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" });
            assert.deepEqual(crb.subjects, [{ kind: "ServiceAccount", name: "headlamp-admin", namespace: "kube-system" }]);
            assert.equal(admin.some((o) => o.kind === "Secret"), false);
        });

        it("documents the login: service account, binding, short-lived token, port-forward", () => {
            for (const cmd of [
                "kubectl -n kube-system create serviceaccount headlamp-admin",
                "kubectl create clusterrolebinding headlamp-admin --clusterrole=cluster-admin --serviceaccount=kube-system:headlamp-admin",
                "kubectl create token headlamp-admin -n kube-system",
                "kubectl port-forward -n kube-system svc/headlamp 8080:80",
            ]) {
                assert.ok(HEADLAMP_LOGIN_HELP.includes(cmd), `missing: ${cmd}`);
            }
            assert.doesNotMatch(HEADLAMP_LOGIN_HELP, /service-account-token/);
        });
    });

    describe("parameter checks", () => {
        it("accepts the defaults and the usual upstream forms", () => {
            assert.deepEqual(validateAddonParams(params()), []);
            assert.deepEqual(validateAddonParams(params({
                upstreamDns: ["1.1.1.1", "9.9.9.9:53", "tls://1.0.0.1", "[2606:4700::1111]:53", "2001:db8::53", "/run/systemd/resolve/resolv.conf"],
            })), []);
            assert.deepEqual(validateAddonParams(params({ images: { ...IMAGES, metricsServer: "r/m:v0.8.0@sha256:" + "a".repeat(64) } })), []);
        });

        it("lists every problem at once, each naming its field", () => {
            let message = "";
            assert.throws(() => renderAddonManifests(params({
                clusterDns: "10.254.0",
                clusterDomain: "Cluster.Local\nfoo",
                upstreamDns: ["8.8.8.8 {", "resolv.conf"],
                corednsReplicas: 0,
                images: { ...IMAGES, headlamp: "" },
                enabled: [...ALL, "dashboard" as AddonName],
            })), (e: Error) => { message = e.message; return true; });
            for (const field of ["clusterDns", "clusterDomain", "upstreamDns: \"8.8.8.8 {\"", "upstreamDns: \"resolv.conf\"", "corednsReplicas", "images.headlamp", "\"dashboard\""]) {
                assert.ok(message.includes(field), `no problem about ${field} in:\n${message}`);
            }
        });

        it("refuses a metrics-server release the manifest was not written for", () => {
            const problems = validateAddonParams(params({ images: { ...IMAGES, metricsServer: "registry.k8s.io/metrics-server/metrics-server:v0.9.0" } }));
            assert.equal(problems.length, 1);
            assert.match(problems[0], /^images\.metricsServer: .*v0\.8/);
        });

        it("ignores the parameters of disabled add-ons", () => {
            assert.deepEqual(validateAddonParams(params({
                enabled: ["headlamp"], clusterDns: "", clusterDomain: "", images: { ...IMAGES, coredns: "", metricsServer: "" },
            })), []);
        });

        it("refuses more than 15 upstreams (CoreDNS forward's limit)", () => {
            const many = Array.from({ length: 16 }, (_, i) => `10.0.0.${i + 1}`);
            assert.match(validateAddonParams(params({ upstreamDns: many })).join("\n"), /at most 15/);
        });
    });
});
