
/*
 * ngx_http_credit_module: the balance cache, in shared memory.
 *
 * For recently charged accounts the workers of one nginx share the last
 * balance they saw in memcached and its cas token.  A charge decides from
 * it and writes with a compare-and-swap at once: one round trip instead of
 * gets + cas.  The cache is only ever a hint: memcached's cas rejects a
 * stale token (another worker or another nginx wrote since), and then the
 * charge reads afresh.  A refusal is never decided from the cache.
 *
 * cas tokens restart when memcached restarts, so every entry carries the
 * id of the memcached instance it was learnt from (its pid and start time,
 * read with "stats" on every new connection), and a worker only trusts
 * entries of the instance its own connection talks to.
 */


#include "ngx_http_credit_module.h"


/*
 * A chained hash table rather than the rbtree nginx's own zones use: a
 * lookup touches a bucket and, almost always, one node, where a tree of
 * thousands of accounts costs a dozen cache misses on nodes the other
 * workers keep writing (it was the module's most expensive function under
 * load).  One node is about two cache lines; the table has a bucket per
 * 128 bytes of the zone, so chains stay short even when the zone is full.
 *
 * A node goes to the head of the LRU list at most once a second: the head
 * and its neighbours are written by every worker, and moving each node on
 * every charge kept those cache lines travelling between the cores.  The
 * order of eviction is then right to within a second, which is all a hint
 * needs.
 */

typedef struct ngx_http_credit_cache_node_s  ngx_http_credit_cache_node_t;

struct ngx_http_credit_cache_node_s {
    ngx_http_credit_cache_node_t  *next;        /* hash chain */
    uint32_t                       hash;
    u_short                        len;
    ngx_queue_t                    queue;       /* LRU */
    int64_t                        plan;
    int64_t                        pack;
    uint64_t                       cas;
    uint64_t                       instance;
    time_t                         moved;       /* to the LRU's head */
    u_char                         key[1];
};


typedef struct {
    ngx_queue_t                    lru;
    ngx_uint_t                     mask;
    ngx_http_credit_cache_node_t  *buckets[1];
} ngx_http_credit_cache_sh_t;


struct ngx_http_credit_cache_s {
    ngx_http_credit_cache_sh_t    *sh;
    ngx_slab_pool_t               *shpool;
};


static ngx_http_credit_cache_node_t **ngx_http_credit_cache_find(
    ngx_http_credit_cache_t *cache, u_char *key, size_t len, uint32_t hash);
static void ngx_http_credit_cache_evict(ngx_http_credit_cache_t *cache,
    ngx_http_credit_cache_node_t *cn);


ngx_http_credit_cache_t *
ngx_http_credit_cache_create(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_cache_t));
}


ngx_int_t
ngx_http_credit_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_credit_cache_t *ocache = data;

    size_t                    len;
    ngx_uint_t                n;
    ngx_http_credit_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload: keep what the old workers learnt */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    /* a power of two buckets, one per 128 bytes of the zone */

    for (n = 1024; n < shm_zone->shm.size / 128; n <<= 1) { /* void */ }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               offsetof(ngx_http_credit_cache_sh_t, buckets)
                               + n * sizeof(ngx_http_credit_cache_node_t *));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(cache->sh->buckets, n * sizeof(ngx_http_credit_cache_node_t *));

    cache->sh->mask = n - 1;
    ngx_queue_init(&cache->sh->lru);

    cache->shpool->data = cache->sh;

    len = sizeof(" in credit cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in credit cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


/* the link that points to a key's node, or to the NULL ending its chain */

static ngx_http_credit_cache_node_t **
ngx_http_credit_cache_find(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint32_t hash)
{
    ngx_http_credit_cache_node_t  **link, *cn;

    for (link = &cache->sh->buckets[hash & cache->sh->mask];
         *link;
         link = &cn->next)
    {
        cn = *link;

        if (cn->hash == hash && cn->len == len
            && ngx_memcmp(cn->key, key, len) == 0)
        {
            break;
        }
    }

    return link;
}


static void
ngx_http_credit_cache_evict(ngx_http_credit_cache_t *cache,
    ngx_http_credit_cache_node_t *cn)
{
    ngx_http_credit_cache_node_t  **link;

    link = ngx_http_credit_cache_find(cache, cn->key, cn->len, cn->hash);

    *link = cn->next;

    ngx_queue_remove(&cn->queue);
    ngx_slab_free_locked(cache->shpool, cn);
}


/* NGX_OK: a balance and a token learnt from this memcached instance */

ngx_int_t
ngx_http_credit_cache_get(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t instance, int64_t *plan, int64_t *pack,
    uint64_t *cas)
{
    ngx_int_t                      rc;
    ngx_http_credit_cache_node_t  *cn;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = *ngx_http_credit_cache_find(cache, key, len,
                                     ngx_crc32_short(key, len));

    if (cn && cn->instance == instance && cn->cas) {
        *plan = cn->plan;
        *pack = cn->pack;
        *cas = cn->cas;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * Remembers what memcached said of a key.  An older token never replaces
 * a newer one: cas values only grow on a server.
 */

void
ngx_http_credit_cache_set(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t instance, int64_t plan, int64_t pack, uint64_t cas)
{
    size_t                          size;
    uint32_t                        hash;
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    ngx_http_credit_cache_node_t   *cn, **link;

    hash = ngx_crc32_short(key, len);
    size = offsetof(ngx_http_credit_cache_node_t, key) + len;

    ngx_shmtx_lock(&cache->shpool->mutex);

    link = ngx_http_credit_cache_find(cache, key, len, hash);
    cn = *link;

    if (cn) {
        if (cn->instance == instance && cn->cas > cas) {
            goto done;
        }

    } else {
        cn = ngx_slab_alloc_locked(cache->shpool, size);

        /* full: forget the least recently used entries and try again */

        for (i = 0; cn == NULL && i < 16 && !ngx_queue_empty(&cache->sh->lru);
             i++)
        {
            q = ngx_queue_last(&cache->sh->lru);

            ngx_http_credit_cache_evict(cache,
                ngx_queue_data(q, ngx_http_credit_cache_node_t, queue));

            cn = ngx_slab_alloc_locked(cache->shpool, size);
        }

        if (cn == NULL) {
            goto done;
        }

        /* an eviction may have unlinked the node "link" pointed into */

        link = ngx_http_credit_cache_find(cache, key, len, hash);

        cn->next = NULL;
        cn->hash = hash;
        cn->len = (u_short) len;
        ngx_memcpy(cn->key, key, len);
        ngx_queue_init(&cn->queue);         /* not in the LRU list yet */
        cn->moved = 0;

        *link = cn;
    }

    cn->plan = plan;
    cn->pack = pack;
    cn->cas = cas;
    cn->instance = instance;

    if (cn->moved != ngx_time()) {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&cache->sh->lru, &cn->queue);
        cn->moved = ngx_time();
    }

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * Forgets a key's entry if it still holds "cas" (0: whatever it holds):
 * a token that proved stale, or an item that is gone.  A newer entry
 * stored meanwhile by another worker stays.
 */

void
ngx_http_credit_cache_forget(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t cas)
{
    ngx_http_credit_cache_node_t  *cn;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = *ngx_http_credit_cache_find(cache, key, len,
                                     ngx_crc32_short(key, len));

    if (cn && (cas == 0 || cn->cas == cas)) {
        ngx_http_credit_cache_evict(cache, cn);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}
