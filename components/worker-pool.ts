// WorkerPool: every node (the workers, and the masters when they are workers too), in the seed's
// order: containerd + runc + CNI -> flanneld -> preloaded images -> kubelet (TLS bootstrapping) ->
// kube-proxy, each behind its health gate, the kubelet's being "the Node is Ready". New nodes join
// all at once; a change that restarts something on running nodes rolls nodeRollBatchSize nodes at
// a time, and a node that fails stops the roll there. A node removed from the config is drained,
// its Node deleted, then its host cleaned. Then the kubelets' serving certificates are approved
// for exactly these nodes.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec, Host } from "../spec/types";
import { ArtifactKey, artifactsFor } from "../spec/artifacts";
import { archiveBinary, artifactBinaries, HostGroup, hostManifest, HostScript, script, unit } from "../host/group";
import {
    NODE, nodeHosts, nodeReadyCheck, registryHostsPath, renderContainerdConfig, renderContainerdUnit, renderKubeletConfig,
    renderKubeletUnit, renderKubeProxyConfig, renderKubeProxyUnit, renderRegistryHosts,
} from "../render/node";
import { renderCniConflist } from "../render/flannel";
import { localKubectl } from "../render/control-plane";
import {
    BIN_DIR, CNI_CONFLIST, CONTAINERD_CONFIG, KUBE_PROXY_CONFIG, KUBECONFIG, KUBELET_CONFIG, KUBELET_DIR, KUBELET_KUBECONFIG, PKI_DIR, STATE_DIR,
} from "../render/paths";
import { HostFile } from "../render/types";
import { HostContexts, pickPki, unitFile, unitPath } from "./context";
import { flanneldOnHost } from "./flannel-network";
import { ServingCertApproval } from "./serving-cert-approver";
import { shellQuote } from "../host/ssh";

export interface WorkerPoolArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** The pod network config is in etcd (flanneld may start), the API answers at its endpoint, bootstrap RBAC is in place. */
    ready: pulumi.Resource[];
    /** For the serving-certificate approval, which runs on the machine running pulumi. */
    clusterCaCert: pulumi.Output<string>;
    adminCertPem: pulumi.Output<string>;
    adminKeyPem: pulumi.Output<string>;
}

/** Where preloaded image archives are kept on a node (imported into containerd from there). */
export const IMAGES_DIR = `${STATE_DIR}/images`;

/** Run on the first master before a node leaves: drained (bounded), then forgotten by the API. */
export function nodeRemovalScript(spec: ClusterSpec, node: Host): string {
    const k = localKubectl(spec, 20);
    const n = shellQuote(node.name);
    // A drain that times out (a PodDisruptionBudget that cannot be met) is reported and the removal goes on.
    return [
        `if ${k} get node ${n} >/dev/null 2>&1; then`,
        `  ${k} drain ${n} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s >/dev/null 2>&1 && echo "drained ${node.name}" || echo "${node.name}: drain did not finish in 120s; deleting the Node anyway" >&2`,
        `  ${k} delete node ${n} --ignore-not-found >/dev/null && echo "deleted Node ${node.name}"`,
        "fi",
    ].join("\n");
}

/** Stops what containerd left running (shims keep containers alive across a containerd stop) and unmounts its and kubelet's mounts. */
const UNMOUNT_UNDER = (dir: string) => `awk '{print $2}' /proc/mounts | grep '^${dir}/' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done`;

export class WorkerPool extends pulumi.ComponentResource {
    /** Every node converged and Ready. */
    readonly nodes: HostGroup;
    readonly servingCerts: ServingCertApproval;
    readonly labels?: HostScript;

    constructor(name: string, args: WorkerPoolArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:nodes:WorkerPool", name, {}, opts);
        const { spec, hosts } = args;
        const artifacts = artifactsFor(spec);
        const binaries = (["containerd", "runc", "cni-plugins", "flannel-cni-plugin", "kubelet", "kube-proxy"] as ArtifactKey[])
            .flatMap((key) => artifactBinaries(artifacts.find((a) => a.key === key)!, spec.binarySource));
        const archives = spec.node.imageArchives.map((a) => archiveBinary(a, IMAGES_DIR));
        const containerdFiles: HostFile[] = [
            { path: CONTAINERD_CONFIG, content: renderContainerdConfig(spec), mode: "0644", secret: false },
            ...spec.node.registryMirrors.map((m) => ({ path: registryHostsPath(m.registry), content: renderRegistryHosts(m), mode: "0644", secret: false })),
        ];
        const nodes = nodeHosts(spec);

        const members = nodes.map((n) => hosts[n.name].pki.apply((pki) => {
            const flannel = flanneldOnHost(spec, n, pki);
            return hostManifest(n, {
                files: [
                    ...pickPki(n.name, pki, [`${PKI_DIR}/ca.crt`, KUBECONFIG.kubeProxy, KUBECONFIG.bootstrapKubelet]),
                    ...flannel.files,
                    ...containerdFiles,
                    { path: CNI_CONFLIST, content: renderCniConflist(), mode: "0644", secret: false },
                    { path: KUBELET_CONFIG, content: renderKubeletConfig(spec, n), mode: "0644", secret: false },
                    { path: KUBE_PROXY_CONFIG, content: renderKubeProxyConfig(spec, n), mode: "0644", secret: false },
                    unitFile(NODE.containerdUnit, renderContainerdUnit()),
                    unitFile(NODE.kubeletUnit, renderKubeletUnit(spec, n)),
                    unitFile(NODE.kubeProxyUnit, renderKubeProxyUnit()),
                ],
                binaries: [...binaries, ...flannel.binaries, ...archives],
                steps: [
                    unit({
                        name: NODE.containerdUnit,
                        reads: [unitPath(NODE.containerdUnit), ...containerdFiles.map((f) => f.path), ...["containerd", "containerd-shim-runc-v2", "runc"].map((b) => `${BIN_DIR}/${b}`)],
                        health: { what: "containerd", check: `${BIN_DIR}/ctr version >/dev/null`, timeoutSeconds: 60 },
                        // Pods outlive containerd (their shims keep them): stop them through their cgroups
                        // first, then the shims (matched by path, so the pattern never matches this script).
                        cleanup: ["systemctl stop kubepods.slice 2>/dev/null || true", `pkill -f '^${BIN_DIR}/containerd-shim' 2>/dev/null || true`, "sleep 1",
                            UNMOUNT_UNDER("/run/containerd"), UNMOUNT_UNDER("/var/lib/containerd")].join("\n"),
                        removeOnDelete: ["/var/lib/containerd", "/run/containerd", "/opt/containerd"],
                    }),
                    flannel.step,
                    // Preloaded images (air-gapped sites): in containerd before the kubelet asks for them.
                    ...(archives.length ? [script({
                        name: "import-images", reads: archives.map((a) => a.path),
                        script: archives.map((a) => `${BIN_DIR}/ctr -n k8s.io images import ${a.path} >/dev/null && echo "imported ${a.path.replace(/^.*\//, "")}"`).join("\n"),
                    })] : []),
                    unit({
                        name: NODE.kubeletUnit,
                        reads: [unitPath(NODE.kubeletUnit), KUBELET_CONFIG, KUBECONFIG.bootstrapKubelet, `${PKI_DIR}/ca.crt`, `${BIN_DIR}/kubelet`],
                        health: {
                            what: `kubelet /healthz and Node ${n.name} Ready`,
                            check: `curl -fsS --max-time 3 ${NODE.kubeletHealthz} >/dev/null && ${nodeReadyCheck(spec, n)}`, timeoutSeconds: 300,
                        },
                        cleanup: UNMOUNT_UNDER(KUBELET_DIR),
                        removeOnDelete: [KUBELET_DIR, KUBELET_KUBECONFIG],
                    }),
                    unit({
                        name: NODE.kubeProxyUnit,
                        reads: [unitPath(NODE.kubeProxyUnit), KUBE_PROXY_CONFIG, KUBECONFIG.kubeProxy, `${BIN_DIR}/kube-proxy`],
                        health: { what: "kube-proxy /healthz", check: "curl -s --max-time 3 -o /dev/null http://127.0.0.1:10256/healthz", timeoutSeconds: 60 },
                        // Its rules go with it (nftables table, iptables chains or IPVS services).
                        cleanup: `${BIN_DIR}/kube-proxy --cleanup >/dev/null 2>&1 || true`,
                        removeOnDelete: [KUBE_PROXY_CONFIG.replace(/\/[^/]+$/, "")],
                    }),
                ],
                beforeRemove: nodeRemovalScript(spec, n),
            });
        }));
        this.nodes = new HostGroup(`${name}-hosts`, {
            group: "nodes", members: pulumi.all(members), roll: { batch: spec.node.rollBatchSize }, controller: spec.masters[0],
        }, { parent: this, dependsOn: args.ready });

        // Serving certificates: approved for exactly these nodes' names and IPs (never blanket).
        this.servingCerts = new ServingCertApproval(`${name}-serving-certs`, {
            apiServerUrl: spec.apiEndpoint.url,
            caCertPem: args.clusterCaCert,
            adminCertPem: args.adminCertPem,
            adminKeyPem: args.adminKeyPem,
            nodes: nodes.map((n) => ({ name: n.name, ip: n.ip })),
        }, { parent: this, dependsOn: [this.nodes] });

        // Masters that are nodes carry the control-plane role label (kubelets may not set it themselves).
        const masterNodes = nodes.filter((n) => n.roles.includes("master"));
        if (masterNodes.length) {
            const k = localKubectl(spec, 20);
            const labels = masterNodes.map((m) => `${k} label node ${shellQuote(m.name)} --overwrite node-role.kubernetes.io/control-plane= >/dev/null`).join("\n");
            this.labels = new HostScript(`${name}-master-labels`, { what: "control-plane node labels", host: spec.masters[0], script: labels, rerunOn: [labels] },
                { parent: this, dependsOn: [this.nodes] });
        }
        this.registerOutputs({});
    }
}
