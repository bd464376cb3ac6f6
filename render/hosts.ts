// Every file on every host, from the spec and the key material: `npm run render` writes these;
// the components put the same files through the same render functions.
import { ClusterSpec } from "../spec/types";
import { PkiMaterial, renderPkiFiles } from "./pki";
import { addFile, HostFiles, publicFile, secretFile } from "./types";
import { LB_PATHS, renderApiserverCheckScript, renderKeepalivedConfig, renderLbUnit, renderNginxStreamConfig } from "./loadbalancer";
import {
    CNI_CONFLIST, CONTAINERD_CONFIG, FLANNEL_NET_CONFIG, KUBE_PROXY_CONFIG, KUBELET_CONFIG, SYSTEMD_DIR,
} from "./paths";
import { ETCD, renderEtcdBackupScript, renderEtcdBackupUnits, renderEtcdUnit } from "./etcd";
import {
    CONTROL_PLANE, renderApiserverUnit, renderAuditPolicy, renderAuthenticationConfig, renderControllerManagerUnit,
    renderSchedulerConfig, renderSchedulerUnit,
} from "./control-plane";
import { FLANNEL, flannelHosts, renderCniConflist, renderFlanneldUnit, renderFlannelNetworkConfig } from "./flannel";
import {
    NODE, nodeHosts, registryHostsPath, renderContainerdConfig, renderContainerdUnit, renderKubeletConfig, renderKubeletUnit,
    renderKubeProxyConfig, renderKubeProxyUnit, renderRegistryHosts,
} from "./node";
import { renderHostPreparation } from "./host-prep";

const unit = (name: string, content: string) => publicFile(`${SYSTEMD_DIR}/${name}`, content);

/** `vrrpAuthPass` comes from @pulumi/random at `pulumi up`; the preview passes a placeholder. */
export function renderHostFiles(spec: ClusterSpec, material: PkiMaterial, vrrpAuthPass: string): HostFiles {
    const files = renderPkiFiles(spec, material);
    const backup = renderEtcdBackupUnits(spec);
    // Every host's preparation (kernel modules, sysctls, journald); its scripts run, they are not files.
    for (const h of spec.hosts) for (const f of renderHostPreparation(spec, h).files) addFile(files, h.name, f);
    for (const m of spec.masters) {
        const add = (f: ReturnType<typeof publicFile>) => addFile(files, m.name, f);
        add(unit(ETCD.unit, renderEtcdUnit(spec, m)));
        add({ ...publicFile(ETCD.backupScript, renderEtcdBackupScript(spec)), mode: "0755" });
        add(unit(ETCD.backupService, backup.service));
        add(unit(ETCD.backupTimer, backup.timer));
        add({ ...publicFile(CONTROL_PLANE.auditPolicy, renderAuditPolicy()), mode: "0600" });
        add({ ...publicFile(CONTROL_PLANE.authenticationConfig, renderAuthenticationConfig()), mode: "0600" });
        add({ ...publicFile(CONTROL_PLANE.schedulerConfig, renderSchedulerConfig()), mode: "0600" });
        add(unit(CONTROL_PLANE.apiserverUnit, renderApiserverUnit(spec, m)));
        add(unit(CONTROL_PLANE.controllerManagerUnit, renderControllerManagerUnit(spec)));
        add(unit(CONTROL_PLANE.schedulerUnit, renderSchedulerUnit(spec)));
    }
    for (const lb of spec.loadBalancers) {
        const add = (f: ReturnType<typeof publicFile>) => addFile(files, lb.name, f);
        add(publicFile(LB_PATHS.nginxConfig, renderNginxStreamConfig(spec)));
        add(unit(LB_PATHS.unit, renderLbUnit(spec)));
        add(secretFile(LB_PATHS.keepalivedConfig, renderKeepalivedConfig(spec, lb, vrrpAuthPass)));
        add({ ...publicFile(LB_PATHS.checkScript, renderApiserverCheckScript(spec)), mode: "0755" });
    }
    for (const h of flannelHosts(spec)) {
        const add = (f: ReturnType<typeof publicFile>) => addFile(files, h.name, f);
        add(unit(FLANNEL.unit, renderFlanneldUnit(spec, h)));
        // In etcd mode the network config lives in etcd (flannelConfigPutCommand), not on the hosts.
        if (spec.network.flannelMode === "kube-subnet-mgr") add(publicFile(FLANNEL_NET_CONFIG, renderFlannelNetworkConfig(spec)));
    }
    for (const n of nodeHosts(spec)) {
        const add = (f: ReturnType<typeof publicFile>) => addFile(files, n.name, f);
        add(publicFile(CONTAINERD_CONFIG, renderContainerdConfig(spec)));
        for (const m of spec.node.registryMirrors) add(publicFile(registryHostsPath(m.registry), renderRegistryHosts(m)));
        add(unit(NODE.containerdUnit, renderContainerdUnit()));
        add(publicFile(CNI_CONFLIST, renderCniConflist()));
        add(publicFile(KUBELET_CONFIG, renderKubeletConfig(spec, n)));
        add(unit(NODE.kubeletUnit, renderKubeletUnit(spec, n)));
        add(publicFile(KUBE_PROXY_CONFIG, renderKubeProxyConfig(spec, n)));
        add(unit(NODE.kubeProxyUnit, renderKubeProxyUnit()));
    }
    return files;
}
