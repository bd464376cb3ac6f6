// The API load balancer files: plain asserts on the rendered text, then the real tools — nginx -t,
// keepalived --config-test, systemd-analyze verify, sh — and the check script run against a local
// HTTPS stub, directly and through a real nginx started from the rendered config.
import { strict as assert } from "node:assert";
import { ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer, Server } from "node:https";
import { AddressInfo, connect, createServer as createNetServer, Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HA_RAW, SEED_RAW, specOf } from "../fixtures";
import {
    LB_PATHS, lbDrainScripts, renderApiserverCheckScript, renderKeepalivedConfig, renderLbUnit, renderNginxStreamConfig,
} from "../../render/loadbalancer";
import { CA_USAGES } from "../../pki/certlist";
import { createCertRequest, createSelfSignedCert, generateKey, signCertRequest } from "../../pki/x509";
import { ClusterSpec } from "../../spec/types";
import { requireTool, verifyUnit } from "./tools";

const AUTH = "s3cr3tPw";

function tempDir(): string {
    return mkdtempSync(join(tmpdir(), "kubeha-lb-"));
}

/** The lines of the block opened by `header {` (first match), without the braces. */
function block(text: string, header: string): string[] {
    const lines = text.split("\n").map((l) => l.trim());
    const start = lines.findIndex((l) => l === `${header} {`);
    assert.ok(start >= 0, `no "${header} {" block`);
    const end = lines.indexOf("}", start);
    return lines.slice(start + 1, end).filter((l) => l && !l.startsWith("#"));
}

/** Directive values: `priority 150` -> "150". */
function directive(text: string, name: string): string | undefined {
    return new RegExp(`^\\s*${name}\\s+(.+?);?\\s*$`, "m").exec(text)?.[1];
}

function run(cmd: string, args: string[]): { status: number; output: string } {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** Runs a command without blocking the event loop (the HTTPS stub lives in this process). */
function runAsync(cmd: string, args: string[]): Promise<{ status: number; output: string }> {
    return new Promise((resolve) => {
        execFile(cmd, args, { encoding: "utf8", timeout: 20000 }, (err, stdout, stderr) => {
            const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
            resolve({ status: code, output: `${stdout}${stderr}` });
        });
    });
}

/** Ports a spec accepts: outside the NodePort range and the fixed kubelet/control-plane/etcd ports. */
const usablePort = (p: number) => !(p >= 30000 && p <= 32767) && !(p >= 10248 && p <= 10259) && !(p >= 2379 && p <= 2381) && p !== 6443;

async function listenOnUsablePort(server: Server | NetServer): Promise<number> {
    for (let i = 0; i < 20; i++) {
        await new Promise<void>((resolve, reject) => {
            server.once("error", reject);
            server.listen(0, "127.0.0.1", () => { server.off("error", reject); resolve(); });
        });
        const port = (server.address() as AddressInfo).port;
        if (usablePort(port)) return port;
        await new Promise((resolve) => server.close(resolve));
    }
    throw new Error("no usable free port");
}

async function freePort(): Promise<number> {
    const s = createNetServer();
    const port = await listenOnUsablePort(s);
    await new Promise((resolve) => s.close(resolve));
    return port;
}

function waitForPort(port: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
        const attempt = () => {
            const sock = connect(port, "127.0.0.1");
            sock.once("connect", () => { sock.destroy(); resolve(); });
            sock.once("error", () => {
                sock.destroy();
                if (Date.now() > deadline) reject(new Error(`nothing listens on 127.0.0.1:${port}`));
                else setTimeout(attempt, 100);
            });
        };
        attempt();
    });
}

/** A CA and a server certificate for 127.0.0.1, as the apiserver's has it among its SANs. */
async function stubPki(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
    const caKey = generateKey("ECDSA");
    const caPem = await createSelfSignedCert({
        privateKeyPem: caKey.privateKeyPem, subject: { commonName: "kubernetes" }, validityPeriodHours: 1, allowedUses: CA_USAGES, isCaCert: true,
    });
    const key = generateKey("ECDSA");
    const csr = await createCertRequest({ privateKeyPem: key.privateKeyPem, subject: { commonName: "kube-apiserver" }, ipAddresses: ["127.0.0.1"] });
    const certPem = await signCertRequest({
        certRequestPem: csr, caCertPem: caPem, caPrivateKeyPem: caKey.privateKeyPem, validityPeriodHours: 1,
        allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
    });
    return { caPem, certPem, keyPem: key.privateKeyPem };
}

/** A stand-in kube-apiserver answering /readyz with `status.code`. */
function readyzStub(pki: { certPem: string; keyPem: string }, status: { code: number }): Server {
    return createHttpsServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
        res.statusCode = req.url === "/readyz" ? status.code : 404;
        res.end(res.statusCode === 200 ? "ok" : "not ready");
    });
}

/** A non-loopback interface that exists here: keepalived refuses an unknown interface or lo. */
function realInterface(): string | undefined {
    try {
        return readdirSync("/sys/class/net").filter((i) => i !== "lo").sort((a, b) => Number(b === "eth0") - Number(a === "eth0"))[0];
    } catch {
        return undefined;
    }
}

describe("API load balancer rendering", () => {
    const spec = specOf(HA_RAW);
    const [lb1, lb2] = spec.loadBalancers;

    describe("plain asserts", () => {
        it("proxies to every master's apiserver port and listens on the lb port on every address", () => {
            for (const s of [spec, specOf(SEED_RAW)]) {
                const conf = renderNginxStreamConfig(s);
                const servers = block(conf, "upstream kube_apiserver").filter((l) => l.startsWith("server "));
                assert.deepEqual(servers.map((l) => l.split(/\s+/)[1]), s.masters.map((m) => `${m.ip}:${s.ports.apiserver}`));
                for (const l of servers) assert.match(l, /max_fails=\d+ fail_timeout=\d+s;/);
                assert.equal(directive(conf, "listen"), String(s.loadBalancer!.port));
                assert.match(conf, /^\s*least_conn;/m);
            }
            assert.equal(directive(renderNginxStreamConfig(spec), "listen"), "8443");
        });

        it("is a standalone stream-only nginx config with long proxy timeouts for watches", () => {
            const conf = renderNginxStreamConfig(spec);
            assert.match(conf, /^load_module modules\/ngx_stream_module\.so;$/m);
            assert.match(conf, /^pid \/run\//m);
            assert.match(conf, /^error_log stderr/m);
            assert.match(conf, /^events \{/m);
            assert.match(conf, /^stream \{/m);
            assert.doesNotMatch(conf, /^\s*http\s*\{/m);
            assert.equal(directive(conf, "proxy_timeout"), "2h");
            assert.match(directive(conf, "proxy_connect_timeout") ?? "", /^[1-5]s$/);
        });

        it("renders the unit around the dedicated config", () => {
            const unit = renderLbUnit(spec);
            const conf = LB_PATHS.nginxConfig;
            assert.equal(conf, "/etc/kubeha/apiserver-lb/nginx.conf");
            assert.equal(LB_PATHS.unit, "kubeha-apiserver-lb.service");
            assert.match(unit, new RegExp(`^ExecStartPre=/usr/sbin/nginx -t -q -c ${conf}$`, "m"));
            assert.match(unit, new RegExp(`^ExecStart=/usr/sbin/nginx -c ${conf} -g 'daemon off;'$`, "m"));
            // A reload checks the new config first: a broken one leaves the running proxy as it was.
            assert.match(unit, /^ExecReload=\/bin\/sh -c '\/usr\/sbin\/nginx -t -q -c \/etc\/kubeha\/apiserver-lb\/nginx\.conf && \/bin\/kill -s HUP \$\{MAINPID\}'$/m);
            assert.match(unit, /^Restart=always$/m);
            assert.match(unit, /^After=network-online\.target$/m);
            assert.match(unit, /^WantedBy=multi-user\.target$/m);
        });

        it("gives keepalived exactly the other lb hosts as unicast peers", () => {
            for (const s of [spec, specOf(SEED_RAW)]) {
                for (const h of s.loadBalancers) {
                    const conf = renderKeepalivedConfig(s, h, AUTH);
                    assert.equal(directive(conf, "router_id"), h.name);
                    assert.equal(directive(conf, "unicast_src_ip"), h.ip);
                    assert.deepEqual(block(conf, "unicast_peer"), s.loadBalancers.filter((p) => p !== h).map((p) => p.ip));
                    assert.equal(directive(conf, "state"), "BACKUP");
                    assert.equal(directive(conf, "interface"), s.network.interface);
                    assert.equal(directive(conf, "virtual_router_id"), String(s.loadBalancer!.virtualRouterId));
                    assert.equal(directive(conf, "advert_int"), "1");
                }
            }
        });

        it("gives every lb host its own priority, the first lb host the highest", () => {
            const three = specOf(HA_RAW, { loadBalancers: ["lb1=198.18.0.31", "lb2=198.18.0.32", "lb3=198.18.0.33"] });
            for (const s of [spec, three]) {
                const prios = s.loadBalancers.map((h) => Number(directive(renderKeepalivedConfig(s, h, AUTH), "priority")));
                assert.equal(new Set(prios).size, prios.length, `priorities ${prios} must differ`);
                for (let i = 1; i < prios.length; i++) assert.ok(prios[i] < prios[i - 1], `priorities ${prios} must decrease in lb-host order`);
                for (const p of prios) assert.ok(p >= 1 && p <= 254, `priority ${p} out of 1-254`);
            }
        });

        it("holds the VIP with the host subnet's prefix on the cluster interface, tracked by the check script", () => {
            const conf = renderKeepalivedConfig(spec, lb2, AUTH);
            assert.deepEqual(block(conf, "virtual_ipaddress"), ["198.18.0.10/24 dev host0"]);
            assert.deepEqual(block(conf, "authentication"), ["auth_type PASS", `auth_pass ${AUTH}`]);
            assert.deepEqual(block(conf, "track_script"), ["check_apiserver"]);
            assert.equal(directive(block(conf, "vrrp_script check_apiserver").join("\n"), "script"), `"${LB_PATHS.checkScript}"`);
            const seed = specOf(SEED_RAW);
            assert.deepEqual(block(renderKeepalivedConfig(seed, seed.loadBalancers[0], AUTH), "virtual_ipaddress"),
                [`${seed.loadBalancer!.vip}/${seed.network.hostCidr.split("/")[1]} dev ${seed.network.interface}`]);
        });

        it("refuses an auth_pass longer than 8 characters (keepalived would truncate it) and a host that is not an lb host", () => {
            assert.throws(() => renderKeepalivedConfig(spec, lb1, "123456789"), /auth_pass has 9 characters.*1-8/);
            assert.throws(() => renderKeepalivedConfig(spec, lb1, ""), /auth_pass/);
            assert.doesNotThrow(() => renderKeepalivedConfig(spec, lb1, "12345678"));
            assert.throws(() => renderKeepalivedConfig(spec, spec.masters[0], AUTH), /m1 is not an lb host/);
        });

        it("checks /readyz through the local proxy on the lb port, verifying the cluster CA", () => {
            const script = renderApiserverCheckScript(spec);
            assert.ok(script.startsWith("#!/bin/sh\n"));
            assert.match(script, /^url=https:\/\/127\.0\.0\.1:8443\/readyz$/m);
            assert.match(script, /^ca='\/etc\/kubernetes\/pki\/ca\.crt'$/m);
            assert.match(script, /--max-time [1-3] /);
            assert.match(renderApiserverCheckScript(spec, { caFile: "/tmp/x/ca.pem" }), /^ca='\/tmp\/x\/ca\.pem'$/m);
        });

        it("refuses to render for a cluster without lb hosts", () => {
            const single = specOf(HA_RAW, { masters: ["m1=198.18.0.11"], loadBalancers: [] });
            assert.throws(() => renderNginxStreamConfig(single), /no lb hosts/);
            assert.throws(() => renderApiserverCheckScript(single), /no lb hosts/);
        });
    });

    describe("with the real tools", function () {
        this.timeout(60000);
        let dir: string;
        beforeEach(() => { dir = tempDir(); });
        afterEach(() => rmSync(dir, { recursive: true, force: true }));

        it("nginx -t accepts the rendered config and rejects a broken one (Debian's nginx + libnginx-mod-stream)", function () {
            requireTool(this, "nginx", "nginx libnginx-mod-stream");
            const nginxTest = (name: string, text: string) => {
                const file = join(dir, name);
                writeFileSync(file, text);
                return run("nginx", ["-t", "-c", file]);
            };
            for (const s of [spec, specOf(SEED_RAW)]) {
                const r = nginxTest("nginx.conf", renderNginxStreamConfig(s));
                assert.equal(r.status, 0, r.output);
            }
            const conf = renderNginxStreamConfig(spec);
            const misspelt = nginxTest("misspelt.conf", conf.replace("proxy_timeout", "proxy_timeuot"));
            assert.notEqual(misspelt.status, 0);
            assert.match(misspelt.output, /unknown directive "proxy_timeuot"/);
            // Without load_module the stream block is unknown: the module line is what makes it work.
            const noModule = nginxTest("no-module.conf", conf.replace(/^load_module .*$/m, ""));
            assert.notEqual(noModule.status, 0);
            assert.match(noModule.output, /unknown directive "stream"/);
        });

        it("keepalived --config-test accepts the rendered config for every lb host and rejects broken ones", function () {
            requireTool(this, "keepalived", "keepalived");
            const iface = realInterface();
            if (!iface) {
                console.log("      SKIPPED: no non-loopback network interface for keepalived to check against");
                this.skip();
            }
            // keepalived checks that the interface exists and that the tracked script exists and is
            // safe (root-owned, not writable by others), so: this machine's interface, and the
            // rendered check script in a private temp dir.
            const s = specOf(HA_RAW, { hostInterface: iface });
            const script = join(dir, "check-apiserver.sh");
            writeFileSync(script, renderApiserverCheckScript(s));
            chmodSync(script, 0o755);
            // keepalived 2.2.7 exits 0 for a config file that does not exist, and 5 for any problem
            // (even one it "ignores" or "truncates"): only a file that exists proves anything.
            const configTest = (name: string, text: string) => {
                const file = join(dir, name);
                writeFileSync(file, text.replace(LB_PATHS.checkScript, script));
                assert.ok(existsSync(file));
                return run("keepalived", ["--config-test", "-f", file]);
            };
            for (const h of s.loadBalancers) {
                const r = configTest(`${h.name}.conf`, renderKeepalivedConfig(s, h, AUTH));
                assert.equal(r.status, 0, `${h.name}:\n${r.output}`);
                assert.equal(r.output, "", `${h.name} has warnings:\n${r.output}`);
            }
            const good = renderKeepalivedConfig(s, lb1, AUTH);
            const broken: [string, string, RegExp][] = [
                ["misspelt", good.replace("virtual_router_id", "virtual_routr_id"), /Unknown keyword 'virtual_routr_id'/],
                ["long-pass", good.replace(`auth_pass ${AUTH}`, "auth_pass 123456789"), /Truncating auth_pass/],
                ["no-interface", good.replace(/\b(interface|dev) \S+/g, "$1 kubeha-none0"), /kubeha-none0/],
                ["unknown-script", good.replace(/^(\s*)check_apiserver$/m, "$1no_such_check"), /track script no_such_check not found/],
            ];
            for (const [name, text, why] of broken) {
                const r = configTest(`${name}.conf`, text);
                assert.notEqual(r.status, 0, `${name} must fail:\n${r.output}`);
                assert.match(r.output, why);
            }
            const missingFile = run("keepalived", ["--config-test", "-f", join(dir, "missing.conf")]);
            assert.equal(missingFile.status, 0, "keepalived 2.2.7 treats a missing config file as fine");
            rmSync(script);
            const r = configTest("script-gone.conf", good);
            assert.notEqual(r.status, 0, "a tracked script that does not exist must fail the test");
        });

        it("systemd-analyze verify accepts the unit and rejects a broken one", function () {
            requireTool(this, "systemd-analyze", "systemd");
            // verify insists ExecStart's binary exists: /usr/sbin/nginx comes with nginx.
            requireTool(this, "nginx", "nginx libnginx-mod-stream");
            const unit = renderLbUnit(spec);
            const r = verifyUnit(LB_PATHS.unit, unit);
            assert.equal(r.output, "", `${LB_PATHS.unit}:\n${r.output}`);
            assert.notEqual(verifyUnit(LB_PATHS.unit, unit.replace("Restart=always", "Restart=alwayz")).output, "");
            assert.notEqual(verifyUnit(LB_PATHS.unit, unit.replace("ExecStart=/usr/sbin/nginx", "ExecStart=/usr/sbin/nginx-missing")).output, "");
        });

        it("sh -n accepts the check script and rejects a broken one", function () {
            requireTool(this, "sh", "dash");
            const check = (text: string) => {
                const file = join(dir, "check.sh");
                writeFileSync(file, text);
                return run("sh", ["-n", file]);
            };
            const script = renderApiserverCheckScript(spec);
            assert.equal(check(script).status, 0, check(script).output);
            assert.notEqual(check(script.replace(/^done$/m, "")).status, 0);
        });

        describe("the check script against a stub apiserver", () => {
            let pki: { caPem: string; certPem: string; keyPem: string };
            before(async () => { pki = await stubPki(); });

            it("exits 0 only when /readyz answers 200 on the lb port, with the CA verified", async function () {
                requireTool(this, "curl", "curl");
                const status = { code: 200 };
                const stub = readyzStub(pki, status);
                const port = await listenOnUsablePort(stub);
                const s = specOf(HA_RAW, { apiLoadBalancerPort: port });
                const caFile = join(dir, "ca.crt");
                writeFileSync(caFile, pki.caPem);
                const script = join(dir, "check-apiserver.sh");
                writeFileSync(script, renderApiserverCheckScript(s, { caFile }));
                try {
                    const ok = await runAsync("sh", [script]);
                    assert.equal(ok.status, 0, ok.output);
                    status.code = 500;
                    const notReady = await runAsync("sh", [script]);
                    assert.notEqual(notReady.status, 0, "a 500 on /readyz must fail the check");
                    assert.match(notReady.output, /HTTP 500/);
                    // Another CA: the TLS verification is real.
                    status.code = 200;
                    const otherCa = join(dir, "other-ca.crt");
                    writeFileSync(otherCa, (await stubPki()).caPem);
                    writeFileSync(join(dir, "other.sh"), renderApiserverCheckScript(s, { caFile: otherCa }));
                    assert.notEqual((await runAsync("sh", [join(dir, "other.sh")])).status, 0, "an unverified certificate must fail the check");
                } finally {
                    await new Promise((resolve) => stub.close(resolve));
                }
                const down = await runAsync("sh", [script]);
                assert.notEqual(down.status, 0, "nothing listening must fail the check");
                assert.match(down.output, /HTTP 000/);
            });

            it("passes through a real nginx started from the rendered config, and fails when the apiserver is not ready or down", async function () {
                requireTool(this, "curl", "curl");
                requireTool(this, "nginx", "nginx libnginx-mod-stream");
                const status = { code: 200 };
                const stub = readyzStub(pki, status);
                const apiPort = await listenOnUsablePort(stub);
                let lbPort = await freePort();
                while (lbPort === apiPort) lbPort = await freePort();
                // One master on loopback (the stub); lb hosts on other loopback addresses.
                const s: ClusterSpec = specOf({
                    masters: ["m1=127.0.0.1"], loadBalancers: ["lb1=127.0.0.2", "lb2=127.0.0.3"], vip: "127.0.0.10", hostCidr: "127.0.0.0/24",
                    apiserverPort: apiPort, apiLoadBalancerPort: lbPort, sshHostKeyChecking: false, sshPrivateKey: "x", binarySource: "local", binaryDir: "/srv",
                });
                const conf = join(dir, "nginx.conf");
                writeFileSync(conf, renderNginxStreamConfig(s).replace(/^pid .*$/m, `pid ${join(dir, "nginx.pid")};`));
                const caFile = join(dir, "ca.crt");
                writeFileSync(caFile, pki.caPem);
                const script = join(dir, "check-apiserver.sh");
                writeFileSync(script, renderApiserverCheckScript(s, { caFile }));
                let nginx: ChildProcess | undefined;
                let nginxLog = "";
                try {
                    nginx = spawn("nginx", ["-c", conf, "-g", "daemon off;"], { stdio: ["ignore", "pipe", "pipe"] });
                    nginx.stdout!.on("data", (d) => { nginxLog += d; });
                    nginx.stderr!.on("data", (d) => { nginxLog += d; });
                    await waitForPort(lbPort, 10000).catch((e) => { throw new Error(`${e.message}\nnginx: ${nginxLog}`); });
                    const ok = await runAsync("sh", [script]);
                    assert.equal(ok.status, 0, `${ok.output}\nnginx: ${nginxLog}`);
                    status.code = 500;
                    assert.notEqual((await runAsync("sh", [script])).status, 0, "a not-ready apiserver behind nginx must fail the check");
                    status.code = 200;
                    await new Promise((resolve) => stub.close(resolve));
                    const down = await runAsync("sh", [script]);
                    assert.notEqual(down.status, 0, "nginx up but no apiserver must fail the check");
                } finally {
                    if (stub.listening) stub.close();
                    if (nginx && nginx.exitCode === null) {
                        const exited = new Promise((resolve) => nginx!.once("exit", resolve));
                        nginx.kill("SIGTERM");
                        await exited;
                    }
                }
            });
        });
    });
});

describe("API proxy drain around an apiserver restart (scripts run with sh on a copy of nginx.conf)", () => {
    const spec = specOf(HA_RAW);
    const dir = mkdtempSync(join(tmpdir(), "kubeha-lb-drain-"));
    const conf = join(dir, "nginx.conf");
    const log = join(dir, "reloads.log");
    const bin = join(dir, "bin");
    before(() => {
        spawnSync("mkdir", ["-p", bin]);
        writeFileSync(join(bin, "systemctl"), `#!/bin/sh\necho "$*" >>${log}\n`);
        writeFileSync(join(bin, "sleep"), "#!/bin/sh\n");
        chmodSync(join(bin, "systemctl"), 0o755);
        chmodSync(join(bin, "sleep"), 0o755);
    });
    const runScript = (script: string) => spawnSync("sh", ["-c", `set -eu\n${script.replaceAll(LB_PATHS.nginxConfig, conf)}`], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    const reloads = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean).length : 0);

    it("marks exactly that master down and reloads; putting it back restores the rendered file byte for byte; both are idempotent", () => {
        const rendered = renderNginxStreamConfig(spec);
        writeFileSync(conf, rendered);
        const m2 = spec.masters[1];
        const { before: drain, after: undrain } = lbDrainScripts(spec, m2);
        let r = runScript(drain);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /took m2 out of the API proxy's upstreams/);
        const drained = readFileSync(conf, "utf8");
        const changed = drained.split("\n").filter((l, i) => l !== rendered.split("\n")[i]);
        assert.deepEqual(changed, [`        server ${m2.ip}:6443 max_fails=3 fail_timeout=10s down; # m2`]);
        assert.equal(reloads(), 1);
        r = runScript(drain);
        assert.equal(r.stdout, "", "draining again does nothing");
        assert.equal(reloads(), 1);
        r = runScript(undrain);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(readFileSync(conf, "utf8"), rendered);
        assert.equal(reloads(), 2);
        runScript(undrain);
        assert.equal(reloads(), 2, "putting back a master that is in does nothing");
    });

    it("nginx -t accepts the drained config", function () {
        requireTool(this, "nginx", "nginx libnginx-mod-stream");
        writeFileSync(conf, renderNginxStreamConfig(spec));
        runScript(lbDrainScripts(spec, spec.masters[0]).before);
        const r = spawnSync("nginx", ["-t", "-c", conf], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
    });
});
