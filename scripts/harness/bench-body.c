
/*
 * How long does pricing a request from its body take?  JSON bodies of
 * 1 KiB, 1 MiB and 10 MiB (a base64 "image" beside "n" and "size"),
 * through the module's streaming extraction, next to YAJL's document tree
 * (yajl_tree_parse) as the alternative a simpler module would use.
 */

#include "harness.h"

#include <malloc.h>
#include <yajl/yajl_tree.h>


static const char  *matrix =
    "version: 1\n"
    "routes:\n"
    "  - name: gen\n"
    "    match: { path: /v1/gen }\n"
    "    params:\n"
    "      n: { from: json, type: integer, default: 1, min: 1, max: 10 }\n"
    "      size: { from: json, default: 1024x1024,"
                 " values: [1024x1024, 1792x1024] }\n"
    "    cost: { by: size, table: { 1024x1024: 4, 1792x1024: 8 },"
                 " times: [n] }\n";


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


int
main(int argc, char **argv)
{
    u_char                   *body, *p;
    size_t                    sizes[] = { 1024, 1024 * 1024, 10 * 1024 * 1024 };
    size_t                    len, i, k, runs;
    double                    t0, stream, tree;
    size_t                    base, mem_stream, mem_tree;
    yajl_val                  doc;
    credit_harness_t          h;
    ngx_pool_t               *pool;
    ngx_http_credit_route_t  *rt;
    char                      err[128];

    credit_harness_init();

    rt = credit_harness_route((u_char *) matrix, strlen(matrix), &pool);
    if (rt == NULL) {
        fprintf(stderr, "matrix refused\n");
        return 1;
    }

    printf("%-8s %14s %8s %10s   %14s %8s %10s\n", "body", "streaming",
           "MB/s", "memory", "yajl tree", "MB/s", "memory");

    for (i = 0; i < 3; i++) {
        len = sizes[i];
        body = malloc(len + 1);

        p = body;
        p = ngx_cpymem(p, "{\"n\":3,\"image\":\"", 16);
        while ((size_t) (p - body) < len - 24) {
            *p++ = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                   [(p - body) % 64];
        }
        p = ngx_cpymem(p, "\",\"size\":\"1792x1024\"}", 21);
        len = p - body;
        body[len] = '\0';

        runs = (len < 65536) ? 20000 : (len < 4 * 1024 * 1024 ? 200 : 20);

        t0 = now();
        for (k = 0; k < runs; k++) {
            credit_harness_request(&h, "application/json", NULL, 0, body, len);
            if (credit_harness_price(&h, rt) != NGX_OK || h.rec.cost != 24) {
                fprintf(stderr, "wrong price\n");
                return 1;
            }
            credit_harness_free(&h);
        }
        stream = (now() - t0) / runs;

        /* memory held at the end of one extraction */
        base = mallinfo2().uordblks;
        credit_harness_request(&h, "application/json", NULL, 0, body, len);
        (void) credit_harness_price(&h, rt);
        mem_stream = mallinfo2().uordblks - base;
        credit_harness_free(&h);

        t0 = now();
        for (k = 0; k < runs; k++) {
            doc = yajl_tree_parse((char *) body, err, sizeof(err));
            if (doc == NULL) {
                fprintf(stderr, "tree: %s\n", err);
                return 1;
            }
            yajl_tree_free(doc);
        }
        tree = (now() - t0) / runs;

        base = mallinfo2().uordblks;
        doc = yajl_tree_parse((char *) body, err, sizeof(err));
        mem_tree = mallinfo2().uordblks - base;
        yajl_tree_free(doc);

        printf("%-8s %11.3f ms %8.0f %7zu KB   %11.3f ms %8.0f %7zu KB\n",
               i == 0 ? "1 KiB" : (i == 1 ? "1 MiB" : "10 MiB"),
               stream * 1e3, len / stream / 1e6, mem_stream / 1024,
               tree * 1e3, len / tree / 1e6, mem_tree / 1024);

        free(body);
    }

    (void) argc;
    (void) argv;

    return 0;
}
