// What every node runs — the workers, and the masters when mastersAreWorkers: containerd (with
// runc and the CNI plugins), kubelet joining through TLS bootstrap, kube-proxy, the kernel
// settings they need and a preflight check of the host.
import { stringify as toToml } from "smol-toml";
import { Document, isMap, isScalar, stringify as toYaml } from "yaml";
import { CAS } from "../pki/certlist";
import { ClusterSpec, Host, RegistryMirror } from "../spec/types";
import { FLANNEL } from "./flannel";
import {
    BIN_DIR, CNI_BIN_DIR, CNI_CONF_DIR, CONTAINERD_CERTS_DIR, CONTAINERD_CONFIG, CONTAINERD_SOCKET, KUBE_PROXY_CONFIG,
    KUBECONFIG, KUBELET_CONFIG, KUBELET_KUBECONFIG, KUBELET_PKI_DIR, KUBELET_RESOLV_CONF,
} from "./paths";
import { Args, argsToCommandLine, mergeArgs, renderUnit } from "./systemd";

export const NODE = {
    containerdUnit: "containerd.service",
    kubeletUnit: "kubelet.service",
    kubeProxyUnit: "kube-proxy.service",
    kubeletHealthz: "http://127.0.0.1:10248/healthz",
    kubeProxyMetrics: "127.0.0.1:10249",
} as const;

/**
 * The node's own view of its Node object, with the kubelet's client certificate (the Node
 * authorizer lets a kubelet read its own Node): succeeds once it is Ready.
 */
export function nodeReadyCheck(spec: ClusterSpec, host: Host): string {
    const cert = `${KUBELET_PKI_DIR}/kubelet-client-current.pem`;
    return `curl -fsS --max-time 5 --cacert ${clusterCaCert()} --cert ${cert} --key ${cert} ${spec.apiEndpoint.url}/api/v1/nodes/${host.name} | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'`;
}

export const CONTROL_PLANE_TAINT = { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" } as const;

/** Hosts running containerd, kubelet and kube-proxy: the workers, and the masters when mastersAreWorkers. */
export function nodeHosts(spec: ClusterSpec): Host[] {
    return spec.workers;
}

const clusterCaCert = (): string => {
    const ca = CAS.find((c) => c.name === "ca");
    if (!ca) throw new Error("pki/certlist.ts has no cluster CA");
    return ca.certPath;
};

// ---------------------------------------------------------------- containerd

/** containerd 2.1 replaced cni.bin_dir with the list bin_dirs (bin_dir is deprecated). */
function cniBinDirKey(containerdVersion: string): { bin_dir: string } | { bin_dirs: string[] } {
    const [major, minor] = containerdVersion.split(".").map(Number);
    return major > 2 || (major === 2 && minor >= 1) ? { bin_dirs: [CNI_BIN_DIR] } : { bin_dir: CNI_BIN_DIR };
}

/** containerd 2.x config (version 3): only what kubeha changes from containerd's defaults. */
export function containerdConfig(spec: ClusterSpec): Record<string, unknown> {
    return mergeConfig({
        version: 3,
        grpc: { address: CONTAINERD_SOCKET },
        plugins: {
            "io.containerd.cri.v1.images": {
                // Pinned images are never garbage-collected; kubelet no longer names the sandbox image.
                pinned_images: { sandbox: spec.node.sandboxImage },
                registry: { config_path: CONTAINERD_CERTS_DIR },
            },
            "io.containerd.cri.v1.runtime": {
                containerd: {
                    default_runtime_name: "runc",
                    runtimes: {
                        runc: {
                            runtime_type: "io.containerd.runc.v2",
                            // SystemdCgroup matches the kubelet's cgroupDriver: systemd.
                            options: { BinaryName: `${BIN_DIR}/runc`, SystemdCgroup: true },
                        },
                    },
                },
                cni: { ...cniBinDirKey(spec.versions.containerd), conf_dir: CNI_CONF_DIR, max_conf_num: 1 },
            },
        },
    }, spec.node.containerdExtraConfig);
}

export function renderContainerdConfig(spec: ClusterSpec): string {
    return `# Managed by kubeha: changes are overwritten by \`pulumi up\`.\n${toToml(containerdConfig(spec))}\n`;
}

/** containerd looks up certs.d/<host>_<port>_ first for a registry with a port (hosts.go hostDirectory). */
export function registryHostsPath(registry: string): string {
    const dir = registry.replace(/^(.*):(\d+)$/, "$1_$2_");
    return `${CONTAINERD_CERTS_DIR}/${dir}/hosts.toml`;
}

/** One certs.d hosts.toml: the mirrors in order, then the registry itself (`server`). */
export function registryHostsConfig(m: RegistryMirror): Record<string, unknown> {
    const server = m.registry === "_default" ? undefined
        : m.registry === "docker.io" ? "https://registry-1.docker.io" : `https://${m.registry}`;
    return {
        ...(server ? { server } : {}),
        host: Object.fromEntries(m.mirrors.map((url) => [url, { capabilities: ["pull", "resolve"] }])),
    };
}

export function renderRegistryHosts(m: RegistryMirror): string {
    return `# Managed by kubeha: mirrors of ${m.registry}, tried in order.\n${toToml(registryHostsConfig(m))}\n`;
}

export function renderContainerdUnit(): string {
    return renderUnit({
        description: "containerd container runtime (kubeha)",
        documentation: "https://containerd.io",
        // Not after flanneld: containerd needs no pod network to start; the kubelet waits for it.
        after: ["network-online.target", "local-fs.target"],
        type: "notify",
        execStartPre: ["-/sbin/modprobe overlay"],
        execStart: `${BIN_DIR}/containerd --config ${CONTAINERD_CONFIG}`,
        service: {
            // Containers live in cgroups below this unit's; stopping containerd leaves them running.
            Delegate: "yes",
            KillMode: "process",
            Restart: "always",
            RestartSec: 5,
            // systemd's own default, as containerd 2.x's unit intends: containers start with the
            // soft limit 1024 (a huge soft limit slows programs that walk every descriptor), and
            // containerd raises its own soft limit to the hard one.
            LimitNOFILE: "1024:524288",
            LimitNPROC: "infinity",
            LimitCORE: "infinity",
            TasksMax: "infinity",
            OOMScoreAdjust: -999,
        },
    });
}

// ---------------------------------------------------------------- kubelet

/** Masters that are workers carry the control-plane taint (masterTaint); plain workers none. */
export function kubeletTaints(spec: ClusterSpec, host: Host): { key: string; effect: string }[] {
    return host.roles.includes("master") && spec.node.masterTaint ? [{ ...CONTROL_PLANE_TAINT }] : [];
}

export function kubeletConfig(spec: ClusterSpec, host: Host): Record<string, unknown> {
    const taints = kubeletTaints(spec, host);
    return mergeConfig({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        authentication: {
            anonymous: { enabled: false },
            webhook: { enabled: true },
            x509: { clientCAFile: clusterCaCert() },
        },
        authorization: { mode: "Webhook" },
        cgroupDriver: "systemd",
        containerRuntimeEndpoint: `unix://${CONTAINERD_SOCKET}`,
        clusterDNS: [spec.network.clusterDns],
        clusterDomain: spec.network.clusterDomain,
        // Real nameservers for pods with dnsPolicy Default (CoreDNS's upstreams), kept by the host preparation.
        resolvConf: KUBELET_RESOLV_CONF,
        // Client certificate renewed through CSRs; the serving certificate is requested as a CSR
        // (kubernetes.io/kubelet-serving) that something must approve: kube-controller-manager never does.
        rotateCertificates: true,
        serverTLSBootstrap: true,
        maxPods: spec.node.maxPods,
        readOnlyPort: 0,
        protectKernelDefaults: false,
        seccompDefault: true,
        tlsMinVersion: "VersionTLS12",
        failSwapOn: true,
        healthzBindAddress: "127.0.0.1",
        ...(taints.length ? { registerWithTaints: taints } : {}),
    }, spec.node.kubeletExtraConfig);
}

/** Deep merge of plain mappings: `extra` wins; lists and scalars are replaced, not merged. */
export function mergeConfig(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(extra)) {
        const b = out[k];
        const isMap = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);
        out[k] = isMap(b) && isMap(v) ? mergeConfig(b, v) : v;
    }
    return out;
}

export function renderKubeletConfig(spec: ClusterSpec, host: Host): string {
    const doc = new Document(kubeletConfig(spec, host));
    doc.commentBefore = " Managed by kubeha: changes are overwritten by `pulumi up`.";
    const protect = isMap(doc.contents) ? doc.contents.items.find((p) => isScalar(p.key) && p.key.value === "protectKernelDefaults") : undefined;
    if (!protect || !isScalar(protect.key)) throw new Error("KubeletConfiguration lacks protectKernelDefaults");
    protect.key.commentBefore = [
        " false: the kubelet sets the kernel tunables it needs (vm.overcommit_memory, kernel.panic, ...)",
        " itself. true (CIS 4.2.6) makes it refuse to start unless they are preset, which kubeha's",
        " sysctl.d file does not do yet.",
    ].join("\n");
    return doc.toString();
}

export function kubeletArgs(_spec: ClusterSpec, host: Host): Args {
    // Only what has no KubeletConfiguration field; everything else is in the config file.
    return mergeArgs({
        "config": KUBELET_CONFIG,
        "bootstrap-kubeconfig": KUBECONFIG.bootstrapKubelet,
        "kubeconfig": KUBELET_KUBECONFIG,
        "cert-dir": KUBELET_PKI_DIR,
        "node-ip": host.ip,
        "hostname-override": host.name,
    });
}

export function renderKubeletUnit(spec: ClusterSpec, host: Host): string {
    return renderUnit({
        description: "Kubernetes node agent (kubeha)",
        documentation: "https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/",
        after: ["network-online.target", NODE.containerdUnit, FLANNEL.unit],
        requires: [NODE.containerdUnit],
        execStart: argsToCommandLine(`${BIN_DIR}/kubelet`, kubeletArgs(spec, host)),
        service: { Restart: "always", RestartSec: 10 },
    });
}

// ---------------------------------------------------------------- kube-proxy

export function kubeProxyConfig(spec: ClusterSpec, host: Host): Record<string, unknown> {
    const mode = spec.network.kubeProxyMode;
    return mergeConfig({
        apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        mode,
        clientConnection: { kubeconfig: KUBECONFIG.kubeProxy },
        clusterCIDR: spec.network.podCidr,
        // Also kube-proxy's idea of the node's primary IP (the same as kubelet's --node-ip).
        bindAddress: host.ip,
        metricsBindAddress: NODE.kubeProxyMetrics,
        hostnameOverride: host.name,
        ...(mode === "ipvs" ? { ipvs: { scheduler: "rr" } } : {}),
    }, spec.node.kubeProxyExtraConfig);
}

export function renderKubeProxyConfig(spec: ClusterSpec, host: Host): string {
    return `# Managed by kubeha: changes are overwritten by \`pulumi up\`.\n${toYaml(kubeProxyConfig(spec, host))}`;
}

export function renderKubeProxyUnit(): string {
    return renderUnit({
        description: "Kubernetes network proxy (kubeha)",
        documentation: "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/",
        execStart: argsToCommandLine(`${BIN_DIR}/kube-proxy`, { config: KUBE_PROXY_CONFIG }),
        service: { Restart: "always", RestartSec: 5 },
    });
}

// ---------------------------------------------------------------- kernel settings and preflight


