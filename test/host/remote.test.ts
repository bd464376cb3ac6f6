// The host primitives' scripts, run for real with /bin/sh against a temporary directory.
import { strict as assert } from "node:assert";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactInstallScript, encodeFiles, imageImportScript, filesDigest, healthScript, HostTarget, shellQuote, wrap, WRITE_FILES } from "../../host/remote";
import { HostFile } from "../../render/types";
import { Artifact } from "../../spec/artifacts";

const root: HostTarget = { host: { name: "m1", ip: "198.18.0.11", roles: ["master"] }, connection: { host: "198.18.0.11" }, sudo: false };

function run(script: string, stdin = ""): { status: number; stdout: string; stderr: string } {
    // wrap() is exactly what the remote side runs: `sh -c '<script>'`.
    const r = spawnSync("/bin/sh", ["-c", `exec ${wrap(root, script)}`], { input: stdin, encoding: "utf8" });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("host primitives (scripts run with /bin/sh)", () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), "kubeha-host-"));
    });

    describe("putFiles", () => {
        const files = (d: string, key = "KEY-1"): HostFile[] => [
            { path: `${d}/etc/kubernetes/pki/ca.crt`, content: "CERT\n", mode: "0644", secret: false },
            { path: `${d}/etc/kubernetes/pki/ca.key`, content: `${key}\n`, mode: "0600", secret: true },
        ];

        it("writes files with their modes, creating directories, and reports what it wrote", () => {
            const r = run(WRITE_FILES, encodeFiles(files(dir)));
            assert.equal(r.status, 0, r.stderr);
            assert.equal(readFileSync(`${dir}/etc/kubernetes/pki/ca.key`, "utf8"), "KEY-1\n");
            assert.equal(statSync(`${dir}/etc/kubernetes/pki/ca.key`).mode & 0o777, 0o600);
            assert.equal(statSync(`${dir}/etc/kubernetes/pki/ca.crt`).mode & 0o777, 0o644);
            assert.equal(r.stdout.trim().split("\n").length, 2);
        });

        it("is idempotent: a second run changes nothing; a changed file or mode is the only one rewritten", () => {
            run(WRITE_FILES, encodeFiles(files(dir)));
            assert.equal(run(WRITE_FILES, encodeFiles(files(dir))).stdout, "");
            const r = run(WRITE_FILES, encodeFiles(files(dir, "KEY-2")));
            assert.equal(r.stdout.trim(), `wrote ${dir}/etc/kubernetes/pki/ca.key`);
            chmodSync(`${dir}/etc/kubernetes/pki/ca.crt`, 0o666);
            assert.equal(run(WRITE_FILES, encodeFiles(files(dir, "KEY-2"))).stdout.trim(), `wrote ${dir}/etc/kubernetes/pki/ca.crt`);
        });

        it("never prints file contents and keeps them off the command line", () => {
            const r = run(WRITE_FILES, encodeFiles(files(dir, "TOP-SECRET")));
            assert.ok(!r.stdout.includes("TOP-SECRET") && !r.stderr.includes("TOP-SECRET"));
            assert.ok(!wrap(root, WRITE_FILES).includes("TOP-SECRET"));
        });

        it("refuses unsafe paths and modes before touching anything", () => {
            assert.throws(() => encodeFiles([{ path: "relative/x", content: "", mode: "0644", secret: false }]), /unsafe path/);
            assert.throws(() => encodeFiles([{ path: "/etc/a b", content: "", mode: "0644", secret: false }]), /unsafe path/);
            assert.throws(() => encodeFiles([{ path: "/etc/x", content: "", mode: "644", secret: false }]), /not octal/);
        });

        it("digests change with content and mode, not with order", () => {
            const a = files(dir);
            assert.equal(filesDigest(a), filesDigest([...a].reverse()));
            assert.notEqual(filesDigest(a), filesDigest(files(dir, "KEY-2")));
            assert.notEqual(filesDigest(a), filesDigest([{ ...a[0], mode: "0600" }, a[1]]));
        });
    });

    describe("artifact install", () => {
        function tarball(): { path: string; sha256: string } {
            mkdirSync(`${dir}/src/etcd-v9.9.9-linux-amd64`, { recursive: true });
            for (const b of ["etcd", "etcdctl"]) writeFileSync(`${dir}/src/etcd-v9.9.9-linux-amd64/${b}`, `#!/bin/sh\necho ${b}\n`);
            execFileSync("tar", ["-czf", `${dir}/etcd.tar.gz`, "-C", `${dir}/src`, "etcd-v9.9.9-linux-amd64"]);
            return { path: `${dir}/etcd.tar.gz`, sha256: createHash("sha256").update(readFileSync(`${dir}/etcd.tar.gz`)).digest("hex") };
        }
        const artifact = (url: string, sha256: string): Artifact => ({
            key: "etcd", version: "9.9.9", url, sha256, format: "tar.gz", installDir: `${dir}/bin`, hosts: [],
            members: { etcd: "etcd-v9.9.9-linux-amd64/etcd", etcdctl: "etcd-v9.9.9-linux-amd64/etcdctl" },
        });

        it("downloads once, verifies sha256, installs the members executable, and re-runs as a no-op", function () {
            if (spawnSync("curl", ["--version"]).status !== 0) {
                console.log("      SKIPPED: curl is not installed");
                this.skip();
            }
            const t = tarball();
            const script = artifactInstallScript("m1", artifact(`file://${t.path}`, t.sha256), { download: true, cacheDir: `${dir}/cache` });
            const first = run(script);
            assert.equal(first.status, 0, first.stderr);
            assert.match(first.stdout, /installed .*\/bin\/etcd\n/);
            assert.equal(execFileSync(`${dir}/bin/etcdctl`).toString(), "etcdctl\n");
            assert.equal(statSync(`${dir}/bin/etcd`).mode & 0o777, 0o755);
            const second = run(script);
            assert.equal(second.status, 0);
            assert.equal(second.stdout, "", "nothing to install the second time");
        });

        it("refuses a download whose sha256 differs, naming host and URL, and installs nothing", function () {
            if (spawnSync("curl", ["--version"]).status !== 0) this.skip();
            const t = tarball();
            const r = run(artifactInstallScript("m1", artifact(`file://${t.path}`, "0".repeat(64)), { download: true, cacheDir: `${dir}/cache` }));
            assert.notEqual(r.status, 0);
            assert.match(r.stderr, new RegExp(`m1: file://${t.path} does not match sha256 0{64}`));
            assert.throws(() => statSync(`${dir}/bin/etcd`));
        });

        it("installs uploads only when they match the local file's sha256, removes them, and needs none once installed", () => {
            const up = `${dir}/up`;
            mkdirSync(up);
            writeFileSync(`${up}/etcd`, "#!/bin/sh\necho etcd\n");
            writeFileSync(`${up}/etcdctl`, "#!/bin/sh\necho etcdctl\n");
            const sum = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
            const sha256 = { etcd: sum(`${up}/etcd`), etcdctl: sum(`${up}/etcdctl`) };
            const script = artifactInstallScript("m1", artifact("file:///nowhere", ""), { uploadDir: up, sha256 });
            const first = run(script);
            assert.equal(first.status, 0, first.stderr);
            assert.equal(execFileSync(`${dir}/bin/etcd`).toString(), "etcd\n");
            assert.throws(() => statSync(`${up}/etcd`), "the upload is removed once installed");
            const second = run(script);
            assert.equal(second.status, 0, second.stderr);
            assert.equal(second.stdout, "", "installed files with the right digest need no upload");

            writeFileSync(`${up}/etcdctl`, "#!/bin/sh\necho tampered\n");
            const bad = run(artifactInstallScript("m1", artifact("file:///nowhere", ""), { uploadDir: up, sha256: { ...sha256, etcdctl: "f".repeat(64) } }));
            assert.notEqual(bad.status, 0);
            assert.match(bad.stderr, new RegExp(`m1: the upload ${up}/etcdctl is missing or does not match sha256 f{64}`));
            assert.equal(execFileSync(`${dir}/bin/etcdctl`).toString(), "etcdctl\n", "the installed file is kept");
        });

        it("imports an uploaded image archive once, only when it matches its sha256", () => {
            const ctr = `${dir}/ctr`;
            writeFileSync(ctr, `#!/bin/sh\nprintf "%s\\n" "$*" >>${dir}/ctr.log\n`);
            chmodSync(ctr, 0o755);
            mkdirSync(`${dir}/up`);
            writeFileSync(`${dir}/up/pause.tar`, "archive bytes");
            const sum = createHash("sha256").update("archive bytes").digest("hex");
            // The state dir is /var/lib/kubeha on a host; here the script's markers go there too, so run as a sandboxed copy.
            const script = imageImportScript("w1", ctr, [{ upload: `${dir}/up/pause.tar`, sha256: sum }]).replaceAll("/var/lib/kubeha", `${dir}/state`);
            const first = run(script);
            assert.equal(first.status, 0, first.stderr);
            assert.equal(first.stdout, "imported pause.tar\n");
            assert.equal(readFileSync(`${dir}/ctr.log`, "utf8"), `-n k8s.io images import ${dir}/up/pause.tar\n`);
            assert.throws(() => statSync(`${dir}/up/pause.tar`), "the upload is removed once imported");
            const again = run(script);
            assert.equal(again.status, 0, again.stderr);
            assert.equal(readFileSync(`${dir}/ctr.log`, "utf8").split("\n").length, 2, "not imported twice");

            writeFileSync(`${dir}/up/other.tar`, "tampered");
            const bad = run(imageImportScript("w1", ctr, [{ upload: `${dir}/up/other.tar`, sha256: "e".repeat(64) }]).replaceAll("/var/lib/kubeha", `${dir}/state`));
            assert.notEqual(bad.status, 0);
            assert.match(bad.stderr, /w1: the upload .*other.tar is missing or does not match sha256 e{64}/);
        });

        it("refuses to build a download without a checksum", () => {
            assert.throws(() => artifactInstallScript("m1", { ...artifact("https://x", ""), sha256: undefined }, { download: true, cacheDir: "/tmp" }), /no sha256 pinned/);
        });
    });

    describe("wait until healthy", () => {
        it("passes as soon as the check passes", () => {
            const r = run(healthScript("m1", { what: "etcd member", check: "true", timeoutSeconds: 5 }));
            assert.equal(r.status, 0);
            assert.equal(r.stdout.trim(), "m1: etcd member healthy");
        });
        it("waits for a check that passes later", () => {
            const flag = join(dir, "ready");
            const r = spawnSync("/bin/sh", ["-c", `(sleep 1; touch ${shellQuote(flag)}) & exec ${wrap(root, healthScript("m1", { what: "x", check: `test -f ${shellQuote(flag)}`, timeoutSeconds: 10 }))}`], { encoding: "utf8" });
            assert.equal(r.status, 0, r.stderr);
        });
        it("fails after the timeout naming the host, the check and its last output", () => {
            const r = run(healthScript("m2", { what: "kube-apiserver /readyz", check: "echo 'connection refused'; false", timeoutSeconds: 1 }));
            assert.notEqual(r.status, 0);
            assert.match(r.stderr, /m2: kube-apiserver \/readyz not healthy after 1s; last output:\nconnection refused/);
        });
    });

    it("runs through sudo -n for a non-root user", () => {
        assert.match(wrap({ ...root, sudo: true }, "id -u"), /^sudo -n sh -c /);
        assert.match(wrap(root, "id -u"), /^sh -c /);
    });
});
