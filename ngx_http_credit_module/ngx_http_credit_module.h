
/*
 * ngx_http_credit_module: credit metering for AI APIs at the edge.
 * Shared types and the functions each file offers the others.
 */


#ifndef _NGX_HTTP_CREDIT_MODULE_H_INCLUDED_
#define _NGX_HTTP_CREDIT_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_CREDIT_MAX_COST      1000000000000000LL
#define NGX_HTTP_CREDIT_KEY_MAX       250
#define NGX_HTTP_CREDIT_402           402


/* where a parameter is read from */
#define NGX_HTTP_CREDIT_FROM_QUERY    0
#define NGX_HTTP_CREDIT_FROM_HEADER   1
#define NGX_HTTP_CREDIT_FROM_JSON     2
#define NGX_HTTP_CREDIT_FROM_FORM     3
#define NGX_HTTP_CREDIT_FROM_PATH     4
#define NGX_HTTP_CREDIT_FROM_VAR      5

#define NGX_HTTP_CREDIT_TYPE_STRING   0
#define NGX_HTTP_CREDIT_TYPE_INTEGER  1
#define NGX_HTTP_CREDIT_TYPE_BOOLEAN  2

#define NGX_HTTP_CREDIT_MATCH_EXACT   0
#define NGX_HTTP_CREDIT_MATCH_PREFIX  1
#define NGX_HTTP_CREDIT_MATCH_REGEX   2


/* $credit_status values */
#define NGX_HTTP_CREDIT_ST_NONE             0
#define NGX_HTTP_CREDIT_ST_CHARGED          1
#define NGX_HTTP_CREDIT_ST_REFUNDED         2
#define NGX_HTTP_CREDIT_ST_FREE             3
#define NGX_HTTP_CREDIT_ST_INSUFFICIENT     4
#define NGX_HTTP_CREDIT_ST_INVALID          5
#define NGX_HTTP_CREDIT_ST_UNPRICED         6
#define NGX_HTTP_CREDIT_ST_MISSING_ACCOUNT  7
#define NGX_HTTP_CREDIT_ST_UNMETERED        8
#define NGX_HTTP_CREDIT_ST_ERROR            9


#define NGX_HTTP_CREDIT_MAX_BODY_PARAMS  64
#define NGX_HTTP_CREDIT_MAX_JSON_DEPTH   64


/* one step of a JSON key path: "options.size", "images.0.size" */
typedef struct {
    ngx_str_t                    name;
    ngx_int_t                    index;       /* array index, or -1 */
} ngx_http_credit_segment_t;


/* a parameter value, canonical: "4k", "42", "true" */
typedef struct {
    ngx_str_t                    str;
    int64_t                      num;
} ngx_http_credit_value_t;


typedef struct {
    ngx_str_t                    name;
    ngx_str_t                    key;
    ngx_uint_t                   from;
    ngx_uint_t                   type;
    ngx_int_t                    index;       /* variable or capture */
    ngx_array_t                 *path;        /* json: segments */
    ngx_array_t                 *values;      /* ngx_http_credit_value_t */
    ngx_http_credit_value_t      def;
    int64_t                      min;
    int64_t                      max;
    ngx_uint_t                   line;
    unsigned                     has_default:1;
    unsigned                     has_min:1;
    unsigned                     has_max:1;
} ngx_http_credit_param_t;


typedef struct {
    ngx_http_credit_value_t      value;
    int64_t                      cost;
} ngx_http_credit_entry_t;


typedef struct {
    int64_t                      upto;
    int64_t                      cost;
    ngx_uint_t                   open;        /* no "upto": the rest */
} ngx_http_credit_tier_t;


typedef struct {
    ngx_uint_t                   param;
    int64_t                      amount;
} ngx_http_credit_add_t;


typedef struct {
    int64_t                      base;
    ngx_int_t                    by;          /* param index or -1 */
    ngx_array_t                 *grid;        /* by: [a, b]: ngx_uint_t */
    ngx_array_t                 *table;       /* ngx_http_credit_entry_t */
    ngx_array_t                 *tiers;       /* ngx_http_credit_tier_t */
    ngx_array_t                 *times;       /* ngx_uint_t param index */
    ngx_array_t                 *add;         /* ngx_http_credit_add_t */
} ngx_http_credit_cost_t;


typedef struct {
    ngx_str_t                    name;
    ngx_array_t                 *methods;     /* ngx_str_t, NULL: any */
    ngx_uint_t                   match;
    ngx_str_t                    path;
#if (NGX_PCRE)
    ngx_regex_t                 *regex;
    ngx_uint_t                   captures;
#endif
    ngx_array_t                  params;      /* ngx_http_credit_param_t */
    ngx_http_credit_cost_t       cost;
    ngx_uint_t                   line;
    ngx_uint_t                   body_params; /* json and form ones */
    unsigned                     needs_body:1;
} ngx_http_credit_route_t;


typedef struct {
    ngx_str_t                    file;
    ngx_array_t                  routes;      /* ngx_http_credit_route_t */
    unsigned                     unmatched_free:1;
    unsigned                     regex:1;     /* some route has a regex */
} ngx_http_credit_matrix_t;


/* the memcached side, one per worker process */
typedef struct ngx_http_credit_store_s  ngx_http_credit_store_t;
typedef struct ngx_http_credit_mc_s  ngx_http_credit_mc_t;
typedef struct ngx_http_credit_cache_s  ngx_http_credit_cache_t;


typedef struct {
    ngx_array_t                  servers;     /* ngx_addr_t */
    ngx_array_t                 *previous;    /* ngx_str_t: the servers
                                                 before a change of the
                                                 tier (previous=) */
    ngx_msec_t                   timeout;
    ngx_msec_t                   connect_timeout;
    ngx_uint_t                   retry_timeout;   /* seconds */
    ngx_uint_t                   refund_retry;    /* seconds */
    ngx_uint_t                   max_batch;
    ngx_uint_t                   max_pending;
    ngx_shm_zone_t              *cache_zone;
    ngx_shm_zone_t              *stats_zone;  /* credit_stats's counters */
    ngx_http_credit_store_t     *store;       /* set in init_process */
} ngx_http_credit_main_conf_t;


typedef struct {
    ngx_http_credit_matrix_t    *matrix;
    ngx_flag_t                   enable;
    ngx_http_complex_value_t    *account;
    ngx_str_t                    key_prefix;
    ngx_uint_t                   refund_5xx;
    ngx_array_t                 *refund_codes; /* ngx_uint_t */
    ngx_uint_t                   fail_open;
    ngx_flag_t                   headers;
    size_t                       body_limit;
    ngx_uint_t                   handler;     /* admin or balance */
} ngx_http_credit_loc_conf_t;


/*
 * The charge record of one request.  It lives in a cleanup of the request
 * pool, so it survives internal redirects and error_page, which wipe the
 * module ctx: a request is charged once and refunded at most once.
 */
typedef struct ngx_http_credit_rec_s  ngx_http_credit_rec_t;
typedef struct ngx_http_credit_op_s  ngx_http_credit_op_t;


/* a place in the per-key queue of a worker: a charge or another op */
typedef struct {
    ngx_queue_t                  queue;
    ngx_http_credit_rec_t       *rec;
    ngx_http_credit_op_t        *op;
} ngx_http_credit_wait_t;


struct ngx_http_credit_rec_s {
    ngx_http_request_t          *request;
    ngx_http_credit_wait_t       wait;
    ngx_http_credit_rec_t       *next;        /* in the same batch */
    ngx_http_credit_loc_conf_t  *conf;        /* where it was charged */
    void                        *admin;       /* credit_admin's state */
    ngx_str_t                    account;
    ngx_str_t                    key;
    ngx_str_t                    route;
    ngx_str_t                    param;       /* the bad one, for 400 */
    ngx_str_t                   *body_values; /* per param; NULL: absent */
    ngx_str_t                    detail;
    int64_t                      cost;
    int64_t                      plan_charged;
    int64_t                      pack_charged;
    int64_t                      remaining;
    ngx_uint_t                   status;      /* NGX_HTTP_CREDIT_ST_* */
    ngx_int_t                    http_status; /* our own error answer */
    ngx_uint_t                   state;
    unsigned                     priced:1;
    unsigned                     charged:1;
    unsigned                     refunded:1;
    unsigned                     has_remaining:1;
    unsigned                     body_read:1;
    unsigned                     unmoved:1;   /* failed: the balance is not
                                                 on its new server yet */
};


#define NGX_HTTP_CREDIT_STATE_NEW       0
#define NGX_HTTP_CREDIT_STATE_BODY      1
#define NGX_HTTP_CREDIT_STATE_WAIT      2
#define NGX_HTTP_CREDIT_STATE_DONE      3


/* the store's operations */
#define NGX_HTTP_CREDIT_OP_CHARGE       0
#define NGX_HTTP_CREDIT_OP_REFUND       1
#define NGX_HTTP_CREDIT_OP_GET          2
#define NGX_HTTP_CREDIT_OP_SET_PLAN     3
#define NGX_HTTP_CREDIT_OP_ADD_PACK     4

#define NGX_HTTP_CREDIT_EXPECT_VALUE    0
#define NGX_HTTP_CREDIT_EXPECT_STORED   1
#define NGX_HTTP_CREDIT_EXPECT_STATS    2

#define NGX_HTTP_CREDIT_REPLY_VALUE     1
#define NGX_HTTP_CREDIT_REPLY_MISS      2
#define NGX_HTTP_CREDIT_REPLY_STORED    3
#define NGX_HTTP_CREDIT_REPLY_CONFLICT  4
#define NGX_HTTP_CREDIT_REPLY_ERROR     5


typedef struct {
    ngx_uint_t                   type;
    ngx_str_t                    value;
    uint64_t                     cas;
    const char                  *err;
} ngx_http_credit_reply_t;


#define NGX_HTTP_CREDIT_RC_OK           0
#define NGX_HTTP_CREDIT_RC_SHORT        1
#define NGX_HTTP_CREDIT_RC_FAIL         2


typedef void (*ngx_http_credit_op_done_pt)(ngx_http_credit_op_t *op);

/* one memcached operation on one key: read, decide, write */
struct ngx_http_credit_op_s {
    ngx_uint_t                   type;
    ngx_http_credit_wait_t       wait;
    void                        *flight;
    ngx_queue_t                  mc_queue;    /* awaiting a reply */
    void                        *server;      /* of the key, once known */
    ngx_uint_t                   expect;
    size_t                       cmd_len;     /* of its command, queued */
    uint64_t                     cas;
    uint64_t                     instance;    /* of the memcached asked */
    ngx_uint_t                   exists;
    u_char                       key[NGX_HTTP_CREDIT_KEY_MAX + 1];
    size_t                       key_len;
    int64_t                      plan_amount;
    int64_t                      pack_amount;
    ngx_http_credit_rec_t       *batch;       /* charges, in order */
    ngx_uint_t                   nbatch;
    ngx_http_credit_store_t     *store;
    ngx_http_credit_op_done_pt   done;
    void                        *data;
    ngx_log_t                   *log;
    /* results */
    ngx_uint_t                   rc;
    int64_t                      plan;
    int64_t                      pack;
    ngx_uint_t                   retries;
    ngx_uint_t                   owed;        /* refund tries so far */
    unsigned                     ghost:1;     /* awaits a late reply */
    unsigned                     in_doubt:1;  /* its write's outcome is
                                                 settled elsewhere, or
                                                 unknown */
    unsigned                     malformed:1; /* the item is no balance */
    unsigned                     moving:1;    /* its server is another
                                                 than in previous= */
    unsigned                     unmoved:1;   /* moving, and its balance
                                                 not on its server yet */
    char                         err[128];
};


extern ngx_module_t  ngx_http_credit_module;


/* matrix.c */
char *ngx_http_credit_matrix_load(ngx_conf_t *cf, ngx_str_t *file,
    ngx_http_credit_matrix_t **matrix);

/* price.c */
ngx_uint_t ngx_http_credit_plain_path(ngx_http_request_t *r);
ngx_http_credit_route_t *ngx_http_credit_find_route(ngx_http_request_t *r,
    ngx_http_credit_matrix_t *matrix, int *captures, ngx_int_t ncaptures);
ngx_int_t ngx_http_credit_price(ngx_http_request_t *r,
    ngx_http_credit_route_t *route, int *captures,
    ngx_http_credit_rec_t *rec);
ngx_int_t ngx_http_credit_arg(ngx_pool_t *pool, ngx_str_t *args,
    ngx_str_t *key, ngx_str_t *raw);

/* body.c */
ngx_int_t ngx_http_credit_body_params(ngx_http_request_t *r,
    ngx_http_credit_route_t *rt, ngx_http_credit_rec_t *rec);
ngx_int_t ngx_http_credit_parse_value(ngx_pool_t *pool,
    ngx_http_credit_param_t *p, ngx_str_t *raw,
    ngx_http_credit_value_t *v, ngx_str_t *detail);
ngx_int_t ngx_http_credit_check_value(ngx_pool_t *pool,
    ngx_http_credit_param_t *p, ngx_http_credit_value_t *v,
    ngx_str_t *detail);

/* store.c */
ngx_int_t ngx_http_credit_store_init(ngx_cycle_t *cycle,
    ngx_http_credit_main_conf_t *cmcf);
void ngx_http_credit_store_exit(ngx_http_credit_main_conf_t *cmcf);
void ngx_http_credit_prefetch(ngx_http_request_t *r, ngx_str_t *key);
ngx_int_t ngx_http_credit_make_key(ngx_pool_t *pool, ngx_str_t *prefix,
    ngx_str_t *account, ngx_str_t *key);
ngx_int_t ngx_http_credit_charge(ngx_http_request_t *r,
    ngx_http_credit_rec_t *rec);
ngx_http_credit_op_t *ngx_http_credit_op_create(ngx_log_t *log,
    ngx_uint_t type, ngx_str_t *key);
ngx_int_t ngx_http_credit_op_submit(ngx_http_credit_main_conf_t *cmcf,
    ngx_http_credit_op_t *op);
void ngx_http_credit_op_free(ngx_http_credit_op_t *op);
void ngx_http_credit_op_reply(ngx_http_credit_op_t *op,
    ngx_http_credit_reply_t *reply);
ngx_http_credit_op_t *ngx_http_credit_op_ghost(ngx_http_credit_op_t *op);
void ngx_http_credit_op_lost(ngx_http_credit_op_t *op, const char *err);
void ngx_http_credit_owe(ngx_http_credit_store_t *store, ngx_str_t *key,
    int64_t plan, int64_t pack, ngx_log_t *log);

/* memcached.c */
ngx_http_credit_mc_t *ngx_http_credit_mc_create(ngx_cycle_t *cycle,
    ngx_http_credit_main_conf_t *cmcf);
void ngx_http_credit_mc_destroy(ngx_http_credit_mc_t *mc);
ngx_int_t ngx_http_credit_mc_gets(ngx_http_credit_mc_t *mc,
    ngx_http_credit_op_t *op);
ngx_int_t ngx_http_credit_mc_store(ngx_http_credit_mc_t *mc,
    ngx_http_credit_op_t *op, u_char *value, size_t len);
uint64_t ngx_http_credit_mc_instance(ngx_http_credit_mc_t *mc,
    ngx_http_credit_op_t *op);
void ngx_http_credit_mc_shutdown(ngx_http_credit_mc_t *mc);
ngx_uint_t ngx_http_credit_mc_is_shut(ngx_http_credit_mc_t *mc);

/* cache.c */
ngx_http_credit_cache_t *ngx_http_credit_cache_create(ngx_conf_t *cf);
ngx_int_t ngx_http_credit_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_int_t ngx_http_credit_cache_get(ngx_http_credit_cache_t *cache,
    u_char *key, size_t len, uint64_t instance, int64_t *plan,
    int64_t *pack, uint64_t *cas);
void ngx_http_credit_cache_prefetch(ngx_http_credit_cache_t *cache,
    u_char *key, size_t len);
void ngx_http_credit_cache_set(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t instance, int64_t plan, int64_t pack, uint64_t cas);
void ngx_http_credit_cache_forget(ngx_http_credit_cache_t *cache,
    u_char *key, size_t len, uint64_t cas);

/* handler.c */
ngx_int_t ngx_http_credit_handler(ngx_http_request_t *r);
void ngx_http_credit_charged(ngx_http_credit_rec_t *rec, ngx_uint_t rc);
ngx_http_credit_rec_t *ngx_http_credit_get_rec(ngx_http_request_t *r,
    ngx_uint_t create);
ngx_int_t ngx_http_credit_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_credit_retry_after(ngx_http_request_t *r);

/* filter.c */
ngx_int_t ngx_http_credit_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_credit_log_handler(ngx_http_request_t *r);
void ngx_http_credit_refund(ngx_http_credit_rec_t *rec, const char *why);
ngx_int_t ngx_http_credit_add_header(ngx_http_request_t *r, char *name,
    size_t len, int64_t value);

/* admin.c */
ngx_int_t ngx_http_credit_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_credit_balance_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_credit_admin_error(ngx_http_request_t *r,
    ngx_uint_t status, char *error, char *detail);

/* var.c */
ngx_int_t ngx_http_credit_add_variables(ngx_conf_t *cf);
extern ngx_str_t  ngx_http_credit_status_names[];

/* stats.c */
ngx_int_t ngx_http_credit_stats_zone(ngx_conf_t *cf);
void ngx_http_credit_stats_init_process(ngx_http_credit_main_conf_t *cmcf);
void ngx_http_credit_stats_count(ngx_http_credit_rec_t *rec);
void ngx_http_credit_stats_mc_failure(void);
ngx_int_t ngx_http_credit_stats_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_CREDIT_MODULE_H_INCLUDED_ */
