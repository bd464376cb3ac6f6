// flanneld on every master and node, the network config it shares, and the CNI conflist pods use.
// etcd mode (the seed's): config and subnet leases in the masters' etcd under flannelEtcdPrefix,
// reached with the flanneld etcd client certificate. kube-subnet-mgr mode: leases are the Node
// objects' spec.podCIDR, flanneld talks to the API with its own kubeconfig.
import { stringify } from "yaml";
import { CAS, CERT_ROWS, nodesRunningFlannel } from "../pki/certlist";
import { ClusterSpec, Host } from "../spec/types";
import { etcdctl, etcdEndpoints, ETCD } from "./etcd";
import { BIN_DIR, FLANNEL_KUBECONFIG, FLANNEL_NET_CONFIG, FLANNEL_SUBNET_FILE } from "./paths";
import { Args, argsToCommandLine, mergeArgs, renderUnit } from "./systemd";

export const FLANNEL = {
    unit: "flanneld.service",
    /** User name of flanneld's API client certificate (kube-subnet-mgr), bound by renderFlannelRbac. */
    apiUser: "kubeha:flanneld",
    clusterRole: "kubeha:flanneld",
} as const;

/** Every host that runs flanneld: the masters (their apiservers reach pods) and the nodes. */
export function flannelHosts(spec: ClusterSpec): Host[] {
    return nodesRunningFlannel(spec);
}

/** The etcd client certificate files flanneld uses, as the certificate table places them. */
export function flanneldEtcdClientFiles(): { ca: string; cert: string; key: string } {
    const row = CERT_ROWS.find((r) => r.name === "flanneld");
    const ca = CAS.find((c) => c.name === "etcd-ca");
    if (!row || row.placement.kind !== "files" || row.signer !== "etcd-ca" || !ca) {
        throw new Error("pki/certlist.ts has no flanneld etcd client certificate (files signed by etcd-ca)");
    }
    return { ca: ca.certPath, cert: row.placement.certPath, key: row.placement.keyPath };
}

/** flannel's network config: the pod CIDR, each node's share of it, and the backend. */
export function flannelNetworkConfig(spec: ClusterSpec): { Network: string; SubnetLen: number; Backend: { Type: string } } {
    const n = spec.network;
    return { Network: n.podCidr, SubnetLen: n.podSubnetLength, Backend: { Type: n.flannelBackend } };
}

export function renderFlannelNetworkConfig(spec: ClusterSpec): string {
    return JSON.stringify(flannelNetworkConfig(spec));
}

/** The etcd key flanneld reads its network config from (etcd mode). */
export function flannelConfigKey(spec: ClusterSpec): string {
    return `${spec.network.flannelEtcdPrefix}/config`;
}

/**
 * Run on a master: writes the network config (given on stdin, renderFlannelNetworkConfig) to
 * flannelConfigKey with the etcd healthcheck client. A put of the same value is harmless.
 */
export function flannelConfigPutCommand(spec: ClusterSpec): string {
    return `${etcdctl(etcdEndpoints(spec))} put ${flannelConfigKey(spec)}`;
}

export function flanneldArgs(spec: ClusterSpec, host: Host): Args {
    const mode = spec.network.flannelMode;
    const common: Args = {
        "iface": spec.network.interface,
        // The address other hosts reach this one on, as kubelet's --node-ip: not whatever the
        // interface lists first.
        "public-ip": host.ip,
        "ip-masq": true,
        "subnet-file": FLANNEL_SUBNET_FILE,
    };
    switch (mode) {
        case "etcd": {
            const etcd = flanneldEtcdClientFiles();
            return mergeArgs({
                "etcd-endpoints": etcdEndpoints(spec),
                "etcd-prefix": spec.network.flannelEtcdPrefix,
                "etcd-cafile": etcd.ca,
                "etcd-certfile": etcd.cert,
                "etcd-keyfile": etcd.key,
                ...common,
            });
        }
        case "kube-subnet-mgr":
            return mergeArgs({
                "kube-subnet-mgr": true,
                "kubeconfig-file": FLANNEL_KUBECONFIG,
                "net-config-path": FLANNEL_NET_CONFIG,
                ...common,
            });
        default: {
            const unknown: never = mode;
            throw new Error(`unknown flannel mode ${String(unknown)}`);
        }
    }
}

export function renderFlanneldUnit(spec: ClusterSpec, host: Host): string {
    const kube = spec.network.flannelMode === "kube-subnet-mgr";
    const localEtcd = !kube && host.roles.includes("master");
    return renderUnit({
        description: "flannel pod network (kubeha)",
        documentation: "https://github.com/flannel-io/flannel",
        // kubelet.service orders itself after this unit: pods need /run/flannel/subnet.env.
        after: ["network-online.target", ...(localEtcd ? [ETCD.unit] : [])],
        // flanneld notifies systemd once it holds a lease and wrote the subnet file.
        type: "notify",
        execStart: argsToCommandLine(`${BIN_DIR}/flanneld`, flanneldArgs(spec, host)),
        // kube-subnet-mgr finds its Node by NODE_NAME (outside a pod there is no POD_NAME).
        service: { Restart: "always", RestartSec: 5, ...(kube ? { Environment: `NODE_NAME=${host.name}` } : {}) },
    });
}

/** The CNI conflist: the flannel plugin (delegating to bridge + host-local) and portmap for hostPorts. */
export function cniConflist(): object {
    return {
        name: "cbr0",
        // 0.3.1 on purpose: the lab builds the flannel plugin from containernetworking/plugins v0.9.1.
        cniVersion: "0.3.1",
        plugins: [
            { type: "flannel", delegate: { hairpinMode: true, isDefaultGateway: true } },
            { type: "portmap", capabilities: { portMappings: true } },
        ],
    };
}

export function renderCniConflist(): string {
    return JSON.stringify(cniConflist(), null, 2) + "\n";
}

/**
 * kube-subnet-mgr only: what flanneld may do through the API (flannel's upstream ClusterRole,
 * less `pods get`, which only an in-cluster flanneld uses to find its node).
 */
export function renderFlannelRbac(): string {
    const labels = { "app.kubernetes.io/managed-by": "kubeha" };
    const docs = [
        {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRole",
            metadata: { name: FLANNEL.clusterRole, labels },
            rules: [
                { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
                { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
            ],
        },
        {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: FLANNEL.clusterRole, labels },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: FLANNEL.clusterRole },
            subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: FLANNEL.apiUser }],
        },
    ];
    return docs.map((d) => stringify(d)).join("---\n");
}
