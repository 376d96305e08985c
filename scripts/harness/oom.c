
/*
 * Allocation failures for the fuzz targets: linked with -Wl,--wrap= for
 * each allocator below (scripts/fuzz), so that the calls to them from
 * other objects (the module's, and nginx's arrays, lists, strings and
 * buffers) come here.  The harness decides which one fails
 * (credit_harness_oom_each() in harness.c).  Allocations inside
 * ngx_palloc.c itself (ngx_pcalloc's ngx_palloc) are not wrapped, so
 * each call is counted once.
 */

#include "harness.h"
#include <sanitizer/common_interface_defs.h>


static ngx_uint_t credit_oom_fails(void);

void *__real_ngx_palloc(ngx_pool_t *pool, size_t size);
void *__real_ngx_pnalloc(ngx_pool_t *pool, size_t size);
void *__real_ngx_pcalloc(ngx_pool_t *pool, size_t size);
void *__real_ngx_pmemalign(ngx_pool_t *pool, size_t size, size_t alignment);
void *__real_ngx_alloc(size_t size, ngx_log_t *log);
void *__real_ngx_calloc(size_t size, ngx_log_t *log);
void *__real_ngx_memalign(size_t alignment, size_t size, ngx_log_t *log);

void *__wrap_ngx_palloc(ngx_pool_t *pool, size_t size);
void *__wrap_ngx_pnalloc(ngx_pool_t *pool, size_t size);
void *__wrap_ngx_pcalloc(ngx_pool_t *pool, size_t size);
void *__wrap_ngx_pmemalign(ngx_pool_t *pool, size_t size, size_t alignment);
void *__wrap_ngx_alloc(size_t size, ngx_log_t *log);
void *__wrap_ngx_calloc(size_t size, ngx_log_t *log);
void *__wrap_ngx_memalign(size_t alignment, size_t size, ngx_log_t *log);


/* FUZZ_OOM_TRACE=1: where the allocation that fails was made */

static ngx_uint_t
credit_oom_fails(void)
{
    if (!credit_harness_alloc_fails()) {
        return 0;
    }

    if (getenv("FUZZ_OOM_TRACE")) {
        fprintf(stderr, "fuzz: this allocation fails:\n");
        __sanitizer_print_stack_trace();
    }

    return 1;
}


void *
__wrap_ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return credit_oom_fails() ? NULL
                                        : __real_ngx_palloc(pool, size);
}


void *
__wrap_ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return credit_oom_fails() ? NULL
                                        : __real_ngx_pnalloc(pool, size);
}


void *
__wrap_ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    return credit_oom_fails() ? NULL
                                        : __real_ngx_pcalloc(pool, size);
}


void *
__wrap_ngx_pmemalign(ngx_pool_t *pool, size_t size, size_t alignment)
{
    return credit_oom_fails()
           ? NULL : __real_ngx_pmemalign(pool, size, alignment);
}


void *
__wrap_ngx_alloc(size_t size, ngx_log_t *log)
{
    return credit_oom_fails() ? NULL : __real_ngx_alloc(size, log);
}


void *
__wrap_ngx_calloc(size_t size, ngx_log_t *log)
{
    return credit_oom_fails() ? NULL : __real_ngx_calloc(size, log);
}


void *
__wrap_ngx_memalign(size_t alignment, size_t size, ngx_log_t *log)
{
    return credit_oom_fails()
           ? NULL : __real_ngx_memalign(alignment, size, log);
}
