// etcd on the masters: one member per master, mutual TLS for clients and peers with the etcd CA.
import { ClusterSpec, Host } from "../spec/types";
import { Args, argsToCommandLine, mergeArgs, renderUnit } from "./systemd";
import { BIN_DIR, ETCD_PKI_DIR } from "./paths";

export const ETCD = {
    unit: "etcd.service",
    backupService: "kubeha-etcd-backup.service",
    backupTimer: "kubeha-etcd-backup.timer",
    backupScript: "/usr/local/lib/kubeha/etcd-backup.sh",
    metricsUrl: "http://127.0.0.1:2381",
} as const;

const pki = (f: string) => `${ETCD_PKI_DIR}/${f}`;

export function etcdClientUrl(spec: ClusterSpec, h: Host): string {
    return `https://${h.ip}:${spec.ports.etcdClient}`;
}

export function etcdEndpoints(spec: ClusterSpec): string {
    return spec.masters.map((m) => etcdClientUrl(spec, m)).join(",");
}

export function etcdArgs(spec: ClusterSpec, member: Host): Args {
    const e = spec.etcd;
    const peer = (h: Host) => `https://${h.ip}:${spec.ports.etcdPeer}`;
    return mergeArgs({
        "name": member.name,
        "data-dir": e.dataDir,
        "wal-dir": e.walDir,
        "listen-client-urls": `${etcdClientUrl(spec, member)},https://127.0.0.1:${spec.ports.etcdClient}`,
        "advertise-client-urls": etcdClientUrl(spec, member),
        "listen-peer-urls": peer(member),
        "initial-advertise-peer-urls": peer(member),
        "initial-cluster": spec.masters.map((m) => `${m.name}=${peer(m)}`).join(","),
        "initial-cluster-token": `etcd-${spec.clusterName}`,
        "initial-cluster-state": "new",
        "client-cert-auth": true,
        "trusted-ca-file": pki("ca.crt"),
        "cert-file": pki("server.crt"),
        "key-file": pki("server.key"),
        "peer-client-cert-auth": true,
        "peer-trusted-ca-file": pki("ca.crt"),
        "peer-cert-file": pki("peer.crt"),
        "peer-key-file": pki("peer.key"),
        "listen-metrics-urls": ETCD.metricsUrl,
        "auto-compaction-mode": "periodic",
        "auto-compaction-retention": `${e.autoCompactionRetentionHours}h`,
        "quota-backend-bytes": e.quotaBackendBytes,
        "heartbeat-interval": e.heartbeatIntervalMs,
        "election-timeout": e.electionTimeoutMs,
    }, e.extraArgs);
}

export function renderEtcdUnit(spec: ClusterSpec, member: Host): string {
    return renderUnit({
        description: "etcd key-value store (kubeha)",
        documentation: "https://etcd.io/docs/",
        type: "notify",
        execStart: argsToCommandLine(`${BIN_DIR}/etcd`, etcdArgs(spec, member)),
        service: { Restart: "on-failure", RestartSec: 5, LimitNOFILE: 65536, TimeoutStartSec: 0 },
    });
}

/** etcdctl with the healthcheck client certificate (present on every master). */
export function etcdctl(endpoints: string): string {
    return `${BIN_DIR}/etcdctl --endpoints=${endpoints} --cacert=${pki("ca.crt")} --cert=${pki("healthcheck-client.crt")} --key=${pki("healthcheck-client.key")} --command-timeout=5s`;
}

/** Healthy = every member answers a linearizable read, which needs a leader. */
export function etcdClusterHealthCheck(spec: ClusterSpec): string {
    return `${etcdctl(etcdEndpoints(spec))} endpoint health`;
}

/**
 * Succeeds on the member that leads the cluster now: the roll restarts it last, so a change costs
 * one leader election, not one per member.
 */
export function etcdIsLeaderCheck(spec: ClusterSpec): string {
    return `s=$(${etcdctl(`https://127.0.0.1:${spec.ports.etcdClient}`)} endpoint status -w fields) && ` +
        `[ -n "$(printf '%s\\n' "$s" | sed -n 's/^"Leader" : //p')" ] && ` +
        `[ "$(printf '%s\\n' "$s" | sed -n 's/^"MemberID" : //p')" = "$(printf '%s\\n' "$s" | sed -n 's/^"Leader" : //p')" ]`;
}

export function renderEtcdBackupScript(spec: ClusterSpec): string {
    const b = spec.etcd.backup;
    return `#!/bin/sh
# Managed by kubeha. Saves a snapshot of the local etcd member and keeps the newest ${b.retention}.
set -eu
dir=${b.dir}
mkdir -p "$dir"
chmod 700 "$dir"
file="$dir/snapshot-$(hostname)-$(date -u +%Y%m%dT%H%M%SZ).db"
${etcdctl(`https://127.0.0.1:${spec.ports.etcdClient}`)} snapshot save "$file.part" >/dev/null
mv "$file.part" "$file"
chmod 600 "$file"
ls -1t "$dir"/snapshot-*.db | tail -n +${b.retention + 1} | xargs -r rm -f --
echo "saved $file"
`;
}

export function renderEtcdBackupUnits(spec: ClusterSpec): { service: string; timer: string } {
    const service = renderUnit({
        description: "etcd snapshot backup (kubeha)",
        documentation: "https://etcd.io/docs/v3.6/op-guide/recovery/",
        type: "oneshot",
        after: [ETCD.unit],
        wants: [],
        execStart: ETCD.backupScript,
        noInstall: true,
    });
    const timer = [
        "# Managed by kubeha: changes are overwritten by `pulumi up`.",
        "[Unit]",
        "Description=etcd snapshot backup schedule (kubeha)",
        "",
        "[Timer]",
        `OnCalendar=${spec.etcd.backup.schedule}`,
        "RandomizedDelaySec=300",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ].join("\n");
    return { service, timer };
}
