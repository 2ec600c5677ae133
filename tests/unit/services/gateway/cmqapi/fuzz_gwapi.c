/* fuzz_gwapi.c: libFuzzer entry point over fuzz_one.h (clang only; built on
 * demand, not by default):
 *   CC=clang meson setup build-fuzz -Dsanitize=true
 *   ninja -C build-fuzz tests/unit/services/gateway/cmqapi/fuzz_gwapi
 *   ./build-fuzz/tests/unit/services/gateway/cmqapi/fuzz_gwapi tests/unit/services/gateway/cmqapi/corpus
 * New crashers go into corpus/ (named bad-*, unsigned-* or any-*) so that
 * test_corpus.c replays them in every test run. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_one.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_one(data, size);
    return 0;
}
