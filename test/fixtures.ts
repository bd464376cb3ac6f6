// Small stack configs for tests: the seed's cluster, and a compact lab-like one.
import { loadClusterSpec, RawConfig } from "../spec/config";
import { rawConfigFromStackFile } from "../spec/stack-config";
import { ClusterSpec } from "../spec/types";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ARTIFACT_ROWS } from "../spec/artifacts";

/** A binaryDir laid out like lab/toolchain.sh's (name, cni/name), holding small stand-in files. */
function fakeBinaryDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "kubeha-bin-"));
    mkdirSync(join(dir, "cni"));
    for (const row of Object.values(ARTIFACT_ROWS)) {
        for (const file of Object.keys(row.members("0.0.0"))) {
            writeFileSync(join(dir, row.installDir.endsWith("/cni/bin") ? "cni" : "", file), `#!/bin/sh\necho ${file}\n`);
        }
    }
    return dir;
}
export const BINARY_DIR = fakeBinaryDir();

export const SEED_RAW: RawConfig = rawConfigFromStackFile(`${__dirname}/../Pulumi.dev.yaml`);

export const HA_RAW: RawConfig = {
    masters: ["m1=198.18.0.11", "m2=198.18.0.12", "m3=198.18.0.13"],
    workers: ["w1=198.18.0.21", "w2=198.18.0.22"],
    loadBalancers: ["lb1=198.18.0.31", "lb2=198.18.0.32"],
    vip: "198.18.0.10",
    hostCidr: "198.18.0.0/24",
    hostInterface: "host0",
    sshHostKeyChecking: false,
    sshPrivateKey: "[secret]",
    // The lab's way: binaries built locally and uploaded (no download, so no checksum pins needed).
    binarySource: "local",
    binaryDir: BINARY_DIR,
};

export function specOf(raw: RawConfig, overrides: RawConfig = {}): ClusterSpec {
    return loadClusterSpec({ ...raw, ...overrides }, { strict: false }).spec;
}
