import { strict as assert } from "node:assert";
import { CAS, CERT_ROWS, certificatesFor } from "../../pki/certlist";
import { HA_RAW, SEED_RAW, specOf } from "../fixtures";

describe("certificate table invariants", () => {
    for (const [label, spec] of [["seed", specOf(SEED_RAW)], ["lab", specOf(HA_RAW, { mastersAreWorkers: true })],
        ["single master", specOf({ masters: ["m1=10.0.0.11"], hostCidr: "10.0.0.0/24", sshHostKeyChecking: false, sshPrivateKey: "x" })]] as const) {
        describe(label, () => {
            const certs = certificatesFor(spec);
            it("names are unique and every signer is a CA of the table", () => {
                assert.equal(new Set(certs.map((c) => c.name)).size, certs.length);
                for (const c of certs) assert.ok(CAS.some((ca) => ca.name === c.signer), c.name);
            });
            it("no host receives two certificates at one path", () => {
                for (const h of spec.hosts) {
                    const paths = certs.filter((c) => c.hosts.includes(h)).map((c) => c.placement.kind === "files" ? c.placement.certPath : c.placement.path);
                    assert.equal(new Set(paths).size, paths.length, h.name);
                }
            });
            it("server certificates have SANs; client-only certificates have none", () => {
                for (const c of certs) {
                    if (c.usages.includes("server_auth")) assert.ok(c.ipAddresses.length > 0, c.name);
                    else assert.deepEqual([...c.dnsNames, ...c.ipAddresses], [], c.name);
                }
            });
            it("one etcd server and peer certificate per member, none for anyone else", () => {
                for (const m of spec.masters) {
                    const server = certs.find((c) => c.name === `etcd-server-${m.name}`)!;
                    assert.deepEqual(server.hosts, [m]);
                    assert.deepEqual(server.ipAddresses, [m.ip, "127.0.0.1"]);
                }
                assert.equal(certs.filter((c) => c.name.startsWith("etcd-peer-")).length, spec.masters.length);
            });
            it("kube-proxy's certificate goes to exactly the nodes that run kube-proxy", () => {
                const kp = certs.find((c) => c.name === "kube-proxy");
                assert.deepEqual(kp?.hosts ?? [], spec.workers);
            });
        });
    }
    it("every row kind is used by the seed's cluster", () => {
        const names = certificatesFor(specOf(SEED_RAW)).map((c) => c.name);
        for (const row of CERT_ROWS) assert.ok(names.some((n) => n === row.name || n.startsWith(`${row.name}-`)), row.name);
    });
});
