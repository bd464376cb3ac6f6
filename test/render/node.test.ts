// Node and flannel files: every rendered JSON/TOML/YAML parsed back and checked field by field,
// the units through systemd-analyze verify. Host preparation (modules, sysctls, preflight) is
// render/host-prep.ts's, tested in host-prep.test.ts.
import { strict as assert } from "node:assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { HA_RAW, SEED_RAW, specOf } from "../fixtures";
import { CAS, certificatesFor } from "../../pki/certlist";
import {
    FLANNEL, flannelConfigKey, flannelConfigPutCommand, flanneldArgs, flannelHosts, renderCniConflist, renderFlanneldUnit,
    renderFlannelNetworkConfig, renderFlannelRbac,
} from "../../render/flannel";
import { renderHostFiles } from "../../render/hosts";
import {
    CONTROL_PLANE_TAINT, kubeletArgs, nodeHosts, registryHostsPath, renderContainerdConfig, renderContainerdUnit, renderKubeletConfig,
    renderKubeletUnit, renderKubeProxyConfig, renderKubeProxyUnit, renderRegistryHosts,
} from "../../render/node";
import {
    CNI_CONFLIST, CONTAINERD_CONFIG, FLANNEL_KUBECONFIG, FLANNEL_NET_CONFIG, KUBE_PROXY_CONFIG, KUBECONFIG, KUBELET_CONFIG, SYSTEMD_DIR,
} from "../../render/paths";
import { PkiMaterial } from "../../render/pki";
import { HostFiles } from "../../render/types";
import { ClusterSpec } from "../../spec/types";
import { requireTool, verifyUnit } from "./tools";

/** Key material as plain markers: enough for renderHostFiles, no key generation. */
function fakeMaterial(spec: ClusterSpec): PkiMaterial {
    const pair = (name: string) => ({ certPem: `CERT ${name}\n`, keyPem: `KEY ${name}\n` });
    return {
        cas: Object.fromEntries(CAS.map((c) => [c.name, pair(c.name)])) as PkiMaterial["cas"],
        certs: Object.fromEntries(certificatesFor(spec).map((c) => [c.name, pair(c.name)])),
        serviceAccount: { publicKeyPem: "SA PUB\n", privateKeyPem: "SA KEY\n" },
        bootstrapToken: "abcdef.0123456789abcdef",
        encryptionKey: "a2V5",
    };
}

const paths = (files: HostFiles, host: string) => (files.get(host) ?? []).map((f) => f.path);
const content = (files: HostFiles, host: string, path: string) => {
    const f = (files.get(host) ?? []).find((x) => x.path === path);
    assert.ok(f, `${host} has no ${path}`);
    return f.content;
};

/** `--flag=value` pairs of a unit's ExecStart. */
function execArgs(unit: string): Map<string, string> {
    const exec = /^ExecStart=([\s\S]*?)(?=\n[A-Z][A-Za-z]*=)/m.exec(unit)?.[1] ?? "";
    return new Map([...exec.matchAll(/--([a-z0-9-]+)=(\S+)/g)].map((m) => [m[1], m[2]]));
}

/** Absolute paths of files a unit or config reads, which must all be on the host. */
function referencedFiles(text: string): string[] {
    return [...text.matchAll(/(?:file|kubeconfig|cafile|certfile|keyfile|clientCAFile|config|config-path)[=:] ?(\/[^\s,]+)/gi)]
        .map((m) => m[1])
        .filter((p) => !p.startsWith("/run/")); // written by flanneld (subnet.env), not read
}

describe("node rendering", () => {
    const spec = specOf(HA_RAW);
    const worker = spec.workers.find((h) => h.name === "w1")!;
    const master = spec.masters[0];

    describe("flannel", () => {
        it("writes the network config to <prefix>/config for each backend", () => {
            for (const backend of ["vxlan", "host-gw", "wireguard"]) {
                const s = specOf(HA_RAW, { flannelBackend: backend, podCidr: "10.244.0.0/16", podSubnetLength: 24 });
                assert.deepEqual(JSON.parse(renderFlannelNetworkConfig(s)), { Network: "10.244.0.0/16", SubnetLen: 24, Backend: { Type: backend } });
            }
            assert.equal(flannelConfigKey(specOf(SEED_RAW)), "/kubernetes/network/config");
            assert.equal(flannelConfigKey(specOf(HA_RAW, { flannelEtcdPrefix: "/coreos.com/network" })), "/coreos.com/network/config");
            // The value comes on stdin, never on the command line.
            const put = flannelConfigPutCommand(spec);
            assert.match(put, / put \/kubernetes\/network\/config$/);
            assert.match(put, /--endpoints=https:\/\/198\.18\.0\.11:2379,https:\/\/198\.18\.0\.12:2379,https:\/\/198\.18\.0\.13:2379 /);
        });

        it("runs flanneld on every master and node, never on lb hosts", () => {
            assert.deepEqual(flannelHosts(spec).map((h) => h.name), ["m1", "m2", "m3", "w1", "w2"]);
        });

        it("etcd mode: every master's endpoint, the prefix, flanneld's etcd client certificate, the interface", () => {
            const s = specOf(HA_RAW, { etcdClientPort: 2479, flannelEtcdPrefix: "/kubernetes/network" });
            const a = flanneldArgs(s, worker);
            assert.equal(a["etcd-endpoints"], "https://198.18.0.11:2479,https://198.18.0.12:2479,https://198.18.0.13:2479");
            assert.equal(a["etcd-prefix"], "/kubernetes/network");
            assert.equal(a["etcd-cafile"], "/etc/kubernetes/pki/etcd/ca.crt");
            assert.equal(a["etcd-certfile"], "/etc/kubernetes/pki/flanneld-etcd-client.crt");
            assert.equal(a["etcd-keyfile"], "/etc/kubernetes/pki/flanneld-etcd-client.key");
            assert.equal(a["iface"], "host0");
            assert.equal(a["public-ip"], "198.18.0.21");
            assert.equal(a["ip-masq"], true);
            assert.equal(a["subnet-file"], "/run/flannel/subnet.env");
            assert.ok(!("kube-subnet-mgr" in a));
            const unit = renderFlanneldUnit(s, worker);
            assert.match(unit, /^Type=notify$/m);
            assert.equal(execArgs(unit).get("etcd-prefix"), "/kubernetes/network");
            assert.match(renderFlanneldUnit(s, master), /^After=network-online\.target etcd\.service$/m);
            assert.match(unit, /^After=network-online\.target$/m);
        });

        it("kube-subnet-mgr mode: the API instead of etcd, its node by NODE_NAME, the network from a file", () => {
            const s = specOf(HA_RAW, { flannelMode: "kube-subnet-mgr", mastersAreWorkers: true });
            const a = flanneldArgs(s, worker);
            assert.equal(a["kube-subnet-mgr"], true);
            assert.equal(a["kubeconfig-file"], FLANNEL_KUBECONFIG);
            assert.equal(a["net-config-path"], FLANNEL_NET_CONFIG);
            assert.deepEqual(Object.keys(a).filter((k) => k.startsWith("etcd")), []);
            const unit = renderFlanneldUnit(s, worker);
            assert.match(unit, /^Environment=NODE_NAME=w1$/m);
            assert.doesNotMatch(unit, /etcd\.service/);
            const [role, binding] = parseAllDocuments(renderFlannelRbac()).map((d) => d.toJS());
            assert.equal(role.kind, "ClusterRole");
            assert.deepEqual(role.rules.map((r: { resources: string[]; verbs: string[] }) => `${r.resources}:${r.verbs}`), ["nodes:get,list,watch", "nodes/status:patch"]);
            assert.deepEqual(binding.subjects, [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: FLANNEL.apiUser }]);
            assert.equal(binding.roleRef.name, role.metadata.name);
        });

        it("renders the CNI conflist the flannel plugin v0.9.1 reads", () => {
            assert.deepEqual(JSON.parse(renderCniConflist()), {
                name: "cbr0",
                cniVersion: "0.3.1",
                plugins: [
                    { type: "flannel", delegate: { hairpinMode: true, isDefaultGateway: true } },
                    { type: "portmap", capabilities: { portMappings: true } },
                ],
            });
        });
    });

    describe("containerd", () => {
        type Toml = Record<string, any>;

        it("config version 3: systemd cgroups for runc, the pinned sandbox image, certs.d, the CNI dirs", () => {
            const c = parseToml(renderContainerdConfig(specOf(HA_RAW, { sandboxImage: "reg.local:5000/pause:3.10.1" }))) as Toml;
            assert.equal(c.version, 3);
            assert.equal(c.grpc.address, "/run/containerd/containerd.sock");
            const runtime = c.plugins["io.containerd.cri.v1.runtime"];
            assert.equal(runtime.containerd.default_runtime_name, "runc");
            assert.equal(runtime.containerd.runtimes.runc.runtime_type, "io.containerd.runc.v2");
            assert.equal(runtime.containerd.runtimes.runc.options.SystemdCgroup, true);
            assert.equal(runtime.containerd.runtimes.runc.options.BinaryName, "/usr/local/bin/runc");
            assert.deepEqual(runtime.cni.bin_dirs, ["/opt/cni/bin"]);
            assert.equal(runtime.cni.bin_dir, undefined, "bin_dir is deprecated since containerd 2.1");
            assert.equal(runtime.cni.conf_dir, "/etc/cni/net.d");
            const images = c.plugins["io.containerd.cri.v1.images"];
            assert.equal(images.pinned_images.sandbox, "reg.local:5000/pause:3.10.1");
            assert.equal(images.registry.config_path, "/etc/containerd/certs.d");
            // containerd 1.x's keys must not appear.
            assert.equal(c.plugins["io.containerd.grpc.v1.cri"], undefined);
        });

        it("uses cni.bin_dir with containerd 2.0, which has no bin_dirs", () => {
            const c = parseToml(renderContainerdConfig(specOf(HA_RAW, { containerdVersion: "2.0.7" }))) as Toml;
            assert.equal(c.plugins["io.containerd.cri.v1.runtime"].cni.bin_dir, "/opt/cni/bin");
            assert.equal(c.plugins["io.containerd.cri.v1.runtime"].cni.bin_dirs, undefined);
        });

        it("one hosts.toml per mirrored registry: mirrors in order, then the registry itself", () => {
            const s = specOf(HA_RAW, { containerRegistryMirrors: ["docker.io=https://m1.example,http://10.0.0.5:5000", "reg.local:5000=https://m2.example/v2", "_default=https://all.example"] });
            const [docker, local, all] = s.node.registryMirrors;
            const d = parseToml(renderRegistryHosts(docker)) as Toml;
            assert.equal(d.server, "https://registry-1.docker.io");
            assert.deepEqual(Object.keys(d.host), ["https://m1.example", "http://10.0.0.5:5000"]);
            assert.deepEqual(d.host["https://m1.example"].capabilities, ["pull", "resolve"]);
            assert.deepEqual(d.host["http://10.0.0.5:5000"].capabilities, ["pull", "resolve"]);
            assert.equal(registryHostsPath("docker.io"), "/etc/containerd/certs.d/docker.io/hosts.toml");
            assert.equal((parseToml(renderRegistryHosts(local)) as Toml).server, "https://reg.local:5000");
            assert.equal(registryHostsPath("reg.local:5000"), "/etc/containerd/certs.d/reg.local_5000_/hosts.toml");
            assert.equal((parseToml(renderRegistryHosts(all)) as Toml).server, undefined);
            const files = renderHostFiles(s, fakeMaterial(s), "PASS");
            for (const p of ["docker.io", "reg.local_5000_", "_default"]) assert.ok(paths(files, "w1").includes(`/etc/containerd/certs.d/${p}/hosts.toml`), p);
        });

        it("the unit delegates cgroups, leaves containers running on stop and loads overlayfs", () => {
            const u = renderContainerdUnit();
            for (const line of ["Type=notify", "Delegate=yes", "KillMode=process", "ExecStartPre=-/sbin/modprobe overlay", "ExecStart=/usr/local/bin/containerd --config /etc/containerd/config.toml", "LimitNOFILE=1024:524288", "OOMScoreAdjust=-999"]) {
                assert.ok(u.split("\n").includes(line), `missing ${line}`);
            }
            assert.equal(u.match(/^LimitNOFILE=/gm)?.length, 1);
        });
    });

    describe("kubelet", () => {
        it("KubeletConfiguration: webhook auth, x509 with the cluster CA, systemd cgroups, TLS bootstrap", () => {
            const c = parseYaml(renderKubeletConfig(specOf(HA_RAW, { maxPods: 64, clusterDns: "10.254.0.10", clusterDomain: "k8s.example" }), worker));
            assert.equal(c.apiVersion, "kubelet.config.k8s.io/v1beta1");
            assert.equal(c.kind, "KubeletConfiguration");
            assert.deepEqual(c.authentication, { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: "/etc/kubernetes/pki/ca.crt" } });
            assert.deepEqual(c.authorization, { mode: "Webhook" });
            assert.equal(c.cgroupDriver, "systemd");
            assert.equal(c.containerRuntimeEndpoint, "unix:///run/containerd/containerd.sock");
            assert.deepEqual(c.clusterDNS, ["10.254.0.10"]);
            assert.equal(c.clusterDomain, "k8s.example");
            assert.equal(c.rotateCertificates, true);
            assert.equal(c.serverTLSBootstrap, true);
            assert.equal(c.maxPods, 64);
            assert.equal(c.readOnlyPort, 0);
            assert.equal(c.protectKernelDefaults, false);
            assert.equal(c.tlsMinVersion, "VersionTLS12");
            assert.equal(c.failSwapOn, true);
            assert.equal(c.registerWithTaints, undefined, "a plain worker is not tainted");
            for (const gone of ["podInfraContainerImage", "pod-infra-container-image", "containerRuntime", "networkPlugin"]) assert.ok(!(gone in c), gone);
        });

        it("masters that are workers register with the control-plane taint, unless masterTaint is false", () => {
            const s = specOf(HA_RAW, { mastersAreWorkers: true });
            const m = s.workers.find((h) => h.name === "m1")!;
            assert.deepEqual(parseYaml(renderKubeletConfig(s, m)).registerWithTaints, [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }]);
            assert.equal(CONTROL_PLANE_TAINT.effect, "NoSchedule");
            assert.equal(parseYaml(renderKubeletConfig(s, s.workers.find((h) => h.name === "w1")!)).registerWithTaints, undefined);
            const untainted = specOf(HA_RAW, { mastersAreWorkers: true, masterTaint: false });
            assert.equal(parseYaml(renderKubeletConfig(untainted, untainted.masters[0])).registerWithTaints, undefined);
        });

        it("kubelet flags: only what the config file cannot hold", () => {
            assert.deepEqual(kubeletArgs(spec, worker), {
                "config": "/var/lib/kubelet/config.yaml",
                "bootstrap-kubeconfig": "/etc/kubernetes/bootstrap-kubelet.conf",
                "kubeconfig": "/etc/kubernetes/kubelet.conf",
                "cert-dir": "/var/lib/kubelet/pki",
                "node-ip": "198.18.0.21",
                "hostname-override": "w1",
            });
            const u = renderKubeletUnit(spec, worker);
            assert.match(u, /^After=.*\bcontainerd\.service\b/m);
            assert.match(u, /^After=.*\bflanneld\.service\b/m);
            assert.match(u, /^Requires=containerd\.service$/m);
            assert.deepEqual([...execArgs(u).keys()], Object.keys(kubeletArgs(spec, worker)));
        });
    });

    describe("kube-proxy", () => {
        it("KubeProxyConfiguration per kubeProxyMode", () => {
            for (const mode of ["nftables", "ipvs", "iptables"]) {
                const c = parseYaml(renderKubeProxyConfig(specOf(HA_RAW, { kubeProxyMode: mode }), worker));
                assert.equal(c.apiVersion, "kubeproxy.config.k8s.io/v1alpha1");
                assert.equal(c.kind, "KubeProxyConfiguration");
                assert.equal(c.mode, mode);
                assert.deepEqual(c.clientConnection, { kubeconfig: "/etc/kubernetes/kube-proxy.conf" });
                assert.equal(c.clusterCIDR, "172.30.0.0/16");
                assert.equal(c.bindAddress, "198.18.0.21");
                assert.equal(c.metricsBindAddress, "127.0.0.1:10249");
                assert.equal(c.hostnameOverride, "w1");
                assert.deepEqual(c.ipvs, mode === "ipvs" ? { scheduler: "rr" } : undefined);
            }
            assert.equal(execArgs(renderKubeProxyUnit()).get("config"), KUBE_PROXY_CONFIG);
        });

        it("merges containerdExtraConfig over kubeha's containerd config, keeping its other keys", () => {
            const s = specOf(HA_RAW, { containerdExtraConfig: "[plugins.'io.containerd.cri.v1.runtime']\nrestrict_oom_score_adj = true" });
            const c = parseToml(renderContainerdConfig(s)) as { plugins: Record<string, Record<string, unknown>> };
            const runtime = c.plugins["io.containerd.cri.v1.runtime"];
            assert.equal(runtime.restrict_oom_score_adj, true);
            assert.equal((runtime.containerd as { default_runtime_name: string }).default_runtime_name, "runc");
        });

        it("merges kubeProxyExtraConfig and kubeletExtraConfig over kubeha's fields, deeply", () => {
            const s = specOf(HA_RAW, { kubeProxyExtraConfig: "conntrack:\n  maxPerCore: 0\nclusterCIDR: 10.0.0.0/8", kubeletExtraConfig: "failCgroupV1: false\nauthentication:\n  webhook:\n    cacheTTL: 30s" });
            const p = parseYaml(renderKubeProxyConfig(s, worker));
            assert.deepEqual(p.conntrack, { maxPerCore: 0 });
            assert.equal(p.clusterCIDR, "10.0.0.0/8", "the stack's value wins");
            assert.equal(p.mode, "nftables", "kubeha's other fields stay");
            const k = parseYaml(renderKubeletConfig(s, worker));
            assert.equal(k.failCgroupV1, false);
            assert.deepEqual(k.authentication.webhook, { enabled: true, cacheTTL: "30s" }, "nested mappings merge");
            assert.equal(k.authentication.anonymous.enabled, false);
        });
    });

    describe("every host's files", () => {
        it("workers get the node files and flanneld; masters flanneld only; lb hosts neither", () => {
            const files = renderHostFiles(spec, fakeMaterial(spec), "PASS");
            const nodeFiles = [CONTAINERD_CONFIG, CNI_CONFLIST, KUBELET_CONFIG, KUBE_PROXY_CONFIG, "/etc/sysctl.d/99-kubeha.conf", ...["containerd", "kubelet", "kube-proxy"].map((u) => `${SYSTEMD_DIR}/${u}.service`)];
            assert.deepEqual(nodeHosts(spec).map((h) => h.name), ["w1", "w2"]);
            for (const w of ["w1", "w2"]) {
                for (const p of [...nodeFiles, `${SYSTEMD_DIR}/flanneld.service`]) assert.ok(paths(files, w).includes(p), `${w}: ${p}`);
            }
            for (const m of ["m1", "m2", "m3"]) {
                assert.ok(paths(files, m).includes(`${SYSTEMD_DIR}/flanneld.service`), m);
                for (const p of nodeFiles) assert.ok(!paths(files, m).includes(p), `${m} must not get ${p}`);
            }
            for (const lb of ["lb1", "lb2"]) assert.ok(!paths(files, lb).some((p) => /flannel|kubelet|containerd|kube-proxy/.test(p)), lb);
            assert.equal(parseYaml(content(files, "w2", KUBELET_CONFIG)).clusterDomain, "cluster.local");
            assert.equal(execArgs(content(files, "w2", `${SYSTEMD_DIR}/kubelet.service`)).get("node-ip"), "198.18.0.22");
        });

        it("masters that are workers get the node files too, tainted", () => {
            const s = specOf(HA_RAW, { mastersAreWorkers: true });
            const files = renderHostFiles(s, fakeMaterial(s), "PASS");
            assert.deepEqual(nodeHosts(s).map((h) => h.name), ["m1", "m2", "m3", "w1", "w2"]);
            assert.deepEqual(parseYaml(content(files, "m2", KUBELET_CONFIG)).registerWithTaints, [{ ...CONTROL_PLANE_TAINT }]);
            assert.ok(paths(files, "m2").includes(`${SYSTEMD_DIR}/containerd.service`));
        });

        it("every file a node's units and configs read is on that node (etcd mode)", () => {
            const files = renderHostFiles(spec, fakeMaterial(spec), "PASS");
            for (const h of flannelHosts(spec)) {
                const mine = new Set(paths(files, h.name));
                const readers = paths(files, h.name).filter((p) => /\.service$|\/config\.yaml$/.test(p)).map((p) => content(files, h.name, p));
                const missing = readers.flatMap(referencedFiles).filter((p) => !mine.has(p) && p !== "/etc/kubernetes/kubelet.conf");
                assert.deepEqual(missing, [], `${h.name} lacks files its units read`);
            }
            // The check sees what it should: the kubelet's and flanneld's credentials.
            const w1 = referencedFiles(content(files, "w1", `${SYSTEMD_DIR}/kubelet.service`)).concat(referencedFiles(content(files, "w1", `${SYSTEMD_DIR}/flanneld.service`)));
            for (const p of [KUBECONFIG.bootstrapKubelet, "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/flanneld-etcd-client.key"]) assert.ok(w1.includes(p), p);
            assert.ok(referencedFiles(content(files, "w1", KUBE_PROXY_CONFIG)).includes(KUBECONFIG.kubeProxy));
        });

        it("kube-subnet-mgr: net-conf.json on every flannel host; flanneld's kubeconfig is not issued yet (pki gap)", () => {
            const s = specOf(HA_RAW, { flannelMode: "kube-subnet-mgr", mastersAreWorkers: true });
            const files = renderHostFiles(s, fakeMaterial(s), "PASS");
            for (const h of flannelHosts(s)) {
                assert.deepEqual(JSON.parse(content(files, h.name, FLANNEL_NET_CONFIG)), { Network: "172.30.0.0/16", SubnetLen: 21, Backend: { Type: "vxlan" } });
                const missing = referencedFiles(content(files, h.name, `${SYSTEMD_DIR}/flanneld.service`)).filter((p) => !paths(files, h.name).includes(p));
                // When pki/certlist.ts gains a flanneld API client row, this becomes [] and the test must say so.
                assert.deepEqual(missing, [FLANNEL_KUBECONFIG], h.name);
            }
        });
    });

    describe("systemd-analyze verify", () => {
        it("accepts every node and flanneld unit", function () {
            requireTool(this, "systemd-analyze", "systemd");
            const kube = specOf(HA_RAW, { flannelMode: "kube-subnet-mgr", mastersAreWorkers: true });
            const units: [string, string][] = [
                ["containerd.service", renderContainerdUnit()],
                ["kubelet.service", renderKubeletUnit(spec, worker)],
                ["kube-proxy.service", renderKubeProxyUnit()],
                ["flanneld.service", renderFlanneldUnit(spec, master)],
                ["flanneld.service", renderFlanneldUnit(kube, kube.workers[0])],
            ];
            // kubelet Requires= containerd: systemd-analyze must find the rendered unit on its search path.
            const deps = mkdtempSync(join(tmpdir(), "kubeha-units-"));
            writeFileSync(join(deps, "containerd.service"), renderContainerdUnit());
            const saved = process.env.SYSTEMD_UNIT_PATH;
            process.env.SYSTEMD_UNIT_PATH = `${deps}:`; // the trailing colon keeps the default paths
            try {
                for (const [name, text] of units) {
                    const r = verifyUnit(name, text);
                    assert.equal(r.output, "", `${name}:\n${r.output}`);
                }
            } finally {
                if (saved === undefined) delete process.env.SYSTEMD_UNIT_PATH;
                else process.env.SYSTEMD_UNIT_PATH = saved;
            }
            assert.notEqual(verifyUnit("containerd.service", renderContainerdUnit().replace("KillMode=process", "KillMode=proces")).output, "");
        });
    });
});
