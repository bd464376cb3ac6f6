/** One file as it lands on a host. */
export interface HostFile {
    path: string;
    content: string;
    /** Octal, e.g. "0644"; private keys and kubeconfigs with keys are "0600". */
    mode: string;
    /** Contains key material: a Pulumi secret, never printed, written 0600. */
    secret: boolean;
    /** "user:group" when not root:root. */
    owner?: string;
}

/** Files by host name. */
export type HostFiles = Map<string, HostFile[]>;

export function addFile(files: HostFiles, host: string, file: HostFile): void {
    const list = files.get(host) ?? [];
    if (list.some((f) => f.path === file.path)) throw new Error(`${host}: two files render to ${file.path}`);
    list.push(file);
    files.set(host, list);
}

export const publicFile = (path: string, content: string): HostFile => ({ path, content, mode: "0644", secret: false });
export const secretFile = (path: string, content: string): HostFile => ({ path, content, mode: "0600", secret: true });
