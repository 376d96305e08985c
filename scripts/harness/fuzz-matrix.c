
/*
 * libFuzzer target: the cost matrix loader (libyaml + the module's schema
 * validation and compilation) on arbitrary bytes.  A matrix is either
 * refused with a message or compiled; nothing else may happen, also
 * when an allocation fails (FUZZ_OOM=1).
 */

#include "harness.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void credit_fuzz_matrix(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ngx_uint_t  init;

    if (!init) {
        credit_harness_init();
        init = 1;
    }

    credit_harness_oom_each(credit_fuzz_matrix, data, size);

    return 0;
}


static void
credit_fuzz_matrix(const uint8_t *data, size_t size)
{
    ngx_pool_t               *pool;
    ngx_http_credit_route_t  *rt;

    pool = NULL;
    rt = credit_harness_route(data, size, &pool);

    (void) rt;

    if (pool) {
        ngx_destroy_pool(pool);
    }
}
