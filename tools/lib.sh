# Shared by tools/demo and tools/check: Debian packages, build, install. Source it from bash.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
export STREAMREC_BUILD="${STREAMREC_BUILD:-$REPO/build}"
# Debian's python3 is the one with python3-confluent-kafka, python3-psycopg2 and python3-avro.
PYTHON=/usr/bin/python3

STREAMREC_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates procps util-linux
  postgresql-15 postgresql-server-dev-15
  librdkafka-dev libavro-dev libcurl4-openssl-dev libsimdjson-dev libmicrohttpd-dev libgmp-dev
  libgtest-dev googletest libbenchmark-dev
  kcat python3 python3-psycopg2 python3-confluent-kafka python3-avro
  prometheus-postgres-exporter
)

step() { printf '\n==> %s\n' "$*"; }

# Installs whatever of STREAMREC_PACKAGES is missing (needs root, as on a fresh Debian 12).
ensure_packages() {
  local missing=() pkg
  for pkg in "${STREAMREC_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  step "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages and not root; run as root or: apt-get install ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configures, builds and installs the extension into pg_config's directories, with the tools.
# (The unit tests are built once, by build_sanitized_units.)
build_and_install() {
  local werror="${1:-OFF}"
  step "building (CMake, -Werror=$werror) in $STREAMREC_BUILD"
  cmake -S "$REPO" -B "$STREAMREC_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_CONFIG="$PG_CONFIG" \
        -DSTREAMREC_WERROR="$werror" >/dev/null
  cmake --build "$STREAMREC_BUILD" -j"$(nproc)" --target pg_streamrec streamrec-sandbox streamrec-datagen
  step "installing pg_streamrec into $("$PG_CONFIG" --pkglibdir)"
  cmake --install "$STREAMREC_BUILD" >/dev/null
}

# The unit tests again, under AddressSanitizer and UndefinedBehaviorSanitizer.
build_sanitized_units() {
  step "building unit tests with ASan + UBSan in $REPO/build-sanitize"
  cmake -S "$REPO" -B "$REPO/build-sanitize" -DCMAKE_BUILD_TYPE=Debug -DPG_CONFIG="$PG_CONFIG" \
        -DSTREAMREC_SANITIZE=ON -DSTREAMREC_BUILD_EXTENSION=OFF -DSTREAMREC_WERROR=ON >/dev/null
  cmake --build "$REPO/build-sanitize" -j"$(nproc)" --target streamrec_unit_tests
}
