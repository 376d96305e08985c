
/*
 * libFuzzer target: the cost matrix loader (libyaml + the module's schema
 * validation and compilation) on arbitrary bytes.  A matrix is either
 * refused with a message or compiled; nothing else may happen.
 */

#include "harness.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_pool_t               *pool;
    static ngx_uint_t         init;
    ngx_http_credit_route_t  *rt;

    if (!init) {
        credit_harness_init();
        init = 1;
    }

    pool = NULL;
    rt = credit_harness_route(data, size, &pool);

    (void) rt;

    if (pool) {
        ngx_destroy_pool(pool);
    }

    return 0;
}
