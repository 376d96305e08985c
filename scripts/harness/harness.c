
/*
 * The harness: a log, a cycle and a pool good enough for the module's
 * configuration-time matrix loader and its request-time parsers.
 */

#include "harness.h"


/* what nginx.c would define; never called here */
ngx_module_t  ngx_core_module;

char **
ngx_set_environment(ngx_cycle_t *cycle, ngx_uint_t *last)
{
    return NULL;
}


ngx_pid_t
ngx_exec_new_binary(ngx_cycle_t *cycle, char *const *argv)
{
    return NGX_INVALID_PID;
}


ngx_cpuset_t *
ngx_get_cpu_affinity(ngx_uint_t n)
{
    return NULL;
}

static ngx_log_t    credit_log;
static ngx_open_file_t  credit_log_file;
static ngx_cycle_t  credit_cycle;

/*
 * Allocation failures (FUZZ_OOM=1, with scripts/harness/oom.c linked):
 * while the module's code runs, allocations are counted and the
 * credit_oom_fail_at-th one fails.
 */
static ngx_uint_t   credit_oom;
static ngx_uint_t   credit_oom_armed;
static ngx_uint_t   credit_oom_fail_at;
static ngx_uint_t   credit_oom_count;


void
credit_harness_init(void)
{
    ngx_time_init();

    credit_log_file.fd = ngx_stderr;
    credit_log.file = &credit_log_file;
    credit_log.log_level = getenv("CREDIT_HARNESS_LOG") ? NGX_LOG_DEBUG : 0;

    ngx_pagesize = getpagesize();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;

    credit_cycle.log = &credit_log;
    credit_cycle.pool = ngx_create_pool(16384, &credit_log);
    ngx_str_set(&credit_cycle.conf_prefix, "/");
    ngx_str_set(&credit_cycle.prefix, "/");
    ngx_cycle = &credit_cycle;

    ngx_regex_init();

    credit_oom = getenv("FUZZ_OOM") && getenv("FUZZ_OOM")[0] == '1';
}


/* called by the allocators that scripts/harness/oom.c wraps */

ngx_uint_t
credit_harness_alloc_fails(void)
{
    return credit_oom_armed && ++credit_oom_count == credit_oom_fail_at;
}


/* whether the allocation that was to fail in this run did */

ngx_uint_t
credit_harness_oom_failed(void)
{
    return credit_oom_fail_at && credit_oom_count >= credit_oom_fail_at;
}


void
credit_harness_oom_arm(ngx_uint_t on)
{
    credit_oom_armed = on;
}


/*
 * Runs one input; with FUZZ_OOM=1 runs it again once for each allocation
 * that its first run made, that allocation failing.
 */

void
credit_harness_oom_each(void (*run)(const uint8_t *data, size_t size),
    const uint8_t *data, size_t size)
{
    ngx_uint_t  n, allocs;

    credit_oom_fail_at = 0;
    credit_oom_count = 0;

    run(data, size);

    allocs = credit_oom_count;

    for (n = 1; credit_oom && n <= allocs; n++) {
        credit_oom_fail_at = n;
        credit_oom_count = 0;

        run(data, size);
    }

    credit_oom_fail_at = 0;
}


/*
 * Loads a matrix text with the module's loader; NULL if it is refused.
 * *pool holds everything the matrix uses; destroy it when done.
 */

ngx_http_credit_route_t *
credit_harness_route(const u_char *yaml, size_t len, ngx_pool_t **pool_out)
{
    FILE                      *fp;
    char                       name[] = "/tmp/credit-harness-XXXXXX";
    int                        fd;
    ngx_str_t                  file;
    ngx_conf_t                 cf;
    ngx_pool_t                *pool;
    ngx_array_t                args;
    ngx_http_conf_ctx_t       *ctx;
    ngx_http_credit_matrix_t  *m;

    fd = mkstemp(name);
    if (fd == -1) {
        return NULL;
    }

    fp = fdopen(fd, "w");
    fwrite(yaml, 1, len, fp);
    fclose(fp);

    pool = ngx_create_pool(16384, &credit_log);
    *pool_out = pool;

    ngx_memzero(&cf, sizeof(ngx_conf_t));
    ngx_array_init(&args, pool, 4, sizeof(ngx_str_t));
    cf.args = &args;
    cf.pool = pool;
    cf.temp_pool = pool;
    cf.cycle = &credit_cycle;
    cf.log = &credit_log;

    /*
     * "from: var" registers variables in the http core main conf: the
     * only module of this context, at index 0 (no nginx here has set its
     * index, which is still NGX_MODULE_UNSET_INDEX)
     */

    ngx_http_core_module.ctx_index = 0;

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_conf_ctx_t));
    ctx->main_conf = ngx_pcalloc(pool, sizeof(void *));
    ctx->main_conf[ngx_http_core_module.ctx_index] =
        ngx_pcalloc(pool, sizeof(ngx_http_core_main_conf_t));
    cf.ctx = ctx;

    file.data = (u_char *) name;
    file.len = ngx_strlen(name);
    m = NULL;

    credit_harness_oom_arm(1);

    if (ngx_http_credit_matrix_load(&cf, &file, &m) != NGX_CONF_OK) {
        m = NULL;

    } else if (credit_harness_oom_failed()) {
        fprintf(stderr, "harness: an allocation failed, yet the matrix "
                "was loaded\n");
        abort();
    }

    credit_harness_oom_arm(0);

    unlink(name);

    if (m == NULL || m->routes.nelts == 0) {
        return NULL;
    }

    return m->routes.elts;
}


void
credit_harness_request(credit_harness_t *h, const char *content_type,
    u_char *args, size_t args_len, u_char *body, size_t len)
{
    ngx_memzero(h, sizeof(credit_harness_t));

    h->pool = ngx_create_pool(4096, &credit_log);

    h->connection.log = &credit_log;
    h->request.connection = &h->connection;
    h->request.pool = h->pool;
    h->request.main = &h->request;

    ngx_list_init(&h->request.headers_in.headers, h->pool, 4,
                  sizeof(ngx_table_elt_t));

    if (content_type) {
        h->content_type.value.data = (u_char *) content_type;
        h->content_type.value.len = ngx_strlen(content_type);
        h->request.headers_in.content_type = &h->content_type;
    }

    h->buf.pos = body;
    h->buf.last = body + len;
    h->buf.memory = 1;
    h->chain.buf = &h->buf;
    h->body.bufs = &h->chain;
    h->request.request_body = &h->body;
    h->request.headers_in.content_length_n = len;

    h->request.args.data = args;
    h->request.args.len = args_len;

    h->conf.body_limit = (size_t) -1;
    h->rec.conf = &h->conf;
}


void
credit_harness_free(credit_harness_t *h)
{
    ngx_destroy_pool(h->pool);
}


/* body parameters, then the price: NGX_OK, NGX_DECLINED (400) */

ngx_int_t
credit_harness_price(credit_harness_t *h, ngx_http_credit_route_t *rt)
{
    ngx_int_t  rc;

    credit_harness_oom_arm(1);

    rc = NGX_OK;

    if (rt->needs_body) {
        rc = ngx_http_credit_body_params(&h->request, rt, &h->rec);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_credit_price(&h->request, rt, NULL, &h->rec);
    }

    credit_harness_oom_arm(0);

    return rc;
}
