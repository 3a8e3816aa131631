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
  libprotobuf-dev
  libgtest-dev googletest libbenchmark-dev clang-format clang-tidy clang libclang-rt-dev
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

# The libFuzzer targets of tests/fuzz (one per decoder, and the sink encoders), built with clang
# under ASan + UBSan in $REPO/build-fuzz. tests/run_all.py runs them (tests/fuzz/run.py).
build_fuzz_targets() {
  step "building the libFuzzer targets (clang, ASan + UBSan) in $REPO/build-fuzz"
  cmake -S "$REPO" -B "$REPO/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_CONFIG="$PG_CONFIG" \
        -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSTREAMREC_FUZZ=ON \
        -DSTREAMREC_BUILD_EXTENSION=OFF -DSTREAMREC_WERROR=ON >/dev/null
  cmake --build "$REPO/build-fuzz" -j"$(nproc)" --target streamrec_fuzz_targets
}

# Runs every fuzz target for a bounded time (about a minute in all; arguments go to
# tests/fuzz/run.py, e.g. --seconds 600 --nice for a long run). Fails on any crash.
run_fuzz_targets() {
  step "fuzzing each decoder for a bounded time (tests/fuzz/run.py $*)"
  "$PYTHON" "$REPO/tests/fuzz/run.py" "$@"
}

# The C++ folders that clang-format checks (every C++ file of the project).
STREAMREC_CXX_FOLDERS=(core pg extension worker tests/unit tests/fuzz bench tools)

# clang-format with the repo's .clang-format must leave every C++ file unchanged.
check_format() {
  step "checking the C++ format (clang-format --dry-run --Werror)"
  local files=()
  mapfile -t files < <(cd "$REPO" && find "${STREAMREC_CXX_FOLDERS[@]}" -type f \( -name '*.cpp' -o -name '*.h' \) | sort)
  (cd "$REPO" && clang-format --dry-run --Werror "${files[@]}")
  echo "clang-format: ${#files[@]} files as formatted"
}

# clang-tidy with the repo's .clang-tidy over the extension and core sources, using the CMake
# build's compile_commands.json (build_and_install first). Any finding fails.
run_clang_tidy() {
  step "clang-tidy (.clang-tidy) over core/ pg/ extension/ worker/"
  local log="$STREAMREC_BUILD/clang-tidy.log" start=$SECONDS status=0
  if command -v run-clang-tidy >/dev/null; then
    run-clang-tidy -quiet -p "$STREAMREC_BUILD" -j "$(nproc)" "$REPO/(core|pg|extension|worker)/.*\.cpp$" >"$log" 2>&1 ||
      status=$?
  else
    (cd "$REPO" && find core pg extension worker -name '*.cpp' -print0 |
      xargs -0 -n 4 -P "$(nproc)" clang-tidy -quiet -p "$STREAMREC_BUILD") >"$log" 2>&1 || status=$?
  fi
  if [ "$status" -ne 0 ]; then
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '(warning|error): ' | sort -u >&2 || cat "$log" >&2
    echo "clang-tidy: findings above (full log: $log)" >&2
    return 1
  fi
  echo "clang-tidy: no findings ($((SECONDS - start)) s)"
}

# The DBA's build: Makefile.pgxs with -Werror, in a scratch copy of the tree (PGXS builds in
# place), so it neither needs nor leaves objects in the working tree.
check_pgxs_build() {
  step "building with PGXS (make -f Makefile.pgxs STREAMREC_WERROR=1) in a scratch copy"
  local scratch start=$SECONDS status=0
  scratch="$(mktemp -d)"
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$scratch"
  make -s -C "$scratch" -f Makefile.pgxs -j"$(nproc)" STREAMREC_WERROR=1 PG_CONFIG="$PG_CONFIG" >"$scratch.log" 2>&1 ||
    status=$?
  if [ "$status" -ne 0 ]; then
    cat "$scratch.log" >&2
    echo "PGXS build failed (log: $scratch.log)" >&2
    rm -rf "$scratch"
    return 1
  fi
  rm -rf "$scratch" "$scratch.log"
  echo "PGXS build: ok ($((SECONDS - start)) s)"
}
