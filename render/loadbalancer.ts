// The API load balancer hosts: a dedicated nginx instance proxying TCP (L4 `stream`) to every
// kube-apiserver, and keepalived moving the VIP to an lb host whose proxy really reaches a ready
// apiserver. Pure functions from the spec to file text; no Pulumi here.
import { ClusterSpec, Host, LoadBalancerSettings } from "../spec/types";
import { PKI_DIR } from "./paths";
import { renderUnit } from "./systemd";
import { shellQuote as shq } from "./shell";

export const LB_PATHS = {
    /** A standalone nginx main config, not a site in the distro's /etc/nginx (its nginx.service stays untouched). */
    nginxConfig: "/etc/kubeha/apiserver-lb/nginx.conf",
    nginxPid: "/run/kubeha-apiserver-lb.pid",
    unit: "kubeha-apiserver-lb.service",
    keepalivedConfig: "/etc/keepalived/keepalived.conf",
    checkScript: "/etc/keepalived/check-apiserver.sh",
} as const;

const NGINX = "/usr/sbin/nginx";
/** keepalived allows at most 8 characters for PASS authentication (it truncates longer ones). */
export const MAX_VRRP_AUTH_PASS = 8;
const CHECK_SCRIPT_NAME = "check_apiserver";
const HEADER = "Managed by kubeha: changes are overwritten by `pulumi up`.";

function lbSettings(spec: ClusterSpec): LoadBalancerSettings {
    if (!spec.loadBalancer || spec.loadBalancers.length === 0) {
        throw new Error("the cluster has no lb hosts: there is no API load balancer to render");
    }
    return spec.loadBalancer;
}

export function renderNginxStreamConfig(spec: ClusterSpec): string {
    const lb = lbSettings(spec);
    if (spec.masters.length === 0) throw new Error("the API load balancer needs at least one master to proxy to");
    const servers = spec.masters.map((m) => upstreamLine(spec, m, false));
    return [
        `# ${HEADER}`,
        "# A dedicated nginx for the Kubernetes API (unit " + LB_PATHS.unit + "), separate from the",
        "# distro's nginx.service and its sites. L4 only: TLS passes through untouched, so the apiserver",
        "# sees client certificates itself.",
        "",
        "# Debian (libnginx-mod-stream) and RHEL (nginx-mod-stream) build the stream module as a dynamic",
        "# module. The path is relative to nginx's prefix: Debian's /usr/share/nginx/modules links to",
        "# /usr/lib/nginx/modules. (RHEL keeps the .so in /usr/lib64/nginx/modules.)",
        "load_module modules/ngx_stream_module.so;",
        "",
        "worker_processes auto;",
        `pid ${LB_PATHS.nginxPid};`,
        "# stderr goes to the journal (the unit runs nginx in the foreground).",
        "error_log stderr warn;",
        "",
        "events {",
        `    worker_connections ${lb.workerConnections};`,
        "}",
        "",
        "stream {",
        "    upstream kube_apiserver {",
        "        # least_conn, not `hash $remote_addr consistent`: apiserver load is mostly long-lived",
        "        # watch connections, so the connection count is the right measure, and apiservers are",
        "        # stateless behind etcd, so pinning a client to one buys nothing (and a hash keeps a",
        "        # busy client's connections piled on one master).",
        "        least_conn;",
        "        # Open-source nginx has only passive checks: a master whose connections fail 3 times",
        "        # within 10s is skipped for 10s. A refused connection is retried on the next master.",
        ...servers,
        "    }",
        "",
        "    server {",
        "        # Every address, so it serves on whichever lb host holds the VIP (no ip_nonlocal_bind).",
        `        listen ${lb.port};`,
        "        proxy_pass kube_apiserver;",
        "        proxy_connect_timeout 2s;",
        "        # Watches stay open without traffic for long stretches; the apiserver ends them itself.",
        "        proxy_timeout 2h;",
        "        proxy_socket_keepalive on;",
        "    }",
        "}",
        "",
    ].join("\n");
}

/** The upstream line of one master in nginx.conf, and the same line marked `down`. */
function upstreamLine(spec: ClusterSpec, m: Host, down: boolean): string {
    return `        server ${m.ip}:${spec.ports.apiserver} max_fails=3 fail_timeout=10s${down ? " down" : ""}; # ${m.name}`;
}

/**
 * Scripts run on each lb host around a restart of one master's kube-apiserver: `before` marks the
 * master `down` in nginx's upstreams and reloads (new connections go to the other masters; nginx
 * has no active health checks, and a starting apiserver accepts connections before it answers),
 * `after` puts it back once the apiserver is ready. Both leave nginx.conf byte for byte as
 * rendered (or as rendered with that one line marked), and do nothing when it already is.
 */
export function lbDrainScripts(spec: ClusterSpec, m: Host): { before: string; after: string } {
    const conf = LB_PATHS.nginxConfig;
    const swap = (from: string, to: string, done: string) => [
        `if grep -qxF ${shq(from)} ${conf}; then`,
        `  tmp=$(mktemp ${conf}.XXXXXX)`,
        // awk replaces the whole line, byte for byte: no regular expressions over addresses.
        `  awk -v from=${shq(from)} -v to=${shq(to)} '$0 == from { print to; next } { print }' ${conf} >"$tmp"`,
        `  chmod 0644 "$tmp" && mv "$tmp" ${conf}`,
        `  systemctl reload ${LB_PATHS.unit}`,
        "  sleep 1",
        `  echo ${shq(done)}`,
        "fi",
    ].join("\n");
    return {
        before: swap(upstreamLine(spec, m, false), upstreamLine(spec, m, true), `took ${m.name} out of the API proxy's upstreams`),
        after: swap(upstreamLine(spec, m, true), upstreamLine(spec, m, false), `put ${m.name} back in the API proxy's upstreams`),
    };
}

export function renderLbUnit(spec: ClusterSpec): string {
    lbSettings(spec);
    const conf = LB_PATHS.nginxConfig;
    return renderUnit({
        description: "kubeha API load balancer (nginx L4 proxy to every kube-apiserver)",
        documentation: "https://nginx.org/en/docs/stream/ngx_stream_upstream_module.html",
        execStartPre: [`${NGINX} -t -q -c ${conf}`],
        execStart: `${NGINX} -c ${conf} -g 'daemon off;'`,
        service: {
            // A reload checks the new config first, so a broken one fails the reload (and kubeha's
            // roll) instead of being logged and ignored; on SIGHUP nginx re-reads it.
            ExecReload: `/bin/sh -c '${NGINX} -t -q -c ${conf} && /bin/kill -s HUP \${MAINPID}'`,
            Restart: "always",
            RestartSec: 2,
            LimitNOFILE: 1048576,
        },
    });
}

/** Priority of each lb host: the first lb host highest, then decreasing in lb-host order. */
export function vrrpPriorities(spec: ClusterSpec): Map<string, number> {
    const n = spec.loadBalancers.length;
    if (n > 150) throw new Error(`${n} lb hosts: keepalived priorities (1-254) allow at most 150 here`);
    const step = n <= 15 ? 10 : 1;
    return new Map(spec.loadBalancers.map((h, i) => [h.name, 150 - i * step]));
}

function prefixLength(cidr: string): number {
    const m = /^[0-9.]+\/(\d{1,2})$/.exec(cidr);
    if (!m || Number(m[1]) > 32) throw new Error(`hostCidr ${JSON.stringify(cidr)} is not an IPv4 CIDR`);
    return Number(m[1]);
}

export function renderKeepalivedConfig(spec: ClusterSpec, host: Host, authPass: string): string {
    const lb = lbSettings(spec);
    if (!spec.loadBalancers.some((h) => h.name === host.name)) {
        throw new Error(`${host.name} is not an lb host; keepalived runs only on ${spec.loadBalancers.map((h) => h.name).join(", ")}`);
    }
    if (authPass.length === 0 || authPass.length > MAX_VRRP_AUTH_PASS) {
        throw new Error(`the VRRP auth_pass has ${authPass.length} characters; keepalived's PASS authentication takes 1-${MAX_VRRP_AUTH_PASS} (it would silently truncate a longer one)`);
    }
    if (!/^[\x21-\x7e]+$/.test(authPass) || /["#!]/.test(authPass)) {
        throw new Error("the VRRP auth_pass must be printable ASCII without spaces, quotes, '#' or '!' (keepalived's comment characters)");
    }
    const iface = spec.network.interface;
    const peers = spec.loadBalancers.filter((h) => h.name !== host.name);
    const priority = vrrpPriorities(spec).get(host.name)!;
    return [
        `# ${HEADER}`,
        "global_defs {",
        `    router_id ${host.name}`,
        "    enable_script_security",
        "    script_user root",
        "}",
        "",
        "# The check goes through this host's own nginx (https://127.0.0.1:<lb port>/readyz), not to a",
        "# master directly and not just \"is nginx running\": the VIP belongs on an lb host whose proxy",
        "# actually gets a client to a ready apiserver. A stopped or misconfigured nginx, or an lb host",
        "# cut off from every master, fails the check, so the instance goes to FAULT and the VIP moves",
        "# to a peer that still works.",
        `vrrp_script ${CHECK_SCRIPT_NAME} {`,
        `    script "${LB_PATHS.checkScript}"`,
        // Every second, healthy after one pass: a new cluster's VIP comes up as soon as an apiserver
        // is ready; three misses in a row (3 s) move it.
        "    interval 1",
        "    timeout 3",
        "    fall 3",
        "    rise 1",
        "}",
        "",
        "vrrp_instance kube_apiserver {",
        "    # BACKUP everywhere: the priorities elect the first holder; no host claims the VIP at start.",
        "    state BACKUP",
        "    # The VIP stays where it is until its holder fails: a host coming back (a restart, a",
        "    # reboot, kubeha's roll, which restarts the holder last) does not take it back, so it moves",
        "    # once, not twice.",
        "    nopreempt",
        `    interface ${iface}`,
        `    virtual_router_id ${lb.virtualRouterId}`,
        `    priority ${priority}`,
        "    advert_int 1",
        "    # Unicast, so it works where multicast is filtered; peers must share the L2 segment.",
        `    unicast_src_ip ${host.ip}`,
        "    unicast_peer {",
        ...peers.map((p) => `        ${p.ip}`),
        "    }",
        "    authentication {",
        "        auth_type PASS",
        `        auth_pass ${authPass}`,
        "    }",
        "    virtual_ipaddress {",
        `        ${lb.vip}/${prefixLength(spec.network.hostCidr)} dev ${iface}`,
        "    }",
        "    track_script {",
        `        ${CHECK_SCRIPT_NAME}`,
        "    }",
        "}",
        "",
    ].join("\n");
}

/** Succeeds on the lb host that holds the VIP now (the roll changes it last). */
export function vipHeldCheck(spec: ClusterSpec): string {
    const lb = lbSettings(spec);
    return `ip -4 -o addr show dev ${spec.network.interface} | grep -q ' ${lb.vip}/'`;
}

export interface CheckScriptOverrides {
    /** CA bundle to verify the apiserver's certificate with (default the cluster CA). */
    caFile?: string;
}

export function renderApiserverCheckScript(spec: ClusterSpec, overrides: CheckScriptOverrides = {}): string {
    const lb = lbSettings(spec);
    const ca = overrides.caFile ?? `${PKI_DIR}/ca.crt`;
    return [
        "#!/bin/sh",
        `# ${HEADER}`,
        "# keepalived's vrrp_script: exits 0 only when kube-apiserver answers /readyz with 200 through",
        "# this host's nginx. TLS is verified against the cluster CA (the apiserver certificate has",
        "# 127.0.0.1 in its SANs); anonymous requests may read /readyz, so no client certificate.",
        "# nginx has no active health checks, so a master that accepts connections but is not ready",
        "# still gets some: up to three attempts on new connections (least_conn moves on to another",
        "# master) keep one such master from taking the VIP away from every lb host.",
        `ca=${shq(ca)}`,
        `url=https://127.0.0.1:${lb.port}/readyz`,
        "code=000",
        "for attempt in 1 2 3; do",
        "    code=$(curl -q --silent --noproxy '*' --cacert \"$ca\" --connect-timeout 1 --max-time 2 \\",
        "        --output /dev/null --write-out '%{http_code}' \"$url\") || code=000",
        "    [ \"$code\" = 200 ] && exit 0",
        "done",
        "echo \"$url: HTTP $code after $attempt attempts\" >&2",
        "exit 1",
        "",
    ].join("\n");
}
