#!/usr/bin/env bash
# CI's sanitizer step (issue 15): the native code built with AddressSanitizer and
# UndefinedBehaviorSanitizer (CMake's FUSELM_SANITIZE=ON, CPU backend and the CUDA emulator),
# then run over
#   1. the emulator's own tests (fuselm_emu_tests: every CUDA kernel against its CPU reference),
#   2. the op parity tests (test/ops/, every CPU level and the emulator) in Node, and
#   3. the fuzz corpus (test/hostile/fuzz.test.ts: hostile files through load and generate),
# with the sanitized addon loaded by Node. Any report ends the process that found it with a
# nonzero status (halt_on_error; UBSan is built with -fno-sanitize-recover), and so fails CI.
# Node itself leaks by design at exit, so leak checking is off for the Node runs (it stays on
# for fuselm_emu_tests, our own program).
#
#   scripts/sanitize-check.sh            # build-asan/ is configured and built when needed
#   FUSELM_SANITIZE_FUZZ_CASES=n ...     # fuzz cases per kind (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
stage() { echo "sanitize-check: $1 ($((SECONDS - t0)) s)"; }

stage "building build-asan/ (FUSELM_SANITIZE=ON, CPU only)"
mkdir -p build-asan
npx cmake-js compile --out build-asan --CDFUSELM_CUDA=OFF --CDFUSELM_SANITIZE=ON >build-asan/build.log 2>&1 || {
  tail -50 build-asan/build.log
  exit 1
}

libasan=$(g++ -print-file-name=libasan.so)
libubsan=$(g++ -print-file-name=libubsan.so)
[[ -e $libasan && -e $libubsan ]] || { echo "sanitize-check: libasan/libubsan not found (g++ -print-file-name)"; exit 1; }

# detect_stack_use_after_return: off, the fibers of the emulator switch stacks underneath it
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:exitcode=23:detect_stack_use_after_return=0:strict_string_checks=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=23

stage "fuselm_emu_tests under ASan/UBSan"
ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=1 build-asan/Release/fuselm_emu_tests

stage "test/ops and the fuzz corpus in Node with the sanitized addon"
# The children the fuzz test spawns inherit this environment: they load the same addon under
# the same sanitizers. AddressSanitizer's shadow is terabytes of reserved address space, which
# the fuzz test's 2 GiB RLIMIT_DATA would refuse: the limit is for the plain build.
LD_PRELOAD="$libasan $libubsan" ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 FUSELM_ADDON=build-asan/Release/fuselm.node \
  FUSELM_FUZZ_CASES=${FUSELM_SANITIZE_FUZZ_CASES:-20} FUSELM_FUZZ_MEMORY_LIMIT=0 \
  npx mocha 'test/ops/*.test.ts' test/hostile/fuzz.test.ts

stage "clean: no sanitizer report"
