// WorkerPool: every node (the workers, and the masters when they are workers too), in the seed's
// order: host preparation and preflight -> containerd + runc + CNI -> kubelet (TLS bootstrapping)
// -> kube-proxy; then the kubelets' serving certificates are approved for exactly these nodes, and
// each node is Ready. Nodes are independent: adding one touches only that host, removing one
// drains it, deletes its Node object and cleans the host.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec, Host } from "../spec/types";
import { ArtifactKey, artifactsFor } from "../spec/artifacts";
import { digestOf, filesDigest, importImages, installArtifact, putFiles, runScript, sha256, shellQuote, systemdService, waitHealthy } from "../host/remote";
import {
    NODE, nodeCommands, nodeHosts, registryHostsPath, renderContainerdConfig, renderContainerdUnit,
    renderKubeletConfig, renderKubeletUnit, renderKubeProxyConfig, renderKubeProxyUnit, renderModulesLoad, renderPreflightScript,
    renderRegistryHosts, renderSysctlConf,
} from "../render/node";
import { renderCniConflist } from "../render/flannel";
import { localKubectl } from "../render/control-plane";
import {
    BIN_DIR, CNI_CONFLIST, CONTAINERD_CONFIG, KUBE_PROXY_CONFIG, KUBECONFIG, KUBELET_CONFIG, KUBELET_DIR, KUBELET_KUBECONFIG,
    MODULES_LOAD_CONF, PKI_DIR, PREFLIGHT_SCRIPT, SYSCTL_CONF,
} from "../render/paths";
import { HostFile } from "../render/types";
import { HostContexts } from "./context";
import { ServingCertApproval } from "./serving-cert-approver";

export interface WorkerPoolArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** Per host: flanneld wrote its subnet file (pods need it). */
    networkReady: Record<string, pulumi.Resource>;
    /** The API answers at its endpoint and the TLS-bootstrap RBAC is in place. */
    apiReady: pulumi.Resource[];
    /** For the serving-certificate approval, which runs on the machine running pulumi. */
    clusterCaCert: pulumi.Output<string>;
    adminCertPem: pulumi.Output<string>;
    adminKeyPem: pulumi.Output<string>;
}

/** Distribution packages a node's components run (iptables, nft, ...); installed only when missing. */
export function nodePackagesScript(spec: ClusterSpec, host: string): string {
    const needs = nodeCommands(spec);
    const missing = needs.map((c) => `command -v ${c.command} >/dev/null || pkgs="$pkgs ${c.pkg}"`);
    return [
        "pkgs=",
        ...missing,
        "[ -n \"$pkgs\" ] || exit 0",
        "if command -v apt-get >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs",
        "elif command -v dnf >/dev/null; then dnf install -y -q $pkgs",
        `else echo "${host}: install$pkgs (no apt-get or dnf here)" >&2; exit 1`,
        "fi",
    ].join("\n");
}


/** Waits for the Node to be Ready and labels a master's; on delete drains it and deletes the Node. */
export function nodeMembershipScripts(spec: ClusterSpec, node: Host, timeoutSeconds = 300): { create: string; delete: string } {
    const k = localKubectl(spec, 20);
    const n = shellQuote(node.name);
    const labels = node.roles.includes("master") ? [`${k} label node ${n} --overwrite node-role.kubernetes.io/control-plane= >/dev/null`] : [];
    return {
        create: [
            `i=0; until [ "$(${k} get node ${n} -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do`,
            `  i=$((i + 2)); if [ "$i" -ge ${timeoutSeconds} ]; then`,
            `    echo "${node.name}: the Node is not Ready after ${timeoutSeconds}s; see journalctl -u kubelet on ${node.name} and kubectl describe node ${node.name}" >&2`,
            `    ${k} get node ${n} -o 'jsonpath={range .status.conditions[*]}{.type}={.status} {.message}{"\\n"}{end}' >&2 || true; exit 1`,
            "  fi; sleep 2",
            "done",
            ...labels,
            `echo "${node.name} is Ready"`,
        ].join("\n"),
        // A node leaves gracefully: drained (bounded), then forgotten by the API. A drain that
        // times out (a PodDisruptionBudget that cannot be met) is reported and the removal goes on.
        delete: [
            `if ${k} get node ${n} >/dev/null 2>&1; then`,
            `  ${k} drain ${n} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s || echo "${node.name}: drain did not finish in 120s; deleting the Node anyway" >&2`,
            `  ${k} delete node ${n} --ignore-not-found`,
            "fi",
        ].join("\n"),
    };
}

/** Stops what containerd left running (shims keep containers alive across a containerd stop) and unmounts its and kubelet's mounts. */
const UNMOUNT_UNDER = (dir: string) => `awk '{print $2}' /proc/mounts | grep '^${dir}/' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done`;

export class WorkerPool extends pulumi.ComponentResource {
    /** Per node: Ready, labelled. */
    readonly ready: Record<string, pulumi.Resource>;
    readonly servingCerts?: ServingCertApproval;

    constructor(name: string, args: WorkerPoolArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:nodes:WorkerPool", name, {}, opts);
        const { spec, hosts } = args;
        const child = { parent: this };
        const artifacts = artifactsFor(spec);
        const artifact = (key: ArtifactKey) => artifacts.find((a) => a.key === key)!;
        const version = (key: ArtifactKey) => artifact(key).sha256 ?? artifact(key).version;
        const nodes = nodeHosts(spec);
        const kubelets: pulumi.Resource[] = [];
        const proxies: Record<string, pulumi.Resource> = {};

        for (const n of nodes) {
            const ctx = hosts[n.name];
            const res = (s: string) => `${name}-${n.name}-${s}`;
            const after = (...r: pulumi.Resource[]) => ({ ...child, dependsOn: r });

            // 1. Host preparation: packages, kernel modules and sysctls, then the preflight.
            const packages = runScript(res("packages"), ctx.target, { script: nodePackagesScript(spec, n.name), rerunOn: [sha256(nodePackagesScript(spec, n.name))] }, after(ctx.base));
            const kernelFiles: HostFile[] = [
                { path: MODULES_LOAD_CONF, content: renderModulesLoad(spec), mode: "0644", secret: false },
                { path: SYSCTL_CONF, content: renderSysctlConf(), mode: "0644", secret: false },
                { path: PREFLIGHT_SCRIPT, content: renderPreflightScript(spec, n), mode: "0755", secret: false },
            ];
            const kernel = putFiles(res("host-settings"), ctx.target, kernelFiles, after(ctx.base));
            const preflight = runScript(res("preflight"), ctx.target, {
                // sysctl --system reports keys this kernel or container lacks; the preflight names what matters.
                script: `${NODE.applyKernelSettings} || true\n${PREFLIGHT_SCRIPT}`,
                rerunOn: [filesDigest(kernelFiles)],
            }, after(kernel, packages));

            // 2. Binaries, all in parallel.
            const installs = (["containerd", "runc", "cni-plugins", "flannel-cni-plugin", "kubelet", "kube-proxy"] as ArtifactKey[])
                .map((key) => installArtifact(res(`${key}-binary`), ctx.target, artifact(key), spec.binarySource, after(ctx.base)));

            // 3. containerd with runc, its registry mirrors, and the CNI config pods use.
            const containerdFiles: HostFile[] = [
                { path: CONTAINERD_CONFIG, content: renderContainerdConfig(spec), mode: "0644", secret: false },
                ...spec.node.registryMirrors.map((m) => ({ path: registryHostsPath(m.registry), content: renderRegistryHosts(m), mode: "0644", secret: false })),
                { path: CNI_CONFLIST, content: renderCniConflist(), mode: "0644", secret: false },
            ];
            const containerdConfig = putFiles(res("containerd-config"), ctx.target, containerdFiles, after(ctx.base));
            const containerdUnit = renderContainerdUnit();
            const containerd = systemdService(res("containerd"), ctx.target, {
                unit: NODE.containerdUnit, content: containerdUnit,
                inputs: [filesDigest(containerdFiles.filter((f) => f.path !== CNI_CONFLIST)), version("containerd"), version("runc")],
                // Pods outlive containerd (their shims keep them): stop them through their cgroups
                // first, then the shims (matched by path, so the pattern never matches this script).
                cleanupOnDelete: ["systemctl stop kubepods.slice 2>/dev/null || true", `pkill -f '^${BIN_DIR}/containerd-shim' 2>/dev/null || true`, "sleep 1",
                    UNMOUNT_UNDER("/run/containerd"), UNMOUNT_UNDER("/var/lib/containerd")].join("\n"),
                removeOnDelete: ["/var/lib/containerd", "/run/containerd", "/opt/containerd"],
            }, after(preflight, containerdConfig, ...installs));
            const containerdReady = waitHealthy(res("containerd-ready"), ctx.target, {
                what: "containerd", check: `${BIN_DIR}/ctr version >/dev/null`, timeoutSeconds: 60, rerunOn: [],
            }, after(containerd));

            // Preloaded images (air-gapped sites): in containerd before the kubelet asks for them.
            const images = spec.node.imageArchives.length > 0
                ? [importImages(res("images"), ctx.target, spec.node.imageArchives, `${BIN_DIR}/ctr`, after(containerdReady))] : [];

            // 4. kubelet: TLS bootstrapping from the bootstrap kubeconfig, then its own rotated certificates.
            const kubeletConfig = renderKubeletConfig(spec, n);
            const kubeletConfigFile = putFiles(res("kubelet-config"), ctx.target, [{ path: KUBELET_CONFIG, content: kubeletConfig, mode: "0644", secret: false }], after(ctx.base));
            const kubeletUnit = renderKubeletUnit(spec, n);
            const kubeletDigest = pulumi.all([sha256(kubeletUnit + kubeletConfig), digestOf(ctx.pki, [KUBECONFIG.bootstrapKubelet, `${PKI_DIR}/ca.crt`]), version("kubelet")])
                .apply((d) => sha256(d.join()));
            const kubelet = systemdService(res("kubelet"), ctx.target, {
                unit: NODE.kubeletUnit, content: kubeletUnit, inputs: [kubeletDigest],
                cleanupOnDelete: UNMOUNT_UNDER(KUBELET_DIR),
                removeOnDelete: [KUBELET_DIR, KUBELET_KUBECONFIG],
            }, after(containerdReady, ...images, kubeletConfigFile, ctx.pkiFiles, args.networkReady[n.name], ...installs, ...args.apiReady));
            const kubeletHealthy = waitHealthy(res("kubelet-healthy"), ctx.target, {
                what: "kubelet", check: `curl -fsS --max-time 3 ${NODE.kubeletHealthz} >/dev/null`, timeoutSeconds: 120, rerunOn: [kubeletDigest],
            }, after(kubelet));
            kubelets.push(kubeletHealthy);

            // 5. kube-proxy.
            const proxyConfig = renderKubeProxyConfig(spec, n);
            const proxyConfigFile = putFiles(res("kube-proxy-config"), ctx.target, [{ path: KUBE_PROXY_CONFIG, content: proxyConfig, mode: "0644", secret: false }], after(ctx.base));
            const proxyUnit = renderKubeProxyUnit();
            const proxyDigest = pulumi.all([sha256(proxyUnit + proxyConfig), digestOf(ctx.pki, [KUBECONFIG.kubeProxy]), version("kube-proxy")]).apply((d) => sha256(d.join()));
            const proxy = systemdService(res("kube-proxy"), ctx.target, {
                unit: NODE.kubeProxyUnit, content: proxyUnit, inputs: [proxyDigest],
                // Its rules go with it (nftables table, iptables chains or IPVS services).
                cleanupOnDelete: `${BIN_DIR}/kube-proxy --cleanup >/dev/null 2>&1 || true`,
                removeOnDelete: [KUBE_PROXY_CONFIG.replace(/\/[^/]+$/, "")],
            }, after(proxyConfigFile, ctx.pkiFiles, preflight, ...installs, ...args.apiReady));
            proxies[n.name] = waitHealthy(res("kube-proxy-healthy"), ctx.target, {
                what: "kube-proxy", check: `curl -s --max-time 3 -o /dev/null http://127.0.0.1:10256/healthz`, timeoutSeconds: 60, rerunOn: [proxyDigest],
            }, after(proxy));
        }

        // 6. Serving certificates: approved for exactly these nodes' names and IPs (never blanket).
        if (nodes.length > 0) {
            this.servingCerts = new ServingCertApproval(`${name}-serving-certs`, {
                apiServerUrl: spec.apiEndpoint.url,
                caCertPem: args.clusterCaCert,
                adminCertPem: args.adminCertPem,
                adminKeyPem: args.adminKeyPem,
                nodes: nodes.map((n) => ({ name: n.name, ip: n.ip })),
            }, { ...child, dependsOn: kubelets });
        }

        // 7. Each node Ready (and a master's labelled); removing a node from the config drains it first.
        const first = hosts[spec.masters[0].name];
        this.ready = Object.fromEntries(nodes.map((n) => {
            const scripts = nodeMembershipScripts(spec, n);
            return [n.name, runScript(`${name}-${n.name}-member`, first.target, { script: scripts.create, delete: scripts.delete, rerunOn: [] },
                // Everything on the node depends on this: on removal the drain runs while kubelet still works.
                { ...child, dependsOn: [kubelets[nodes.indexOf(n)], proxies[n.name], ...(this.servingCerts ? [this.servingCerts] : [])] })];
        }));
        this.registerOutputs({});
    }
}
