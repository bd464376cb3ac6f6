// Every file on every host, from the spec and the key material: the one function both
// `pulumi up` (through the components) and `npm run render` use.
import { ClusterSpec } from "../spec/types";
import { PkiMaterial, renderPkiFiles } from "./pki";
import { HostFiles } from "./types";

export function renderHostFiles(spec: ClusterSpec, material: PkiMaterial): HostFiles {
    return renderPkiFiles(spec, material);
}
