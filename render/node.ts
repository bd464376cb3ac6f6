// What every node runs — the workers, and the masters when mastersAreWorkers: containerd (with
// runc and the CNI plugins), kubelet joining through TLS bootstrap, kube-proxy, the kernel
// settings they need and a preflight check of the host.
import { stringify as toToml } from "smol-toml";
import { Document, isMap, isScalar, stringify as toYaml } from "yaml";
import { CAS } from "../pki/certlist";
import { ClusterSpec, FlannelBackend, Host, KubeProxyMode, RegistryMirror } from "../spec/types";
import { FLANNEL } from "./flannel";
import {
    BIN_DIR, CNI_BIN_DIR, CNI_CONF_DIR, CONTAINERD_CERTS_DIR, CONTAINERD_CONFIG, CONTAINERD_SOCKET, KUBE_PROXY_CONFIG,
    KUBECONFIG, KUBELET_CONFIG, KUBELET_KUBECONFIG, KUBELET_PKI_DIR, KUBELET_RESOLV_CONF, MODULES_LOAD_CONF, SYSCTL_CONF,
} from "./paths";
import { Args, argsToCommandLine, mergeArgs, renderUnit } from "./systemd";

export const NODE = {
    containerdUnit: "containerd.service",
    kubeletUnit: "kubelet.service",
    kubeProxyUnit: "kube-proxy.service",
    /** Applies the rendered modules-load.d and sysctl.d files now (they apply at every boot anyway). */
    applyKernelSettings: "systemctl restart systemd-modules-load.service; sysctl --system >/dev/null",
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

// Tables keyed by the unions: the compiler demands a row for every mode and backend.
const PROXY_MODULES: Record<KubeProxyMode, string[]> = {
    nftables: ["nf_tables"],
    ipvs: ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"],
    iptables: [],
};
const BACKEND_MODULES: Record<FlannelBackend, string[]> = {
    "vxlan": ["vxlan"],
    "host-gw": [],
    "wireguard": ["wireguard"],
};
const PROXY_COMMANDS: Record<KubeProxyMode, { command: string; pkg: string }[]> = {
    nftables: [{ command: "nft", pkg: "nftables" }],
    ipvs: [{ command: "ipset", pkg: "ipset" }],
    iptables: [],
};

/** The kernel config symbol of each module: a kernel with it built in (=y) has no module to load. */
const KERNEL_CONFIG: Record<string, string> = {
    overlay: "OVERLAY_FS", br_netfilter: "BRIDGE_NETFILTER", nf_tables: "NF_TABLES", nf_conntrack: "NF_CONNTRACK",
    ip_vs: "IP_VS", ip_vs_rr: "IP_VS_RR", ip_vs_wrr: "IP_VS_WRR", ip_vs_sh: "IP_VS_SH", vxlan: "VXLAN", wireguard: "WIREGUARD",
};

/** Kernel modules a node needs: overlayfs for containerd, bridge netfilter, kube-proxy's and flannel's. */
export function nodeKernelModules(spec: ClusterSpec): string[] {
    return ["overlay", "br_netfilter", ...PROXY_MODULES[spec.network.kubeProxyMode], ...BACKEND_MODULES[spec.network.flannelBackend]];
}

/** Pods' traffic is routed (ip_forward) and bridged traffic passes iptables (Services, masquerade). */
export const NODE_SYSCTLS: readonly { key: string; value: string }[] = [
    { key: "net.ipv4.ip_forward", value: "1" },
    { key: "net.bridge.bridge-nf-call-iptables", value: "1" },
];

/** Commands the node's components run: iptables (flannel --ip-masq, portmap), mount (kubelet), kube-proxy's. */
export function nodeCommands(spec: ClusterSpec): { command: string; pkg: string }[] {
    return [
        { command: "iptables", pkg: "iptables" },
        { command: "mount", pkg: "mount" },
        { command: "modprobe", pkg: "kmod" },
        ...PROXY_COMMANDS[spec.network.kubeProxyMode],
    ];
}

export function renderModulesLoad(spec: ClusterSpec): string {
    return ["# Managed by kubeha: kernel modules the node's components need.", ...nodeKernelModules(spec), ""].join("\n");
}

export function renderSysctlConf(): string {
    return ["# Managed by kubeha: kernel settings pod networking needs.", ...NODE_SYSCTLS.map((s) => `${s.key} = ${s.value}`), ""].join("\n");
}

export interface PreflightOverrides {
    /** Prefix of /proc and /sys (tests point it at a fake tree). */
    root?: string;
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * POSIX sh run on a node before containerd and kubelet start. Lists every problem, each as
 * "kubeha preflight on <host>: <what is missing> — <fix>", then exits 1; a clock not known to be
 * synchronised is only a warning. Loads a missing module if it can (modprobe).
 */
export function renderPreflightScript(spec: ClusterSpec, host: Host, overrides: PreflightOverrides = {}): string {
    const modules = nodeKernelModules(spec);
    const sysctls = NODE_SYSCTLS.map((s) => `${s.key}:${s.key.replace(/\./g, "/")}:${s.value}`);
    const commands = nodeCommands(spec).map((c) => `${c.command}:${c.pkg}`);
    return [
        "#!/bin/sh",
        "# Managed by kubeha: checks this node can run containerd, kubelet, kube-proxy and flanneld.",
        `host=${shq(host.name)}`,
        `root=${shq(overrides.root ?? "")}`,
        "failed=0",
        "fail() { printf 'kubeha preflight on %s: %s — %s\\n' \"$host\" \"$1\" \"$2\" >&2; failed=$((failed + 1)); }",
        "warn() { printf 'kubeha preflight on %s: warning: %s — %s\\n' \"$host\" \"$1\" \"$2\" >&2; }",
        "",
        "# Swap: the kubelet refuses to start with swap on (failSwapOn).",
        "swaps=",
        "if [ -r \"$root/proc/swaps\" ]; then",
        "    while read -r dev _rest; do",
        "        case $dev in Filename | '') ;; *) swaps=\"$swaps $dev\" ;; esac",
        "    done <\"$root/proc/swaps\"",
        "fi",
        "[ -z \"$swaps\" ] || fail \"swap is on (${swaps# })\" \"turn it off with swapoff -a and remove it from /etc/fstab so it stays off\"",
        "",
        "# Kernel modules: loaded, built in (modules.builtin, or =y in /proc/config.gz: hosts and containers",
        "# without /lib/modules), else loadable now.",
        "kconfig= nl='\n'",
        "[ -r \"$root/proc/config.gz\" ] && kconfig=$(gzip -dc <\"$root/proc/config.gz\" 2>/dev/null || true)",
        "builtin=",
        "release=",
        "[ -r \"$root/proc/sys/kernel/osrelease\" ] && read -r release <\"$root/proc/sys/kernel/osrelease\"",
        "[ -r \"$root/lib/modules/$release/modules.builtin\" ] && builtin=$(cat \"$root/lib/modules/$release/modules.builtin\")",
        `for mc in ${modules.map((m) => `${m}:${KERNEL_CONFIG[m] ?? ""}`).join(" ")}; do`,
        "    m=${mc%%:*} sym=${mc#*:}",
        "    [ -d \"$root/sys/module/$m\" ] && continue",
        "    case \"$builtin\" in */$m.ko*) continue ;; esac",
        "    if [ -n \"$sym\" ]; then case \"$nl$kconfig$nl\" in *\"${nl}CONFIG_$sym=y$nl\"*) continue ;; esac; fi",
        "    modprobe \"$m\" >/dev/null 2>&1 ||",
        `        fail "kernel module $m is not loaded and cannot be loaded" "install the kernel's modules package (${MODULES_LOAD_CONF} loads it at boot), or load it on the machine hosting this container"`,
        "done",
        "",
        `# Kernel settings (kubeha keeps them in ${SYSCTL_CONF}).`,
        `for s in ${sysctls.join(" ")}; do`,
        "    key=${s%%:*} rest=${s#*:}",
        "    path=${rest%%:*} want=${rest#*:}",
        "    have=",
        "    [ -r \"$root/proc/sys/$path\" ] && read -r have <\"$root/proc/sys/$path\"",
        "    [ \"$have\" = \"$want\" ] ||",
        `        fail "sysctl $key is \${have:-missing}, not $want" "apply ${SYSCTL_CONF} with sysctl --system (after loading br_netfilter), or sysctl -w $key=$want"`,
        "done",
        "",
        "# Commands the components run.",
        `for c in ${commands.join(" ")}; do`,
        "    command -v \"${c%%:*}\" >/dev/null 2>&1 || fail \"command ${c%%:*} is missing\" \"install the ${c#*:} package\"",
        "done",
        "",
        "# Service IPs from the node itself (kubelet probes, hostNetwork pods): kube-proxy rewrites them",
        "# only after the kernel found a route, so one must cover the service network.",
        `if command -v ip >/dev/null 2>&1 && ! ip route get ${spec.kubernetesServiceIp} >/dev/null 2>&1; then`,
        `    fail "no route to the Service network ${spec.network.serviceCidr}" "add a default route, or a route for ${spec.network.serviceCidr} on ${spec.network.interface}"`,
        "fi",
        "",
        "# Time: certificates and etcd need agreeing clocks; not fatal, since the check cannot see every NTP client.",
        "synced=no",
        "if command -v timedatectl >/dev/null 2>&1 && [ \"$(timedatectl show -p NTPSynchronized --value 2>/dev/null)\" = yes ]; then",
        "    synced=yes",
        "elif command -v chronyc >/dev/null 2>&1; then",
        "    case $(chronyc -n tracking 2>/dev/null) in *'Leap status'*Normal*) synced=yes ;; esac",
        "fi",
        "[ \"$synced\" = yes ] || warn \"the clock is not known to be synchronised (timedatectl NTPSynchronized is not yes, chronyc reports no normal tracking)\" \"run an NTP client such as systemd-timesyncd or chrony\"",
        "",
        "if [ \"$failed\" -gt 0 ]; then",
        "    printf 'kubeha preflight on %s: %s check(s) failed — fix them and run pulumi up again\\n' \"$host\" \"$failed\" >&2",
        "    exit 1",
        "fi",
        "echo \"kubeha preflight on $host: ok\"",
        "",
    ].join("\n");
}
