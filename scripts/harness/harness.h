
/*
 * A test harness around the module's own code: the real pricing and body
 * parsing functions, linked with nginx's objects (all but nginx.o), driven
 * without a server.  Used by the body-extraction benchmark and the fuzz
 * targets.
 */

#ifndef _CREDIT_HARNESS_H_INCLUDED_
#define _CREDIT_HARNESS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_credit_module.h"


typedef struct {
    ngx_pool_t                   *pool;
    ngx_connection_t              connection;
    ngx_http_request_t            request;
    ngx_http_request_body_t       body;
    ngx_chain_t                   chain;
    ngx_buf_t                     buf;
    ngx_table_elt_t               content_type;
    ngx_http_credit_rec_t         rec;
    ngx_http_credit_loc_conf_t    conf;
} credit_harness_t;


void credit_harness_init(void);
ngx_http_credit_route_t *credit_harness_route(const u_char *yaml, size_t len,
    ngx_pool_t **pool);
void credit_harness_request(credit_harness_t *h, const char *content_type,
    u_char *args, size_t args_len, u_char *body, size_t len);
void credit_harness_free(credit_harness_t *h);
ngx_int_t credit_harness_price(credit_harness_t *h,
    ngx_http_credit_route_t *rt);
ngx_uint_t credit_harness_alloc_fails(void);
ngx_uint_t credit_harness_oom_failed(void);
void credit_harness_oom_arm(ngx_uint_t on);
void credit_harness_oom_each(void (*run)(const uint8_t *data, size_t size),
    const uint8_t *data, size_t size);


#endif /* _CREDIT_HARNESS_H_INCLUDED_ */
