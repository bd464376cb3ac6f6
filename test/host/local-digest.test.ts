// Digests of local files (binaryDir, imageArchives): kept across runs by a stamp of device, inode,
// size and mtime, so a preview does not hash hundreds of MB — and recomputed when the file changes.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localDigest } from "../../host/group";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("local file digests", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubeha-digest-"));
    const saved = process.env.KUBEHA_CACHE;
    before(() => { process.env.KUBEHA_CACHE = dir; });
    after(() => { if (saved === undefined) delete process.env.KUBEHA_CACHE; else process.env.KUBEHA_CACHE = saved; });

    it("hashes a file, records it in the cache, and hashes it again once it changed", () => {
        const f = join(dir, "kubelet");
        writeFileSync(f, "v1");
        assert.equal(localDigest(f, "binaryDir"), sha("v1"));
        const cache = JSON.parse(readFileSync(join(dir, "local-digests.json"), "utf8"));
        assert.equal(cache.entries[f].sha256, sha("v1"));
        writeFileSync(f, "v2");
        utimesSync(f, new Date(), new Date(Date.now() + 5000));
        assert.equal(localDigest(f, "binaryDir"), sha("v2"));
    });

    it("names the setting when the file cannot be read", () => {
        assert.throws(() => localDigest(join(dir, "missing"), "imageArchives", "build it first"), /kubeha:imageArchives: .*missing cannot be read .*; build it first/);
    });
});
