
/*
 * libFuzzer target: request parameters.  One fixed matrix with query, JSON
 * (top-level, dotted, array index) and form parameters; the input is
 * split into a content-type choice, a query string and a body, which go
 * through the module's parameter extraction and pricing, and the query
 * string's bytes through the plain-path check (with FUZZ_OOM=1
 * once more for each allocation they make, that allocation failing: the
 * answer must then be an error, NGX_ERROR).
 */

#include "harness.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void credit_fuzz_params(const uint8_t *data, size_t size);


static const char  *matrix =
    "version: 1\n"
    "routes:\n"
    "  - name: json\n"
    "    match: { path: /j }\n"
    "    params:\n"
    "      n: { from: json, type: integer, default: 1, min: 1, max: 10 }\n"
    "      q: { from: json, default: standard, values: [standard, hd] }\n"
    "      s: { from: json, key: options.size, default: m, values: [s, m] }\n"
    "      f: { from: json, key: images.0.fast, type: boolean,"
                 " default: false }\n"
    "      r: { from: query, default: 2k, values: [1k, 2k, 4k] }\n"
    "    cost: { by: [q, s], table: { \"standard,s\": 1, \"standard,m\": 2,"
                 " \"hd,s\": 3, \"hd,m\": 4 }, times: [n], add: { f: 5 } }\n"
    "  - name: form\n"
    "    match: { path: /f }\n"
    "    params:\n"
    "      n: { from: form, type: integer, default: 1, max: 1000 }\n"
    "      k: { from: form, default: a, values: [a, b] }\n"
    "      w: { from: query, type: integer, default: 5 }\n"
    "    cost: { by: w, tiers: [ { upto: 10, cost: 1 }, { cost: 2 } ],"
                 " times: [n] }\n";


static const char  *types[] = {
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data; boundary=\"a b\"",
    "text/plain",
    "multipart/form-data; x=\"boundary=A\"; boundary=XyZ",
    "multipart/form-data; boundary=A; boundary=XyZ",
    NULL
};


static ngx_pool_t               *pool;
static ngx_http_credit_route_t  *routes;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (routes == NULL) {
        credit_harness_init();
        routes = credit_harness_route((u_char *) matrix, strlen(matrix),
                                      &pool);
        if (routes == NULL) {
            fprintf(stderr, "fuzz-params: the matrix is refused\n");
            abort();
        }
    }

    credit_harness_oom_each(credit_fuzz_params, data, size);

    return 0;
}


static void
credit_fuzz_params(const uint8_t *data, size_t size)
{
    u_char            *sep, *copy;
    size_t             args_len;
    ngx_int_t          rc;
    ngx_uint_t         t;
    credit_harness_t   h;

    if (size < 1) {
        return;
    }

    /* the first byte: the content type (modulo 7), the route (0x80) */

    t = data[0] % (sizeof(types) / sizeof(types[0]) - 1);

    /* a copy, so that reading past the input is caught by ASan */

    copy = malloc(size - 1 + 1);
    memcpy(copy, data + 1, size - 1);

    sep = memchr(copy, '\n', size - 1);
    args_len = sep ? (size_t) (sep - copy) : 0;

    credit_harness_request(&h, types[t], copy, args_len,
                           sep ? sep + 1 : copy,
                           sep ? size - 1 - args_len - 1 : size - 1);

    rc = credit_harness_price(&h, &routes[data[0] & 0x80 ? 1 : 0]);

    /* the query string's bytes as a path, for the plain-path check */

    h.request.unparsed_uri.data = copy;
    h.request.unparsed_uri.len = args_len;
    (void) ngx_http_credit_plain_path(&h.request);

    /*
     * A failed allocation is the server's error (500), never the
     * client's (a 400 whose reason would be made of whatever was there)
     */

    if (credit_harness_oom_failed() && rc != NGX_ERROR) {
        fprintf(stderr, "fuzz-params: an allocation failed, yet the "
                "price returned %d\n", (int) rc);
        abort();
    }

    credit_harness_free(&h);
    free(copy);
}
