import * as pulumi from "@pulumi/pulumi";
import { HostTarget } from "../host/remote";
import { HostFile } from "../render/types";

/** What every component gets for each host: how to reach it, and the PKI already put there. */
export interface HostContext {
    target: HostTarget;
    /** The PKI files on this host (secret), for digests of what a service reads. */
    pki: pulumi.Output<HostFile[]>;
    /** The resource that put them there. */
    pkiFiles: pulumi.Resource;
    /** kubeha's directories on the host (state, uploads): everything else on the host comes after. */
    base: pulumi.Resource;
}

export type HostContexts = Record<string, HostContext>;
