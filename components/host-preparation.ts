// PreparedHosts: every host, whatever its roles, prepared like the seed's environment section
// (packages, kernel modules and sysctls, swap, journald, the resolver the kubelet hands to pods)
// and checked by a preflight that lists every problem on the host before anything starts.
// One resource per host: a host leaves the cluster only after the roles on it were removed
// (Pulumi deletes after every update), and kubeha's records on it go last.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec } from "../spec/types";
import { HostGroup, hostManifest, script } from "../host/group";
import { renderHostPreparation } from "../render/host-prep";
import { STATE_DIR } from "../render/paths";

export interface PreparedHostsArgs {
    spec: ClusterSpec;
}

export class PreparedHosts extends pulumi.ComponentResource {
    /** Per host: prepared and past its preflight. Everything else on a host comes after. */
    readonly byHost: Record<string, HostGroup>;
    readonly all: HostGroup[];

    constructor(name: string, args: PreparedHostsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:hosts:PreparedHosts", name, {}, opts);
        const { spec } = args;
        this.byHost = Object.fromEntries(spec.hosts.map((h) => {
            const prep = renderHostPreparation(spec, h);
            const files = prep.files.map((f) => f.path);
            const member = hostManifest(h, {
                files: prep.files,
                steps: [
                    // Undone last of all on the host: kubeha's records, download cache and staged uploads.
                    script({ name: "prepare", reads: files, script: prep.prepareScript, undo: `rm -rf ${STATE_DIR}` }),
                    script({ name: "preflight", reads: files, script: prep.preflightScript }),
                ],
            });
            return [h.name, new HostGroup(`${name}-${h.name}`, { group: "host", members: [member] }, { parent: this })];
        }));
        this.all = Object.values(this.byHost);
        this.registerOutputs({});
    }
}
