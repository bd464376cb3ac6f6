// kubeadm's on-disk layout, so CIS tooling (kube-bench) and operators' habits apply unchanged.
export const KUBE_DIR = "/etc/kubernetes";
export const PKI_DIR = `${KUBE_DIR}/pki`;
export const ETCD_PKI_DIR = `${PKI_DIR}/etcd`;
export const BIN_DIR = "/usr/local/bin";
export const CNI_BIN_DIR = "/opt/cni/bin";
export const CNI_CONF_DIR = "/etc/cni/net.d";
export const SYSTEMD_DIR = "/etc/systemd/system";
export const KUBELET_DIR = "/var/lib/kubelet";
export const KUBE_PROXY_DIR = "/var/lib/kube-proxy";
export const ENCRYPTION_CONFIG = `${KUBE_DIR}/encryption-config.yaml`;
export const STATE_DIR = "/var/lib/kubeha";

export const KUBECONFIG = {
    admin: `${KUBE_DIR}/admin.conf`,
    controllerManager: `${KUBE_DIR}/controller-manager.conf`,
    scheduler: `${KUBE_DIR}/scheduler.conf`,
    kubeProxy: `${KUBE_DIR}/kube-proxy.conf`,
    bootstrapKubelet: `${KUBE_DIR}/bootstrap-kubelet.conf`,
} as const;
