#!/bin/sh
# kubeha lab host: early boot fix-ups for running kubelet/containerd inside a
# systemd-nspawn host on a cgroup v1 (hybrid) machine. Installed into the lab
# base rootfs as /usr/local/sbin/kubeha-lab-early and run by
# kubeha-lab-early.service before sysinit.target.
#
# 1. Global kernel tunables that kubelet checks or sets (vm.overcommit_memory,
# kernel.panic, ...) are read-only in a host: bind-mount the files of
# /etc/kubeha-lab/sysctl/<dotted.key> (read-only) over /proc/sys/<key>, so
# kubelet reads the values it wants and the machine is left unchanged.
#
# 2. nspawn mounts the v1 controller hierarchies read-only inside the host; the
# host has its own cgroup in every controller (set up by lab/hosts.sh), so make
# them writable. A plain `mount -o remount,rw` answers "busy": a bind remount
# works.
set -u
rc=0
for f in /etc/kubeha-lab/sysctl/*; do
	[ -f "$f" ] || continue
	dst=/proc/sys/$(basename "$f" | tr . /)
	[ -e "$dst" ] || continue
	if grep -q " $dst " /proc/self/mountinfo; then continue; fi
	if ! { mount --bind "$f" "$dst" && mount -o remount,bind,ro "$dst"; }; then
		echo "kubeha-lab-early: cannot bind $f over $dst" >&2
		rc=1
	fi
done
while read -r _src mp fstype opts _rest; do
	case "$fstype" in cgroup|cgroup2) ;; *) continue ;; esac
	case ",$opts," in *,ro,*) ;; *) continue ;; esac
	if ! mount -o remount,bind,rw "$mp"; then
		echo "kubeha-lab-early: cannot remount $mp rw" >&2
		rc=1
	fi
done </proc/self/mounts
exit $rc
