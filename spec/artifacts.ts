// Which release artifacts each host needs, where they come from and their published checksums.
import releases from "./releases.json";
import { BIN_DIR, CNI_BIN_DIR } from "../render/paths";
import { ClusterSpec, Host, Versions } from "./types";

export type ArtifactKey =
    | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kubelet" | "kube-proxy" | "kubectl"
    | "etcd" | "containerd" | "runc" | "cni-plugins" | "flannel" | "flannel-cni-plugin";

export interface Artifact {
    key: ArtifactKey;
    version: string;
    url: string;
    /** Published sha256 of the download; undefined when kubeha knows none for this version. */
    sha256?: string;
    /** Where the checksum was taken from (a public file) or "stack config". */
    checksumSource?: string;
    format: "binary" | "tar.gz";
    /** Installed files: name on the host -> path inside the archive (the download itself for a binary). */
    members: Record<string, string>;
    installDir: string;
    hosts: Host[];
}

interface ArtifactRow {
    version: (v: Versions) => string;
    url: (version: string) => string;
    format: "binary" | "tar.gz";
    members: (version: string) => Record<string, string>;
    installDir: string;
    hosts: (s: ClusterSpec) => Host[];
}

const GH = "https://github.com";
const masters = (s: ClusterSpec) => s.masters;
const nodes = (s: ClusterSpec) => s.workers;
const flannelNodes = (s: ClusterSpec) => s.hosts.filter((h) => !h.roles.includes("lb"));
const k8sBinary = (name: string, hosts: (s: ClusterSpec) => Host[]): ArtifactRow => ({
    version: (v) => v.kubernetes, url: (v) => `https://dl.k8s.io/release/v${v}/bin/linux/amd64/${name}`,
    format: "binary", members: () => ({ [name]: name }), installDir: BIN_DIR, hosts,
});

// A table keyed by the union: the compiler demands a row for every artifact.
export const ARTIFACT_ROWS: Record<ArtifactKey, ArtifactRow> = {
    "kube-apiserver": k8sBinary("kube-apiserver", masters),
    "kube-controller-manager": k8sBinary("kube-controller-manager", masters),
    "kube-scheduler": k8sBinary("kube-scheduler", masters),
    "kubectl": k8sBinary("kubectl", masters),
    "kubelet": k8sBinary("kubelet", nodes),
    "kube-proxy": k8sBinary("kube-proxy", nodes),
    "etcd": {
        version: (v) => v.etcd, url: (v) => `${GH}/etcd-io/etcd/releases/download/v${v}/etcd-v${v}-linux-amd64.tar.gz`,
        format: "tar.gz", installDir: BIN_DIR, hosts: masters,
        members: (v) => Object.fromEntries(["etcd", "etcdctl", "etcdutl"].map((b) => [b, `etcd-v${v}-linux-amd64/${b}`])),
    },
    "containerd": {
        version: (v) => v.containerd, url: (v) => `${GH}/containerd/containerd/releases/download/v${v}/containerd-${v}-linux-amd64.tar.gz`,
        format: "tar.gz", installDir: BIN_DIR, hosts: nodes,
        members: () => Object.fromEntries(["containerd", "containerd-shim-runc-v2", "ctr"].map((b) => [b, `bin/${b}`])),
    },
    "runc": {
        version: (v) => v.runc, url: (v) => `${GH}/opencontainers/runc/releases/download/v${v}/runc.amd64`,
        format: "binary", installDir: BIN_DIR, hosts: nodes, members: () => ({ runc: "runc.amd64" }),
    },
    "cni-plugins": {
        version: (v) => v.cniPlugins, url: (v) => `${GH}/containernetworking/plugins/releases/download/v${v}/cni-plugins-linux-amd64-v${v}.tgz`,
        format: "tar.gz", installDir: CNI_BIN_DIR, hosts: nodes,
        members: () => Object.fromEntries(["bridge", "host-local", "loopback", "portmap"].map((b) => [b, `./${b}`])),
    },
    "flannel": {
        version: (v) => v.flannel, url: (v) => `${GH}/flannel-io/flannel/releases/download/v${v}/flanneld-amd64`,
        format: "binary", installDir: BIN_DIR, hosts: flannelNodes, members: () => ({ flanneld: "flanneld-amd64" }),
    },
    "flannel-cni-plugin": {
        version: (v) => v.flannelCniPlugin,
        url: (v) => `${GH}/flannel-io/cni-plugin/releases/download/v${v}/cni-plugin-flannel-linux-amd64-v${v}.tgz`,
        format: "tar.gz", installDir: CNI_BIN_DIR, hosts: nodes, members: () => ({ flannel: "flannel-amd64" }),
    },
};

interface PublishedRelease {
    version: string;
    url: string;
    sha256?: string | null;
    members?: Record<string, string>;
    checksumSource?: string | null;
}
const PUBLISHED = releases.artifacts as Record<string, PublishedRelease>;

/**
 * Every artifact the cluster needs. A version kubeha has a published checksum for uses that
 * release's URL and sha256; `checksums` (kubeha:artifactChecksums) pins any other.
 */
export function artifactsFor(s: ClusterSpec, checksums: Record<string, string> = s.artifactChecksums): Artifact[] {
    return (Object.keys(ARTIFACT_ROWS) as ArtifactKey[]).flatMap((key) => {
        const row = ARTIFACT_ROWS[key];
        const hosts = row.hosts(s);
        if (hosts.length === 0) return [];
        const version = row.version(s.versions);
        const known = PUBLISHED[key]?.version === version ? PUBLISHED[key] : undefined;
        const pinned = checksums[key];
        return [{
            key, version, format: row.format, installDir: row.installDir, hosts,
            url: known?.url ?? row.url(version),
            members: known?.members ?? row.members(version),
            sha256: pinned ?? known?.sha256 ?? undefined,
            checksumSource: pinned ? "stack config (kubeha:artifactChecksums)" : known?.sha256 ? known.checksumSource ?? undefined : undefined,
        }];
    });
}

export const ARTIFACT_KEYS = Object.keys(ARTIFACT_ROWS) as ArtifactKey[];
