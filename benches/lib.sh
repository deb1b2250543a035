# Shared by the bench scripts (sourced, not run): logging, clean-up of every
# process and temp dir on exit, loopback ports and the warden binary.
# A script may define `cleanup_extra` to stop daemons it started another way.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
	printf '[bench] error: %s\n' "$*" >&2
	exit 1
}

TMP=""
PIDS=() # processes started directly by the script

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	set +e
	if declare -F cleanup_extra >/dev/null; then
		cleanup_extra
	fi
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if [[ -n $TMP && -d $TMP ]]; then
		if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
			log "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

IS_ROOT=0
[[ $(id -u) == 0 ]] && IS_ROOT=1

USED_PORTS=" "
# A random loopback port nobody listens on (and that this script has not handed out).
free_port() {
	local port listening
	listening=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | tr '\n' ' ')
	for _ in $(seq 200); do
		port=$((20000 + RANDOM % 40000))
		if [[ " $listening " != *" $port "* && $USED_PORTS != *" $port "* ]]; then
			USED_PORTS+="$port "
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

# Waits up to 60 s until 127.0.0.1:$1 accepts TCP connections; $2 = pid that must stay alive.
wait_port() {
	local port=$1 pid=${2:-} what=$3
	for _ in $(seq 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	log "$what did not listen on $port within 60s"
	return 1
}

# Sets WARDEN_BIN: $WARDEN_BIN, or the release build (built when missing).
find_warden_bin() {
	if [[ -z ${WARDEN_BIN:-} ]]; then
		WARDEN_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/warden
		if [[ ! -x $WARDEN_BIN ]]; then
			log "building $WARDEN_BIN (cargo build --release -p warden)"
			(cd "$ROOT" && cargo build --release -p warden) || die "cargo build failed"
		fi
	fi
	[[ -x $WARDEN_BIN ]] || die "warden binary not found: $WARDEN_BIN"
}
