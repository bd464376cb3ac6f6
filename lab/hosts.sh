#!/usr/bin/env bash
# lab/hosts.sh — a multi-host kubeha test lab on this machine with systemd-nspawn.
#
#   lab/hosts.sh up                 build/reuse the base rootfs, boot fresh hosts, wait for SSH
#   lab/hosts.sh status             one line per host
#   lab/hosts.sh ssh [user@]<host> [cmd…]  ssh (root by default; host name or IP)
#   lab/hosts.sh reboot <host>      clean in-host reboot (disk kept), wait for SSH, print the time
#   lab/hosts.sh power-cycle [host…]  power cut (SIGKILL, no shutdown) of all/some hosts, boot them
#                                   again on their disks, wait for SSH
#   lab/hosts.sh stop|start <host…>  clean poweroff / boot again (disk kept)
#   lab/hosts.sh down               stop everything and clean up, disks included (idempotent)
#   lab/hosts.sh ssh-config         print an ssh_config snippet for the lab hosts
#
# Environment: MASTERS=3 WORKERS=2 LBS=2 (0..9 each), KUBEHA_LAB=kubeha,
# KUBEHA_CACHE=$HOME/.cache/kubeha, KUBEHA_LAB_BRIDGE=khbr0, KUBEHA_LAB_NET=198.18.0,
# KUBEHA_LAB_BOOT_TIMEOUT=120, KUBEHA_LAB_STOP_TIMEOUT=20.
# A second lab next to the main one needs all of KUBEHA_LAB, KUBEHA_LAB_BRIDGE and
# KUBEHA_LAB_NET, e.g. KUBEHA_LAB=scaletest KUBEHA_LAB_BRIDGE=khbr7 KUBEHA_LAB_NET=198.19.7.
# State: $KUBEHA_CACHE/lab/<lab>/ (inventory.json, id_ed25519, known_hosts, hosts/<name>/).
# A host's disk is hosts/<name>/upper (overlay upper dir over the base) and
# hosts/<name>/containerd (bind-mounted at /var/lib/containerd): stop/start, reboot and
# power-cycle keep both; up and down start from / leave nothing.
# Base rootfs: $KUBEHA_CACHE/rootfs/bookworm-<hash>/ (hash of package list + recipe).
# Addresses: a /24 inside 198.18.0.0/15 (KUBEHA_LAB_NET, default 198.18.0); the machine side
# of the bridge is .1, the VIP .10 is left for keepalived, masters .11-.19, workers .21-.29,
# load balancers .31-.39.
# The hosts get no default route: lab traffic never leaves this machine.
# The hosts share this machine's kernel: `up` raises machine-wide limits that 14 hosts need
# (inotify, pids, keys, ...; raise_machine_limits), never lowering one.
# Recipe and pitfalls: shared/notes/host-lab.md.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")

LAB=${KUBEHA_LAB:-kubeha}
CACHE=${KUBEHA_CACHE:-$HOME/.cache/kubeha}
STATE=$CACHE/lab/$LAB
ROOTFS_CACHE=$CACHE/rootfs
BRIDGE=${KUBEHA_LAB_BRIDGE:-khbr0}
NET_PREFIX=${KUBEHA_LAB_NET:-198.18.0}
GATEWAY=$NET_PREFIX.1
VIP=$NET_PREFIX.10
BOOT_TIMEOUT=${KUBEHA_LAB_BOOT_TIMEOUT:-120}
STOP_TIMEOUT=${KUBEHA_LAB_STOP_TIMEOUT:-20}
SUITE=bookworm
MIRROR=${KUBEHA_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Packages of the base rootfs. debootstrap installs the first list (proven set from the
# note), apt-get inside the chroot the second (it resolves alternatives properly).
DEBOOTSTRAP_PKGS=(systemd-sysv dbus openssh-server iproute2 procps ca-certificates netbase)
EXTRA_PKGS=(sudo curl kmod iptables nftables conntrack socat ethtool ipset iputils-ping
	nginx libnginx-mod-stream keepalived)
# Global /proc/sys keys kubelet checks (protectKernelDefaults: true) or sets (false, and
# exits if it cannot): pkg/kubelet/cm/container_manager_linux.go setupKernelTunables.
# They are read-only inside a host, so the base carries files with these values in
# /etc/kubeha-lab/sysctl/ and the early unit bind-mounts them over /proc/sys (nspawn's own
# --bind-ro=<file>:/proc/sys/... fails here: "Failed to stat <file>").
KERNEL_TUNABLES=(vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10
	kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000)

SSH_KEY=$STATE/id_ed25519
KNOWN_HOSTS=$STATE/known_hosts
INVENTORY=$STATE/inventory.json

log() { printf '[hosts %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
phase() { printf '[hosts] phase %-14s %6ss%s\n' "$1" "$2" "${3:+  ($3)}" >&2; }

need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

# Lab addresses stay inside 198.18.0.0/15 (benchmarking range, never routed off this machine).
check_net() {
	local o3
	[[ $NET_PREFIX =~ ^198\.(18|19)\.([0-9]{1,3})$ ]] ||
		die "KUBEHA_LAB_NET must be the first three octets of a /24 in 198.18.0.0/15, e.g. 198.19.7 (got '$NET_PREFIX')"
	o3=${BASH_REMATCH[2]}
	if ((10#$o3 > 255)) || [[ $o3 != "$((10#$o3))" ]]; then die "KUBEHA_LAB_NET: bad third octet '$o3'"; fi
}
check_net

# systemd-nspawn's --machine name. It names the host-side veth (vb-<machine>) and
# /run/systemd/nspawn/propagate/<machine>, both machine-wide: a second lab must not reuse the
# main lab's names. The main lab keeps the host names; other labs prefix theirs with the lab
# name (nspawn then hashes the too-long veth name). The host's own hostname is always <name>.
machine_name() {
	if [[ $LAB == kubeha ]]; then echo "$1"; else echo "$LAB-$1"; fi
}

# ---------------------------------------------------------------- machine-wide limits
# The hosts share this machine's kernel, and several limits are per user (uid 0 of every host
# counts as one user) or machine-wide. Minimums for 14 hosts running kubelet, containerd and
# pods; a value already higher is left alone. "<key> <minimum>" (/proc/sys path, dotted).
MACHINE_LIMITS=(
	# kubelet, containerd, systemd and journald of every host: inotify_init fails at 128.
	"fs.inotify.max_user_instances 8192"
	"fs.inotify.max_user_watches 1048576"
	"fs.inotify.max_queued_events 65536"
	# Threads of all hosts; systemd in each host also derives DefaultTasksMax (15%) from it.
	"kernel.pid_max 4194304"
	"kernel.threads-max 65536" # only if low: the kernel sizes it from RAM (192726 on 24 GB)
	# runc gives every container a session keyring: root's quota is the one that counts (the
	# hosts' root_maxkeys files only show kubelet what it checks), the others for non-root uids.
	"kernel.keys.root_maxkeys 1000000"
	"kernel.keys.root_maxbytes 25000000"
	"kernel.keys.maxkeys 20000"
	"kernel.keys.maxbytes 2000000"
	# One conntrack table for all hosts' network namespaces (only if nf_conntrack is loaded;
	# kube-proxy in a host cannot set it: conntrack.maxPerCore 0).
	"net.netfilter.nf_conntrack_max 262144"
	"fs.file-max 1048576"
	"vm.max_map_count 262144"
)

raise_machine_limits() {
	local entry key want f cur raised=() ok=0
	for entry in "${MACHINE_LIMITS[@]}"; do
		read -r key want <<<"$entry"
		f=/proc/sys/${key//.//}
		[[ -f $f ]] || continue # e.g. nf_conntrack not loaded
		cur=$(<"$f")
		if ((cur >= want)); then
			ok=$((ok + 1))
			continue
		fi
		if echo "$want" >"$f" 2>/dev/null && (($(<"$f") >= want)); then
			raised+=("$key $cur -> $want")
			log "machine limit raised: $key $cur -> $want"
		else
			log "WARN: could not raise machine limit $key from $cur to $want"
		fi
	done
	phase "machine-limits" "0.0" "${#raised[@]} raised, $ok already high enough"
}

# ---------------------------------------------------------------- host list
# Prints "name ip role" lines for the wanted topology.
host_table() {
	local m=${MASTERS:-3} w=${WORKERS:-2} l=${LBS:-2} i
	for v in "$m" "$w" "$l"; do
		[[ $v =~ ^[0-9]$ ]] || die "MASTERS/WORKERS/LBS must be 0..9 (got '$v')"
	done
	((m + w + l > 0)) || die "no hosts requested"
	for ((i = 1; i <= m; i++)); do printf 'k8s-master%02d %s.%d master\n' "$i" "$NET_PREFIX" $((10 + i)); done
	for ((i = 1; i <= w; i++)); do printf 'k8s-node%02d %s.%d worker\n' "$i" "$NET_PREFIX" $((20 + i)); done
	for ((i = 1; i <= l; i++)); do printf 'k8s-ha%02d %s.%d lb\n' "$i" "$NET_PREFIX" $((30 + i)); done
}

# Hosts of the lab as it exists (from the state dir, whatever MASTERS/... say now).
existing_hosts() {
	local d
	[[ -d $STATE/hosts ]] || return 0
	for d in "$STATE"/hosts/*/; do
		[[ -f $d/meta ]] && cat "$d/meta"
	done
	return 0
}

# ---------------------------------------------------------------- machine packages
ensure_machine_packages() {
	local missing=() cmd
	for cmd in systemd-nspawn:systemd-container debootstrap:debootstrap ssh:openssh-client \
		ssh-keygen:openssh-client ip:iproute2 flock:util-linux setsid:util-linux \
		findmnt:util-linux mountpoint:util-linux; do
		command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd#*:}")
	done
	[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
	((${#missing[@]} == 0)) && return 0
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing on the machine: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- base rootfs
# Everything that shapes the base goes into its hash: change the recipe, get a new base.
rootfs_customize() {
	local r=$1 kv key
	# Services must not start inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 755 "$r/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	mount -t proc proc "$r/proc"
	chroot "$r" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get install -y -q \
		--no-install-recommends "${EXTRA_PKGS[@]}"
	chroot "$r" apt-get clean
	umount "$r/proc"
	rm -f "$r/usr/sbin/policy-rc.d"
	# No route out of the lab: no resolver either.
	: >"$r/etc/resolv.conf"
	# Identity is per host: no host keys, empty machine-id, no hostname.
	rm -f "$r"/etc/ssh/ssh_host_*
	: >"$r/etc/machine-id"
	rm -f "$r/var/lib/dbus/machine-id"
	: >"$r/etc/hostname"
	mkdir -p "$r/etc/ssh/sshd_config.d"
	cat >"$r/etc/ssh/sshd_config.d/10-kubeha-lab.conf" <<-'EOF'
		# kubeha lab: one ed25519 host key per host, keys only
		HostKey /etc/ssh/ssh_host_ed25519_key
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin prohibit-password
		UseDNS no
	EOF
	mkdir -p "$r/etc/systemd/system.conf.d"
	cat >"$r/etc/systemd/system.conf.d/10-kubeha-lab.conf" <<-'EOF'
		# kubeha lab: hosts whose pods delay shutdown must still stop quickly
		[Manager]
		DefaultTimeoutStopSec=5s
	EOF
	# Non-root deploy user with passwordless sudo.
	chroot "$r" useradd --create-home --shell /bin/bash kubeha
	printf 'kubeha ALL=(ALL:ALL) NOPASSWD: ALL\n' >"$r/etc/sudoers.d/kubeha"
	chmod 440 "$r/etc/sudoers.d/kubeha"
	# Early unit: cgroup controller mounts read-write, kernel tunables (see
	# lab/hosts/kubeha-lab-early.sh).
	mkdir -p "$r/etc/kubeha-lab/sysctl"
	for kv in "${KERNEL_TUNABLES[@]}"; do
		key=${kv%%=*}
		echo "${kv#*=}" >"$r/etc/kubeha-lab/sysctl/${key//\//.}"
	done
	install -m 755 "$HERE/hosts/kubeha-lab-early.sh" "$r/usr/local/sbin/kubeha-lab-early"
	install -m 644 "$HERE/hosts/kubeha-lab-early.service" "$r/etc/systemd/system/kubeha-lab-early.service"
	chroot "$r" systemctl enable kubeha-lab-early.service systemd-networkd.service
	# nginx is baked in for the load balancers; the deploy enables it where it belongs.
	chroot "$r" systemctl disable nginx.service
	# No getty on the passive console.
	chroot "$r" systemctl mask console-getty.service
}

rootfs_hash() {
	{
		echo "$SUITE $MIRROR"
		echo "${DEBOOTSTRAP_PKGS[*]}"
		echo "${EXTRA_PKGS[*]}"
		declare -f rootfs_customize
		cat "$HERE/hosts/kubeha-lab-early.sh" "$HERE/hosts/kubeha-lab-early.service"
	} | sha256sum | cut -c1-12
}

unmount_below() {
	local t
	[[ -d $1 ]] || return 0
	findmnt -rn -o TARGET | grep -F "$1/" | sort -r | while read -r t; do umount -l "$t"; done
	return 0
}

# Sets BASE to the ready base rootfs, building it if needed.
ensure_rootfs() {
	local hash t0 tmp d
	hash=$(rootfs_hash)
	BASE=$ROOTFS_CACHE/$SUITE-$hash
	mkdir -p "$ROOTFS_CACHE"
	exec 8>"$ROOTFS_CACHE/.lock"
	flock -w 900 8 || die "timed out waiting for another rootfs build ($ROOTFS_CACHE/.lock)"
	if [[ -f $BASE/.kubeha-rootfs-ok ]]; then
		flock -u 8
		phase "rootfs" "0.0" "cached $BASE"
		return 0
	fi
	t0=$(now)
	tmp=$ROOTFS_CACHE/.build-$hash
	unmount_below "$tmp" # an interrupted build may have left /proc mounted there
	rm -rf --one-file-system "$tmp"
	mkdir -p "$tmp" "$ROOTFS_CACHE/debs"
	log "building base rootfs $BASE (debootstrap $SUITE, then ${#EXTRA_PKGS[@]} extra packages)"
	if ! debootstrap --variant=minbase --cache-dir="$ROOTFS_CACHE/debs" \
		--include="$(
			IFS=,
			echo "${DEBOOTSTRAP_PKGS[*]}"
		)" "$SUITE" "$tmp" "$MIRROR" >"$ROOTFS_CACHE/.build-$hash.log" 2>&1; then
		tail -n 20 "$ROOTFS_CACHE/.build-$hash.log" >&2
		die "debootstrap failed (log: $ROOTFS_CACHE/.build-$hash.log)"
	fi
	# In the background so that set -e applies inside (it does not in an `if` condition).
	rootfs_customize "$tmp" >>"$ROOTFS_CACHE/.build-$hash.log" 2>&1 &
	if ! wait $!; then
		unmount_below "$tmp"
		tail -n 20 "$ROOTFS_CACHE/.build-$hash.log" >&2
		die "customizing the rootfs failed (log: $ROOTFS_CACHE/.build-$hash.log)"
	fi
	date -u +%FT%TZ >"$tmp/.kubeha-rootfs-ok"
	mv "$tmp" "$BASE"
	mv "$ROOTFS_CACHE/.build-$hash.log" "$BASE.log"
	# Drop older bases that no overlay uses any more.
	for d in "$ROOTFS_CACHE/$SUITE"-*/; do
		d=${d%/}
		[[ $d == "$BASE" ]] && continue
		grep -q "lowerdir=${d}[,:]" /proc/self/mountinfo && continue
		log "removing old base rootfs $d"
		rm -rf "$d" "$d.log"
	done
	flock -u 8
	phase "rootfs" "$(since "$t0")" "built $(du -sh "$BASE" | cut -f1)"
}

# ---------------------------------------------------------------- cgroups
# Mount points of every cgroup hierarchy on the machine (v1 controllers + unified).
cgroup_mounts() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts; }
unified_mount() { awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts; }

# Creates <mount>/<lab>/<host> in every hierarchy (copying cpuset down) and moves $1 there.
cgroup_enter() {
	local host=$1 pid=$2 mp d
	while read -r mp; do
		for d in "$mp/$LAB" "$mp/$LAB/$host"; do
			mkdir -p "$d" # -p: hosts launch in parallel
			if [[ -f $d/cpuset.cpus && -z $(<"$d/cpuset.cpus") ]]; then
				cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
				cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
			fi
		done
		echo "$pid" >"$mp/$LAB/$host/cgroup.procs"
	done < <(cgroup_mounts)
}

cgroup_procs() { # all pids in the host's unified cgroup tree
	local u
	u=$(unified_mount)/$LAB/$1
	[[ -d $u ]] || return 0
	find "$u" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}

cgroup_remove() {
	local host=$1 mp
	while read -r mp; do
		if [[ -d $mp/$LAB/$host ]]; then
			find "$mp/$LAB/$host" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[[ -d $mp/$LAB/$host ]] && log "WARN: cgroup $mp/$LAB/$host not removed"
		fi
	done < <(cgroup_mounts)
	return 0
}

cgroup_remove_lab() {
	local mp
	while read -r mp; do
		[[ -d $mp/$LAB ]] && { rmdir "$mp/$LAB" 2>/dev/null || log "WARN: cgroup $mp/$LAB not removed"; }
	done < <(cgroup_mounts)
	return 0
}

# ---------------------------------------------------------------- one host
host_dir() { echo "$STATE/hosts/$1"; }

alive() { # pid exists and is no zombie (PID 1 here reaps orphans only now and then)
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

nspawn_pid() { # pid of the host's systemd-nspawn, if running
	local hd pid
	hd=$(host_dir "$1")
	[[ -f $hd/pid ]] || return 1
	pid=$(<"$hd/pid")
	alive "$pid" || return 1
	[[ $(<"/proc/$pid/comm") == systemd-nspawn ]] 2>/dev/null || return 1
	grep -q "/$LAB/$1\(/\|\$\)" "/proc/$pid/cgroup" 2>/dev/null || return 1
	echo "$pid"
}

host_init_pid() { # the host's systemd (PID 1 in its pid namespace)
	local p
	for p in $(cgroup_procs "$1"); do
		if awk '$1 == "NSpid:" { exit !(NF > 2 && $NF == 1) }' "/proc/$p/status" 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

mount_host() { # the host's disk: overlay of its upper dir over the base
	local hd
	hd=$(host_dir "$1")
	mountpoint -q "$hd/merged" && return 0
	[[ -n ${BASE:-} ]] || base_of_host "$1"
	mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$hd/upper,workdir=$hd/work" "$hd/merged"
}

# BASE for an existing host: the base rootfs its disk was made on (a host's upper dir only
# makes sense over that one). Recorded at creation in hosts/<name>/base.
base_of_host() {
	local hd
	hd=$(host_dir "$1")
	[[ -f $hd/base ]] || die "$1: no base recorded in $hd/base (recreate the lab: $0 up)"
	BASE=$(<"$hd/base")
	[[ -f $BASE/.kubeha-rootfs-ok ]] || die "$1: its base rootfs $BASE is gone (recreate the lab: $0 up)"
}

# A new host: its disk (overlay), identity, network and SSH setup in the upper layer.
create_host() {
	local name=$1 ip=$2 role=$3 hd m uid gid home user
	hd=$(host_dir "$name")
	mkdir -p "$hd"/{upper,work,merged,containerd}
	echo "$name $ip $role" >"$hd/meta"
	echo "$BASE" >"$hd/base"
	mount_host "$name"
	m=$hd/merged
	echo "$name" >"$m/etc/hostname"
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$m/etc/machine-id"
	echo >>"$m/etc/machine-id"
	ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$m/etc/ssh/ssh_host_ed25519_key"
	printf '%s,%s %s\n' "$name" "$ip" "$(cut -d' ' -f1-2 "$m/etc/ssh/ssh_host_ed25519_key.pub")" >"$hd/known_hosts"
	{
		printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\n'
		printf '# kubeha lab %s\n' "$LAB"
		host_table | while read -r n i _; do printf '%s\t%s\n' "$i" "$n"; done
	} >"$m/etc/hosts"
	cat >"$m/etc/systemd/network/10-host0.network" <<-EOF
		[Match]
		Name=host0

		[Network]
		Address=$ip/24
		LinkLocalAddressing=no
		IPv6AcceptRA=no

		# No default route in the lab (nothing outside may be reached): an on-link route for the
		# Service network lets the host's own ClusterIP traffic reach kube-proxy's DNAT (real sites
		# have a default route). Unanswered if nothing rewrites it: ARP on the lab bridge only.
		[Route]
		Destination=${LAB_SERVICE_CIDR:-10.254.0.0/16}
		Scope=link
	EOF
	for user in root kubeha; do
		home=$(awk -F: -v u="$user" '$1 == u { print $6 }' "$m/etc/passwd")
		uid=$(awk -F: -v u="$user" '$1 == u { print $3 }' "$m/etc/passwd")
		gid=$(awk -F: -v u="$user" '$1 == u { print $4 }' "$m/etc/passwd")
		install -d -m 700 -o "$uid" -g "$gid" "$m$home/.ssh"
		install -m 600 -o "$uid" -g "$gid" "$SSH_KEY.pub" "$m$home/.ssh/authorized_keys"
	done
}

# Boots an existing host on its disk: mount, then the launcher in its own session (and
# without the lock fds: a host would hold the lab lock for its life). Does not wait.
start_host() {
	local name=$1 hd
	hd=$(host_dir "$name")
	[[ -f $hd/meta ]] || die "$name: no such host in lab $LAB"
	host_running "$name" && die "$name is already running"
	mount_host "$name"
	rm -f "$hd/pid"
	setsid "$BASH" "$SELF" _launch "$name" </dev/null >>"$hd/console.log" 2>&1 8>&- 9>&- &
	echo $! >"$hd/launcher"
}

# Runs (as the `_launch` subcommand, in its own session and the host's cgroups) the host's
# systemd-nspawn, and again when the host reboots itself: with --keep-unit nspawn exits 133
# for a reboot and leaves the restart to its caller (systemd-nspawn@.service's
# RestartForceExitStatus=133). The disk stays mounted across the reboot.
launch_host() {
	local name=$1 hd rc
	hd=$(host_dir "$name")
	cgroup_enter "$name" "$$"
	echo "[kubeha-lab $(date +%T)] booting $name (machine $(machine_name "$name"))"
	while :; do
		systemd-nspawn --quiet --boot --register=no --keep-unit --console=passive \
			--link-journal=no --machine="$(machine_name "$name")" --directory="$hd/merged" \
			--network-bridge="$BRIDGE" --resolv-conf=off --timezone=off \
			--capability=all --system-call-filter=@keyring --bind=/dev/kmsg \
			--bind="$hd/containerd:/var/lib/containerd" &
		echo $! >"$hd/pid"
		rc=0
		wait $! || rc=$?
		((rc == 133)) || break
		echo "[kubeha-lab $(date +%T)] $name rebooted itself: booting it again"
	done
	echo "[kubeha-lab $(date +%T)] $name: systemd-nspawn exited ($rc)"
	exit "$rc"
}

launcher_pid() { # pid of the host's launcher (the `_launch` shell), if running
	local hd pid
	hd=$(host_dir "$1")
	[[ -f $hd/launcher ]] || return 1
	pid=$(<"$hd/launcher")
	alive "$pid" || return 1
	grep -q "/$LAB/$1\(/\|\$\)" "/proc/$pid/cgroup" 2>/dev/null || return 1
	echo "$pid"
}

# Running: nspawn is up, or its launcher is between two boots (or about to start nspawn).
host_running() { nspawn_pid "$1" >/dev/null || launcher_pid "$1" >/dev/null; }

# Stops a host and unmounts its disk; the host dir (disk, identity) stays.
#   clean: TERM nspawn (clean poweroff), wait, fall back to cgroup.kill.
#   kill:  a power cut: SIGKILL everything in the host's cgroup at once, no shutdown at all.
stop_host() {
	local name=$1 mode=${2:-clean} hd pid="" u deadline pids lpid p
	hd=$(host_dir "$name")
	u=$(unified_mount)/$LAB/$name
	lpid=$(launcher_pid "$name") || lpid=""
	if [[ $mode == kill ]]; then
		pid=$(nspawn_pid "$name") || pid=""
	elif pid=$(nspawn_pid "$name"); then
		kill -TERM "$pid" 2>/dev/null || true
	elif pid=$(host_init_pid "$name"); then
		# nspawn is gone (SIGKILLed?) but the host lives on: ask its systemd to power off.
		log "$name: systemd-nspawn gone, powering off the orphaned host (init pid $pid)"
		kill -s RTMIN+4 "$pid" 2>/dev/null || true
	fi
	if [[ -n $pid && $mode != kill ]]; then
		deadline=$((SECONDS + STOP_TIMEOUT))
		while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
		alive "$pid" && log "WARN: $name did not power off within ${STOP_TIMEOUT}s, killing its cgroup"
	fi
	pids=$(cgroup_procs "$name")
	if [[ -n $pids ]]; then
		if [[ -f $u/cgroup.kill ]]; then
			echo 1 >"$u/cgroup.kill"
		else
			# shellcheck disable=SC2086
			kill -KILL $pids 2>/dev/null || true
		fi
		deadline=$((SECONDS + 10))
		while [[ -n $(cgroup_procs "$name") ]] && ((SECONDS < deadline)); do sleep 0.1; done
		[[ -n $(cgroup_procs "$name") ]] && log "WARN: processes left in $u: $(cgroup_procs "$name" | tr '\n' ' ')"
	fi
	# The exited nspawn (and launcher) are zombies until PID 1 (not systemd here) reaps them,
	# which takes ~1-5 s: wait for that so that `ps` shows nothing of the host afterwards.
	for p in $pid $lpid; do
		deadline=$((SECONDS + 10))
		while [[ -d /proc/$p ]] && ! alive "$p" && ((SECONDS < deadline)); do sleep 0.1; done
	done
	cgroup_remove "$name"
	# /run is no tmpfs here, so nspawn leaves its lock file (named after the device and inode
	# of the mounted disk: a new mount gets a new name) and propagate dir behind, also after a
	# SIGKILL. Harmless for the next boot, but they would pile up.
	if mountpoint -q "$hd/merged"; then
		rm -f "/run/systemd/nspawn/locks/$(stat -c 'inode-%d:%i' "$hd/merged")"
	fi
	rmdir "/run/systemd/nspawn/propagate/$(machine_name "$name")" 2>/dev/null || true
	if mountpoint -q "$hd/merged"; then
		umount "$hd/merged" 2>/dev/null || { sleep 0.5; umount "$hd/merged"; } ||
			{ log "WARN: lazy unmount of $hd/merged"; umount -l "$hd/merged"; }
	fi
	mountpoint -q "$hd/merged" && die "$hd/merged still mounted"
	# A killed host's network namespace goes away asynchronously, and its host-side veth with it;
	# the next boot's nspawn fails with "File exists" while vb-<machine> is still there.
	local veth deadline
	veth=vb-$(machine_name "$name")
	veth=${veth:0:15}
	deadline=$((SECONDS + 10))
	while ip link show "$veth" >/dev/null 2>&1 && ((SECONDS < deadline)); do sleep 0.2; done
	if ip link show "$veth" >/dev/null 2>&1; then
		log "$name: removing its leftover veth $veth"
		ip link delete "$veth" 2>/dev/null || true
	fi
	rm -f "$hd/pid" "$hd/launcher"
}

# Stops a host for good: its disk and identity go too.
destroy_host() {
	local hd
	hd=$(host_dir "$1")
	stop_host "$1" clean
	rm -rf --one-file-system "$hd"
}

# ---------------------------------------------------------------- ssh
ssh_opts() {
	printf '%s\n' -i "$SSH_KEY" -o IdentitiesOnly=yes -o IdentityAgent=none \
		-o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR \
		-o KexAlgorithms=curve25519-sha256 -o ConnectTimeout="${1:-10}"
}

resolve_host() { # name or ip -> ip
	local n i
	while read -r n i _; do
		[[ $1 == "$n" || $1 == "$i" ]] && { echo "$i"; return 0; }
	done < <(existing_hosts)
	die "unknown lab host '$1' (lab $LAB: $(existing_hosts | cut -d' ' -f1 | tr '\n' ' '))"
}

host_name() { # name or ip -> name
	local n i
	while read -r n i _; do
		[[ $1 == "$n" || $1 == "$i" ]] && { echo "$n"; return 0; }
	done < <(existing_hosts)
	die "unknown lab host '$1' (lab $LAB: $(existing_hosts | cut -d' ' -f1 | tr '\n' ' '))"
}

wait_ssh() { # name ip deadline-in-seconds-since-epoch
	local name=$1 ip=$2 deadline=$3 opts
	mapfile -t opts < <(ssh_opts 2)
	until ssh "${opts[@]}" "root@$ip" true </dev/null 2>/dev/null; do
		host_running "$name" || { log "$name: systemd-nspawn exited"; return 1; }
		(($(date +%s) < deadline)) || { log "$name: no SSH after ${BOOT_TIMEOUT}s"; return 1; }
		sleep 0.2
	done
}

# Waits (in parallel) until every named host answers SSH; on failure prints their console
# log tails and dies (the hosts are left as they are, for inspection).
wait_hosts_ssh() {
	local name ip deadline pids=() failed=() p
	deadline=$(($(date +%s) + BOOT_TIMEOUT))
	for name in "$@"; do
		ip=$(resolve_host "$name")
		wait_ssh "$name" "$ip" "$deadline" &
		pids+=("$!:$name")
	done
	for p in "${pids[@]}"; do
		wait "${p%%:*}" || failed+=("${p#*:}")
	done
	if ((${#failed[@]})); then
		for name in "${failed[@]}"; do
			log "$name: console log tail:"
			tail -n 15 "$(host_dir "$name")/console.log" >&2 || true
		done
		die "hosts not ready: ${failed[*]} (left as they are for inspection; $0 down removes the lab)"
	fi
}

# ---------------------------------------------------------------- commands
lab_lock() {
	exec 9>"$STATE/.lock"
	flock -w 300 9 || die "lab $LAB is locked by another command ($STATE/.lock)"
}

ensure_bridge() {
	ip link show "$BRIDGE" >/dev/null 2>&1 && return 0
	ip link add "$BRIDGE" type bridge
	ip addr add "$GATEWAY/24" dev "$BRIDGE"
	if [[ -f /proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6 ]]; then
		echo 1 >"/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6"
	fi
	ip link set "$BRIDGE" up
}

cmd_down() {
	need_root
	local t0 name n=0 pids=() rc=0 p
	t0=$(now)
	mkdir -p "$STATE"
	lab_lock
	rm -f "$INVENTORY"
	while read -r name _; do
		destroy_host "$name" &
		pids+=($!)
		n=$((n + 1))
	done < <(existing_hosts)
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	# Leftovers of a half-failed up: host dirs without meta, cgroups without a host dir.
	if [[ -d $STATE/hosts ]]; then
		for p in "$STATE"/hosts/*/; do
			[[ -d $p ]] || continue
			destroy_host "$(basename "$p")" &
			wait $! || rc=1
		done
		rmdir "$STATE/hosts" 2>/dev/null || true
	fi
	while read -r p; do
		for name in "$p/$LAB"/*/; do
			[[ -d $name ]] || continue
			destroy_host "$(basename "$name")" &
			wait $! || rc=1
		done
	done < <(cgroup_mounts)
	cgroup_remove_lab
	if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
	rmdir /run/systemd/nspawn/locks /run/systemd/nspawn/propagate /run/systemd/nspawn 2>/dev/null || true
	rm -f "$KNOWN_HOSTS"
	phase "down" "$(since "$t0")" "$n hosts"
	return $rc
}

cmd_up() {
	need_root
	local t0 t1 t_all name ip role pids=() p first names=()
	t_all=$(now)
	host_table >/dev/null
	ensure_machine_packages
	mkdir -p "$STATE"
	if [[ -d $STATE/hosts || -n $(ip link show "$BRIDGE" 2>/dev/null) ]]; then
		log "cleaning up the previous lab first"
		cmd_down
	fi
	ensure_rootfs
	lab_lock
	raise_machine_limits
	[[ -f $SSH_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C "kubeha-lab-$LAB" -f "$SSH_KEY"

	t0=$(now)
	ensure_bridge
	mkdir -p "$STATE/hosts"
	while read -r name ip role; do
		create_host "$name" "$ip" "$role" &
		pids+=($!)
		names+=("$name")
	done < <(host_table)
	for p in "${pids[@]}"; do wait "$p" || die "preparing a host failed"; done
	host_table | while read -r name _; do cat "$(host_dir "$name")/known_hosts"; done >"$KNOWN_HOSTS"
	phase "prepare" "$(since "$t0")" "overlays, keys, config"

	t1=$(now)
	for name in "${names[@]}"; do start_host "$name"; done
	wait_hosts_ssh "${names[@]}"
	phase "boot+ssh-ready" "$(since "$t1")" "${#names[@]} hosts"

	{
		printf '{\n  "lab": "%s",\n  "bridge": "%s",\n  "gateway": "%s",\n  "vip": "%s",\n' \
			"$LAB" "$BRIDGE" "$GATEWAY" "$VIP"
		printf '  "sshKey": "%s",\n  "knownHosts": "%s",\n  "users": ["root", "kubeha"],\n  "hosts": [\n' \
			"$SSH_KEY" "$KNOWN_HOSTS"
		first=1
		while read -r name ip role; do
			((first)) || printf ',\n'
			first=0
			printf '    {"name": "%s", "ip": "%s", "role": "%s"}' "$name" "$ip" "$role"
		done < <(host_table)
		printf '\n  ]\n}\n'
	} >"$INVENTORY.tmp"
	mv "$INVENTORY.tmp" "$INVENTORY"
	phase "up total" "$(since "$t_all")"
	echo "$INVENTORY"
}

# Host names from arguments (names or IPs); all hosts of the lab when there are none.
host_args() {
	local h
	if (($# == 0)); then
		existing_hosts | cut -d' ' -f1
		return 0
	fi
	for h in "$@"; do host_name "$h"; done
}

cmd_stop() {
	need_root
	(($# >= 1)) || die "usage: $0 stop <host…>"
	local t0 names name pids=() rc=0 p
	mapfile -t names < <(host_args "$@")
	t0=$(now)
	lab_lock
	for name in "${names[@]}"; do
		stop_host "$name" clean &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	phase "stop" "$(since "$t0")" "${names[*]}"
	return $rc
}

cmd_start() {
	need_root
	(($# >= 1)) || die "usage: $0 start <host…>"
	local t0 names name
	mapfile -t names < <(host_args "$@")
	t0=$(now)
	lab_lock
	raise_machine_limits
	ensure_bridge
	for name in "${names[@]}"; do start_host "$name"; done
	wait_hosts_ssh "${names[@]}"
	phase "start" "$(since "$t0")" "${names[*]} ssh-ready"
}

# A clean reboot from inside: SIGRTMIN+5 makes the host's systemd start reboot.target (what
# `systemctl reboot` does); nspawn exits 133 and the launcher boots the host again.
cmd_reboot() {
	need_root
	(($# == 1)) || die "usage: $0 reboot <host>"
	local t0 t1 name ip init deadline
	name=$(host_name "$1")
	ip=$(resolve_host "$name")
	lab_lock
	nspawn_pid "$name" >/dev/null || die "$name is not running (boot it: $0 start $name)"
	init=$(host_init_pid "$name") || die "$name: cannot find its init process"
	t0=$(now)
	kill -s RTMIN+5 "$init"
	deadline=$((SECONDS + STOP_TIMEOUT + 10))
	while alive "$init" && ((SECONDS < deadline)); do sleep 0.1; done
	alive "$init" && die "$name did not go down for the reboot within $((STOP_TIMEOUT + 10))s"
	t1=$(now)
	phase "reboot down" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$name shut down"
	wait_hosts_ssh "$name"
	phase "reboot" "$(since "$t0")" "$name ssh-ready again"
}

# A power cut: every process of the hosts SIGKILLed at once (no shutdown, no sync), the disks
# unmounted; then the hosts boot again on what their disks hold.
cmd_power_cycle() {
	need_root
	local t0 t1 names name pids=() rc=0 p
	mapfile -t names < <(host_args "$@")
	((${#names[@]})) || die "lab $LAB has no hosts"
	t0=$(now)
	lab_lock
	for name in "${names[@]}"; do
		stop_host "$name" kill &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	((rc == 0)) || die "cutting the power failed"
	phase "power off" "$(since "$t0")" "${#names[@]} hosts killed"
	t1=$(now)
	raise_machine_limits
	ensure_bridge
	for name in "${names[@]}"; do start_host "$name"; done
	wait_hosts_ssh "${names[@]}"
	phase "power on" "$(since "$t1")" "${#names[@]} hosts ssh-ready"
	phase "power-cycle" "$(since "$t0")" "${names[*]}"
}

cmd_status() {
	local name ip role pid running sshok state out opts rc n=0
	mapfile -t opts < <(ssh_opts 3)
	if [[ -z $(existing_hosts) ]]; then
		echo "lab $LAB: no hosts"
		return 0
	fi
	printf '%-14s %-13s %-7s %-8s %-6s %s\n' HOST IP ROLE RUNNING SSH SYSTEMD
	while read -r name ip role; do
		(
			running=no sshok=no state=-
			if nspawn_pid "$name" >/dev/null; then
				running=yes
			elif launcher_pid "$name" >/dev/null; then
				running=booting # between two boots of a reboot
			elif [[ -n $(cgroup_procs "$name") ]]; then
				running=orphan # nspawn gone, the host's processes still there
			fi
			if [[ $running != no ]]; then
				rc=0
				out=$(ssh "${opts[@]}" "root@$ip" systemctl is-system-running </dev/null 2>/dev/null) || rc=$?
				if ((rc != 255)) && [[ -n $out ]]; then sshok=yes state=$out; fi
			fi
			printf '%-14s %-13s %-7s %-8s %-6s %s\n' "$name" "$ip" "$role" "$running" "$sshok" "$state" \
				>"$STATE/.status.$name"
		) &
	done < <(existing_hosts)
	wait
	while read -r name _; do
		cat "$STATE/.status.$name"
		rm -f "$STATE/.status.$name"
		n=$((n + 1))
	done < <(existing_hosts | sort -t' ' -k2,2V)
}

cmd_ssh() {
	(($# >= 1)) || die "usage: $0 ssh [user@]<host> [cmd…]"
	local ip opts user=root host=$1
	if [[ $host == *@* ]]; then user=${host%%@*} host=${host#*@}; fi
	ip=$(resolve_host "$host")
	shift
	mapfile -t opts < <(ssh_opts 10)
	exec ssh "${opts[@]}" "$user@$ip" "$@"
}

cmd_ssh_config() {
	local name ip _r
	while read -r name ip _r; do
		cat <<-EOF
			Host $name $ip
			  HostName $ip
			  User root
			  IdentityFile $SSH_KEY
			  IdentitiesOnly yes
			  UserKnownHostsFile $KNOWN_HOSTS
			  StrictHostKeyChecking yes
		EOF
	done < <(existing_hosts | sort -t' ' -k2,2V)
}

main() {
	local cmd=${1:-}
	(($#)) && shift
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	ssh) cmd_ssh "$@" ;;
	ssh-config) cmd_ssh_config "$@" ;;
	stop) cmd_stop "$@" ;;
	start) cmd_start "$@" ;;
	reboot) cmd_reboot "$@" ;;
	power-cycle) cmd_power_cycle "$@" ;;
	_launch) launch_host "$@" ;;
	*)
		sed -n '2,14p' "$SELF" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
