// What the cluster needs through the API once it answers: the kubelet bootstrap token and the RBAC
// bindings of TLS bootstrapping, and the apiserver's access to kubelets.
import { stringify } from "yaml";

export const BOOTSTRAP_GROUP = "system:bootstrappers:kubeha:default-node-token";

const binding = (name: string, role: string, subject: { kind: "Group" | "User"; name: string }) => ({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name, labels: { "app.kubernetes.io/managed-by": "kubeha" } },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", ...subject }],
});

export function renderBootstrapManifests(tokenId: string, tokenSecret: string): string {
    const docs = [
        {
            apiVersion: "v1",
            kind: "Secret",
            type: "bootstrap.kubernetes.io/token",
            metadata: { name: `bootstrap-token-${tokenId}`, namespace: "kube-system", labels: { "app.kubernetes.io/managed-by": "kubeha" } },
            stringData: {
                "description": "kubelet TLS bootstrap token managed by kubeha",
                "token-id": tokenId,
                "token-secret": tokenSecret,
                "usage-bootstrap-authentication": "true",
                "usage-bootstrap-signing": "true",
                "auth-extra-groups": BOOTSTRAP_GROUP,
            },
        },
        binding("kubeha:kubelet-bootstrap", "system:node-bootstrapper", { kind: "Group", name: "system:bootstrappers" }),
        binding("kubeha:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", { kind: "Group", name: "system:bootstrappers" }),
        binding("kubeha:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", { kind: "Group", name: "system:nodes" }),
        binding("kubeha:apiserver-kubelet-client", "system:kubelet-api-admin", { kind: "User", name: "kube-apiserver-kubelet-client" }),
    ];
    return docs.map((d) => stringify(d)).join("---\n");
}
