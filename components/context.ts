import * as pulumi from "@pulumi/pulumi";
import { Host } from "../spec/types";
import { HostFile } from "../render/types";
import { SYSTEMD_DIR } from "../render/paths";

/** What every component gets for each host: the host, and its share of the PKI (secret). */
export interface HostContext {
    host: Host;
    pki: pulumi.Output<HostFile[]>;
}

export type HostContexts = Record<string, HostContext>;

/** The PKI files at `paths` among a host's (each group writes the ones its units read). */
export function pickPki(host: string, pki: HostFile[], paths: readonly string[]): HostFile[] {
    return paths.map((p) => {
        const f = pki.find((x) => x.path === p);
        if (!f) throw new Error(`${host}: the PKI has no ${p} for this host (pki/certlist.ts)`);
        return f;
    });
}

/** A systemd unit file kubeha writes. */
export const unitFile = (name: string, content: string): HostFile => ({ path: `${SYSTEMD_DIR}/${name}`, content, mode: "0644", secret: false });
export const unitPath = (name: string): string => `${SYSTEMD_DIR}/${name}`;
