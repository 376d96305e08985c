
/*
 * ngx_http_credit_module: content handlers.  credit_admin reads and sets
 * balances (GET ACCOUNT, PUT ACCOUNT/plan, POST ACCOUNT/pack);
 * credit_balance answers the caller's own balance.  The memcached work
 * goes through the same per-key queues as a charge.
 */


#include "ngx_http_credit_module.h"


typedef struct {
    ngx_http_request_t          *request;
    ngx_str_t                    account;
    ngx_str_t                    key;
    ngx_uint_t                   type;

    /* why the request was refused, when parsing refused it */
    ngx_uint_t                   status;
    char                        *error;
    char                        *detail;
} ngx_http_credit_admin_ctx_t;


static ngx_int_t ngx_http_credit_admin_parse(ngx_http_request_t *r,
    ngx_http_credit_admin_ctx_t *ctx);
static ngx_int_t ngx_http_credit_admin_refuse(
    ngx_http_credit_admin_ctx_t *ctx, ngx_uint_t status, char *error,
    char *detail);
static void ngx_http_credit_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_credit_admin_start(ngx_http_request_t *r,
    ngx_http_credit_admin_ctx_t *ctx, int64_t amount);
static void ngx_http_credit_admin_done(ngx_http_credit_op_t *op);


ngx_int_t
ngx_http_credit_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_credit_rec_t        *rec;
    ngx_http_credit_admin_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_credit_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    rc = ngx_http_credit_admin_parse(r, ctx);

    if (rc == NGX_DECLINED) {
        return ngx_http_credit_admin_error(r, ctx->status, ctx->error,
                                           ctx->detail);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    if (ctx->type == NGX_HTTP_CREDIT_OP_GET) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_credit_admin_start(r, ctx, 0);
    }

    rec = ngx_http_credit_get_rec(r, 1);
    if (rec == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rec->admin = ctx;
    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_credit_admin_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


ngx_int_t
ngx_http_credit_balance_handler(ngx_http_request_t *r)
{
    ngx_http_credit_admin_ctx_t  *ctx;
    ngx_http_credit_loc_conf_t   *clcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_credit_admin_error(r, NGX_HTTP_NOT_ALLOWED,
                                           "method_not_allowed",
                                           "use GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_credit_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->type = NGX_HTTP_CREDIT_OP_GET;

    if (ngx_http_complex_value(r, clcf->account, &ctx->account) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->account.len == 0) {
        return ngx_http_credit_admin_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "missing_account",
                                           "the request names no account");
    }

    return ngx_http_credit_admin_start(r, ctx, 0);
}


/*
 * ACCOUNT, ACCOUNT/plan or ACCOUNT/pack after the location prefix.
 * NGX_OK: parsed; NGX_DECLINED: refused, and ctx says why (the handler
 * answers); else an HTTP status.
 */

static ngx_int_t
ngx_http_credit_admin_parse(ngx_http_request_t *r,
    ngx_http_credit_admin_ctx_t *ctx)
{
    u_char                    *p, *last, *slash, *dst, *src;
    ngx_str_t                  action;
    ngx_http_core_loc_conf_t  *core;

    core = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->unparsed_uri.data;
    last = p + r->unparsed_uri.len;

    slash = ngx_strlchr(p, last, '?');
    if (slash) {
        last = slash;
    }

    if ((size_t) (last - p) < core->name.len
        || ngx_strncmp(p, core->name.data, core->name.len) != 0)
    {
        return ngx_http_credit_admin_refuse(ctx, NGX_HTTP_NOT_FOUND,
                                            "not_found",
                                            "use the location prefix "
                                            "verbatim");
    }

    p += core->name.len;

    if (p < last && *p == '/') {
        p++;
    }

    slash = ngx_strlchr(p, last, '/');

    if (slash) {
        action.data = slash + 1;
        action.len = last - slash - 1;
        last = slash;

    } else {
        ngx_str_null(&action);
    }

    if (p == last) {
        return ngx_http_credit_admin_refuse(ctx, NGX_HTTP_NOT_FOUND,
                                            "not_found",
                                            "the path names no account");
    }

    dst = ngx_pnalloc(r->pool, last - p);
    if (dst == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->account.data = dst;
    src = p;
    ngx_unescape_uri(&dst, &src, last - p, 0);
    ctx->account.len = dst - ctx->account.data;

    if (action.len == 0 && slash == NULL) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_http_credit_admin_refuse(ctx, NGX_HTTP_NOT_ALLOWED,
                                                "method_not_allowed",
                                                "use GET on an account");
        }

        ctx->type = NGX_HTTP_CREDIT_OP_GET;
        return NGX_OK;
    }

    if (action.len == 4 && ngx_strncmp(action.data, "plan", 4) == 0) {
        if (r->method != NGX_HTTP_PUT) {
            return ngx_http_credit_admin_refuse(ctx, NGX_HTTP_NOT_ALLOWED,
                                                "method_not_allowed",
                                                "use PUT to set plan "
                                                "credits");
        }

        ctx->type = NGX_HTTP_CREDIT_OP_SET_PLAN;
        return NGX_OK;
    }

    if (action.len == 4 && ngx_strncmp(action.data, "pack", 4) == 0) {
        if (r->method != NGX_HTTP_POST) {
            return ngx_http_credit_admin_refuse(ctx, NGX_HTTP_NOT_ALLOWED,
                                                "method_not_allowed",
                                                "use POST to add pack "
                                                "credits");
        }

        ctx->type = NGX_HTTP_CREDIT_OP_ADD_PACK;
        return NGX_OK;
    }

    return ngx_http_credit_admin_refuse(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                        "expected ACCOUNT, ACCOUNT/plan or "
                                        "ACCOUNT/pack");
}


/* parsing refused the request: the handler answers with this */

static ngx_int_t
ngx_http_credit_admin_refuse(ngx_http_credit_admin_ctx_t *ctx,
    ngx_uint_t status, char *error, char *detail)
{
    ctx->status = status;
    ctx->error = error;
    ctx->detail = detail;

    return NGX_DECLINED;
}


static void
ngx_http_credit_admin_body(ngx_http_request_t *r)
{
    u_char                       *p, *last;
    size_t                        len, size;
    int64_t                       n;
    ngx_int_t                     rc;
    ngx_chain_t                  *cl;
    ngx_http_credit_admin_ctx_t  *ctx;
    u_char                        buf[64];

    ctx = ngx_http_credit_get_rec(r, 0)->admin;

    if (r->request_body == NULL || r->request_body->temp_file) {
        goto invalid;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size = (size_t) ngx_buf_size(cl->buf);

        if (size == 0) {
            continue;               /* an empty one may have no pos */
        }

        if (len + size > sizeof(buf)) {
            goto invalid;
        }

        ngx_memcpy(buf + len, cl->buf->pos, size);
        len += size;
    }

    p = buf;
    last = buf + len;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    while (last > p
           && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'
               || last[-1] == '\n'))
    {
        last--;
    }

    if (last - p > 16) {
        goto invalid;
    }

    n = ngx_atoof(p, last - p);

    if (n == NGX_ERROR || n > NGX_HTTP_CREDIT_MAX_COST) {
        goto invalid;
    }

    rc = ngx_http_credit_admin_start(r, ctx, n);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    /* else the completion finalizes, giving back the body's reference */

    return;

invalid:

    rc = ngx_http_credit_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_amount",
                                     "the body must be a non-negative "
                                     "integer");
    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_credit_admin_start(ngx_http_request_t *r,
    ngx_http_credit_admin_ctx_t *ctx, int64_t amount)
{
    ngx_http_credit_op_t         *op;
    ngx_http_credit_loc_conf_t   *clcf;
    ngx_http_credit_main_conf_t  *cmcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_module);
    cmcf = ngx_http_get_module_main_conf(r, ngx_http_credit_module);

    if (ngx_http_credit_make_key(r->pool, &clcf->key_prefix, &ctx->account,
                                 &ctx->key)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    op = ngx_http_credit_op_create(r->connection->log, ctx->type, &ctx->key);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->type == NGX_HTTP_CREDIT_OP_ADD_PACK) {
        op->pack_amount = amount;

    } else {
        op->plan_amount = amount;
    }

    op->done = ngx_http_credit_admin_done;
    op->data = ctx;

    if (ngx_http_credit_op_submit(cmcf, op) != NGX_OK) {
        ngx_http_credit_op_free(op);
        return ngx_http_credit_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "metering_unavailable",
                                           "memcached is unreachable");
    }

    if (ctx->type == NGX_HTTP_CREDIT_OP_GET) {
        r->main->count++;
    }

    r->main->blocked++;

    return NGX_DONE;
}


static void
ngx_http_credit_admin_done(ngx_http_credit_op_t *op)
{
    u_char                       *p, *body;
    size_t                        len;
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_credit_admin_ctx_t  *ctx;

    ctx = op->data;
    r = ctx->request;
    c = r->connection;

    r->main->blocked--;

    ngx_http_set_log_request(c->log, r);

    if (c->error) {
        ngx_http_credit_op_free(op);
        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (op->rc != NGX_HTTP_CREDIT_RC_OK) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "credit: balance operation on \"%V\" failed: %s",
                      &ctx->account, op->err[0] ? op->err : "error");

        if (op->rc == NGX_HTTP_CREDIT_RC_SHORT) {
            rc = ngx_http_credit_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid_amount",
                                             "the balance would be too "
                                             "large");

        } else {
            rc = ngx_http_credit_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "metering_unavailable",
                                             op->malformed
                                             ? "the account's memcached item "
                                               "is not a balance"
                                             : op->unmoved
                                             ? "the account's balance is not "
                                               "on its new memcached server "
                                               "yet (previous=)"
                                             : "memcached is unreachable");
        }

        goto done;
    }

    if (ctx->type != NGX_HTTP_CREDIT_OP_GET) {
        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "credit: balance of \"%V\" is now plan %L, pack %L",
                      &ctx->account, op->plan, op->pack);
    }

    len = sizeof("{\"account\":\"\",\"plan\":,\"pack\":,\"total\":}\n")
          + ctx->account.len
          + ngx_escape_json(NULL, ctx->account.data, ctx->account.len)
          + 3 * NGX_INT64_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    p = ngx_cpymem(body, "{\"account\":\"", sizeof("{\"account\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, ctx->account.data, ctx->account.len);
    p = ngx_sprintf(p, "\",\"plan\":%L,\"pack\":%L,\"total\":%L}\n",
                    op->plan, op->pack, op->plan + op->pack);

    rc = ngx_http_credit_send_json(r, NGX_HTTP_OK, body, p - body);

done:

    ngx_http_credit_op_free(op);
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the JSON error of the content handlers (credit_stats's too) */

ngx_int_t
ngx_http_credit_admin_error(ngx_http_request_t *r, ngx_uint_t status,
    char *error, char *detail)
{
    u_char  *body, *p;
    size_t   len;

    len = sizeof("{\"error\":\"\",\"detail\":\"\"}\n") + ngx_strlen(error)
          + ngx_strlen(detail);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":\"%s\",\"detail\":\"%s\"}\n",
                    error, detail);

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_credit_retry_after(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_credit_send_json(r, status, body, p - body);
}
