// Preparing a bare host for its roles — the seed's environment steps (packages, firewalld,
// SELinux, swap, dnsmasq, modules, sysctl, time, journald), done idempotently — and a preflight
// that lists every problem on the host before any component starts.
import { ClusterSpec, FlannelBackend, Host, KubeProxyMode, Role } from "../spec/types";
import { CONTROL_PLANE } from "./control-plane";
import { JOURNALD_DROPIN, KUBELET_RESOLV_CONF, MODULES_LOAD_CONF, STATE_DIR, SYSCTL_CONF } from "./paths";
import { shellQuote as q } from "./shell";
import { HostFile, publicFile } from "./types";

export { KUBELET_RESOLV_CONF };

export interface HostPreparation {
    /** Files kubeha manages for preparing this host (modules-load.d, sysctl.d, journald drop-in, ...), with modes. */
    files: HostFile[];
    /** Idempotent POSIX sh, run as root after the files are written; prints one line per thing it changed, nothing when nothing changed. */
    prepareScript: string;
    /** POSIX sh preflight: prints every problem as "kubeha preflight on <host>: <problem> — <fix>" (stderr), warnings as "... warning: ...", exits 1 when any problem, else prints "kubeha preflight on <host>: ok". */
    preflightScript: string;
}

export interface HostPreparationOverrides {
    /** Prefix of every file the scripts read or write (/proc, /sys, /etc, /var, /run): tests point it at a fake tree. */
    root?: string;
    /** PATH the scripts run with (tests: a directory of stubs). Default the standard root PATH. */
    path?: string;
}

/** The standard root PATH: sbin holds iptables, modprobe, sysctl..., and a PATH without it would look like missing packages. */
const ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A package a component runs, present when its command is on PATH or any of its files exists. */
interface Package { what: string; test: string; deb: string; rpm: string }
const cmd = (command: string, deb: string, rpm = deb): Package => ({ what: `command ${command}`, test: `command -v ${command} >/dev/null 2>&1`, deb, rpm });
const file = (what: string, paths: string[], deb: string, rpm = deb): Package => ({ what, test: `has_file ${paths.map(q).join(" ")}`, deb, rpm });

const PKG = {
    curl: cmd("curl", "curl"),
    caBundle: file("the CA bundle", ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"], "ca-certificates"),
    sysctl: cmd("sysctl", "procps", "procps-ng"),
    modprobe: cmd("modprobe", "kmod"),
    iptables: cmd("iptables", "iptables"),
    mount: cmd("mount", "mount", "util-linux"),
    conntrack: cmd("conntrack", "conntrack", "conntrack-tools"),
    ip: cmd("ip", "iproute2", "iproute"),
    nft: cmd("nft", "nftables"),
    ipset: cmd("ipset", "ipset"),
    // The lb unit runs /usr/sbin/nginx and load_module's the stream module (dynamic on both families).
    nginx: file("nginx (/usr/sbin/nginx)", ["/usr/sbin/nginx"], "nginx"),
    nginxStream: file("nginx's stream module (ngx_stream_module.so)",
        ["/usr/lib/nginx/modules/ngx_stream_module.so", "/usr/lib64/nginx/modules/ngx_stream_module.so"], "libnginx-mod-stream", "nginx-mod-stream"),
    keepalived: cmd("keepalived", "keepalived"),
} satisfies Record<string, Package>;

/** exact: a switch (ip_forward); minimum: a limit, where a higher value set by anyone is fine. */
interface Sysctl { key: string; value: number; kind: "exact" | "minimum" }
/** "2379/tcp", "30000-32767/udp", or an IP protocol by name ("vrrp"). */
interface Port { port: string; what: string }
interface Needs { packages: Package[]; modules: string[]; sysctls: Sysctl[]; ports: Port[] }

// Tables keyed by the unions: the compiler demands a row for every mode, backend and role.
const PROXY: Record<KubeProxyMode, Pick<Needs, "modules" | "packages">> = {
    nftables: { modules: ["nf_tables"], packages: [PKG.nft] },
    ipvs: { modules: ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"], packages: [PKG.ipset] },
    iptables: { modules: [], packages: [] },
};
const BACKEND: Record<FlannelBackend, Pick<Needs, "modules" | "ports">> = {
    "vxlan": { modules: ["vxlan"], ports: [{ port: "8472/udp", what: "flannel VXLAN" }] },
    "host-gw": { modules: [], ports: [] },
    "wireguard": { modules: ["wireguard"], ports: [{ port: "51820/udp", what: "flannel WireGuard" }] },
};

/** The kernel config symbol of each module: a kernel with it built in (=y) has no module to load. */
const KERNEL_CONFIG: Record<string, string> = {
    overlay: "OVERLAY_FS", br_netfilter: "BRIDGE_NETFILTER", nf_tables: "NF_TABLES", nf_conntrack: "NF_CONNTRACK",
    ip_vs: "IP_VS", ip_vs_rr: "IP_VS_RR", ip_vs_wrr: "IP_VS_WRR", ip_vs_sh: "IP_VS_SH", vxlan: "VXLAN", wireguard: "WIREGUARD",
};

/** flanneld runs on masters and nodes: --ip-masq rules (iptables) and its backend's device. */
const flannel = (spec: ClusterSpec): Needs => ({ packages: [PKG.iptables], sysctls: [], ...BACKEND[spec.network.flannelBackend] });

const ROLE_NEEDS: Record<Role, (spec: ClusterSpec) => Needs[]> = {
    master: (spec) => [{
        packages: [PKG.curl], modules: [], sysctls: [],
        ports: [
            { port: `${spec.ports.etcdClient}/tcp`, what: "etcd clients" }, { port: `${spec.ports.etcdPeer}/tcp`, what: "etcd peers" },
            { port: `${spec.ports.apiserver}/tcp`, what: "kube-apiserver" },
            { port: `${CONTROL_PLANE.controllerManagerPort}/tcp`, what: "kube-controller-manager" },
            { port: `${CONTROL_PLANE.schedulerPort}/tcp`, what: "kube-scheduler" },
        ],
    }, flannel(spec)],
    worker: (spec) => {
        const range = `${spec.network.nodePortRange.from}-${spec.network.nodePortRange.to}`;
        const proxy = PROXY[spec.network.kubeProxyMode];
        return [{
            // mount: the kubelet's volumes; conntrack: the seed's, to inspect and flush kube-proxy's NAT state; ip: the route check.
            packages: [PKG.iptables, PKG.mount, PKG.modprobe, PKG.conntrack, PKG.ip, ...proxy.packages],
            // overlayfs for containerd's snapshots; br_netfilter so bridged pod traffic passes kube-proxy's rules.
            modules: ["overlay", "br_netfilter", ...proxy.modules],
            // Not vm.swappiness: swap is off on nodes. Not the seed's overcommit/panic keys: the kubelet sets
            // them (protectKernelDefaults false). inotify: kubelet, containerd and every `kubectl logs -f` hold
            // instances, and the default 128 runs out on a busy node; 8192 is the seed's.
            sysctls: [
                { key: "net.ipv4.ip_forward", value: 1, kind: "exact" },
                { key: "net.bridge.bridge-nf-call-iptables", value: 1, kind: "exact" },
                { key: "fs.inotify.max_user_instances", value: 8192, kind: "minimum" },
                { key: "fs.inotify.max_user_watches", value: 524288, kind: "minimum" },
            ],
            ports: [{ port: "10250/tcp", what: "kubelet" }, { port: `${range}/tcp`, what: "NodePorts" }, { port: `${range}/udp`, what: "NodePorts" }],
        }, flannel(spec)];
    },
    lb: (spec) => [{
        // curl: keepalived's check script asks the apiserver through this host's nginx.
        packages: [PKG.nginx, PKG.nginxStream, PKG.keepalived, PKG.curl], modules: [], sysctls: [],
        ports: [{ port: `${spec.loadBalancer?.port ?? spec.ports.apiserver}/tcp`, what: "API load balancer" }, { port: "vrrp", what: "keepalived VRRP, IP protocol 112" }],
    }],
};

const isNode = (host: Host) => host.roles.includes("worker");
const uniq = <T>(xs: T[], key: (x: T) => string) => xs.filter((x, i) => xs.findIndex((y) => key(y) === key(x)) === i);

/** Everything this host's roles need, each once; every host also gets curl and the CA bundle (binary downloads, health checks). */
function hostNeeds(spec: ClusterSpec, host: Host): Needs {
    // Node needs first, so a master that is a worker lists its modules as a worker does.
    const all = (["worker", "master", "lb"] as const).filter((r) => host.roles.includes(r)).flatMap((r) => ROLE_NEEDS[r](spec));
    const modules = uniq(all.flatMap((n) => n.modules), (m) => m);
    const sysctls = uniq(all.flatMap((n) => n.sysctls), (s) => s.key);
    // The prepare script's own tools: modprobe and sysctl, when it has modules or settings to apply.
    const own = [PKG.curl, PKG.caBundle, ...(modules.length ? [PKG.modprobe] : []), ...(sysctls.length ? [PKG.sysctl] : [])];
    return {
        packages: uniq([...all.flatMap((n) => n.packages), ...own], (p) => p.what),
        modules, sysctls, ports: uniq(all.flatMap((n) => n.ports), (p) => p.port),
    };
}

function renderModulesLoad(modules: string[]): string {
    return ["# Managed by kubeha: kernel modules this host's components need, loaded at boot.", ...modules, ""].join("\n");
}

function renderSysctlConf(sysctls: Sysctl[]): string {
    return [
        "# Managed by kubeha: kernel settings this host's components need, set at boot.",
        "# Limits (fs.inotify.*) are minimums: to raise one, set it in a file sorting after this one.",
        ...sysctls.map((s) => `${s.key} = ${s.value}`), "",
    ].join("\n");
}

function renderJournaldDropin(): string {
    return [
        "# Managed by kubeha: logs survive reboots (the seed's Storage=persistent), capped so a chatty",
        "# apiserver cannot fill /var. Not the seed's rate limit (its burst of 1000 is below today's",
        "# default 10000 and would drop control-plane logs), nor ForwardToSyslog=no, Compress and",
        "# SyncIntervalSec (today's defaults).",
        "[Journal]",
        "Storage=persistent",
        "SystemMaxUse=1G",
        "SystemMaxFileSize=128M",
        "MaxRetentionSec=2week",
        "",
    ].join("\n");
}

// ---------------------------------------------------------------- shell shared by both scripts

function prelude(spec: ClusterSpec, host: Host, o: HostPreparationOverrides, purpose: string): string[] {
    return [
        "#!/bin/sh",
        `# Managed by kubeha: ${purpose} for ${host.name} (${host.roles.join(", ")}) of ${spec.clusterName}.`,
        "set -u",
        `PATH=${q(o.path ?? ROOT_PATH)}; export PATH`,
        `host=${q(host.name)} root=${q(o.root ?? "")} nl='\n'`,
        "has_file() { for f in \"$@\"; do [ -e \"$root$f\" ] && return 0; done; return 1; }",
    ];
}

/** module_present NAME CONFIG_SYMBOL: loaded, built in (modules.builtin, or =y in /proc/config.gz: hosts and containers without /lib/modules). */
const MODULE_PRESENT = [
    "kconfig= builtin= release=",
    "[ -r \"$root/proc/config.gz\" ] && kconfig=$(gzip -dc <\"$root/proc/config.gz\" 2>/dev/null || true)",
    "[ -r \"$root/proc/sys/kernel/osrelease\" ] && read -r release <\"$root/proc/sys/kernel/osrelease\"",
    "[ -r \"$root/lib/modules/$release/modules.builtin\" ] && builtin=$(cat \"$root/lib/modules/$release/modules.builtin\")",
    "module_present() {",
    "    [ -d \"$root/sys/module/$1\" ] && return 0",
    "    case \"$builtin\" in */$1.ko*) return 0 ;; esac",
    "    [ -n \"$2\" ] && case \"$nl$kconfig$nl\" in *\"${nl}CONFIG_$2=y$nl\"*) return 0 ;; esac",
    "    return 1",
    "}",
];

/**
 * sysctl_ok PATH WANT KIND: the effective value (sets $have); a minimum is met by any higher value.
 * Read with cat: the kernel answers a read of an integer sysctl at a non-zero offset with nothing,
 * so dash's byte-at-a-time `read` would see only the first digit.
 */
export const SYSCTL_OK = [
    "sysctl_ok() {",
    "    have=",
    "    [ -r \"$root/proc/sys/$1\" ] && have=$(cat \"$root/proc/sys/$1\")",
    "    case $3 in",
    "    minimum) case $have in '' | *[!0-9]*) return 1 ;; esac; [ \"$have\" -ge \"$2\" ] ;;",
    "    *) [ \"$have\" = \"$2\" ] ;;",
    "    esac",
    "}",
];

/** $swaps: the active swap devices (/proc/swaps without its header). */
const SWAPS = [
    "swap_devices() {",
    "    [ -r \"$root/proc/swaps\" ] || return 0",
    "    while read -r dev _rest; do case $dev in Filename | '') ;; *) printf ' %s' \"$dev\" ;; esac; done <\"$root/proc/swaps\"",
    "}",
];

/**
 * $resolv: the resolv.conf the kubelet hands to pods (dnsPolicy Default, so CoreDNS's upstreams).
 * /etc/resolv.conf unless it names only loopback servers, which pods cannot reach: then
 * systemd-resolved's list of the real ones, or nothing (dnsmasq or another local cache).
 * No nameserver at all (hosts without DNS) is fine.
 */
const RESOLVER = [
    "real= loopback=",
    "if [ -r \"$root/etc/resolv.conf\" ]; then",
    "    while read -r kw addr _rest; do",
    "        [ \"$kw\" = nameserver ] || continue",
    "        case $addr in 127.* | ::1) loopback=\"$loopback $addr\" ;; *) real=\"$real $addr\" ;; esac",
    "    done <\"$root/etc/resolv.conf\"",
    "fi",
    "if [ -z \"$real\" ] && [ -n \"$loopback\" ]; then",
    "    if systemctl is-active --quiet systemd-resolved 2>/dev/null; then resolv=/run/systemd/resolve/resolv.conf; else resolv=; fi",
    "else",
    "    resolv=/etc/resolv.conf",
    "fi",
];

const sysctlWords = (ss: Sysctl[]) => ss.map((s) => `${s.key}:${s.key.replace(/\./g, "/")}:${s.value}:${s.kind}`).join(" ");
const moduleWords = (ms: string[]) => ms.map((m) => `${m}:${KERNEL_CONFIG[m] ?? ""}`).join(" ");
const SYSCTL_LOOP = ["    key=${s%%:*} rest=${s#*:}", "    path=${rest%%:*} rest=${rest#*:}", "    want=${rest%%:*} kind=${rest#*:}"];
const pkgName = (p: Package) => (p.deb === p.rpm ? `the ${p.deb} package` : `${p.deb} (Debian, Ubuntu) or ${p.rpm} (RHEL, Fedora)`);

// ---------------------------------------------------------------- prepare

function prepareScript(spec: ClusterSpec, host: Host, needs: Needs, o: HostPreparationOverrides): string {
    const node = isNode(host);
    const L: string[] = [
        ...prelude(spec, host, o, "prepares the host for its roles"),
        "say() { printf 'kubeha prepare on %s: %s\\n' \"$host\" \"$1\"; }",
        "warn() { printf 'kubeha prepare on %s: %s\\n' \"$host\" \"$1\" >&2; }",
        "die() { printf 'kubeha prepare on %s: %s — %s\\n' \"$host\" \"$1\" \"$2\" >&2; exit 1; }",
        "",
        "# Packages the components run, installed only when missing: a host without a mirror that has",
        "# them already never runs apt-get update.",
        "deb= rpm=",
        ...needs.packages.map((p) => `${p.test} || { deb="$deb ${p.deb}" rpm="$rpm ${p.rpm}"; }`),
        "if [ -z \"$deb\" ]; then :",
        "elif command -v apt-get >/dev/null 2>&1; then",
        "    export DEBIAN_FRONTEND=noninteractive",
        "    apt-get update -qq >&2 || die \"apt-get update failed (needed for$deb)\" \"give the host a package mirror, or install$deb yourself\"",
        "    # confold: files kubeha wrote before the package existed (keepalived.conf) stay.",
        "    apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $deb >&2 ||",
        "        die \"apt-get install$deb failed\" \"install them yourself, or fix the package mirror\"",
        "    say \"installed$deb\"",
        "elif command -v dnf >/dev/null 2>&1; then",
        "    dnf install -y -q $rpm >&2 || die \"dnf install$rpm failed\" \"install them yourself, or fix the package repositories\"",
        "    say \"installed$rpm\"",
        "else",
        "    die \"missing packages and neither apt-get nor dnf to install them\" \"install$deb (Debian, Ubuntu) or$rpm (RHEL, Fedora) yourself\"",
        "fi",
    ];
    if (needs.modules.length) L.push(
        "",
        `# Kernel modules (${MODULES_LOAD_CONF} loads them at boot), loaded now unless present. One that`,
        "# cannot load (a container sharing the machine's kernel) is the preflight's to report.",
        ...MODULE_PRESENT,
        `for mc in ${moduleWords(needs.modules)}; do`,
        "    m=${mc%%:*}",
        "    module_present \"$m\" \"${mc#*:}\" && continue",
        "    if modprobe \"$m\" >/dev/null 2>&1; then say \"loaded kernel module $m\"; fi",
        "done",
    );
    if (needs.sysctls.length) L.push(
        "",
        `# Kernel settings (${SYSCTL_CONF} sets them at boot), applied now key by key, not by sysctl --system:`,
        "# in a container many keys are read-only (the machine sets them) and must not stop the others,",
        "# and a limit already above kubeha's is never lowered. What stays wrong, the preflight reports.",
        ...SYSCTL_OK,
        `for s in ${sysctlWords(needs.sysctls)}; do`,
        ...SYSCTL_LOOP,
        "    sysctl_ok \"$path\" \"$want\" \"$kind\" && continue",
        "    was=${have:-missing}",
        "    if sysctl -q -w \"$key=$want\" >/dev/null 2>&1 && sysctl_ok \"$path\" \"$want\" \"$kind\"; then say \"set $key = $want (was $was)\"; fi",
        "done",
    );
    if (node) L.push(
        "",
        "# Swap off, and kept off: the kubelet refuses to start with swap (failSwapOn). Only on nodes:",
        "# nothing on a master without a kubelet, or an lb host, refuses swap, so the operator's stays.",
        ...SWAPS,
        "for u in $(systemctl list-units --type=swap --all --plain --no-legend 2>/dev/null | while read -r unit _rest; do printf '%s\\n' \"$unit\"; done) swap.target; do",
        "    [ \"$(systemctl is-enabled \"$u\" 2>/dev/null)\" = masked ] && continue",
        "    if systemctl mask \"$u\" >/dev/null 2>&1; then say \"masked $u so swap stays off\"; fi",
        "done",
        "swaps=$(swap_devices)",
        "if [ -n \"$swaps\" ]; then",
        "    if swapoff -a; then say \"turned swap off:$swaps\"; else warn \"swapoff -a failed:$swaps stays on\"; fi",
        "fi",
        "fstab=$root/etc/fstab out= commented=",
        "if [ -r \"$fstab\" ]; then",
        "    while IFS= read -r line || [ -n \"$line\" ]; do",
        "        set -f; set -- $line; set +f",
        "        if [ $# -ge 3 ] && [ \"$3\" = swap ]; then case $1 in '#'*) ;; *) line=\"#kubeha-swapoff# $line\" commented=\"$commented $1\" ;; esac; fi",
        "        out=\"$out$line$nl\"",
        "    done <\"$fstab\"",
        "fi",
        "if [ -n \"$commented\" ]; then",
        "    [ -e \"$fstab.kubeha-backup\" ] || cp -p \"$fstab\" \"$fstab.kubeha-backup\"",
        "    printf '%s' \"$out\" >\"$fstab\"",
        "    say \"commented out swap in /etc/fstab:$commented (original in /etc/fstab.kubeha-backup)\"",
        "fi",
    );
    const sum = `${STATE_DIR}/journald-dropin.cksum`;
    L.push(
        "",
        `# journald: persistent and capped (${JOURNALD_DROPIN}). Restarted only when the drop-in differs from`,
        `# the one it was last restarted for (its checksum in ${sum}): restarts lose in-flight messages.`,
        "if [ ! -d \"$root/var/log/journal\" ]; then mkdir -p \"$root/var/log/journal\" && say \"created /var/log/journal\"; fi",
        `if [ -r "$root"${q(JOURNALD_DROPIN)} ]; then`,
        `    sum=$(cksum <"$root"${q(JOURNALD_DROPIN)}) old=`,
        `    [ -r "$root"${q(sum)} ] && read -r old <"$root"${q(sum)}`,
        "    if [ \"$sum\" != \"$old\" ]; then",
        "        if systemctl restart systemd-journald; then",
        `            mkdir -p "$root"${q(STATE_DIR)} && printf '%s\\n' "$sum" >"$root"${q(sum)}`,
        `            say ${q(`restarted systemd-journald (${JOURNALD_DROPIN} changed)`)}`,
        "        else",
        "            warn 'systemctl restart systemd-journald failed'",
        "        fi",
        "    fi",
        "fi",
    );
    if (node) L.push(
        "",
        `# The kubelet's resolvConf (${KUBELET_RESOLV_CONF}) points at real nameservers; with none known`,
        "# (loopback only, no systemd-resolved) it is left alone and the preflight refuses.",
        ...RESOLVER,
        `if [ -n "$resolv" ] && [ "$(readlink "$root"${q(KUBELET_RESOLV_CONF)} 2>/dev/null)" != "$resolv" ]; then`,
        `    mkdir -p "$root"${q(STATE_DIR)} && ln -sf "$resolv" "$root"${q(KUBELET_RESOLV_CONF)} && say "pointed ${KUBELET_RESOLV_CONF} at $resolv"`,
        "fi",
    );
    L.push("exit 0", "");
    return L.join("\n");
}

// ---------------------------------------------------------------- preflight

const firewallArg = (p: Port) => (/^\d/.test(p.port) ? `--add-port=${p.port}` : `--add-protocol=${p.port}`);

function preflightScript(spec: ClusterSpec, host: Host, needs: Needs, o: HostPreparationOverrides): string {
    const node = isNode(host);
    const flannelHost = host.roles.includes("master") || node;
    const ports = needs.ports.map((p) => `${p.port} (${p.what})`).join(", ");
    const trust = flannelHost ? ` && firewall-cmd --permanent --zone=trusted --add-source=${spec.network.podCidr}` : "";
    const fw = `firewall-cmd --permanent ${needs.ports.map(firewallArg).join(" ")}${trust} && firewall-cmd --reload`;
    const L: string[] = [
        ...prelude(spec, host, o, "checks the host can run its roles' components"),
        "failed=0",
        "fail() { printf 'kubeha preflight on %s: %s — %s\\n' \"$host\" \"$1\" \"$2\" >&2; failed=$((failed + 1)); }",
        "warn() { printf 'kubeha preflight on %s: warning: %s — %s\\n' \"$host\" \"$1\" \"$2\" >&2; }",
        "",
        "command -v systemctl >/dev/null 2>&1 || fail 'systemctl is missing' 'kubeha runs every component as a systemd unit: use a host booted with systemd'",
        "",
        "# Packages the components run (the prepare script installs missing ones).",
        ...needs.packages.map((p) => `${p.test} || fail ${q(`${p.what} is missing`)} ${q(`install ${pkgName(p)}`)}`),
        "",
        "# firewalld: kubeha manages no firewall rules, and its default zone drops the cluster's traffic.",
        "if systemctl is-active --quiet firewalld 2>/dev/null; then",
        `    fail ${q(`firewalld is active and this host's roles (${host.roles.join(", ")}) need ${ports}`)} \\`,
        `        ${q(`open them (${fw}), or stop and disable firewalld (systemctl disable --now firewalld)`)}`,
        "fi",
        "",
        "# SELinux: kubeha installs no policy for its binaries and data directories; pods' mounts fail.",
        "enforce=",
        "[ -r \"$root/sys/fs/selinux/enforce\" ] && read -r enforce <\"$root/sys/fs/selinux/enforce\"",
        "[ \"$enforce\" != 1 ] || fail 'SELinux is enforcing' 'run setenforce 0 and set SELINUX=permissive in /etc/selinux/config'",
    ];
    if (needs.modules.length) L.push(
        "",
        "# Kernel modules: present (loaded or built in) after the prepare script's modprobe.",
        ...MODULE_PRESENT,
        `for mc in ${moduleWords(needs.modules)}; do`,
        "    m=${mc%%:*}",
        "    module_present \"$m\" \"${mc#*:}\" ||",
        `        fail "kernel module $m is not loaded and cannot be loaded" "install the kernel's modules package (${MODULES_LOAD_CONF} loads it at boot), or load it on the machine hosting this container"`,
        "done",
    );
    if (needs.sysctls.length) L.push(
        "",
        "# Kernel settings, as in effect (in a container the machine may set them, higher is fine for limits).",
        ...SYSCTL_OK,
        `for s in ${sysctlWords(needs.sysctls)}; do`,
        ...SYSCTL_LOOP,
        "    sysctl_ok \"$path\" \"$want\" \"$kind\" && continue",
        "    if [ \"$kind\" = minimum ]; then what=\"below $want\"; else what=\"not $want\"; fi",
        `    fail "sysctl $key is \${have:-missing}, $what" "set it with sysctl -w $key=$want (${SYSCTL_CONF} keeps it at boot; net.bridge.* needs br_netfilter), or on the machine hosting this container, where the key is read-only"`,
        "done",
    );
    if (node) L.push(
        "",
        "# Node only — the kubelet's needs: no swap (failSwapOn), a reachable resolver, Service routing.",
        ...SWAPS,
        "swaps=$(swap_devices)",
        "[ -z \"$swaps\" ] || fail \"swap is on (${swaps# })\" 'turn it off with swapoff -a and remove it from /etc/fstab so it stays off'",
        ...RESOLVER,
        "if [ -z \"$resolv\" ]; then",
        "    fail \"/etc/resolv.conf names only loopback nameservers (${loopback# }) and systemd-resolved is not active, so pods would get a resolver they cannot reach\" \\",
        "        'stop and disable dnsmasq (systemctl disable --now dnsmasq) or the local cache, and point /etc/resolv.conf at the real nameservers'",
        "elif [ ! -r \"$root$resolv\" ]; then",
        "    case $resolv in /etc/*) fix='create it (an empty one is fine on a host without DNS)' ;; *) fix='restart systemd-resolved, or point /etc/resolv.conf at the real nameservers' ;; esac",
        "    fail \"$resolv is missing\" \"$fix\"",
        `elif [ "$(readlink "$root"${q(KUBELET_RESOLV_CONF)} 2>/dev/null)" != "$resolv" ]; then`,
        `    fail "${KUBELET_RESOLV_CONF} (the kubelet's resolvConf) does not point at $resolv" 'run the prepare script (pulumi up does)'`,
        "fi",
        "# Service IPs from the node itself (kubelet probes, hostNetwork pods): kube-proxy rewrites them",
        "# only after the kernel found a route, so one must cover the service network.",
        `if command -v ip >/dev/null 2>&1 && ! ip route get ${spec.kubernetesServiceIp} >/dev/null 2>&1; then`,
        `    fail ${q(`no route to the Service network ${spec.network.serviceCidr}`)} ${q(`add a default route, or a route for ${spec.network.serviceCidr} on ${spec.network.interface}`)}`,
        "fi",
    );
    L.push(
        "",
        "# Time: certificates and etcd need agreeing clocks; only a warning, since no check sees every NTP client.",
        "clock_synced() {",
        "    command -v timedatectl >/dev/null 2>&1 && [ \"$(timedatectl show -p NTPSynchronized --value 2>/dev/null)\" = yes ] && return 0",
        "    if command -v chronyc >/dev/null 2>&1; then case $(chronyc -n tracking 2>/dev/null) in *'Leap status'*Normal*) return 0 ;; esac; fi",
        "    if command -v ntpq >/dev/null 2>&1; then case \"$nl$(ntpq -pn 2>/dev/null)\" in *\"$nl*\"*) return 0 ;; esac; fi",
        "    systemctl is-active --quiet systemd-timesyncd 2>/dev/null",
        "}",
        "clock_synced || warn 'the clock is not known to be synchronised (timedatectl, chronyc and ntpq report no sync, systemd-timesyncd is not running)' 'run an NTP client such as systemd-timesyncd or chrony'",
        "",
        "if [ \"$failed\" -gt 0 ]; then",
        "    printf 'kubeha preflight on %s: %s check(s) failed — fix them and run pulumi up again\\n' \"$host\" \"$failed\" >&2",
        "    exit 1",
        "fi",
        "echo \"kubeha preflight on $host: ok\"",
        "",
    );
    return L.join("\n");
}

/** What preparing `host` takes: its files, then the prepare script, then the preflight, in that order. */
export function renderHostPreparation(spec: ClusterSpec, host: Host, overrides: HostPreparationOverrides = {}): HostPreparation {
    const needs = hostNeeds(spec, host);
    return {
        files: [
            ...(needs.modules.length ? [publicFile(MODULES_LOAD_CONF, renderModulesLoad(needs.modules))] : []),
            ...(needs.sysctls.length ? [publicFile(SYSCTL_CONF, renderSysctlConf(needs.sysctls))] : []),
            publicFile(JOURNALD_DROPIN, renderJournaldDropin()),
        ],
        prepareScript: prepareScript(spec, host, needs, overrides),
        preflightScript: preflightScript(spec, host, needs, overrides),
    };
}
