import { validateAddonParams } from "../render/addons";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
// Raw stack config -> one validated ClusterSpec. Pure: no files, no network, no Pulumi engine.
// Every problem is collected and reported at once, each naming its setting and the fix.
import { NAMESPACE, Setting, SETTINGS, SettingKey } from "./settings";
import { broadcastAddress, Cidr, contains, nthAddress, overlaps, parseCidr, parseIpv4 } from "./net";
import {
    ADDON_NAMES, AddonName, ClusterSpec, FLANNEL_BACKENDS, FLANNEL_MODES, FlannelBackend, FlannelMode, Host, KEY_ALGORITHMS,
    KeyAlgorithm, KUBE_PROXY_MODES, KubeProxyMode, RegistryMirror, Role,
} from "./types";
import { parseKnownHosts } from "./known-hosts";
import { ARTIFACT_KEYS, artifactsFor } from "./artifacts";

export class ConfigError extends Error {
    constructor(public readonly problems: string[]) {
        super(`invalid kubeha stack config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
            problems.map((p) => `  - ${p}`).join("\n"));
        this.name = "ConfigError";
    }
}

/** Values as Pulumi gives them: strings, or already-typed values from YAML. Secret values may be opaque. */
export type RawConfig = Partial<Record<string, unknown>>;

export interface LoadOptions {
    /** Content of the known_hosts file, when it could be read. */
    knownHosts?: string;
    /** An ssh-agent is reachable (SSH_AUTH_SOCK), so sshPrivateKey may be left out. */
    sshAgent?: boolean;
    /**
     * Facts of the machine running pulumi (known_hosts entries, SSH credentials) are errors when
     * strict (the program, before `pulumi up` touches a host) and warnings otherwise (`check`).
     */
    strict?: boolean;
}

export interface LoadResult {
    spec: ClusterSpec;
    warnings: string[];
}

// Ports the components use on every node besides the configurable ones.
const FIXED_PORTS: Record<number, string> = {
    2381: "etcd metrics", 10248: "kubelet healthz", 10249: "kube-proxy metrics", 10250: "kubelet",
    10256: "kube-proxy healthz", 10257: "kube-controller-manager", 10259: "kube-scheduler",
};

const VERSION_RE = /^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/;
const HOSTNAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// An image reference that names its version: [registry[:port]/]path(:tag|@sha256:digest|both).
const IMAGE_RE = /^[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:\w[\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$/;
const IMAGE_PINNED_RE = /(:\w[\w.-]{0,127}|@sha256:[0-9a-f]{64})$/;
// A registry as image names spell it (host, optional port), or containerd's catch-all "_default".
const REGISTRY_RE = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:\d{1,5})?|_default)$/;
const ETCD_PREFIX_RE = /^(\/[A-Za-z0-9._-]+)+$/;

class Reader {
    readonly problems: string[] = [];
    constructor(private readonly raw: RawConfig) {}

    private value(key: SettingKey): unknown {
        const v = this.raw[key];
        const value = v === undefined || v === null || v === "" ? (SETTINGS[key] as Setting).default : v;
        return value === "" ? undefined : value;
    }

    problem(key: SettingKey | SettingKey[], message: string): void {
        const keys = (Array.isArray(key) ? key : [key]).map((k) => `${NAMESPACE}:${k}`).join(", ");
        this.problems.push(`${keys}: ${message}`);
    }

    present(key: SettingKey): boolean {
        return this.value(key) !== undefined;
    }

    string(key: SettingKey): string {
        const v = this.value(key);
        if (v === undefined) {
            this.problem(key, `is required (${SETTINGS[key].description})`);
            return "";
        }
        if (typeof v !== "string") {
            this.problem(key, `must be a string, got ${JSON.stringify(v)}`);
            return "";
        }
        return v.trim();
    }

    optionalString(key: SettingKey): string | undefined {
        return this.present(key) ? this.string(key) : undefined;
    }

    integer(key: SettingKey, min: number, max: number): number {
        const v = this.value(key);
        const n = typeof v === "string" && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
        if (typeof n !== "number" || !Number.isInteger(n)) {
            this.problem(key, v === undefined ? "is required" : `must be a whole number, got ${JSON.stringify(v)}`);
            return min;
        }
        if (n < min || n > max) this.problem(key, `must be between ${min} and ${max}, got ${n}`);
        return n;
    }

    boolean(key: SettingKey): boolean {
        const v = this.value(key);
        if (v === true || v === "true") return true;
        if (v === false || v === "false") return false;
        this.problem(key, `must be true or false, got ${JSON.stringify(v)}`);
        return false;
    }

    list(key: SettingKey): string[] {
        let v = this.value(key);
        if (typeof v === "string") {
            try {
                v = JSON.parse(v);
            } catch {
                this.problem(key, `must be a list, got ${JSON.stringify(v)}`);
                return [];
            }
        }
        if (!Array.isArray(v) || v.some((e) => typeof e !== "string")) {
            this.problem(key, `must be a list of strings, got ${JSON.stringify(v)}`);
            return [];
        }
        return v.map((e: string) => e.trim());
    }

    oneOf<T extends string>(key: SettingKey, allowed: readonly T[]): T {
        const v = this.string(key);
        if (!(allowed as readonly string[]).includes(v)) {
            this.problem(key, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(v)}`);
            return allowed[0];
        }
        return v as T;
    }

    cidr(key: SettingKey): Cidr | undefined {
        const text = this.string(key);
        if (!text) return undefined;
        const c = parseCidr(text);
        if (typeof c === "string") {
            this.problem(key, `${JSON.stringify(text)} ${c}`);
            return undefined;
        }
        return c;
    }

    image(key: SettingKey): string {
        const v = this.string(key);
        if (v && !(IMAGE_RE.test(v) && IMAGE_PINNED_RE.test(v.replace(/^[^/]*\//, "")))) {
            this.problem(key, `${JSON.stringify(v)} must be a full image reference with a tag or digest, e.g. ${String((SETTINGS[key] as Setting).default)}`);
        }
        return v;
    }

    version(key: SettingKey): string {
        const v = this.string(key).replace(/^v/, "");
        if (!VERSION_RE.test(v)) this.problem(key, `${JSON.stringify(v)} is not a release version like 1.2.3`);
        return v;
    }
}

function extraArgs(r: Reader, key: SettingKey): string[] {
    const list = r.list(key);
    for (const e of list) {
        if (!/^--[A-Za-z0-9-]+(=.*)?$/.test(e)) r.problem(key, `${JSON.stringify(e)} must look like --flag=value`);
    }
    return list;
}

function imageArchives(r: Reader): string[] {
    const list = r.list("imageArchives");
    const names = new Set<string>();
    for (const p of list) {
        const base = p.replace(/^.*\//, "");
        if (!/\.tar$/.test(base)) r.problem("imageArchives", `${JSON.stringify(p)} must be a .tar image archive (docker save or OCI layout)`);
        if (names.has(base)) r.problem("imageArchives", `two archives are named ${base}; give them distinct file names`);
        names.add(base);
    }
    return list;
}

/** CoreDNS upstreams, checked by the add-on renderer's own rules. */
function upstreamDns(r: Reader): string[] {
    const list = r.list("upstreamDns");
    const problems = validateAddonParams({ clusterDns: "10.0.0.10", clusterDomain: "cluster.local", enabled: ["coredns"], upstreamDns: list,
        images: { coredns: "x/coredns:1", metricsServer: "x/m:1", headlamp: "x/h:1" } });
    for (const p of problems) if (p.startsWith("upstreamDns: ")) r.problem("upstreamDns", p.slice("upstreamDns: ".length));
    return list;
}

/** TOML tables merged over containerd's config.toml. */
function extraToml(r: Reader, key: SettingKey): Record<string, unknown> {
    const text = r.optionalString(key) ?? "";
    if (!text) return {};
    try {
        const value = parseToml(text);
        if ("version" in value) r.problem(key, "must not set version: kubeha renders containerd's config version 3");
        return value;
    } catch (e) {
        r.problem(key, `is not valid TOML (${(e as Error).message.split("\n")[0]}); give tables such as "[plugins.'io.containerd.cri.v1.runtime']" with their keys`);
        return {};
    }
}

/** A YAML mapping merged over a rendered config file (kubeletExtraConfig, kubeProxyExtraConfig). */
function extraConfig(r: Reader, key: SettingKey, kind: string): Record<string, unknown> {
    const text = r.optionalString(key) ?? "";
    if (!text) return {};
    let value: unknown;
    try {
        value = parseYaml(text);
    } catch (e) {
        r.problem(key, `is not valid YAML (${(e as Error).message.split("\n")[0]}); give a mapping of ${kind} fields, e.g. "failCgroupV1: false"`);
        return {};
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
        r.problem(key, `must be a YAML mapping of ${kind} fields, e.g. "failCgroupV1: false"`);
        return {};
    }
    for (const k of ["apiVersion", "kind"]) if (k in value) r.problem(key, `must not set ${k}: kubeha renders the ${kind} header`);
    return value as Record<string, unknown>;
}

function registryMirrors(r: Reader): RegistryMirror[] {
    const key = "containerRegistryMirrors";
    const seen = new Set<string>();
    return r.list(key).flatMap((entry) => {
        const m = /^([^=\s]+)=(.+)$/.exec(entry);
        if (!m) {
            r.problem(key, `${JSON.stringify(entry)} must be "registry=https://mirror[,https://mirror2]", e.g. "docker.io=https://mirror.example.com"`);
            return [];
        }
        const [, registry, list] = m;
        if (!REGISTRY_RE.test(registry)) {
            r.problem(key, `registry ${JSON.stringify(registry)} must be a registry host as image names spell it (docker.io, registry.k8s.io, reg.local:5000) or _default`);
        } else if (seen.has(registry)) {
            r.problem(key, `registry ${registry} is listed twice; put all its mirrors in one entry, comma-separated`);
        }
        seen.add(registry);
        const mirrors = list.split(",").map((u) => u.trim());
        for (const u of mirrors) {
            if (!isMirrorUrl(u)) r.problem(key, `${registry}: mirror ${JSON.stringify(u)} must be an http(s) URL without credentials, like https://mirror.example.com`);
        }
        return [{ registry, mirrors }];
    });
}

function isMirrorUrl(u: string): boolean {
    try {
        const url = new URL(u);
        return ["http:", "https:"].includes(url.protocol) && !url.username && !url.password && !url.search && !url.hash && /^[\x21-\x7e]+$/.test(u) && !/["'\\]/.test(u);
    } catch {
        return false;
    }
}

function addons(r: Reader): AddonName[] {
    const enabled: AddonName[] = [];
    for (const a of r.list("addons")) {
        if (!(ADDON_NAMES as readonly string[]).includes(a)) r.problem("addons", `unknown add-on ${JSON.stringify(a)}; known: ${ADDON_NAMES.join(", ")}`);
        else if (enabled.includes(a as AddonName)) r.problem("addons", `${a} is listed twice`);
        else enabled.push(a as AddonName);
    }
    return enabled;
}

function readHosts(r: Reader, key: SettingKey, role: Role): Host[] {
    return r.list(key).flatMap((entry) => {
        const m = /^([^=\s]+)=(\S+)$/.exec(entry);
        if (!m) {
            r.problem(key, `${JSON.stringify(entry)} must be "name=ip", e.g. "k8s-master01=172.16.60.241"`);
            return [];
        }
        const [, name, ip] = m;
        if (!HOSTNAME_RE.test(name)) {
            r.problem(key, `host name ${JSON.stringify(name)} must be a lowercase DNS label (a-z, 0-9, -), as it becomes the node name`);
        }
        if (!parseIpv4(ip)) r.problem(key, `host ${name}: ${JSON.stringify(ip)} is not an IPv4 address`);
        return [{ name, ip, roles: [role] }];
    });
}

export function loadClusterSpec(raw: RawConfig, opts: LoadOptions = {}): LoadResult {
    const r = new Reader(raw);
    const warnings: string[] = [];

    // Hosts and roles.
    const listed = [
        ...readHosts(r, "masters", "master"),
        ...readHosts(r, "workers", "worker"),
        ...readHosts(r, "loadBalancers", "lb"),
    ];
    const roleKey: Record<Role, SettingKey> = { master: "masters", worker: "workers", lb: "loadBalancers" };
    const uniqueKeys = (a: Host, b: Host) => [...new Set([roleKey[a.roles[0]], roleKey[b.roles[0]]])];
    const byName = new Map<string, Host>();
    const byIp = new Map<string, Host>();
    for (const h of listed) {
        const sameName = byName.get(h.name);
        const sameIp = byIp.get(h.ip);
        if (sameName && sameName.roles[0] !== h.roles[0]) {
            const fix = sameName.roles[0] !== "lb" && h.roles[0] !== "lb"
                ? "list it only under masters and set kubeha:mastersAreWorkers=true"
                : "lb hosts must be dedicated: give the load balancer its own host";
            r.problem(uniqueKeys(sameName, h), `host ${h.name} is listed as both ${sameName.roles[0]} and ${h.roles[0]}; ${fix}`);
            continue;
        }
        if (sameName) {
            r.problem(uniqueKeys(sameName, h), `duplicate host name ${h.name} (${sameName.ip} and ${h.ip}); every host needs its own name`);
            continue;
        }
        if (sameIp) {
            r.problem(uniqueKeys(sameIp, h), `duplicate host IP ${h.ip} (${sameIp.name} and ${h.name}); every host needs its own address`);
            continue;
        }
        byName.set(h.name, h);
        byIp.set(h.ip, h);
    }
    const hosts = [...byName.values()];
    const masters = hosts.filter((h) => h.roles.includes("master"));
    const loadBalancers = hosts.filter((h) => h.roles.includes("lb"));
    const mastersAreWorkers = r.boolean("mastersAreWorkers");
    if (mastersAreWorkers) for (const m of masters) m.roles.push("worker");

    if (masters.length === 0) r.problem("masters", 'needs 1, 3 or 5 hosts, e.g. ["k8s-master01=172.16.60.241", …]');
    else if (masters.length % 2 === 0 || masters.length > 7) {
        r.problem("masters", `has ${masters.length} hosts; etcd needs an odd count (1, 3 or 5) to keep a quorum`);
    }
    if (loadBalancers.length === 1) {
        r.problem("loadBalancers", "has 1 host; use 0 (clients talk to the single master) or 2+ (keepalived moves the VIP between them)");
    }
    if (loadBalancers.length === 0 && masters.length > 1) {
        warnings.push(`${NAMESPACE}:loadBalancers is empty with ${masters.length} masters: clients use ${masters[0].name} only, so the API is not highly available`);
    }

    // SSH.
    const sshUser = r.string("sshUser");
    const sshPort = r.integer("sshPort", 1, 65535);
    const envProblem = (key: SettingKey, message: string) =>
        opts.strict ? r.problem(key, message) : warnings.push(`${NAMESPACE}:${key}: ${message}`);
    if (r.present("sshPrivateKey") && r.present("sshPrivateKeyFile")) {
        r.problem(["sshPrivateKey", "sshPrivateKeyFile"], "set one of them, not both");
    }
    if (!r.present("sshPrivateKey") && !r.present("sshPrivateKeyFile") && !opts.sshAgent) {
        envProblem("sshPrivateKey", "no SSH credentials: set it with `pulumi config set --secret kubeha:sshPrivateKey < ~/.ssh/id_ed25519`, set kubeha:sshPrivateKeyFile, or run an ssh-agent (SSH_AUTH_SOCK) holding the key");
    }
    const hostKeyChecking = r.boolean("sshHostKeyChecking");
    if (hostKeyChecking) {
        if (opts.knownHosts === undefined) {
            envProblem("sshKnownHostsFile", "cannot be read; it must list every host's SSH host key (or set kubeha:sshHostKeyChecking=false)");
        } else {
            const keys = parseKnownHosts(opts.knownHosts);
            for (const h of hosts) {
                h.hostKey = keys.get(h.ip, sshPort) ?? keys.get(h.name, sshPort);
                if (!h.hostKey) {
                    envProblem("sshKnownHostsFile", `host ${h.name} (${h.ip}) has no entry; add it after checking its fingerprint (ssh-keyscan -t ed25519 ${h.ip}) or set kubeha:sshHostKeyChecking=false`);
                }
            }
        }
    }

    // Network.
    const hostCidr = r.cidr("hostCidr");
    const serviceCidr = r.cidr("serviceCidr");
    const podCidr = r.cidr("podCidr");
    const cidrs: [SettingKey, Cidr | undefined][] = [["hostCidr", hostCidr], ["serviceCidr", serviceCidr], ["podCidr", podCidr]];
    for (let i = 0; i < cidrs.length; i++) {
        for (let j = i + 1; j < cidrs.length; j++) {
            const [ka, a] = cidrs[i];
            const [kb, b] = cidrs[j];
            if (a && b && overlaps(a, b)) r.problem([ka, kb], `${a.text} and ${b.text} overlap; the three ranges must be disjoint`);
        }
    }
    if (hostCidr) {
        for (const h of hosts) {
            const ip = parseIpv4(h.ip);
            if (ip && !contains(hostCidr, ip)) {
                r.problem([roleKey[h.roles[0]], "hostCidr"], `host ${h.name} (${h.ip}) is outside ${hostCidr.text}`);
            }
        }
    }
    const podSubnetLength = r.integer("podSubnetLength", 8, 28);
    if (podCidr && podSubnetLength <= podCidr.prefix) {
        r.problem(["podSubnetLength", "podCidr"], `${podSubnetLength} must be longer than podCidr's /${podCidr.prefix} so each node gets a part of it`);
    } else if (podCidr && 2 ** (podSubnetLength - podCidr.prefix) < hosts.length) {
        r.problem(["podSubnetLength", "podCidr"], `${podCidr.text} split into /${podSubnetLength} gives fewer subnets than the ${hosts.length} hosts`);
    }
    let kubernetesServiceIp = "";
    const clusterDns = r.string("clusterDns");
    if (serviceCidr) {
        kubernetesServiceIp = nthAddress(serviceCidr, 1);
        const dns = parseIpv4(clusterDns);
        if (!dns) r.problem("clusterDns", `${JSON.stringify(clusterDns)} is not an IPv4 address`);
        else if (!contains(serviceCidr, dns)) r.problem(["clusterDns", "serviceCidr"], `${clusterDns} is outside the service range ${serviceCidr.text}`);
        else if ([serviceCidr.network.toString(), kubernetesServiceIp, broadcastAddress(serviceCidr)].includes(clusterDns)) {
            r.problem("clusterDns", `${clusterDns} is reserved in ${serviceCidr.text} (network, broadcast or the kubernetes Service ${kubernetesServiceIp}); use e.g. ${nthAddress(serviceCidr, 2)}`);
        }
    }
    const clusterDomain = r.string("clusterDomain");
    if (clusterDomain && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(clusterDomain)) {
        r.problem("clusterDomain", `${JSON.stringify(clusterDomain)} is not a DNS domain like cluster.local`);
    }
    const npr = r.string("nodePortRange");
    const nprMatch = /^(\d+)-(\d+)$/.exec(npr);
    const nodePortRange = { from: 30000, to: 32767 };
    if (!nprMatch || Number(nprMatch[1]) >= Number(nprMatch[2]) || Number(nprMatch[2]) > 65535 || Number(nprMatch[1]) < 1) {
        r.problem("nodePortRange", `${JSON.stringify(npr)} must be from-to with 1 <= from < to <= 65535, e.g. 30000-32767`);
    } else {
        nodePortRange.from = Number(nprMatch[1]);
        nodePortRange.to = Number(nprMatch[2]);
    }
    const hostInterface = r.string("hostInterface");
    if (hostInterface && !/^[A-Za-z0-9_.:-]{1,15}$/.test(hostInterface)) {
        r.problem("hostInterface", `${JSON.stringify(hostInterface)} is not a Linux interface name`);
    }
    const kubeProxyMode = r.oneOf<KubeProxyMode>("kubeProxyMode", KUBE_PROXY_MODES);
    const flannelBackend = r.oneOf<FlannelBackend>("flannelBackend", FLANNEL_BACKENDS);
    const flannelMode = r.oneOf<FlannelMode>("flannelMode", FLANNEL_MODES);
    const flannelEtcdPrefix = r.string("flannelEtcdPrefix");
    if (flannelEtcdPrefix && !ETCD_PREFIX_RE.test(flannelEtcdPrefix)) {
        r.problem("flannelEtcdPrefix", `${JSON.stringify(flannelEtcdPrefix)} must be an absolute etcd key path like /kubernetes/network (letters, digits, . _ -; no trailing slash)`);
    } else if (flannelEtcdPrefix === "/registry" || flannelEtcdPrefix.startsWith("/registry/")) {
        r.problem("flannelEtcdPrefix", `${flannelEtcdPrefix} lies in kube-apiserver's /registry prefix of the same etcd; use e.g. /kubernetes/network`);
    }
    if (flannelMode === "kube-subnet-mgr" && !mastersAreWorkers) {
        r.problem(["flannelMode", "mastersAreWorkers"], "kube-subnet-mgr leases pod subnets to Node objects, and masters that are not workers have none, so their apiservers could not reach pods (metrics-server, webhooks); set kubeha:mastersAreWorkers=true or use flannelMode=etcd");
    }

    // Nodes: containerd and kubelet.
    const node = {
        sandboxImage: r.image("sandboxImage"),
        registryMirrors: registryMirrors(r),
        maxPods: r.integer("maxPods", 10, 2500),
        rollBatchSize: r.integer("nodeRollBatchSize", 1, 1000),
        masterTaint: r.boolean("masterTaint"),
        imageArchives: imageArchives(r),
        containerdExtraConfig: extraToml(r, "containerdExtraConfig"),
        kubeletExtraConfig: extraConfig(r, "kubeletExtraConfig", "KubeletConfiguration"),
        kubeProxyExtraConfig: extraConfig(r, "kubeProxyExtraConfig", "KubeProxyConfiguration"),
    };
    // host-local hands out a node subnet minus its network, broadcast and gateway (cni0) addresses.
    const podAddresses = 2 ** (32 - podSubnetLength) - 3;
    if (node.maxPods > podAddresses) {
        r.problem(["maxPods", "podSubnetLength"], `${node.maxPods} pods do not fit a node's /${podSubnetLength} pod subnet (${podAddresses} pod addresses); lower maxPods or shorten podSubnetLength`);
    }
    const addonSettings = {
        enabled: addons(r),
        images: { coredns: r.image("coreDnsImage"), metricsServer: r.image("metricsServerImage"), headlamp: r.image("headlampImage") },
        upstreamDns: upstreamDns(r),
        headlampAdmin: r.boolean("headlampAdmin"),
    };

    // Ports: each in range, distinct on a host, clear of fixed ports and the NodePort range.
    const ports = {
        apiserver: r.integer("apiserverPort", 1, 65535),
        etcdClient: r.integer("etcdClientPort", 1, 65535),
        etcdPeer: r.integer("etcdPeerPort", 1, 65535),
    };
    const portKeys: [SettingKey, number][] = [["apiserverPort", ports.apiserver], ["etcdClientPort", ports.etcdClient], ["etcdPeerPort", ports.etcdPeer]];
    const lbPort = r.integer("apiLoadBalancerPort", 1, 65535);
    if (loadBalancers.length > 0) portKeys.push(["apiLoadBalancerPort", lbPort]);
    const seen = new Map<number, SettingKey>();
    for (const [key, port] of portKeys) {
        const prior = seen.get(port);
        if (prior && !(key === "apiLoadBalancerPort")) r.problem([prior, key], `both use port ${port}; give each its own`);
        if (FIXED_PORTS[port]) r.problem(key, `port ${port} is used by ${FIXED_PORTS[port]}`);
        if (port >= nodePortRange.from && port <= nodePortRange.to) {
            r.problem([key, "nodePortRange"], `port ${port} is inside the NodePort range ${nodePortRange.from}-${nodePortRange.to}`);
        }
        if (!prior) seen.set(port, key);
    }

    // Load balancer.
    let loadBalancer: ClusterSpec["loadBalancer"];
    const vrrpRouterId = r.integer("vrrpRouterId", 1, 255);
    const workerConnections = r.integer("apiLoadBalancerWorkerConnections", 512, 1048576);
    if (loadBalancers.length > 0) {
        const vip = r.optionalString("vip");
        const vipIp = vip ? parseIpv4(vip) : undefined;
        if (!vip) r.problem("vip", "is required when there are lb hosts: a free address in hostCidr for keepalived to hold");
        else if (!vipIp) r.problem("vip", `${JSON.stringify(vip)} is not an IPv4 address`);
        else {
            const owner = hosts.find((h) => h.ip === vip);
            if (owner) r.problem("vip", `${vip} is already host ${owner.name}'s address; pick a free address in hostCidr`);
            if (hostCidr && !contains(hostCidr, vipIp)) r.problem(["vip", "hostCidr"], `${vip} is outside the hosts' subnet ${hostCidr.text}; VRRP needs it on the hosts' L2 segment`);
            if (hostCidr && [hostCidr.network.toString(), broadcastAddress(hostCidr)].includes(vip)) r.problem("vip", `${vip} is the network or broadcast address of ${hostCidr.text}`);
        }
        loadBalancer = { vip: vip ?? "", port: lbPort, virtualRouterId: vrrpRouterId, workerConnections };
    } else if (r.present("vip")) {
        warnings.push(`${NAMESPACE}:vip is set but there are no lb hosts; it is not used`);
    }

    // Certificates.
    const certificates = {
        keyAlgorithm: r.oneOf<KeyAlgorithm>("keyAlgorithm", KEY_ALGORITHMS),
        caValidityHours: r.integer("caValidityHours", 24, 876000),
        validityHours: r.integer("certValidityHours", 24, 876000),
        earlyRenewalHours: r.integer("certEarlyRenewalHours", 0, 876000),
    };
    if (certificates.earlyRenewalHours >= certificates.validityHours) {
        r.problem(["certEarlyRenewalHours", "certValidityHours"], `renewal window ${certificates.earlyRenewalHours}h must be shorter than the validity ${certificates.validityHours}h, or every up re-issues`);
    }
    if (certificates.validityHours > certificates.caValidityHours) {
        r.problem(["certValidityHours", "caValidityHours"], "leaf certificates cannot outlive their CA");
    }

    const versions = {
        kubernetes: r.version("kubernetesVersion"),
        etcd: r.version("etcdVersion"),
        containerd: r.version("containerdVersion"),
        runc: r.version("runcVersion"),
        cniPlugins: r.version("cniPluginsVersion"),
        flannel: r.version("flannelVersion"),
        flannelCniPlugin: r.version("flannelCniPluginVersion"),
    };
    const [major, minor] = versions.kubernetes.split(".").map(Number);
    if (VERSION_RE.test(versions.kubernetes) && (major !== 1 || minor < 34)) {
        r.problem("kubernetesVersion", `${versions.kubernetes} is not supported: kubeha renders flags and config for Kubernetes 1.34 and later`);
    }
    if (VERSION_RE.test(versions.etcd) && !versions.etcd.startsWith("3.")) r.problem("etcdVersion", "kubeha supports etcd 3.x (3.6 recommended)");
    if (VERSION_RE.test(versions.containerd) && Number(versions.containerd.split(".")[0]) < 2) {
        r.problem("containerdVersion", `${versions.containerd} is not supported: kubeha renders containerd 2.x config (version = 3); use a 2.x release`);
    }

    const binarySourceKind = r.oneOf("binarySource", ["download", "local"] as const);
    const binaryDir = r.optionalString("binaryDir");
    if (binarySourceKind === "local" && !binaryDir) r.problem(["binarySource", "binaryDir"], "binarySource=local needs binaryDir: the directory holding the release binaries");

    const artifactChecksums: Record<string, string> = {};
    for (const entry of r.list("artifactChecksums")) {
        const m = /^([a-z-]+)=([0-9a-f]{64})$/.exec(entry);
        if (!m) r.problem("artifactChecksums", `${JSON.stringify(entry)} must be "key=<64 hex sha256>"`);
        else if (!(ARTIFACT_KEYS as string[]).includes(m[1])) r.problem("artifactChecksums", `unknown artifact ${m[1]}; known: ${ARTIFACT_KEYS.join(", ")}`);
        else artifactChecksums[m[1]] = m[2];
    }

    const etcd = {
        dataDir: r.string("etcdDataDir"),
        walDir: r.string("etcdWalDir"),
        autoCompactionRetentionHours: r.integer("etcdAutoCompactionHours", 0, 10000),
        quotaBackendBytes: r.integer("etcdQuotaBackendBytes", 1 << 24, 8 * 1024 ** 3),
        heartbeatIntervalMs: r.integer("etcdHeartbeatMs", 10, 10000),
        electionTimeoutMs: r.integer("etcdElectionMs", 50, 50000),
        extraArgs: extraArgs(r, "etcdExtraArgs"),
        backup: {
            schedule: r.string("etcdBackupSchedule"),
            retention: r.integer("etcdBackupRetention", 1, 10000),
            dir: r.string("etcdBackupDir"),
        },
    };
    if (etcd.backup.dir && !/^\/[^\s]*$/.test(etcd.backup.dir)) r.problem("etcdBackupDir", `${JSON.stringify(etcd.backup.dir)} must be an absolute path without spaces`);
    if (!/^[-*0-9:/., a-zA-Z]+$/.test(etcd.backup.schedule)) r.problem("etcdBackupSchedule", `${JSON.stringify(etcd.backup.schedule)} is not a systemd OnCalendar expression like "daily" or "*-*-* 00/6:00:00"`);
    const controlPlane = {
        apiserverExtraArgs: extraArgs(r, "apiserverExtraArgs"),
        controllerManagerExtraArgs: extraArgs(r, "controllerManagerExtraArgs"),
        schedulerExtraArgs: extraArgs(r, "schedulerExtraArgs"),
        auditLogMaxAgeDays: r.integer("auditLogMaxAgeDays", 1, 3650),
        auditLogMaxBackups: r.integer("auditLogMaxBackups", 1, 1000),
        auditLogMaxSizeMb: r.integer("auditLogMaxSizeMb", 1, 100000),
    };
    for (const key of ["etcdDataDir", "etcdWalDir"] as const) {
        const dir = key === "etcdDataDir" ? etcd.dataDir : etcd.walDir;
        if (dir && !/^\/[^\s]*$/.test(dir)) r.problem(key, `${JSON.stringify(dir)} must be an absolute path without spaces`);
    }
    if (etcd.dataDir && etcd.dataDir === etcd.walDir) r.problem(["etcdDataDir", "etcdWalDir"], "must differ");
    if (etcd.electionTimeoutMs < 5 * etcd.heartbeatIntervalMs) {
        r.problem(["etcdElectionMs", "etcdHeartbeatMs"], `election timeout ${etcd.electionTimeoutMs}ms should be at least 5x the heartbeat ${etcd.heartbeatIntervalMs}ms (etcd tuning guide)`);
    }

    const clusterName = r.string("clusterName");

    if (r.problems.length > 0) throw new ConfigError(r.problems);

    const apiEndpoint = loadBalancer
        ? { host: loadBalancer.vip, port: loadBalancer.port }
        : { host: masters[0].ip, port: ports.apiserver };
    const spec: ClusterSpec = {
            clusterName,
            hosts, masters, workers: hosts.filter((h) => h.roles.includes("worker")), loadBalancers, mastersAreWorkers,
            ssh: { user: sshUser, port: sshPort, sudo: sshUser !== "root", hostKeyChecking },
            network: {
                interface: hostInterface, hostCidr: hostCidr!.text, serviceCidr: serviceCidr!.text, podCidr: podCidr!.text,
                podSubnetLength, clusterDns, clusterDomain, nodePortRange, kubeProxyMode, flannelBackend, flannelMode,
                flannelEtcdPrefix,
            },
            loadBalancer,
            ports,
            certificates,
            etcd,
            controlPlane,
            node,
            addons: addonSettings,
            versions,
            binarySource: { kind: binarySourceKind, localDir: binaryDir },
            apiEndpoint: { ...apiEndpoint, url: `https://${apiEndpoint.host}:${apiEndpoint.port}` },
            kubernetesServiceIp,
            artifactChecksums,
    };
    if (binarySourceKind === "download") {
        for (const a of artifactsFor(spec).filter((x) => !x.sha256)) {
            envProblem("artifactChecksums", `no published sha256 known for ${a.key} ${a.version}; hosts will not download an unverified binary: add "${a.key}=<sha256 from the release page>" or use binarySource=local`);
        }
        if (r.problems.length > 0) throw new ConfigError(r.problems);
    }
    return { spec, warnings };
}
