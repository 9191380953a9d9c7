#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine that has only the Rust toolchain:
# installs the real peers the tests run against, then checks formatting, lints, docs, every
# test of the workspace, and a short run of every fuzz target. A missing peer is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# The peers the tests run against, and what building libssh2 (ssh2 crate) needs. perl (for a
# test's relay) and mount (for a test's small tmpfs) are part of every Debian system.
peers=(rdiff rsync rclone sshd ssh pkg-config)
missing=()
for p in "${peers[@]}"; do
  command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || missing+=("$p")
done
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing test peers and build dependencies (missing: ${missing[*]})"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rdiff rsync rclone openssh-server openssh-client libssl-dev pkg-config >/dev/null
fi
export PATH="$PATH:/usr/sbin"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

echo "==> cargo test"
log=$(mktemp)
cargo test --workspace 2>&1 | tee "$log"
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
rm -f "$log"

echo "==> fuzz targets (short bounded runs)"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked -q
fi
if [ -d fuzz/fuzz_targets ]; then
  for t in fuzz/fuzz_targets/*.rs; do
    name=$(basename "$t" .rs)
    echo "--> fuzz $name"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$name" -- -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 2>&1 | tail -n 3
  done
fi
echo "==> all checks passed"
echo "tests: ${passed} passed, ${failed} failed"
