// Every stack setting, once: its type, default and meaning. Pulumi.yaml's `config:` block and the
// README's reference are checked against this table by test/spec/settings.test.ts.

export type SettingType = "string" | "integer" | "boolean" | "array";

export interface Setting {
    type: SettingType;
    description: string;
    default?: string | number | boolean | string[];
    /**
     * Must be set with `pulumi config set --secret`. Not declared `secret` in Pulumi.yaml: Pulumi
     * rejects a secret key with a (plaintext) default, and optional keys need one. The program
     * refuses a plaintext value instead (index.ts).
     */
    secret?: boolean;
}

export const NAMESPACE = "kubeha";

export const SETTINGS = {
    clusterName: { type: "string", default: "kubernetes", description: "Cluster name used in kubeconfigs." },
    masters: { type: "array", description: 'Control-plane hosts as "name=ip" (1, 3 or 5): etcd, kube-apiserver, kube-controller-manager, kube-scheduler.' },
    workers: { type: "array", default: [], description: 'Worker hosts as "name=ip": containerd, kubelet, kube-proxy, flanneld.' },
    loadBalancers: { type: "array", default: [], description: 'API load balancer hosts as "name=ip" (0 or 2+): nginx stream proxy + keepalived VIP.' },
    mastersAreWorkers: { type: "boolean", default: false, description: "Masters also run containerd, kubelet and kube-proxy (tainted NoSchedule unless masterTaint is false)." },

    sshUser: { type: "string", default: "root", description: "SSH user on every host; a non-root user runs remote commands with sudo (passwordless)." },
    sshPort: { type: "integer", default: 22, description: "SSH port on every host." },
    sshPrivateKey: { type: "string", default: "", secret: true, description: "SSH private key (OpenSSH PEM) for sshUser, set with `pulumi config set --secret kubeha:sshPrivateKey < key`; when empty, the ssh-agent at SSH_AUTH_SOCK is used." },
    sshPrivateKeyFile: { type: "string", default: "", description: "Path of the SSH private key on the machine running pulumi, read at `pulumi up` and kept as a secret (instead of sshPrivateKey)." },
    sshHostKeyChecking: { type: "boolean", default: true, description: "Verify each host's SSH host key against sshKnownHostsFile." },
    sshKnownHostsFile: { type: "string", default: "~/.ssh/known_hosts", description: "OpenSSH known_hosts file listing every host by IP (read on the machine running pulumi)." },

    hostInterface: { type: "string", default: "eth0", description: "Network interface carrying cluster traffic on every host (flannel --iface, keepalived)." },
    hostCidr: { type: "string", description: "Subnet of the hosts' addresses; every host and the VIP must lie in it." },
    serviceCidr: { type: "string", default: "10.254.0.0/16", description: "Service ClusterIP range; its first address is the kubernetes Service." },
    podCidr: { type: "string", default: "172.30.0.0/16", description: "Pod network (flannel Network)." },
    podSubnetLength: { type: "integer", default: 21, description: "Prefix length of each node's pod subnet (flannel SubnetLen)." },
    clusterDns: { type: "string", default: "10.254.0.2", description: "CoreDNS Service IP, inside serviceCidr." },
    clusterDomain: { type: "string", default: "cluster.local", description: "Cluster DNS domain." },
    nodePortRange: { type: "string", default: "30000-32767", description: "NodePort range as from-to." },
    kubeProxyMode: { type: "string", default: "nftables", description: "kube-proxy mode: nftables, ipvs or iptables." },
    flannelBackend: { type: "string", default: "vxlan", description: "flannel backend: vxlan, host-gw or wireguard." },
    flannelMode: { type: "string", default: "etcd", description: "Where flannel keeps its network config and subnet leases: etcd (the masters' etcd, as the seed does) or kube-subnet-mgr (Node objects; needs mastersAreWorkers)." },
    flannelEtcdPrefix: { type: "string", default: "/kubernetes/network", description: "etcd key prefix of flannel's network config (<prefix>/config) and leases, with flannelMode=etcd." },

    imageArchives: { type: "array", default: [], description: "Container image archives (docker save or OCI layout .tar) on the machine running pulumi, uploaded to every node and imported into containerd before kubelet starts: air-gapped sites preload the sandbox and add-on images this way." },
    containerdExtraConfig: { type: "string", default: "", description: "TOML merged over kubeha's containerd config.toml (a YAML block scalar), e.g. restrict_oom_score_adj = true under [plugins.'io.containerd.cri.v1.runtime'] inside containers (the lab)." },
    kubeletExtraConfig: { type: "string", default: "", description: 'YAML mapping merged over kubeha\'s KubeletConfiguration, e.g. "failCgroupV1: false" on hosts still on cgroup v1 (the lab).' },
    kubeProxyExtraConfig: { type: "string", default: "", description: 'YAML mapping merged over kubeha\'s KubeProxyConfiguration, e.g. "conntrack: {maxPerCore: 0}" where /sys is read-only (containers).' },
    maxPods: { type: "integer", default: 110, description: "Most pods the kubelet runs on a node; they must fit the node's pod subnet (podSubnetLength)." },
    nodeRollBatchSize: { type: "integer", default: 1, description: "Nodes changed at once when a change restarts what runs on them (kubelet, containerd, kube-proxy, flanneld); each batch waits for its nodes to be Ready before the next." },
    masterTaint: { type: "boolean", default: true, description: "Masters that are also workers register with the node-role.kubernetes.io/control-plane:NoSchedule taint." },
    sandboxImage: { type: "string", default: "registry.k8s.io/pause:3.10.1", description: "Pod sandbox (pause) image, pinned in containerd's config." },
    containerRegistryMirrors: { type: "array", default: [], description: 'Pull mirrors per registry as "registry=https://mirror[,https://mirror2]", tried in order before the registry itself (containerd certs.d hosts.toml), e.g. "docker.io=https://mirror.example.com".' },

    addons: { type: "array", default: ["coredns", "metrics-server", "headlamp"], description: "Add-ons to install once the API answers: coredns, metrics-server, headlamp." },
    coreDnsImage: { type: "string", default: "registry.k8s.io/coredns/coredns:v1.13.1", description: "CoreDNS image (full reference with tag or digest)." },
    metricsServerImage: { type: "string", default: "registry.k8s.io/metrics-server/metrics-server:v0.8.0", description: "metrics-server image (full reference with tag or digest)." },
    headlampImage: { type: "string", default: "ghcr.io/headlamp-k8s/headlamp:v0.38.0", description: "Headlamp web UI image (full reference with tag or digest)." },
    upstreamDns: { type: "array", default: [], description: "Where CoreDNS forwards names outside the cluster (IPs, IP:port, tls://IP); default: each node's /etc/resolv.conf." },
    headlampAdmin: { type: "boolean", default: false, description: "Also create the kube-system/headlamp-admin ServiceAccount bound to cluster-admin, so logging in to Headlamp only needs `kubectl create token headlamp-admin -n kube-system`." },

    vip: { type: "string", default: "", description: "Virtual IP held by keepalived on the lb hosts (required with lb hosts)." },
    apiLoadBalancerPort: { type: "integer", default: 8443, description: "Port nginx listens on for the API, on the VIP." },
    apiLoadBalancerWorkerConnections: { type: "integer", default: 8192, description: "nginx worker_connections on the lb hosts: each client connection to the API takes two (client and upstream); every kubelet, kube-proxy and controller holds a few watch connections. A change reloads nginx, one lb host at a time." },
    vrrpRouterId: { type: "integer", default: 51, description: "keepalived virtual_router_id, unique on the L2 segment (1-255)." },

    apiserverPort: { type: "integer", default: 6443, description: "kube-apiserver secure port on every master." },
    etcdClientPort: { type: "integer", default: 2379, description: "etcd client port." },
    etcdPeerPort: { type: "integer", default: 2380, description: "etcd peer port." },

    keyAlgorithm: { type: "string", default: "ECDSA", description: "Private key algorithm of the whole PKI: ECDSA (P-256) or RSA (2048)." },
    caValidityHours: { type: "integer", default: 87600, description: "Validity of the three CAs (10 years)." },
    certValidityHours: { type: "integer", default: 8760, description: "Validity of every leaf certificate (1 year)." },
    certEarlyRenewalHours: { type: "integer", default: 720, description: "A `pulumi up` within this many hours of expiry re-issues the certificate and restarts its consumers." },

    kubernetesVersion: { type: "string", default: "1.37.1", description: "Kubernetes release (kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl)." },
    etcdVersion: { type: "string", default: "3.6.14", description: "etcd release." },
    containerdVersion: { type: "string", default: "2.3.6", description: "containerd release." },
    runcVersion: { type: "string", default: "1.5.1", description: "runc release." },
    cniPluginsVersion: { type: "string", default: "1.9.1", description: "containernetworking/plugins release." },
    flannelVersion: { type: "string", default: "0.28.9", description: "flanneld release." },
    flannelCniPluginVersion: { type: "string", default: "1.9.1-flannel1", description: "flannel CNI plugin release." },
    binarySource: { type: "string", default: "download", description: "download: each host fetches the official release URL and checks its sha256; local: binaries are uploaded from binaryDir (air-gapped sites)." },
    artifactChecksums: { type: "array", default: [], description: 'Published sha256 per artifact as "key=sha256", for versions kubeha has no checksum for (keys: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, etcd, containerd, runc, cni-plugins, flannel, flannel-cni-plugin).' },
    binaryDir: { type: "string", default: "", description: "Directory on the machine running pulumi holding the binaries by name (binarySource=local)." },

    etcdDataDir: { type: "string", default: "/var/lib/etcd/data", description: "etcd --data-dir." },
    etcdWalDir: { type: "string", default: "/var/lib/etcd/wal", description: "etcd --wal-dir." },
    etcdAutoCompactionHours: { type: "integer", default: 1, description: "etcd --auto-compaction-retention (hours)." },
    etcdQuotaBackendBytes: { type: "integer", default: 6442450944, description: "etcd --quota-backend-bytes (seed: 6 GiB)." },
    etcdHeartbeatMs: { type: "integer", default: 250, description: "etcd --heartbeat-interval (ms)." },
    etcdElectionMs: { type: "integer", default: 2000, description: "etcd --election-timeout (ms)." },
    etcdExtraArgs: { type: "array", default: [], description: 'Extra etcd flags as "--flag=value", overriding kubeha\'s.' },
    etcdBackupSchedule: { type: "string", default: "*-*-* 00/6:00:00", description: "systemd OnCalendar schedule of the etcd snapshot backup on every master." },
    etcdBackupRetention: { type: "integer", default: 28, description: "Snapshots kept per master (the oldest are deleted)." },
    etcdBackupDir: { type: "string", default: "/var/backups/etcd", description: "Directory of the etcd snapshots on every master." },

    apiserverExtraArgs: { type: "array", default: [], description: 'Extra kube-apiserver flags as "--flag=value", overriding kubeha\'s.' },
    controllerManagerExtraArgs: { type: "array", default: [], description: 'Extra kube-controller-manager flags as "--flag=value".' },
    schedulerExtraArgs: { type: "array", default: [], description: 'Extra kube-scheduler flags as "--flag=value".' },
    auditLogMaxAgeDays: { type: "integer", default: 30, description: "Days an apiserver audit log file is kept." },
    auditLogMaxBackups: { type: "integer", default: 10, description: "Rotated apiserver audit log files kept." },
    auditLogMaxSizeMb: { type: "integer", default: 100, description: "Size (MB) at which the apiserver audit log rotates." },
} as const satisfies Record<string, Setting>;

export type SettingKey = keyof typeof SETTINGS;
