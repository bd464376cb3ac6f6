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

// Nodes (workers, and masters when mastersAreWorkers) and flanneld.
export const CONTAINERD_CONFIG = "/etc/containerd/config.toml";
/** containerd's registry host configs: certs.d/<registry>/hosts.toml. */
export const CONTAINERD_CERTS_DIR = "/etc/containerd/certs.d";
export const CONTAINERD_SOCKET = "/run/containerd/containerd.sock";
export const KUBELET_CONFIG = `${KUBELET_DIR}/config.yaml`;
/** The kubelet's client and serving certificates, issued through CSRs (TLS bootstrap). */
export const KUBELET_PKI_DIR = `${KUBELET_DIR}/pki`;
/** Written by the kubelet itself once its bootstrap CSR is signed. */
export const KUBELET_KUBECONFIG = `${KUBE_DIR}/kubelet.conf`;
export const KUBE_PROXY_CONFIG = `${KUBE_PROXY_DIR}/config.yaml`;
export const CNI_CONFLIST = `${CNI_CONF_DIR}/10-flannel.conflist`;
export const FLANNEL_SUBNET_FILE = "/run/flannel/subnet.env";
/** flanneld's network config file (kube-subnet-mgr mode; in etcd mode it lives in etcd). */
export const FLANNEL_NET_CONFIG = "/etc/kube-flannel/net-conf.json";
/** flanneld's kubeconfig (kube-subnet-mgr mode). */
export const FLANNEL_KUBECONFIG = `${KUBE_DIR}/flanneld.conf`;
export const SYSCTL_CONF = "/etc/sysctl.d/99-kubeha.conf";
export const MODULES_LOAD_CONF = "/etc/modules-load.d/kubeha.conf";
/** journald drop-in: persistent, capped logs (60-90 is the range journald.conf(5) leaves to /etc). */
export const JOURNALD_DROPIN = "/etc/systemd/journald.conf.d/60-kubeha.conf";
/** The kubelet's resolvConf: a symlink the host preparation keeps pointing at real nameservers. */
export const KUBELET_RESOLV_CONF = `${STATE_DIR}/resolv.conf`;
