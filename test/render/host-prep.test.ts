// Host preparation: the prepare and preflight scripts run with every POSIX shell installed against a
// fake root (/proc, /sys, /etc, /var, /run) and a PATH of stubs that log their calls. Each check has
// its negative control: the same fake host with the one thing changed.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { parse as parseYaml } from "yaml";
import { HA_RAW, specOf } from "../fixtures";
import { HostPreparation, KUBELET_RESOLV_CONF, renderHostPreparation, SYSCTL_OK } from "../../render/host-prep";
import { renderKubeletConfig } from "../../render/node";
import { JOURNALD_DROPIN, MODULES_LOAD_CONF, SYSCTL_CONF } from "../../render/paths";
import { ClusterSpec, Host } from "../../spec/types";

interface Fake {
    /** Commands absent from PATH. */
    missing?: string[];
    pm?: "apt-get" | "dnf" | "none";
    /** Loaded modules (/sys/module); default: every module the host needs. */
    modules?: string[];
    /** Modules the stub modprobe can load. */
    loadable?: string[];
    /** Dotted key -> value, over healthy defaults; "" = no such key. */
    sysctls?: Record<string, string>;
    /** Keys the stub sysctl refuses to write (a container's read-only /proc/sys). */
    readOnly?: string[];
    swaps?: string[];
    fstab?: string;
    swapUnits?: string[];
    /** Units systemctl is-active reports active. */
    active?: string[];
    selinux?: "0" | "1";
    resolv?: string;
    resolvedFile?: boolean;
    ntp?: "yes" | "no";
    noRoute?: boolean;
}

const HEALTHY_SYSCTLS: Record<string, string> = {
    "net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1",
    "fs.inotify.max_user_instances": "8192", "fs.inotify.max_user_watches": "524288",
};
const COMMANDS = ["iptables", "mount", "conntrack", "ip", "nft", "ipset", "curl", "keepalived"];
// The only real tools the scripts may use; anything else is "not found" on the fake PATH.
const REAL_TOOLS = ["cat", "mkdir", "ln", "readlink", "cksum", "cp", "gzip"];
const which = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();

class FakeHost {
    readonly dir = mkdtempSync(join(tmpdir(), "kubeha-hostprep-"));
    readonly root = join(this.dir, "root");
    readonly bin = join(this.dir, "bin");
    readonly state = join(this.dir, "state");
    readonly log = join(this.dir, "calls.log");
    readonly prep: HostPreparation;

    constructor(private readonly shell: string[], spec: ClusterSpec, readonly host: Host, f: Fake = {}) {
        for (const d of [this.root, this.bin, this.state]) mkdirSync(d, { recursive: true });
        writeFileSync(this.log, "");
        this.prep = renderHostPreparation(spec, host, { root: this.root, path: this.bin });
        for (const file of this.prep.files) this.put(file.path, file.content);
        const needed = this.prep.files.find((x) => x.path === MODULES_LOAD_CONF)?.content.split("\n").filter((l) => l && !l.startsWith("#")) ?? [];
        for (const m of f.modules ?? needed) mkdirSync(join(this.root, "sys/module", m), { recursive: true });
        for (const [k, v] of Object.entries({ ...HEALTHY_SYSCTLS, ...f.sysctls })) if (v !== "") this.put(`/proc/sys/${k.replace(/\./g, "/")}`, `${v}\n`);
        this.put("/proc/swaps", ["Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority", ...(f.swaps ?? []).map((s) => `${s}\tpartition\t1000\t0\t-2`), ""].join("\n"));
        if (f.fstab !== undefined) this.put("/etc/fstab", f.fstab);
        this.put("/etc/resolv.conf", f.resolv ?? "");
        if (f.resolvedFile) this.put("/run/systemd/resolve/resolv.conf", "nameserver 10.0.0.2\n");
        if (f.selinux) this.put("/sys/fs/selinux/enforce", `${f.selinux}\n`);
        this.put("/etc/ssl/certs/ca-certificates.crt", "CA\n");
        this.put("/usr/sbin/nginx", "");
        this.put("/usr/lib/nginx/modules/ngx_stream_module.so", "");
        writeFileSync(join(this.state, "active"), (f.active ?? []).map((u) => `${u}\n`).join(""));
        writeFileSync(join(this.state, "swap-units"), (f.swapUnits ?? []).map((u) => `${u} loaded active active swap\n`).join(""));
        writeFileSync(join(this.state, "masked"), "");

        for (const t of REAL_TOOLS) symlinkSync(which(t), join(this.bin, t));
        const missing = new Set(f.missing ?? []);
        const stub = (name: string, body = "") => {
            if (missing.has(name)) return;
            writeFileSync(join(this.bin, name), `#!/bin/sh\nPATH=/usr/bin:/bin\necho "${name} $*" >>'${this.log}'\n${body}\n`);
            chmodSync(join(this.bin, name), 0o755);
        };
        for (const c of COMMANDS) stub(c, c === "ip" && f.noRoute ? "exit 2" : "");
        const s = this.state;
        stub("systemctl", [
            `case $1 in`,
            `is-active) [ "$2" = --quiet ] && shift; grep -qx "$2" '${s}/active' ;;`,
            `is-enabled) if grep -qx "$2" '${s}/masked'; then echo masked; exit 1; fi; echo static ;;`,
            `mask) echo "$2" >>'${s}/masked' ;;`,
            `list-units) cat '${s}/swap-units' ;;`,
            `esac`,
        ].join("\n"));
        stub("sysctl", [
            `for a; do kv=$a; done; key=\${kv%%=*}`,
            `case ' ${(f.readOnly ?? []).join(" ")} ' in *" $key "*) echo "sysctl: permission denied on key $key" >&2; exit 1 ;; esac`,
            `p='${this.root}'/proc/sys/$(echo "$key" | tr . /); mkdir -p "$(dirname "$p")"; echo "\${kv#*=}" >"$p"`,
        ].join("\n"));
        stub("modprobe", `for m in ${(f.loadable ?? []).join(" ")}; do [ "$1" = "$m" ] && mkdir -p '${this.root}/sys/module/'"$1" && exit 0; done; exit 1`);
        stub("swapoff", `printf 'Filename\\tType\\tSize\\tUsed\\tPriority\\n' >'${this.root}/proc/swaps'`);
        stub("timedatectl", `echo ${f.ntp ?? "yes"}`);
        // The package manager "installs" a command named like each package.
        const install = `for a; do case $a in -* | *=* | install | update) ;; *) printf '#!/bin/sh\\n' >'${this.bin}'/"$a"; chmod 755 '${this.bin}'/"$a" ;; esac; done`;
        if ((f.pm ?? "apt-get") === "apt-get") stub("apt-get", `[ "$1" = update ] || ${install}`);
        if (f.pm === "dnf") stub("dnf", install);
    }

    put(path: string, text: string): void {
        mkdirSync(dirname(join(this.root, path)), { recursive: true });
        writeFileSync(join(this.root, path), text);
    }

    read(path: string): string {
        return readFileSync(join(this.root, path), "utf8");
    }

    run(which: "prepare" | "preflight"): { status: number; stdout: string; stderr: string; lines: string[] } {
        const script = which === "prepare" ? this.prep.prepareScript : this.prep.preflightScript;
        const r = spawnSync(this.shell[0], [...this.shell.slice(1), "-c", script], { encoding: "utf8", env: {}, stdio: ["ignore", "pipe", "pipe"] });
        return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, lines: r.stderr.split("\n").filter(Boolean) };
    }

    /** Logged stub calls, optionally only those of one command. */
    calls(command?: string): string[] {
        return readFileSync(this.log, "utf8").split("\n").filter((l) => l && (!command || l.startsWith(`${command} `)));
    }

    clearCalls(): void {
        writeFileSync(this.log, "");
    }
}

/** /bin/sh, dash and bash --posix, each once (by absolute path: the fake PATH has none of them). */
const SHELLS = [["/bin/sh"], ["dash"], ["bash", "--posix"]]
    .filter(([s]) => which(s) !== "")
    .map(([s, ...args]) => [which(s), ...args])
    .filter((s, i, all) => all.findIndex((o) => realpathSync(o[0]) === realpathSync(s[0])) === i);

const spec = specOf(HA_RAW);
const byName = (s: ClusterSpec, name: string) => s.hosts.find((h) => h.name === name)!;
const has = (lines: string[], re: RegExp) => assert.ok(lines.some((l) => re.test(l)), `expected ${re} in:\n${lines.join("\n")}`);
const hasNot = (lines: string[], re: RegExp) => assert.ok(!lines.some((l) => re.test(l)), `unexpected ${re} in:\n${lines.join("\n")}`);

describe("host preparation: files per role", () => {
    const files = (s: ClusterSpec, name: string) => renderHostPreparation(s, byName(s, name)).files;
    const paths = (s: ClusterSpec, name: string) => files(s, name).map((f) => f.path);
    const lines = (s: ClusterSpec, name: string, path: string) =>
        files(s, name).find((f) => f.path === path)!.content.split("\n").filter((l) => l && !l.startsWith("#"));

    it("nodes: modules, sysctls, journald; masters: flannel's module and journald; lb hosts: journald", () => {
        assert.deepEqual(paths(spec, "w1"), [MODULES_LOAD_CONF, SYSCTL_CONF, JOURNALD_DROPIN]);
        assert.deepEqual(paths(spec, "m1"), [MODULES_LOAD_CONF, JOURNALD_DROPIN]);
        assert.deepEqual(paths(spec, "lb1"), [JOURNALD_DROPIN]);
        assert.deepEqual(paths(specOf(HA_RAW, { flannelBackend: "host-gw" }), "m1"), [JOURNALD_DROPIN]);
        assert.deepEqual(lines(spec, "w1", MODULES_LOAD_CONF), ["overlay", "br_netfilter", "nf_tables", "vxlan"]);
        assert.deepEqual(lines(spec, "m1", MODULES_LOAD_CONF), ["vxlan"]);
        assert.deepEqual(lines(specOf(HA_RAW, { kubeProxyMode: "ipvs", flannelBackend: "wireguard" }), "w1", MODULES_LOAD_CONF),
            ["overlay", "br_netfilter", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack", "wireguard"]);
        assert.deepEqual(lines(spec, "w1", SYSCTL_CONF), ["net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1",
            "fs.inotify.max_user_instances = 8192", "fs.inotify.max_user_watches = 524288"]);
        assert.deepEqual(lines(spec, "lb1", JOURNALD_DROPIN), ["[Journal]", "Storage=persistent", "SystemMaxUse=1G", "SystemMaxFileSize=128M", "MaxRetentionSec=2week"]);
        for (const f of files(spec, "w1")) assert.deepEqual([f.mode, f.secret], ["0644", false], f.path);
        // Masters that are workers are prepared as both.
        const both = specOf(HA_RAW, { mastersAreWorkers: true });
        assert.deepEqual(paths(both, "m1"), [MODULES_LOAD_CONF, SYSCTL_CONF, JOURNALD_DROPIN]);
        assert.deepEqual(lines(both, "m1", MODULES_LOAD_CONF), ["overlay", "br_netfilter", "nf_tables", "vxlan"]);
    });

    it("points the kubelet's resolvConf at the symlink the prepare script keeps", () => {
        assert.equal(KUBELET_RESOLV_CONF, "/var/lib/kubeha/resolv.conf");
        assert.equal(parseYaml(renderKubeletConfig(spec, byName(spec, "w1"))).resolvConf, KUBELET_RESOLV_CONF);
    });

    it("every script is valid POSIX sh for every host", () => {
        const both = specOf(HA_RAW, { mastersAreWorkers: true, kubeProxyMode: "ipvs" });
        for (const s of [spec, both]) for (const h of s.hosts) {
            const p = renderHostPreparation(s, h);
            for (const [shell, ...args] of SHELLS) for (const script of [p.prepareScript, p.preflightScript]) {
                const r = spawnSync(shell, [...args, "-n", "-c", script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
                assert.equal(r.status, 0, `${shell} ${h.name}: ${r.stderr}`);
            }
        }
        assert.notEqual(spawnSync("sh", ["-n", "-c", "if true; then"]).status, 0);
        // sbin on PATH whoever runs them: else iptables, modprobe, sysctl would look missing.
        assert.match(renderHostPreparation(spec, byName(spec, "w1")).prepareScript, /^PATH='\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin'; export PATH$/m);
    });
});

for (const shell of SHELLS) describe(`host preparation run with ${shell.join(" ")}`, () => {
    const fake = (f: Fake = {}, name = "w1", s: ClusterSpec = spec) => new FakeHost(shell, s, byName(s, name), f);
    const ok = (name: string) => `kubeha preflight on ${name}: ok`;

    it("a healthy node: the preflight passes, and preparing it twice changes nothing the second time", () => {
        const h = fake();
        const r = h.run("prepare");
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(h.calls("apt-get"), [], "nothing missing: no apt-get, not even update");
        assert.deepEqual(h.run("preflight").stdout.trim(), ok("w1"));
        h.clearCalls();
        const again = h.run("prepare");
        assert.equal(again.stdout, "", "nothing changed, nothing printed");
        assert.deepEqual(h.calls().filter((c) => / (mask|restart|-w) /.test(c) || /^(apt-get|swapoff|modprobe) /.test(c)), []);
        // Negative control: one missing command brings apt-get in.
        const missing = fake({ missing: ["curl"] });
        missing.run("prepare");
        assert.notDeepEqual(missing.calls("apt-get"), []);
    });

    it("installs missing packages with one apt-get update, then one install; dnf when there is no apt-get", () => {
        const h = fake({ missing: ["curl", "conntrack"] });
        const r = h.run("prepare");
        assert.equal(r.status, 0, r.stderr);
        const apt = h.calls("apt-get");
        assert.equal(apt.length, 2, apt.join("\n"));
        assert.equal(apt[0], "apt-get update -qq");
        assert.match(apt[1], /^apt-get install -y -qq --no-install-recommends .* conntrack curl$/);
        assert.match(r.stdout, /^kubeha prepare on w1: installed conntrack curl$/m);
        h.clearCalls();
        h.run("prepare");
        assert.deepEqual(h.calls("apt-get"), [], "installed now: no second update");
        const dnf = fake({ missing: ["curl", "conntrack"], pm: "dnf" });
        assert.equal(dnf.run("prepare").status, 0);
        assert.deepEqual(dnf.calls("dnf"), ["dnf install -y -q conntrack-tools curl"]);
        const none = fake({ missing: ["curl", "conntrack"], pm: "none" });
        const failed = none.run("prepare");
        assert.equal(failed.status, 1);
        assert.match(failed.stderr, /kubeha prepare on w1: missing packages and neither apt-get nor dnf to install them — install conntrack curl \(Debian, Ubuntu\) or conntrack-tools curl \(RHEL, Fedora\) yourself/);
        // The preflight names each missing one with its package.
        has(none.run("preflight").lines, /: command conntrack is missing — install conntrack \(Debian, Ubuntu\) or conntrack-tools \(RHEL, Fedora\)$/);
        // An lb host: nginx's stream module (a file, not a command) and keepalived.
        const lb = fake({ missing: ["keepalived"] }, "lb1");
        for (const f of ["usr/lib/nginx/modules/ngx_stream_module.so", "etc/ssl/certs/ca-certificates.crt"]) rmSync(join(lb.root, f));
        const lines = lb.run("preflight").lines;
        has(lines, /: nginx's stream module \(ngx_stream_module\.so\) is missing — install libnginx-mod-stream \(Debian, Ubuntu\) or nginx-mod-stream \(RHEL, Fedora\)$/);
        has(lines, /: the CA bundle is missing — install the ca-certificates package$/);
        lb.run("prepare");
        assert.match(lb.calls("apt-get")[1], / libnginx-mod-stream keepalived ca-certificates$/);
    });

    it("restarts journald only when its drop-in changed", () => {
        const h = fake();
        const restarts = () => h.calls("systemctl").filter((c) => c === "systemctl restart systemd-journald").length;
        const first = h.run("prepare");
        assert.equal(restarts(), 1);
        assert.match(first.stdout, /: restarted systemd-journald \(\/etc\/systemd\/journald\.conf\.d\/60-kubeha\.conf changed\)$/m);
        assert.ok(existsSync(join(h.root, "var/log/journal")));
        assert.equal(h.run("prepare").stdout, "");
        assert.equal(restarts(), 1, "unchanged drop-in: no restart");
        h.put(JOURNALD_DROPIN, `${h.read(JOURNALD_DROPIN)}SystemMaxUse=2G\n`);
        h.run("prepare");
        assert.equal(restarts(), 2, "changed drop-in: restarted");
    });

    it("swap on a node: swapoff, fstab commented once with a backup, swap units masked; idempotent", () => {
        const fstab = "UUID=1 / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n# /dev/sdb1 none swap sw 0 0\n/swap.img\tnone\tswap\tsw\t0\t0\n";
        const h = fake({ swaps: ["/dev/sda2"], fstab, swapUnits: ["dev-sda2.swap"] });
        has(h.run("preflight").lines, /: swap is on \(\/dev\/sda2\) — turn it off with swapoff -a/);
        const r = h.run("prepare");
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(h.calls("swapoff"), ["swapoff -a"]);
        assert.equal(h.read("/etc/fstab"), "UUID=1 / ext4 defaults 0 1\n#kubeha-swapoff# /dev/sda2 none swap sw 0 0\n# /dev/sdb1 none swap sw 0 0\n#kubeha-swapoff# /swap.img\tnone\tswap\tsw\t0\t0\n");
        assert.equal(h.read("/etc/fstab.kubeha-backup"), fstab);
        assert.deepEqual(readFileSync(join(h.state, "masked"), "utf8").trim().split("\n"), ["dev-sda2.swap", "swap.target"]);
        assert.match(r.stdout, /: turned swap off: \/dev\/sda2$/m);
        assert.match(r.stdout, /: commented out swap in \/etc\/fstab: \/dev\/sda2 \/swap\.img \(original in \/etc\/fstab\.kubeha-backup\)$/m);
        assert.equal(h.run("preflight").status, 0);
        h.clearCalls();
        assert.equal(h.run("prepare").stdout, "");
        assert.deepEqual([...h.calls("swapoff"), ...h.calls("systemctl").filter((c) => c.includes(" mask "))], []);
        // A swap line added later is commented too; the backup stays the original.
        h.put("/etc/fstab", `${h.read("/etc/fstab")}/dev/sdc1 none swap sw 0 0\n`);
        assert.match(h.run("prepare").stdout, /: commented out swap in \/etc\/fstab: \/dev\/sdc1 /);
        assert.equal(h.read("/etc/fstab.kubeha-backup"), fstab, "the backup is the original, kept once");
    });

    it("kernel settings: a read-only limit already higher passes; a lower one fails naming the key; a writable one is set", () => {
        const higher = fake({ sysctls: { "fs.inotify.max_user_watches": "1048576" }, readOnly: ["fs.inotify.max_user_watches"] });
        assert.equal(higher.run("prepare").status, 0);
        assert.deepEqual(higher.calls("sysctl"), [], "never lowered, never written");
        assert.equal(higher.run("preflight").stdout.trim(), ok("w1"));
        const lower = fake({ sysctls: { "fs.inotify.max_user_watches": "8192", "net.ipv4.ip_forward": "0" }, readOnly: ["fs.inotify.max_user_watches", "net.ipv4.ip_forward"] });
        const p = lower.run("prepare");
        assert.equal(p.status, 0, "a read-only key does not stop the prepare");
        assert.doesNotMatch(p.stdout, /set /);
        const r = lower.run("preflight");
        assert.equal(r.status, 1);
        has(r.lines, /: sysctl fs\.inotify\.max_user_watches is 8192, below 524288 — set it with sysctl -w fs\.inotify\.max_user_watches=524288 .*on the machine hosting this container/);
        has(r.lines, /: sysctl net\.ipv4\.ip_forward is 0, not 1 — set it with sysctl -w net\.ipv4\.ip_forward=1/);
        const writable = fake({ sysctls: { "fs.inotify.max_user_watches": "8192", "net.bridge.bridge-nf-call-iptables": "" } });
        assert.match(writable.run("prepare").stdout, /: set fs\.inotify\.max_user_watches = 524288 \(was 8192\)$/m);
        assert.equal(writable.read("/proc/sys/net/bridge/bridge-nf-call-iptables"), "1\n");
        assert.equal(writable.run("preflight").status, 0);
    });

    it("kernel modules: loaded, built in, or loaded now by the prepare script; else a problem", () => {
        const loads = fake({ modules: ["overlay", "nf_tables", "vxlan"], loadable: ["br_netfilter"] });
        assert.match(loads.run("prepare").stdout, /: loaded kernel module br_netfilter$/m);
        assert.equal(loads.run("preflight").status, 0);
        const builtin = fake({ modules: ["overlay"] });
        builtin.put("/proc/sys/kernel/osrelease", "6.1.0\n");
        builtin.put("/lib/modules/6.1.0/modules.builtin", "kernel/net/netfilter/nf_tables.ko\nkernel/net/bridge/br_netfilter.ko\n");
        // No /lib/modules in a container: the kernel's config says vxlan is built in.
        builtin.put("/proc/config.gz", "");
        writeFileSync(join(builtin.root, "proc/config.gz"), gzipSync("CONFIG_VXLAN=y\nCONFIG_WIREGUARD=m\n"));
        builtin.run("prepare");
        assert.deepEqual(builtin.calls("modprobe"), [], "built in: nothing to load");
        const r = builtin.run("preflight");
        assert.equal(r.status, 0, r.stderr);
        const cannot = fake({ modules: ["overlay", "nf_tables", "vxlan"] });
        cannot.run("prepare");
        has(cannot.run("preflight").lines, /: kernel module br_netfilter is not loaded and cannot be loaded — install the kernel's modules package/);
    });

    it("refuses an active firewalld, listing the ports each role needs", () => {
        const fw = (name: string) => fake({ active: ["firewalld"] }, name).run("preflight");
        const w = fw("w1");
        assert.equal(w.status, 1);
        has(w.lines, /: firewalld is active and this host's roles \(worker\) need 10250\/tcp \(kubelet\), 30000-32767\/tcp \(NodePorts\), 30000-32767\/udp \(NodePorts\), 8472\/udp \(flannel VXLAN\) — open them \(firewall-cmd --permanent --add-port=10250\/tcp .* --zone=trusted --add-source=172\.30\.0\.0\/16 && firewall-cmd --reload\), or stop and disable firewalld/);
        has(fw("m1").lines, /\(master\) need 2379\/tcp \(etcd clients\), 2380\/tcp \(etcd peers\), 6443\/tcp \(kube-apiserver\), 10257\/tcp \(kube-controller-manager\), 10259\/tcp \(kube-scheduler\), 8472\/udp/);
        has(fw("lb1").lines, new RegExp(`\\(lb\\) need ${spec.loadBalancer!.port}/tcp \\(API load balancer\\), vrrp \\(keepalived VRRP, IP protocol 112\\) — open them \\(firewall-cmd --permanent --add-port=${spec.loadBalancer!.port}/tcp --add-protocol=vrrp && firewall-cmd --reload\\)`));
        hasNot(fake({ active: ["NetworkManager"] }, "lb1").run("preflight").lines, /firewalld/);
    });

    it("refuses SELinux enforcing, not permissive", () => {
        const r = fake({ selinux: "1" }, "m1").run("preflight");
        assert.equal(r.status, 1);
        has(r.lines, /^kubeha preflight on m1: SELinux is enforcing — run setenforce 0 and set SELINUX=permissive in \/etc\/selinux\/config$/);
        assert.equal(fake({ selinux: "0" }, "m1").run("preflight").stdout.trim(), ok("m1"));
    });

    it("the kubelet's resolv.conf: systemd-resolved's real list, /etc/resolv.conf, or a refusal for dnsmasq", () => {
        const link = (h: FakeHost) => safeReadlink(join(h.root, KUBELET_RESOLV_CONF));
        const resolved = fake({ resolv: "nameserver 127.0.0.53\noptions edns0\n", active: ["systemd-resolved"], resolvedFile: true });
        assert.match(resolved.run("prepare").stdout, /: pointed \/var\/lib\/kubeha\/resolv\.conf at \/run\/systemd\/resolve\/resolv\.conf$/m);
        assert.equal(link(resolved), "/run/systemd/resolve/resolv.conf");
        assert.equal(resolved.run("preflight").status, 0);
        const dnsmasq = fake({ resolv: "nameserver 127.0.0.1\n" });
        dnsmasq.run("prepare");
        assert.equal(link(dnsmasq), "", "no real nameservers known: no symlink");
        has(dnsmasq.run("preflight").lines, /: \/etc\/resolv\.conf names only loopback nameservers \(127\.0\.0\.1\) and systemd-resolved is not active, .* — stop and disable dnsmasq/);
        for (const resolv of ["", "nameserver 10.0.0.2\nnameserver 127.0.0.1\n"]) {
            const plain = fake({ resolv });
            plain.run("prepare");
            assert.equal(link(plain), "/etc/resolv.conf", JSON.stringify(resolv));
            assert.equal(plain.run("preflight").status, 0);
        }
        // The preflight notices a symlink the prepare has not set.
        has(fake({ resolv: "nameserver 10.0.0.2\n" }).run("preflight").lines, /: \/var\/lib\/kubeha\/resolv\.conf \(the kubelet's resolvConf\) does not point at \/etc\/resolv\.conf — run the prepare script/);
    });

    it("lists every problem on the host, each with its fix, then exits 1", () => {
        const h = fake({
            active: ["firewalld"], selinux: "1", swaps: ["/swap.img"], modules: ["overlay", "nf_tables", "vxlan"], missing: ["nft", "curl"],
            sysctls: { "fs.inotify.max_user_instances": "128" }, resolv: "nameserver 127.0.0.1\n", noRoute: true, ntp: "no",
        });
        const r = h.run("preflight");
        assert.equal(r.status, 1);
        for (const l of r.lines) assert.match(l, /^kubeha preflight on w1: .+ — .+$/);
        for (const re of [/firewalld is active/, /SELinux is enforcing/, /swap is on \(\/swap\.img\)/, /kernel module br_netfilter/, /command nft is missing/,
            /command curl is missing/, /max_user_instances is 128, below 8192/, /names only loopback nameservers/, /no route to the Service network/]) has(r.lines, re);
        has(r.lines, /: warning: the clock is not known to be synchronised/);
        assert.match(r.lines[r.lines.length - 1], /: 9 check\(s\) failed — fix them and run pulumi up again$/);
        assert.equal(r.lines.length, 9 + 2, "nine problems, the warning, the summary");
    });

    it("an lb host gets no kubelet checks, and a master without the node role keeps its swap", () => {
        const hostile: Fake = { swaps: ["/dev/sda2"], modules: [], sysctls: { "net.ipv4.ip_forward": "0" }, resolv: "nameserver 127.0.0.1\n", noRoute: true, swapUnits: ["dev-sda2.swap"] };
        const lb = fake(hostile, "lb1");
        lb.run("prepare");
        assert.deepEqual(lb.calls().filter((c) => /^(swapoff|modprobe|sysctl) | mask /.test(c)), []);
        assert.equal(lb.run("preflight").stdout.trim(), ok("lb1"));
        assert.doesNotMatch(lb.prep.preflightScript + lb.prep.prepareScript, /kubelet|swap|resolv/i);
        const master = fake({ ...hostile, modules: ["vxlan"] }, "m1");
        master.run("prepare");
        assert.deepEqual(master.calls("swapoff"), []);
        assert.equal(master.run("preflight").stdout.trim(), ok("m1"));
        // Negative controls: a node in the same state fails; the master still needs flannel's module.
        const worker = fake(hostile, "w1").run("preflight");
        for (const re of [/swap is on/, /kernel module overlay/, /ip_forward is 0/, /loopback nameservers/, /no route/]) has(worker.lines, re);
        has(fake(hostile, "m1").run("preflight").lines, /kernel module vxlan is not loaded/);
        const both = specOf(HA_RAW, { mastersAreWorkers: true });
        has(fake({ swaps: ["/dev/sda2"] }, "m1", both).run("preflight").lines, /swap is on/);
    });

    it("only warns about the clock; timedatectl, chrony, ntpq or a running timesyncd count", () => {
        const warned = fake({ ntp: "no" }, "lb1").run("preflight");
        assert.equal(warned.status, 0);
        assert.match(warned.stderr.trim(), /^kubeha preflight on lb1: warning: the clock is not known to be synchronised .* — run an NTP client/);
        assert.equal(fake({ ntp: "no", active: ["systemd-timesyncd"] }, "lb1").run("preflight").stderr, "");
        const chrony = fake({ ntp: "no" }, "lb1");
        writeFileSync(join(chrony.bin, "chronyc"), "#!/bin/sh\nprintf 'Reference ID    : C0A80001\\nLeap status     : Normal\\n'\n", { mode: 0o755 });
        assert.equal(chrony.run("preflight").stderr, "");
    });
});

function safeReadlink(p: string): string {
    try {
        return readlinkSync(p);
    } catch {
        return "";
    }
}

describe("host preparation: sysctls read from the real /proc/sys (not a fake root)", () => {
    // The kernel answers a read of an integer sysctl at a non-zero offset with nothing: a reader
    // that reads byte by byte (dash's `read`) would see "8" for 8192. Checked against this kernel.
    for (const shell of ["dash", "bash"]) {
        it(`${shell}: sysctl_ok sees the whole value of fs.inotify.max_user_watches and kernel.pid_max`, function () {
            if (spawnSync(shell, ["-c", "true"]).status !== 0) this.skip();
            for (const path of ["fs/inotify/max_user_watches", "kernel/pid_max"]) {
                const real = readFileSync(`/proc/sys/${path}`, "utf8").trim();
                const r = spawnSync(shell, ["-c", `root=''\n${SYSCTL_OK.join("\n")}\nsysctl_ok ${path} ${real} minimum && echo "ok $have"`], { encoding: "utf8" });
                assert.equal(r.stdout.trim(), `ok ${real}`, `${path}: ${r.stdout}${r.stderr}`);
            }
        });
    }
});
