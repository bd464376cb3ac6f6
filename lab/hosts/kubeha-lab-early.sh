#!/bin/sh
# kubeha lab host: early boot fix-ups for running kubelet/containerd inside a
# systemd-nspawn host on a cgroup v1 (hybrid) machine. Installed into the lab
# base rootfs as /usr/local/sbin/kubeha-lab-early and run by
# kubeha-lab-early.service before sysinit.target.
#
# nspawn mounts the v1 controller hierarchies read-only inside the host; the
# host has its own cgroup in every controller (set up by lab/hosts.sh), so make
# them writable. A plain `mount -o remount,rw` answers "busy": a bind remount
# works.
set -u
rc=0
while read -r _src mp fstype opts _rest; do
	case "$fstype" in cgroup|cgroup2) ;; *) continue ;; esac
	case ",$opts," in *,ro,*) ;; *) continue ;; esac
	if ! mount -o remount,bind,rw "$mp"; then
		echo "kubeha-lab-early: cannot remount $mp rw" >&2
		rc=1
	fi
done </proc/self/mounts
exit $rc
