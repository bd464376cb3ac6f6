// ApiLoadBalancer: on each lb host an nginx `stream` proxy to every apiserver and keepalived
// holding the VIP, tracking the API's readiness through the local proxy. A proxy config change is a
// reload (no connection dropped); a keepalived change reloads it one host at a time, the VIP holder
// last, each followed by the API answering through the VIP (keepalived runs with nopreempt, so a
// host coming back never takes the VIP back: it moves at most once).
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ClusterSpec } from "../spec/types";
import { HostGroup, hostManifest, unit } from "../host/group";
import { LB_PATHS, renderApiserverCheckScript, renderKeepalivedConfig, renderLbUnit, renderNginxStreamConfig, vipHeldCheck } from "../render/loadbalancer";
import { PKI_DIR } from "../render/paths";
import { HostContexts, pickPki, unitFile, unitPath } from "./context";

export interface ApiLoadBalancerArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** The lb hosts are prepared and passed their preflight. */
    prepared: pulumi.Resource[];
}

export class ApiLoadBalancer extends pulumi.ComponentResource {
    /** Every lb host's proxy listening and keepalived running. */
    readonly hosts: HostGroup;

    constructor(name: string, args: ApiLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:lb:ApiLoadBalancer", name, {}, opts);
        const { spec, hosts } = args;
        const lb = spec.loadBalancer!;
        // VRRP PASS authentication takes at most 8 characters.
        const authPass = new random.RandomPassword(`${name}-vrrp-auth`, { length: 8, special: false }, { parent: this });
        const nginxConf = renderNginxStreamConfig(spec);
        const check = renderApiserverCheckScript(spec);
        const ca = `${PKI_DIR}/ca.crt`;

        const members = spec.loadBalancers.map((h) => pulumi.all([hosts[h.name].pki, authPass.result]).apply(([files, pass]) => hostManifest(h, {
            files: [
                ...pickPki(h.name, files, [ca]),
                { path: LB_PATHS.nginxConfig, content: nginxConf, mode: "0644", secret: false },
                unitFile(LB_PATHS.unit, renderLbUnit(spec)),
                { path: LB_PATHS.keepalivedConfig, content: renderKeepalivedConfig(spec, h, pass), mode: "0600", secret: true },
                { path: LB_PATHS.checkScript, content: check, mode: "0755", secret: false },
            ],
            steps: [
                unit({
                    name: LB_PATHS.unit, reads: [unitPath(LB_PATHS.unit), LB_PATHS.nginxConfig], reloadOn: [LB_PATHS.nginxConfig],
                    health: {
                        what: `API proxy on :${lb.port}`,
                        // curl exit 7 = nothing listening; any other answer means nginx accepted the connection.
                        check: `rc=0; curl -sk --max-time 2 -o /dev/null https://127.0.0.1:${lb.port}/ || rc=$?; [ "$rc" -ne 7 ]`,
                        timeoutSeconds: 60,
                    },
                }),
                // The distribution's keepalived.service with kubeha's config: a reload keeps the VRRP
                // state (the holder keeps the VIP); the check script is read by path at every run.
                unit({
                    name: "keepalived.service", reads: [LB_PATHS.keepalivedConfig], onChange: "reload",
                    health: { what: `the API through the VIP ${spec.apiEndpoint.url}`, check: `curl -fsS --max-time 3 --cacert ${ca} ${spec.apiEndpoint.url}/readyz >/dev/null`, timeoutSeconds: 120 },
                }),
            ],
        })));
        this.hosts = new HostGroup(`${name}-hosts`, {
            group: "lb", members: pulumi.all(members), roll: { batch: 1, lastIf: vipHeldCheck(spec) },
        }, { parent: this, dependsOn: args.prepared });
        this.registerOutputs({});
    }
}
