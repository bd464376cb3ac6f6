// ApiLoadBalancer: on each lb host an nginx `stream` proxy to every apiserver and keepalived
// holding the VIP, tracking the API's readiness through the local proxy.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ClusterSpec } from "../spec/types";
import { putFiles, runScript, sha256, systemdService, waitHealthy } from "../host/remote";
import { LB_PATHS, renderApiserverCheckScript, renderKeepalivedConfig, renderLbUnit, renderNginxStreamConfig } from "../render/loadbalancer";
import { HostContexts } from "./context";

export interface ApiLoadBalancerArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
}

/** Distribution packages the lb hosts need; installed only when missing. */
export function lbPackagesScript(host: string): string {
    return [
        "stream=",
        "for f in /usr/lib/nginx/modules/ngx_stream_module.so /usr/lib64/nginx/modules/ngx_stream_module.so; do [ -e \"$f\" ] && stream=$f; done",
        "if command -v nginx >/dev/null && command -v keepalived >/dev/null && command -v curl >/dev/null && [ -n \"$stream\" ]; then exit 0; fi",
        "if command -v apt-get >/dev/null; then",
        "  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx libnginx-mod-stream keepalived curl",
        "elif command -v dnf >/dev/null; then",
        "  dnf install -y -q nginx nginx-mod-stream keepalived curl",
        "else",
        `  echo "${host}: install nginx with the stream module, keepalived and curl (no apt-get or dnf here)" >&2; exit 1`,
        "fi",
    ].join("\n");
}

export class ApiLoadBalancer extends pulumi.ComponentResource {
    /** Each lb host's proxy is listening and keepalived runs. */
    readonly ready: pulumi.Resource[];

    constructor(name: string, args: ApiLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:lb:ApiLoadBalancer", name, {}, opts);
        const { spec, hosts } = args;
        const child = { parent: this };
        const lb = spec.loadBalancer!;
        // VRRP PASS authentication takes at most 8 characters.
        const authPass = new random.RandomPassword(`${name}-vrrp-auth`, { length: 8, special: false }, child);
        const nginxConf = renderNginxStreamConfig(spec);
        const unit = renderLbUnit(spec);
        const check = renderApiserverCheckScript(spec);

        this.ready = spec.loadBalancers.flatMap((h) => {
            const ctx = hosts[h.name];
            const res = (s: string) => `${name}-${h.name}-${s}`;
            const packages = runScript(res("packages"), ctx.target, { script: lbPackagesScript(h.name), rerunOn: [] }, child);

            const proxyConfig = putFiles(res("proxy-config"), ctx.target, [{ path: LB_PATHS.nginxConfig, content: nginxConf, mode: "0644", secret: false }], { ...child, dependsOn: [packages] });
            const proxy = systemdService(res("proxy"), ctx.target, { unit: LB_PATHS.unit, content: unit, inputs: [sha256(nginxConf)] },
                { ...child, dependsOn: [proxyConfig, ctx.pkiFiles] });
            const listening = waitHealthy(res("proxy-listening"), ctx.target, {
                what: `API proxy on :${lb.port}`,
                // curl exit 7 = nothing listening; any other answer means nginx accepted the connection.
                check: `rc=0; curl -sk --max-time 2 -o /dev/null https://127.0.0.1:${lb.port}/ || rc=$?; [ "$rc" -ne 7 ]`,
                timeoutSeconds: 60, rerunOn: [sha256(nginxConf + unit)],
            }, { ...child, dependsOn: [proxy] });

            const keepalivedConf = authPass.result.apply((p) => renderKeepalivedConfig(spec, h, p));
            const vrrpFiles = putFiles(res("vrrp-config"), ctx.target, keepalivedConf.apply((conf) => [
                { path: LB_PATHS.keepalivedConfig, content: conf, mode: "0600", secret: true },
                { path: LB_PATHS.checkScript, content: check, mode: "0755", secret: false },
            ]), { ...child, dependsOn: [packages] });
            const keepalived = runScript(res("keepalived"), ctx.target, {
                script: "systemctl enable keepalived >/dev/null 2>&1\nsystemctl restart keepalived\necho restarted keepalived",
                delete: `systemctl disable --now keepalived 2>/dev/null || true\nrm -f ${LB_PATHS.keepalivedConfig} ${LB_PATHS.checkScript}`,
                rerunOn: [pulumi.secret(keepalivedConf.apply((c) => sha256(c + check)))],
            }, { ...child, dependsOn: [vrrpFiles, listening] });
            return [listening, keepalived];
        });
        this.registerOutputs({});
    }
}
