// Addons: CoreDNS, metrics-server and Headlamp, applied through the API (server-side apply from
// the first master) once the nodes are Ready. Images and the list of add-ons are stack config.
import * as pulumi from "@pulumi/pulumi";
import { parseAllDocuments } from "yaml";
import { ClusterSpec } from "../spec/types";
import { HostScript, sha256 } from "../host/group";
import { AddonName, renderAddonManifests } from "../render/addons";
import { localKubectl } from "../render/control-plane";

export interface AddonsArgs {
    spec: ClusterSpec;
    /** The nodes the add-ons run on are Ready. */
    nodesReady: pulumi.Resource[];
}

export function addonManifests(spec: ClusterSpec): { name: string; yaml: string }[] {
    return renderAddonManifests({
        clusterDns: spec.network.clusterDns,
        clusterDomain: spec.network.clusterDomain,
        images: spec.addons.images,
        enabled: spec.addons.enabled as AddonName[],
        headlampAdmin: spec.addons.headlampAdmin,
        ...(spec.addons.upstreamDns.length ? { upstreamDns: spec.addons.upstreamDns } : {}),
    });
}

/** Deletes every object of one add-on, by the labels the renderer puts on each of them. */
export function addonDeleteScript(kubectl: string, m: { name: string; yaml: string }): string {
    const kinds = [...new Set(parseAllDocuments(m.yaml).map((d) => String((d.toJSON() as { kind: string }).kind).toLowerCase()))].sort();
    return `${kubectl} delete ${kinds.join(",")} --all-namespaces --ignore-not-found --wait=false -l app.kubernetes.io/name=${m.name},app.kubernetes.io/managed-by=kubeha || echo "could not delete add-on ${m.name}; the API may be gone already" >&2`;
}

export class Addons extends pulumi.ComponentResource {
    readonly applied: HostScript[];

    constructor(name: string, args: AddonsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:addons:Addons", name, {}, opts);
        const { spec } = args;
        const kubectl = localKubectl(spec, 30);
        // One resource per add-on: a changed image re-applies only that add-on.
        this.applied = addonManifests(spec).map((m) => new HostScript(`${name}-${m.name}`, {
            what: `add-on ${m.name}`, host: spec.masters[0],
            script: `${kubectl} apply --server-side --force-conflicts --field-manager=kubeha -f - >/dev/null\necho "applied ${m.name}"`,
            stdin: m.yaml,
            rerunOn: [sha256(m.yaml)],
            // Dropped from kubeha:addons (or destroyed): its objects go, found by kubeha's labels. On a
            // destroy this also lifts the add-ons' disruption budgets before the nodes are drained.
            delete: addonDeleteScript(kubectl, m),
        }, { parent: this, dependsOn: args.nodesReady }));
        this.registerOutputs({});
    }
}
