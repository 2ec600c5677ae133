/* fuzz_frame.c: libFuzzer entry over the TCP frame decoder (fuzz_frame.h);
 * the same step the corpus replay (test_frame_corpus.c) runs.  Built only
 * with clang (tests/unit/common/client/meson.build). */
#include "fuzz_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_frame_one(data, size);
    return 0;
}
