
/*
 * ngx_http_credit_module: parameters read from the request body.
 *
 * The body has been read by nginx (in memory or in a temp file) and is
 * kept for proxy_pass, byte for byte.  It is looked at through one
 * contiguous view: a single memory buffer as it is, a temp file mapped
 * with mmap(), anything else copied once.  JSON is parsed in one
 * streaming YAJL pass that builds no document tree: per nesting level a
 * bitmask tells which declared key paths can still match, so only the
 * wanted scalars are kept.  urlencoded and multipart bodies are scanned in
 * place.  Time is linear in the body size; memory does not grow with it.
 */


#include "ngx_http_credit_module.h"


#include <sys/mman.h>
#include <yajl/yajl_parse.h>


#define NGX_HTTP_CREDIT_AMBIGUOUS     ((u_char *) -1)
#define NGX_HTTP_CREDIT_AMBIGUOUS_MP                                        \
    "the multipart body has a boundary or a line break that parsers read "  \
    "apart"


typedef uint64_t  ngx_http_credit_mask_t;


typedef struct {
    ngx_http_credit_mask_t       mask;        /* paths matching so far */
    ngx_http_credit_mask_t       seen;        /* map: the keys' paths */
    ngx_int_t                    index;       /* array: current element */
    ngx_uint_t                   array;
} ngx_http_credit_frame_t;


typedef struct {
    ngx_pool_t                  *pool;
    ngx_http_credit_param_t    **params;      /* the json params, by bit */
    ngx_uint_t                  *slots;       /* their index in the route */
    ngx_uint_t                   nparams;
    ngx_str_t                   *values;
    ngx_uint_t                   depth;
    ngx_http_credit_frame_t      frames[NGX_HTTP_CREDIT_MAX_JSON_DEPTH + 1];
    ngx_int_t                    bad;         /* param index, or -1 */
    const char                  *why;
    ngx_uint_t                   nomem;       /* an allocation failed */
} ngx_http_credit_json_t;


typedef struct {
    ngx_fd_t                     fd;
    void                        *addr;
    size_t                       len;
} ngx_http_credit_map_t;


static ngx_int_t ngx_http_credit_body_view(ngx_http_request_t *r,
    ngx_str_t *body);
static void ngx_http_credit_unmap(void *data);
static ngx_int_t ngx_http_credit_json(ngx_http_request_t *r,
    ngx_http_credit_route_t *rt, ngx_http_credit_rec_t *rec, ngx_str_t *body);
static ngx_int_t ngx_http_credit_urlencoded(ngx_http_request_t *r,
    ngx_http_credit_route_t *rt, ngx_http_credit_rec_t *rec, ngx_str_t *body);
static ngx_int_t ngx_http_credit_multipart(ngx_http_request_t *r,
    ngx_http_credit_route_t *rt, ngx_http_credit_rec_t *rec, ngx_str_t *body,
    ngx_str_t *boundary);
static u_char *ngx_http_credit_delimiter(u_char *start, u_char *p,
    u_char *last, u_char *b, size_t len);
static u_char *ngx_http_credit_skip_space(u_char *p, u_char *last);
static ngx_int_t ngx_http_credit_header_param(ngx_pool_t *pool, u_char **pp,
    u_char *last, ngx_str_t *attr, ngx_str_t *value);
static ngx_int_t ngx_http_credit_disposition(ngx_pool_t *pool, u_char *p,
    u_char *last, ngx_str_t *name, ngx_uint_t *file);
static ngx_int_t ngx_http_credit_body_error(ngx_http_request_t *r,
    ngx_http_credit_route_t *rt, ngx_http_credit_rec_t *rec, ngx_uint_t from,
    ngx_int_t index, const char *detail);
static char *ngx_http_credit_body_headers(ngx_http_request_t *r);
static ngx_uint_t ngx_http_credit_content_type(ngx_http_request_t *r,
    char *type, size_t len);
static ngx_int_t ngx_http_credit_boundary(ngx_http_request_t *r,
    ngx_str_t *boundary);
static u_char *ngx_http_credit_find(u_char *p, u_char *last, u_char *s,
    size_t len);

static ngx_http_credit_mask_t ngx_http_credit_json_step(
    ngx_http_credit_json_t *j, ngx_http_credit_mask_t parent,
    const u_char *key, size_t len, ngx_int_t index);
static int ngx_http_credit_json_value(ngx_http_credit_json_t *j,
    const u_char *data, size_t len, ngx_uint_t string);
static int ngx_http_credit_json_open(ngx_http_credit_json_t *j,
    ngx_uint_t array);
static ngx_http_credit_mask_t ngx_http_credit_json_here(
    ngx_http_credit_json_t *j);
static int ngx_http_credit_json_null(void *ctx);
static int ngx_http_credit_json_boolean(void *ctx, int value);
static int ngx_http_credit_json_number(void *ctx, const char *s, size_t len);
static int ngx_http_credit_json_string(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_http_credit_json_start_map(void *ctx);
static int ngx_http_credit_json_map_key(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_http_credit_json_end(void *ctx);
static int ngx_http_credit_json_start_array(void *ctx);


static yajl_callbacks  ngx_http_credit_json_callbacks = {
    ngx_http_credit_json_null,
    ngx_http_credit_json_boolean,
    NULL,
    NULL,
    ngx_http_credit_json_number,
    ngx_http_credit_json_string,
    ngx_http_credit_json_start_map,
    ngx_http_credit_json_map_key,
    ngx_http_credit_json_end,
    ngx_http_credit_json_start_array,
    ngx_http_credit_json_end
};


/*
 * Fills rec->body_values for the route's json and form parameters.
 * NGX_DECLINED: the body is unusable, rec->param and rec->detail say why.
 */

ngx_int_t
ngx_http_credit_body_params(ngx_http_request_t *r,
    ngx_http_credit_route_t *rt, ngx_http_credit_rec_t *rec)
{
    char                     *why;
    ngx_int_t                 rc;
    ngx_str_t                 body, boundary;
    ngx_uint_t                i, json, form;
    ngx_http_credit_param_t  *p;

    rec->body_values = ngx_pcalloc(r->pool,
                                   rt->params.nelts * sizeof(ngx_str_t));
    if (rec->body_values == NULL) {
        return NGX_ERROR;
    }

    p = rt->params.elts;
    json = 0;
    form = 0;

    for (i = 0; i < rt->params.nelts; i++) {
        json += (p[i].from == NGX_HTTP_CREDIT_FROM_JSON);
        form += (p[i].from == NGX_HTTP_CREDIT_FROM_FORM);
    }

    rc = ngx_http_credit_body_view(r, &body);
    if (rc != NGX_OK) {
        return rc;
    }

    /* no body at all: every body parameter is absent */

    if (body.len == 0) {
        return NGX_OK;
    }

    if (body.len > rec->conf->body_limit) {
        rec->http_status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        return ngx_http_credit_body_error(r, rt, rec,
                                          json ? NGX_HTTP_CREDIT_FROM_JSON
                                               : NGX_HTTP_CREDIT_FROM_FORM,
                                          -1, "the body is larger than "
                                          "credit_body_limit");
    }

    why = ngx_http_credit_body_headers(r);

    if (why) {
        return ngx_http_credit_body_error(r, rt, rec,
                                          json ? NGX_HTTP_CREDIT_FROM_JSON
                                               : NGX_HTTP_CREDIT_FROM_FORM,
                                          -1, why);
    }

    if (json) {
        if (!ngx_http_credit_content_type(r, "application/json",
                                          sizeof("application/json") - 1)
            && !ngx_http_credit_content_type(r, "+json", 0))
        {
            return ngx_http_credit_body_error(r, rt, rec,
                                              NGX_HTTP_CREDIT_FROM_JSON, -1,
                                              "needs a JSON body "
                                              "(Content-Type: "
                                              "application/json)");
        }

        rc = ngx_http_credit_json(r, rt, rec, &body);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (form) {
        if (ngx_http_credit_content_type(r,
                                  "application/x-www-form-urlencoded",
                                  sizeof("application/x-www-form-urlencoded")
                                  - 1))
        {
            return ngx_http_credit_urlencoded(r, rt, rec, &body);
        }

        if (ngx_http_credit_content_type(r, "multipart/form-data",
                                         sizeof("multipart/form-data") - 1))
        {
            rc = ngx_http_credit_boundary(r, &boundary);

            if (rc == NGX_DECLINED) {
                return ngx_http_credit_body_error(r, rt, rec,
                                                  NGX_HTTP_CREDIT_FROM_FORM,
                                                  -1, "the multipart body "
                                                  "has no boundary, or more "
                                                  "than one");
            }

            if (rc != NGX_OK) {
                return NGX_ERROR;
            }

            return ngx_http_credit_multipart(r, rt, rec, &body, &boundary);
        }

        return ngx_http_credit_body_error(r, rt, rec,
                                          NGX_HTTP_CREDIT_FROM_FORM, -1,
                                          "needs a form body (Content-Type: "
                                          "application/x-www-form-urlencoded"
                                          " or multipart/form-data)");
    }

    return NGX_OK;
}


/* the whole body as one piece of memory, without copying when possible */

static ngx_int_t
ngx_http_credit_body_view(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                 *p;
    off_t                   size;
    ssize_t                 n;
    ngx_buf_t              *b;
    ngx_chain_t            *cl;
    ngx_pool_cleanup_t     *cln;
    ngx_http_credit_map_t  *map;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;
    b = cl->buf;

    if (cl->next == NULL && !b->in_file) {
        body->data = b->pos;
        body->len = b->last - b->pos;
        return NGX_OK;
    }

    if (cl->next == NULL && b->in_file && b->file_last > b->file_pos) {

        /* a temp file: map it, the page cache is the buffer */

        cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_credit_map_t));
        if (cln == NULL) {
            return NGX_ERROR;
        }

        map = cln->data;
        map->len = (size_t) b->file_last;
        map->addr = mmap(NULL, map->len, PROT_READ, MAP_PRIVATE, b->file->fd,
                         0);

        if (map->addr == MAP_FAILED) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                          "credit: mmap(\"%V\") failed", &b->file->name);
            return NGX_ERROR;
        }

        cln->handler = ngx_http_credit_unmap;

        body->data = (u_char *) map->addr + b->file_pos;
        body->len = (size_t) (b->file_last - b->file_pos);

        return NGX_OK;
    }

    /* a chain of pieces: copy them once */

    size = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    p = ngx_pnalloc(r->pool, size + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            if (b->last > b->pos) {     /* an empty one may have no pos */
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                          b->file_pos);
        if (n != b->file_last - b->file_pos) {
            return NGX_ERROR;
        }

        p += n;
    }

    body->len = p - body->data;

    return NGX_OK;
}


static void
ngx_http_credit_unmap(void *data)
{
    ngx_http_credit_map_t  *map = data;

    munmap(map->addr, map->len);
}


/* rec->param names the first body parameter (of kind "from") */

static ngx_int_t
ngx_http_credit_body_error(ngx_http_request_t *r, ngx_http_credit_route_t *rt,
    ngx_http_credit_rec_t *rec, ngx_uint_t from, ngx_int_t index,
    const char *detail)
{
    ngx_uint_t                i;
    ngx_http_credit_param_t  *p;

    p = rt->params.elts;

    if (index < 0) {
        for (i = 0; i < rt->params.nelts; i++) {
            if (p[i].from == from) {
                index = i;
                break;
            }
        }
    }

    rec->param = p[index].name;
    rec->detail.data = (u_char *) detail;
    rec->detail.len = ngx_strlen(detail);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "credit: body parameter \"%V\": %s", &rec->param, detail);

    return NGX_DECLINED;
}


/*
 * The headers that say how the body reads: NULL, or why it cannot be
 * priced.  Under two Content-Types a body read as a form under the first
 * could be JSON to a backend that takes the last; a compressed body reads
 * as a form with no parameter in it, while a backend that inflates it
 * sees them all.
 */

static char *
ngx_http_credit_body_headers(ngx_http_request_t *r)
{
    ngx_uint_t        i, types;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;
    types = 0;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Content-Type") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Type",
                               sizeof("Content-Type") - 1) == 0
            && ++types > 1)
        {
            return "the request has more than one Content-Type header";
        }

        if (h[i].key.len == sizeof("Content-Encoding") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Encoding",
                               sizeof("Content-Encoding") - 1) == 0
            && !(h[i].value.len == sizeof("identity") - 1
                 && ngx_strncasecmp(h[i].value.data, (u_char *) "identity",
                                    sizeof("identity") - 1) == 0))
        {
            return "a body with a Content-Encoding cannot be priced";
        }
    }

    return NULL;
}


/*
 * Content-Type is "type" (len > 0: the media type, case-insensitive,
 * parameters allowed) or ends in "type" (len == 0: a suffix like +json).
 */

static ngx_uint_t
ngx_http_credit_content_type(ngx_http_request_t *r, char *type, size_t len)
{
    u_char     *p, *last;
    size_t      tlen;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    last = ngx_strlchr(ct->data, ct->data + ct->len, ';');
    if (last == NULL) {
        last = ct->data + ct->len;
    }

    while (last > ct->data && last[-1] == ' ') {
        last--;
    }

    p = ct->data;

    if (len) {
        return (size_t) (last - p) == len
               && ngx_strncasecmp(p, (u_char *) type, len) == 0;
    }

    tlen = ngx_strlen(type);

    return (size_t) (last - p) > tlen
           && ngx_strncasecmp(last - tlen, (u_char *) type, tlen) == 0;
}


/* JSON ---------------------------------------------------------------- */

static ngx_int_t
ngx_http_credit_json(ngx_http_request_t *r, ngx_http_credit_route_t *rt,
    ngx_http_credit_rec_t *rec, ngx_str_t *body)
{
    u_char                   *err;
    ngx_uint_t                i, n;
    yajl_handle               h;
    yajl_status               st;
    ngx_http_credit_json_t   *j;
    ngx_http_credit_param_t  *p;

    j = ngx_pcalloc(r->pool, sizeof(ngx_http_credit_json_t));
    if (j == NULL) {
        return NGX_ERROR;
    }

    j->params = ngx_palloc(r->pool, rt->body_params
                                    * sizeof(ngx_http_credit_param_t *));
    j->slots = ngx_palloc(r->pool, rt->body_params * sizeof(ngx_uint_t));
    if (j->params == NULL || j->slots == NULL) {
        return NGX_ERROR;
    }

    p = rt->params.elts;
    n = 0;

    for (i = 0; i < rt->params.nelts; i++) {
        if (p[i].from == NGX_HTTP_CREDIT_FROM_JSON) {
            j->params[n] = &p[i];
            j->slots[n] = i;
            n++;
        }
    }

    j->pool = r->pool;
    j->nparams = n;
    j->values = rec->body_values;
    j->bad = -1;

    /* before the top-level value every path is possible */
    j->frames[0].mask = (n == 64) ? ~(ngx_http_credit_mask_t) 0
                                  : (((ngx_http_credit_mask_t) 1 << n) - 1);
    j->frames[0].index = -1;

    h = yajl_alloc(&ngx_http_credit_json_callbacks, NULL, j);
    if (h == NULL) {
        return NGX_ERROR;
    }

    st = yajl_parse(h, body->data, body->len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    if (st == yajl_status_ok) {
        yajl_free(h);
        return NGX_OK;
    }

    if (j->nomem) {
        yajl_free(h);
        return NGX_ERROR;
    }

    if (j->bad >= 0) {
        yajl_free(h);
        return ngx_http_credit_body_error(r, rt, rec, 0, j->slots[j->bad],
                                          j->why);
    }

    err = yajl_get_error(h, 0, NULL, 0);
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "credit: invalid JSON body: %s", err);
    yajl_free_error(h, err);
    yajl_free(h);

    return ngx_http_credit_body_error(r, rt, rec, NGX_HTTP_CREDIT_FROM_JSON,
                                      -1, "the body is not valid JSON");
}


/* the paths of "parent" whose step at the current depth is key / index */

static ngx_http_credit_mask_t
ngx_http_credit_json_step(ngx_http_credit_json_t *j,
    ngx_http_credit_mask_t parent, const u_char *key, size_t len,
    ngx_int_t index)
{
    ngx_uint_t                  i, d;
    ngx_http_credit_mask_t      mask;
    ngx_http_credit_segment_t  *seg;

    mask = 0;
    d = j->depth - 1;

    for (i = 0; parent; i++, parent >>= 1) {
        if (!(parent & 1) || j->params[i]->path->nelts <= d) {
            continue;
        }

        seg = (ngx_http_credit_segment_t *) j->params[i]->path->elts + d;

        if (key ? (seg->name.len == len
                   && ngx_strncmp(seg->name.data, key, len) == 0)
                : seg->index == index)
        {
            mask |= (ngx_http_credit_mask_t) 1 << i;
        }
    }

    return mask;
}


/* the paths a value starting here completes or continues */

static ngx_http_credit_mask_t
ngx_http_credit_json_here(ngx_http_credit_json_t *j)
{
    ngx_http_credit_frame_t  *f;

    f = &j->frames[j->depth];

    if (j->depth && f->array) {
        f->index++;
        f->mask = ngx_http_credit_json_step(j, j->frames[j->depth - 1].mask,
                                            NULL, 0, f->index);
    }

    return f->mask;
}


/*
 * A JSON string is no boolean: "false" is false to a typed reader and
 * true to one that tests truthiness (JavaScript's if, Python's if), so a
 * boolean parameter takes true, false, 0, 1 or null, never a string.
 */

static int
ngx_http_credit_json_value(ngx_http_credit_json_t *j, const u_char *data,
    size_t len, ngx_uint_t string)
{
    ngx_uint_t               i;
    ngx_str_t               *v;
    ngx_http_credit_mask_t   mask;

    if (j->depth == 0) {
        j->bad = 0;
        j->why = "needs a JSON object body";
        return 0;
    }

    mask = ngx_http_credit_json_here(j);

    for (i = 0; mask; i++, mask >>= 1) {
        if (!(mask & 1) || j->params[i]->path->nelts != j->depth) {
            continue;
        }

        /* a second value on this path needs its key twice: map_key */

        v = &j->values[j->slots[i]];

        if (data == NULL) {
            continue;               /* null: as if absent */
        }

        if (string && j->params[i]->type == NGX_HTTP_CREDIT_TYPE_BOOLEAN) {
            j->bad = i;
            j->why = "must be a JSON boolean (true or false), not a string";
            return 0;
        }

        v->data = ngx_pnalloc(j->pool, len + 1);
        if (v->data == NULL) {
            j->nomem = 1;
            return 0;
        }

        ngx_memcpy(v->data, data, len);
        v->len = len;
    }

    return 1;
}


static int
ngx_http_credit_json_open(ngx_http_credit_json_t *j, ngx_uint_t array)
{
    ngx_uint_t                i;
    ngx_http_credit_mask_t    mask, m;
    ngx_http_credit_frame_t  *f;

    mask = ngx_http_credit_json_here(j);

    /* a wanted path that ends here got an object or an array */

    for (i = 0, m = mask; m; i++, m >>= 1) {
        if ((m & 1) && j->params[i]->path->nelts == j->depth) {
            j->bad = i;
            j->why = "must be a single value, not an object or an array";
            return 0;
        }
    }

    if (j->depth == 0 && array) {
        j->bad = 0;
        j->why = "needs a JSON object body";
        return 0;
    }

    if (j->depth == NGX_HTTP_CREDIT_MAX_JSON_DEPTH) {
        j->bad = 0;
        j->why = "the JSON body is nested too deeply";
        return 0;
    }

    j->depth++;

    f = &j->frames[j->depth];
    f->array = array;
    f->index = -1;
    f->mask = 0;
    f->seen = 0;

    /* a map's mask is set per key, an array's per element */

    return 1;
}


static int
ngx_http_credit_json_null(void *ctx)
{
    return ngx_http_credit_json_value(ctx, NULL, 0, 0);
}


static int
ngx_http_credit_json_boolean(void *ctx, int value)
{
    return value ? ngx_http_credit_json_value(ctx, (u_char *) "true", 4, 0)
                 : ngx_http_credit_json_value(ctx, (u_char *) "false", 5, 0);
}


static int
ngx_http_credit_json_number(void *ctx, const char *s, size_t len)
{
    return ngx_http_credit_json_value(ctx, (u_char *) s, len, 0);
}


static int
ngx_http_credit_json_string(void *ctx, const unsigned char *s, size_t len)
{
    return ngx_http_credit_json_value(ctx, s, len, 1);
}


static int
ngx_http_credit_json_start_map(void *ctx)
{
    return ngx_http_credit_json_open(ctx, 0);
}


static int
ngx_http_credit_json_start_array(void *ctx)
{
    return ngx_http_credit_json_open(ctx, 1);
}


/*
 * A key on a wanted path given twice in one object is ambiguous even when
 * the value is not: {"options": {"size": "s"}, "options": {}} is size s
 * to the first and the backend's default to a parser that keeps the last.
 */

static int
ngx_http_credit_json_map_key(void *ctx, const unsigned char *s, size_t len)
{
    ngx_uint_t                i;
    ngx_http_credit_json_t   *j;
    ngx_http_credit_mask_t    twice;
    ngx_http_credit_frame_t  *f;

    j = ctx;
    f = &j->frames[j->depth];

    f->mask = ngx_http_credit_json_step(j, j->frames[j->depth - 1].mask,
                                        s, len, 0);

    twice = f->mask & f->seen;

    if (twice) {
        for (i = 0; !(twice & 1); i++) {
            twice >>= 1;
        }

        j->bad = i;
        j->why = "is given more than once";
        return 0;
    }

    f->seen |= f->mask;

    return 1;
}


static int
ngx_http_credit_json_end(void *ctx)
{
    ngx_http_credit_json_t *j = ctx;

    j->depth--;

    return 1;
}


/* forms --------------------------------------------------------------- */

static ngx_int_t
ngx_http_credit_urlencoded(ngx_http_request_t *r, ngx_http_credit_route_t *rt,
    ngx_http_credit_rec_t *rec, ngx_str_t *body)
{
    ngx_int_t                 rc;
    ngx_uint_t                i;
    ngx_http_credit_param_t  *p;

    p = rt->params.elts;

    for (i = 0; i < rt->params.nelts; i++) {
        if (p[i].from != NGX_HTTP_CREDIT_FROM_FORM) {
            continue;
        }

        rc = ngx_http_credit_arg(r->pool, body, &p[i].key,
                                 &rec->body_values[i]);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_credit_body_error(r, rt, rec, 0, i,
                                              "is given more than once");
        }

        if (rc == NGX_DONE) {
            ngx_str_null(&rec->body_values[i]);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_boundary(ngx_http_request_t *r, ngx_str_t *boundary)
{
    u_char     *p, *last;
    ngx_int_t   rc;
    ngx_str_t  *ct, attr, value;

    ct = &r->headers_in.content_type->value;
    p = ct->data;
    last = p + ct->len;

    ngx_str_null(boundary);

    for ( ;; ) {
        rc = ngx_http_credit_header_param(r->pool, &p, last, &attr, &value);

        if (rc == NGX_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            return rc;
        }

        if (attr.len == 8
            && ngx_strncasecmp(attr.data, (u_char *) "boundary", 8) == 0)
        {
            if (boundary->data) {
                return NGX_DECLINED;
            }

            *boundary = value;
        }
    }

    return (boundary->len > 0 && boundary->len <= 70) ? NGX_OK
                                                      : NGX_DECLINED;
}


/*
 * multipart/form-data: "--B" CRLF headers CRLF CRLF data CRLF "--B" ...
 * "--B--".  Fields whose part has a filename are files, not parameters.
 */

static ngx_int_t
ngx_http_credit_multipart(ngx_http_request_t *r, ngx_http_credit_route_t *rt,
    ngx_http_credit_rec_t *rec, ngx_str_t *body, ngx_str_t *boundary)
{
    u_char                   *p, *last, *hend, *line, *eol, *data, *next;
    ngx_int_t                 rc;
    ngx_str_t                 name, *v;
    ngx_uint_t                i, file, seen;
    ngx_http_credit_param_t  *prm;
    u_char                    delim[76];

    prm = rt->params.elts;

    /* "\r\n--B": the first delimiter may also open the body */

    delim[0] = CR;
    delim[1] = LF;
    delim[2] = '-';
    delim[3] = '-';
    ngx_memcpy(delim + 4, boundary->data, boundary->len);

    p = body->data;
    last = p + body->len;

    /*
     * Parsers differ on line breaks: Werkzeug takes a bare LF or CR for
     * CRLF, so a "--B" after one would start a part there and not here,
     * and a field hidden in another's data would be priced by neither.
     * Such a "--B" anywhere, and a bare LF or CR in part headers, make
     * the body ambiguous; "--B" within a line is data to every parser.
     */

    if ((size_t) (last - p) >= boundary->len + 2
        && ngx_strncmp(p, delim + 2, boundary->len + 2) == 0)
    {
        p += boundary->len + 2;

    } else {
        next = ngx_http_credit_delimiter(p, p, last, delim + 2,
                                         boundary->len + 2);
        if (next == NULL) {
            goto truncated;
        }

        if (next == NGX_HTTP_CREDIT_AMBIGUOUS) {
            goto ambiguous;
        }

        p = next + boundary->len + 4;
    }

    for ( ;; ) {

        /* after a delimiter: "--" ends the body, CRLF starts a part */

        if (last - p >= 2 && p[0] == '-' && p[1] == '-') {

            /* nothing after the end may look like a part either */

            next = ngx_http_credit_delimiter(p, p, last, delim + 2,
                                             boundary->len + 2);

            if (next != NULL) {
                goto ambiguous;
            }

            return NGX_OK;
        }

        if (last - p < 2 || p[0] != CR || p[1] != LF) {
            goto truncated;
        }

        p += 2;

        /* the headers end at an empty line, which may be the first */

        if (last - p >= 2 && p[0] == CR && p[1] == LF) {
            hend = p - 2;

        } else {
            hend = ngx_strlcasestrn(p, last, (u_char *) "\r\n\r\n", 4 - 1);
            if (hend == NULL) {
                goto truncated;
            }
        }

        for (line = p; line < hend; line++) {
            if ((*line == LF && (line == p || line[-1] != CR))
                || (*line == CR && line[1] != LF))
            {
                goto ambiguous;
            }
        }

        if (hend > p
            && ngx_http_credit_delimiter(p, p, hend + 2, delim + 2,
                                         boundary->len + 2)
               != NULL)
        {
            goto ambiguous;
        }

        ngx_str_null(&name);
        file = 0;
        seen = 0;

        for (line = p; line < hend; line = eol + 2) {
            eol = ngx_strlcasestrn(line, hend + 2, (u_char *) "\r\n", 2 - 1);
            if (eol == NULL) {
                eol = hend;
            }

            if (eol - line < 20
                || ngx_strncasecmp(line, (u_char *) "content-disposition:",
                                   20) != 0)
            {
                continue;
            }

            rc = seen ? NGX_DECLINED
                      : ngx_http_credit_disposition(r->pool, line + 20, eol,
                                                    &name, &file);
            seen = 1;

            if (rc == NGX_DECLINED) {
                return ngx_http_credit_body_error(r, rt, rec,
                                                  NGX_HTTP_CREDIT_FROM_FORM,
                                                  -1, "a multipart part's "
                                                  "Content-Disposition is "
                                                  "malformed or ambiguous");
            }

            if (rc != NGX_OK) {
                return NGX_ERROR;
            }
        }

        data = hend + 4;

        next = ngx_http_credit_delimiter(data, data, last, delim + 2,
                                         boundary->len + 2);
        if (next == NULL) {
            goto truncated;
        }

        if (next == NGX_HTTP_CREDIT_AMBIGUOUS) {
            goto ambiguous;
        }

        if (name.len && !file) {
            for (i = 0; i < rt->params.nelts; i++) {
                if (prm[i].from != NGX_HTTP_CREDIT_FROM_FORM
                    || prm[i].key.len != name.len
                    || ngx_strncmp(prm[i].key.data, name.data, name.len) != 0)
                {
                    continue;
                }

                v = &rec->body_values[i];

                if (v->data) {
                    return ngx_http_credit_body_error(r, rt, rec, 0, i,
                                                      "is given more than "
                                                      "once");
                }

                v->data = data;
                v->len = next - data;
            }
        }

        p = next + boundary->len + 4;
    }

truncated:

    return ngx_http_credit_body_error(r, rt, rec, NGX_HTTP_CREDIT_FROM_FORM,
                                      -1, "the multipart body is malformed "
                                      "or truncated");

ambiguous:

    return ngx_http_credit_body_error(r, rt, rec, NGX_HTTP_CREDIT_FROM_FORM,
                                      -1, NGX_HTTP_CREDIT_AMBIGUOUS_MP);
}


/*
 * The next delimiter, CRLF "--B", in [start, last) from p: a pointer to
 * its CRLF, or NULL, or NGX_HTTP_CREDIT_AMBIGUOUS when a "--B" before it
 * begins the region (after the part headers' empty line) or follows a
 * bare LF or CR.
 */

static u_char *
ngx_http_credit_delimiter(u_char *start, u_char *p, u_char *last, u_char *b,
    size_t len)
{
    u_char  *q;

    for ( ;; ) {
        q = ngx_http_credit_find(p, last, b, len);

        if (q == NULL) {
            return NULL;
        }

        if (q - start >= 2 && q[-2] == CR && q[-1] == LF) {
            return q - 2;
        }

        if (q == start || q[-1] == LF || q[-1] == CR) {
            return NGX_HTTP_CREDIT_AMBIGUOUS;
        }

        p = q + 1;
    }
}


static u_char *
ngx_http_credit_skip_space(u_char *p, u_char *last)
{
    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    return p;
}


/*
 * The next parameter of a header's value, "; attr=value", the value a
 * token or a quoted string, as RFC 9110 writes them and backends' parsers
 * read them; *pp is where to look for the ";" (the type before the first
 * one is passed over) and is moved past the value.  NGX_DONE: no more;
 * NGX_DECLINED: a quoted string without its end, or with a quoted pair
 * that parsers read apart.
 */

static ngx_int_t
ngx_http_credit_header_param(ngx_pool_t *pool, u_char **pp, u_char *last,
    ngx_str_t *attr, ngx_str_t *value)
{
    u_char  *p, *d;

    p = *pp;

    for ( ;; ) {
        p = ngx_strlchr(p, last, ';');

        if (p == NULL) {
            return NGX_DONE;
        }

        p = ngx_http_credit_skip_space(p + 1, last);

        attr->data = p;

        while (p < last && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
        {
            p++;
        }

        attr->len = p - attr->data;

        p = ngx_http_credit_skip_space(p, last);

        if (p < last && *p == '=') {
            break;
        }

        /* a parameter without a value */
    }

    p = ngx_http_credit_skip_space(p + 1, last);

    d = ngx_pnalloc(pool, last - p + 1);
    if (d == NULL) {
        return NGX_ERROR;
    }

    value->data = d;

    if (p < last && *p == '"') {

        for (p++; /* void */; p++) {
            if (p == last) {
                return NGX_DECLINED;
            }

            if (*p == '"') {
                p++;
                break;
            }

            /*
             * a quoted pair other than \" and \\ is read apart: Go takes
             * "\n" for "n", Werkzeug keeps the backslash
             */

            if (*p == '\\') {
                if (p + 1 == last || (p[1] != '"' && p[1] != '\\')) {
                    return NGX_DECLINED;
                }

                p++;
            }

            *d++ = *p;
        }

    } else {
        while (p < last && *p != ';' && *p != ' ' && *p != '\t') {
            *d++ = *p++;
        }
    }

    value->len = d - value->data;
    *pp = p;

    return NGX_OK;
}


/*
 * A part's Content-Disposition parameters: name="n" and name=n name n;
 * a filename makes the part a file.  NGX_DECLINED when parsers read the
 * part apart: a quoted value without its end, a name given twice (which
 * one would the backend take?), or RFC 5987's name* and a filename*
 * without a filename, which Werkzeug and Go decode and Python's cgi
 * passes over (a field with another name, or no file).
 */

static ngx_int_t
ngx_http_credit_disposition(ngx_pool_t *pool, u_char *p, u_char *last,
    ngx_str_t *name, ngx_uint_t *file)
{
    ngx_int_t    rc;
    ngx_str_t    attr, value;
    ngx_uint_t   named, ext_file;

    named = 0;
    ext_file = 0;

    for ( ;; ) {
        rc = ngx_http_credit_header_param(pool, &p, last, &attr, &value);

        if (rc == NGX_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            return rc;
        }

        if (attr.len == 9
            && ngx_strncasecmp(attr.data, (u_char *) "filename*", 9) == 0)
        {
            ext_file = 1;
            continue;
        }

        if (attr.len == 8
            && ngx_strncasecmp(attr.data, (u_char *) "filename", 8) == 0)
        {
            *file = 1;
            continue;
        }

        if (attr.len == 5
            && ngx_strncasecmp(attr.data, (u_char *) "name*", 5) == 0)
        {
            return NGX_DECLINED;
        }

        if (attr.len != 4
            || ngx_strncasecmp(attr.data, (u_char *) "name", 4) != 0)
        {
            continue;
        }

        if (named) {
            return NGX_DECLINED;
        }

        named = 1;
        *name = value;
    }

    return (ext_file && !*file) ? NGX_DECLINED : NGX_OK;
}


/* boundaries are case-sensitive: plain memmem() */

static u_char *
ngx_http_credit_find(u_char *p, u_char *last, u_char *s, size_t len)
{
    return memmem(p, last - p, s, len);
}
