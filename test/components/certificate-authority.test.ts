import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { promiseOf, Recorded, runProgram, settled, startMocks } from "../mocks";
import { HA_RAW, specOf } from "../fixtures";
import type { CertificateAuthority } from "../../components/certificate-authority";
import { CAS, certificatesFor } from "../../pki/certlist";
import { describeCertificate, isSignedBy } from "../../pki/x509";
import { PkiMaterial } from "../../render/pki";
import { parse } from "yaml";

function haveOpenssl(): boolean {
    try {
        execFileSync("openssl", ["version"], { stdio: "ignore" });
        return true;
    } catch {
        return false;
    }
}

describe("CertificateAuthority (mocks build real X.509 from the tls resource args)", function () {
    const spec = specOf(HA_RAW);
    let recorded: Recorded[];
    let ca: CertificateAuthority;
    let material: PkiMaterial;

    before(async function () {
        recorded = await startMocks();
        const { CertificateAuthority } = await import("../../components/certificate-authority");
        ca = await runProgram(() => new CertificateAuthority("k", { spec }));
        material = await promiseOf(ca.material);
        await settled(recorded);
    });

    it("creates one key and self-signed certificate per CA, and key + CSR + signed cert per table row", () => {
        const count = (t: string) => recorded.filter((r) => r.type === t).length;
        const leaves = certificatesFor(spec).length;
        assert.equal(count("tls:index/selfSignedCert:SelfSignedCert"), CAS.length);
        assert.equal(count("tls:index/certRequest:CertRequest"), leaves);
        assert.equal(count("tls:index/locallySignedCert:LocallySignedCert"), leaves);
        assert.equal(count("tls:index/privateKey:PrivateKey"), CAS.length + leaves + 1 /* service account */);
        assert.equal(count("random:index/randomBytes:RandomBytes"), 1);
        assert.ok(recorded.filter((r) => r.type.startsWith("tls:")).every((r) => r.name.startsWith("k-")), "children are named after the component");
    });

    it("signs every leaf with the CA its row names, with the row's CN, O, SANs and usages", async () => {
        for (const cert of certificatesFor(spec)) {
            const pem = material.certs[cert.name].certPem;
            assert.ok(await isSignedBy(pem, material.cas[cert.signer].certPem), `${cert.name} chains to ${cert.signer}`);
            for (const other of CAS.filter((c) => c.name !== cert.signer)) {
                assert.equal(await isSignedBy(pem, material.cas[other.name].certPem), false, `${cert.name} must not chain to ${other.name}`);
            }
            const facts = describeCertificate(pem);
            assert.equal(facts.commonName, cert.commonName, cert.name);
            assert.deepEqual(facts.organizations, cert.organization ? [cert.organization] : [], cert.name);
            assert.deepEqual(facts.dnsNames.sort(), [...cert.dnsNames].sort(), `${cert.name} DNS SANs`);
            assert.deepEqual(facts.ipAddresses.sort(), [...cert.ipAddresses].sort(), `${cert.name} IP SANs`);
            assert.deepEqual(facts.extendedKeyUsages.sort(), cert.usages.filter((u) => u.endsWith("_auth")).sort(), `${cert.name} EKUs`);
            assert.equal(facts.isCa, false);
        }
    });

    it("gives the apiserver certificate every name clients use: service names, first service IP, VIP, masters, lbs, loopback", () => {
        const facts = describeCertificate(material.certs.apiserver.certPem);
        for (const name of ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "m1", "m2", "m3", "lb1", "lb2"]) {
            assert.ok(facts.dnsNames.includes(name), `apiserver SAN ${name}`);
        }
        for (const ip of ["10.254.0.1", "198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.31", "198.18.0.32", "127.0.0.1"]) {
            assert.ok(facts.ipAddresses.includes(ip), `apiserver SAN ${ip}`);
        }
        assert.deepEqual(facts.extendedKeyUsages, ["server_auth"]);
        assert.equal(describeCertificate(material.certs.admin.certPem).organizations[0], "system:masters");
    });

    it("issues etcd server and peer certificates per member, each naming only its own host", () => {
        for (const m of spec.masters) {
            for (const kind of ["etcd-server", "etcd-peer"]) {
                const facts = describeCertificate(material.certs[`${kind}-${m.name}`].certPem);
                assert.deepEqual(facts.ipAddresses.sort(), [m.ip, "127.0.0.1"].sort());
                assert.deepEqual(facts.extendedKeyUsages.sort(), ["client_auth", "server_auth"]);
            }
        }
    });

    it("verifies with openssl: chain, purpose and SANs", function () {
        if (!haveOpenssl()) {
            console.log("      SKIPPED: openssl is not installed (apt-get install openssl)");
            this.skip();
        }
        const dir = mkdtempSync(join(tmpdir(), "kubeha-pki-"));
        for (const ca of CAS) writeFileSync(join(dir, `${ca.name}.crt`), material.cas[ca.name].certPem);
        for (const cert of certificatesFor(spec)) {
            const file = join(dir, `${cert.name}.crt`);
            writeFileSync(file, material.certs[cert.name].certPem);
            const purpose = cert.usages.includes("server_auth") ? "sslserver" : "sslclient";
            const out = execFileSync("openssl", ["verify", "-CAfile", join(dir, `${cert.signer}.crt`), "-purpose", purpose, file]).toString();
            assert.match(out, /: OK/, `${cert.name}: ${out}`);
            if (cert.ipAddresses.length) {
                const text = execFileSync("openssl", ["x509", "-in", file, "-noout", "-ext", "subjectAltName"]).toString();
                for (const ip of cert.ipAddresses) assert.ok(text.includes(`IP Address:${ip}`), `${cert.name} openssl SAN ${ip}`);
            }
        }
        // Self-signed CAs verify against themselves and are CAs.
        for (const ca of CAS) {
            const text = execFileSync("openssl", ["x509", "-in", join(dir, `${ca.name}.crt`), "-noout", "-text"]).toString();
            assert.match(text, /CA:TRUE/);
        }
    });

    it("keeps every key, token and the whole material secret", async () => {
        assert.equal(await pulumi.isSecret(ca.material), true);
        assert.equal(await pulumi.isSecret(ca.bootstrapToken), true);
        assert.equal(await pulumi.isSecret(ca.filesFor(spec, "m1")), true);
        assert.match(await promiseOf(ca.bootstrapToken), /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
        assert.equal(Buffer.from(material.encryptionKey, "base64").length, 32);
    });

    it("gives each host only the keys it uses", async () => {
        const paths = async (host: string) => (await promiseOf(ca.filesFor(spec, host))).map((f) => f.path);
        const master = await paths("m1");
        const worker = await paths("w1");
        const lb = await paths("lb1");
        assert.ok(master.includes("/etc/kubernetes/pki/ca.key"), "masters sign kubelet CSRs with the cluster CA key");
        assert.ok(master.includes("/etc/kubernetes/pki/etcd/server.key"));
        assert.ok(!master.includes("/etc/kubernetes/pki/etcd/ca.key"), "no host holds the etcd CA key");
        assert.ok(!master.includes("/etc/kubernetes/pki/front-proxy-ca.key"), "no host holds the front-proxy CA key");
        assert.deepEqual(worker.filter((p) => p.endsWith(".key")), ["/etc/kubernetes/pki/flanneld-etcd-client.key"]);
        assert.ok(!worker.includes("/etc/kubernetes/pki/sa.key"));
        assert.deepEqual(lb, ["/etc/kubernetes/pki/ca.crt"]);
        const masterFiles = await promiseOf(ca.filesFor(spec, "m2"));
        const etcdServer = masterFiles.find((f) => f.path === "/etc/kubernetes/pki/etcd/server.crt")!;
        assert.ok(describeCertificate(etcdServer.content).ipAddresses.includes("198.18.0.12"), "m2 gets m2's etcd certificate");
        for (const f of masterFiles) assert.equal(f.mode, f.secret ? "0600" : "0644", f.path);
    });

    it("writes kubeconfigs that point where kubeadm's do and embed a working client certificate", async () => {
        const files = await promiseOf(ca.filesFor(spec, "m1"));
        const kc = (p: string) => parse(files.find((f) => f.path === p)!.content);
        assert.equal(kc("/etc/kubernetes/admin.conf").clusters[0].cluster.server, "https://198.18.0.10:8443");
        assert.equal(kc("/etc/kubernetes/controller-manager.conf").clusters[0].cluster.server, "https://127.0.0.1:6443");
        assert.equal(kc("/etc/kubernetes/scheduler.conf").clusters[0].cluster.server, "https://127.0.0.1:6443");
        const cm = kc("/etc/kubernetes/controller-manager.conf");
        const cert = Buffer.from(cm.users[0].user["client-certificate-data"], "base64").toString();
        assert.equal(describeCertificate(cert).commonName, "system:kube-controller-manager");
        assert.ok(await isSignedBy(cert, Buffer.from(cm.clusters[0].cluster["certificate-authority-data"], "base64").toString()));
        const worker = await promiseOf(ca.filesFor(spec, "w1"));
        const boot = parse(worker.find((f) => f.path === "/etc/kubernetes/bootstrap-kubelet.conf")!.content);
        assert.equal(boot.users[0].user.token, await promiseOf(ca.bootstrapToken));
    });
});
