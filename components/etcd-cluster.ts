// EtcdCluster: one etcd member per master. Install binaries -> certificates (already put) -> unit
// -> start (rolling once the cluster exists) -> wait until every member is healthy -> backups.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec } from "../spec/types";
import { artifactsFor } from "../spec/artifacts";
import { digestOf, installArtifact, putFiles, runScript, sha256, systemdService, waitHealthy } from "../host/remote";
import { renderEtcdAuthScript } from "../render/etcd-auth";
import {
    ETCD, etcdClusterHealthCheck, etcdRestartScript, renderEtcdBackupScript, renderEtcdBackupUnits, renderEtcdUnit,
} from "../render/etcd";
import { ETCD_PKI_DIR, STATE_DIR } from "../render/paths";
import { HostContexts } from "./context";

export interface EtcdClusterArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
}

/** Files each member reads: a change to any of them restarts that member. */
export const ETCD_INPUTS = ["ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"].map((f) => `${ETCD_PKI_DIR}/${f}`);

export class EtcdCluster extends pulumi.ComponentResource {
    /** Every member healthy with a leader: later components wait on these. */
    readonly ready: pulumi.Resource[];
    /** Users, roles and authentication enabled (after the health gates). */
    readonly auth: pulumi.Resource;

    constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:etcd:EtcdCluster", name, {}, opts);
        const { spec, hosts } = args;
        const artifact = artifactsFor(spec).find((a) => a.key === "etcd")!;
        const child = { parent: this };

        // Members start in order; each restart of a running member first waits for the whole cluster
        // to be healthy (etcdRestartScript), so a change never takes two members down at once.
        const starts: pulumi.Resource[] = [];
        const memberDigests: pulumi.Output<string>[] = [];
        for (const m of spec.masters) {
            const ctx = hosts[m.name];
            const install = installArtifact(`${name}-${m.name}-etcd-binaries`, ctx.target, artifact, spec.binarySource, { ...child, dependsOn: [ctx.base] });
            const unit = renderEtcdUnit(spec, m);
            const digest = pulumi.all([digestOf(ctx.pki, ETCD_INPUTS), sha256(unit), artifact.sha256 ?? artifact.version]).apply((d) => sha256(d.join()));
            memberDigests.push(digest);
            starts.push(systemdService(`${name}-${m.name}-etcd`, ctx.target, {
                unit: ETCD.unit, content: unit, inputs: [digest], restart: etcdRestartScript(spec, m),
                // `pulumi destroy` removes the member's data too, like `kubeadm reset`.
                removeOnDelete: [spec.etcd.dataDir, spec.etcd.walDir, ETCD.healthyMarker],
            }, { ...child, dependsOn: [install, ctx.pkiFiles, ...starts.slice(-1)] }));
        }

        const clusterDigest = pulumi.all(memberDigests).apply((d) => sha256(d.join()));
        this.ready = spec.masters.map((m) => waitHealthy(`${name}-${m.name}-etcd-healthy`, hosts[m.name].target, {
            what: "etcd cluster (every member healthy, a leader elected)",
            check: `${etcdClusterHealthCheck(spec)} && mkdir -p ${STATE_DIR} && touch ${ETCD.healthyMarker}`,
            timeoutSeconds: 300,
            rerunOn: [clusterDigest],
        }, { ...child, dependsOn: starts }));

        // Role-based access once the cluster is healthy: the flanneld certificate every node holds
        // reaches only flannel's prefix, never kube-apiserver's /registry (render/etcd-auth.ts).
        const authScript = renderEtcdAuthScript(spec);
        this.auth = runScript(`${name}-auth`, hosts[spec.masters[0].name].target, { script: authScript, rerunOn: [sha256(authScript)] },
            { ...child, dependsOn: this.ready });

        // Snapshot backups on every master, on a timer.
        const backupScript = renderEtcdBackupScript(spec);
        const backupUnits = renderEtcdBackupUnits(spec);
        spec.masters.forEach((m, i) => {
            const ctx = hosts[m.name];
            const script = putFiles(`${name}-${m.name}-etcd-backup-script`, ctx.target,
                [{ path: ETCD.backupScript, content: backupScript, mode: "0755", secret: false }], child);
            systemdService(`${name}-${m.name}-etcd-backup`, ctx.target, {
                unit: ETCD.backupTimer, content: backupUnits.timer, companions: [{ unit: ETCD.backupService, content: backupUnits.service }],
                // The timer runs the script by path: a changed script needs no restart of the timer.
                inputs: [], restart: `systemctl restart ${ETCD.backupTimer}`,
            }, { ...child, dependsOn: [script, this.ready[i]] });
        });
        this.registerOutputs({});
    }
}
