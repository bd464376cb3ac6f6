// The one typed description of a cluster. Everything below spec/ reads this, never raw config.

export type Role = "master" | "worker" | "lb";
export type KubeProxyMode = "nftables" | "ipvs" | "iptables";
export type FlannelBackend = "vxlan" | "host-gw" | "wireguard";
export type KeyAlgorithm = "ECDSA" | "RSA";
/** etcd: flanneld keeps config and leases in the masters' etcd; kube-subnet-mgr: in Node objects. */
export type FlannelMode = "etcd" | "kube-subnet-mgr";
export type AddonName = "coredns" | "metrics-server" | "headlamp";

export const KUBE_PROXY_MODES: readonly KubeProxyMode[] = ["nftables", "ipvs", "iptables"];
export const FLANNEL_BACKENDS: readonly FlannelBackend[] = ["vxlan", "host-gw", "wireguard"];
export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ["ECDSA", "RSA"];
export const FLANNEL_MODES: readonly FlannelMode[] = ["etcd", "kube-subnet-mgr"];
export const ADDON_NAMES: readonly AddonName[] = ["coredns", "metrics-server", "headlamp"];

export interface Host {
    /** Hostname, also the node name and the etcd member name. */
    name: string;
    /** Address kubeha connects to and every component binds/advertises on. */
    ip: string;
    roles: Role[];
    /** Expected SSH host key ("ssh-ed25519 AAAA…"), from the known_hosts file; undefined when checking is off. */
    hostKey?: string;
}

export interface SshSettings {
    user: string;
    port: number;
    /** Prefix remote commands with sudo (a non-root user). */
    sudo: boolean;
    hostKeyChecking: boolean;
}

export interface NetworkSettings {
    /** Interface carrying cluster traffic on every host (flannel --iface, keepalived). */
    interface: string;
    /** Subnet of the hosts' addresses; the VIP must lie in it. */
    hostCidr: string;
    serviceCidr: string;
    podCidr: string;
    /** Prefix length of each node's pod subnet. */
    podSubnetLength: number;
    clusterDns: string;
    clusterDomain: string;
    nodePortRange: { from: number; to: number };
    kubeProxyMode: KubeProxyMode;
    flannelBackend: FlannelBackend;
    flannelMode: FlannelMode;
    /** etcd key prefix of flannel's network config (`<prefix>/config`) and leases (flannelMode etcd). */
    flannelEtcdPrefix: string;
}

export interface RegistryMirror {
    /** Registry host as image names spell it ("docker.io", "registry.k8s.io", "reg.local:5000"), or "_default". */
    registry: string;
    /** Mirror URLs (http or https), tried in order before the registry itself. */
    mirrors: string[];
}

/** What every node (worker, or master when mastersAreWorkers) runs: containerd and kubelet. */
export interface NodeSettings {
    /** Pod sandbox (pause) image, pinned in containerd's config (kubelet has no flag for it since 1.35). */
    sandboxImage: string;
    /** Pull mirrors per registry, one containerd certs.d hosts.toml each. Default none. */
    registryMirrors: RegistryMirror[];
    /** kubelet maxPods (default 110); fits the node's pod subnet. */
    maxPods: number;
    /** Nodes changed at once when a change restarts what runs on them (default 1). */
    rollBatchSize: number;
    /** Masters that are workers register with node-role.kubernetes.io/control-plane:NoSchedule (default true). */
    masterTaint: boolean;
    /** Image archives (paths on the machine running pulumi) imported into every node's containerd. */
    imageArchives: string[];
    /** Tables merged over kubeha's containerd config.toml (deeply; yours win). Default none. */
    containerdExtraConfig: Record<string, unknown>;
    /** Fields merged over kubeha's KubeletConfiguration (deeply; yours win). Default none. */
    kubeletExtraConfig: Record<string, unknown>;
    /** Fields merged over kubeha's KubeProxyConfiguration (deeply; yours win). Default none. */
    kubeProxyExtraConfig: Record<string, unknown>;
}

export interface AddonSettings {
    /** Add-ons to install, in this order (default all of ADDON_NAMES). */
    enabled: AddonName[];
    /** Full image references with a tag or digest. */
    images: { coredns: string; metricsServer: string; headlamp: string };
    /** CoreDNS upstream resolvers; empty = the node's /etc/resolv.conf. */
    upstreamDns: string[];
    /** Render the headlamp-admin ServiceAccount + cluster-admin binding (default false). */
    headlampAdmin: boolean;
}

export interface LoadBalancerSettings {
    vip: string;
    /** Port nginx listens on, on the VIP. */
    port: number;
    virtualRouterId: number;
    /** nginx worker_connections. */
    workerConnections: number;
}

export interface Ports {
    apiserver: number;
    etcdClient: number;
    etcdPeer: number;
}

export interface CertificateSettings {
    keyAlgorithm: KeyAlgorithm;
    caValidityHours: number;
    validityHours: number;
    /** A `pulumi up` this close to expiry re-issues the certificate. */
    earlyRenewalHours: number;
}

export interface Versions {
    kubernetes: string;
    etcd: string;
    containerd: string;
    runc: string;
    cniPlugins: string;
    flannel: string;
    flannelCniPlugin: string;
}

export type BinarySourceKind = "download" | "local";

export interface EtcdSettings {
    dataDir: string;
    walDir: string;
    /** etcd --auto-compaction-retention, in hours (seed: 1). */
    autoCompactionRetentionHours: number;
    quotaBackendBytes: number;
    heartbeatIntervalMs: number;
    electionTimeoutMs: number;
    /** Extra etcd flags ("--flag=value"), overriding kubeha's. */
    extraArgs: string[];
    backup: { schedule: string; retention: number; dir: string };
}

export interface ControlPlaneSettings {
    apiserverExtraArgs: string[];
    controllerManagerExtraArgs: string[];
    schedulerExtraArgs: string[];
    auditLogMaxAgeDays: number;
    auditLogMaxBackups: number;
    auditLogMaxSizeMb: number;
}

export interface ClusterSpec {
    clusterName: string;
    hosts: Host[];
    masters: Host[];
    /** Hosts running containerd, kubelet and kube-proxy: the workers, and the masters when mastersAreWorkers. */
    workers: Host[];
    loadBalancers: Host[];
    /** Masters also run kubelet, kube-proxy and containerd. */
    mastersAreWorkers: boolean;
    ssh: SshSettings;
    network: NetworkSettings;
    /** Present exactly when there are lb hosts. */
    loadBalancer?: LoadBalancerSettings;
    ports: Ports;
    certificates: CertificateSettings;
    etcd: EtcdSettings;
    controlPlane: ControlPlaneSettings;
    node: NodeSettings;
    addons: AddonSettings;
    versions: Versions;
    binarySource: { kind: BinarySourceKind; localDir?: string };
    /** sha256 pins from config, by artifact key (spec/artifacts.ts). */
    artifactChecksums: Record<string, string>;
    /** Derived: the address every client uses for the API (VIP:port, or the single master). */
    apiEndpoint: { host: string; port: number; url: string };
    /** Derived: first address of the service CIDR (the `kubernetes` Service). */
    kubernetesServiceIp: string;
}
