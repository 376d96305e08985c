
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


typedef struct {
    ngx_rbtree_node_t            node;
    ngx_queue_t                  queue;       /* LRU */
    int64_t                      plan;
    int64_t                      pack;
    uint64_t                     cas;
    uint64_t                     instance;
    u_short                      len;
    u_char                       key[1];
} ngx_http_credit_cache_node_t;


typedef struct {
    ngx_rbtree_t                 tree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  lru;
} ngx_http_credit_cache_sh_t;


struct ngx_http_credit_cache_s {
    ngx_http_credit_cache_sh_t  *sh;
    ngx_slab_pool_t             *shpool;
};


static void ngx_http_credit_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_credit_cache_node_t *ngx_http_credit_cache_find(
    ngx_http_credit_cache_t *cache, u_char *key, size_t len, uint32_t hash);


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

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_credit_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(cache->sh, sizeof(ngx_http_credit_cache_sh_t));

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->tree, &cache->sh->sentinel,
                    ngx_http_credit_cache_insert);
    ngx_queue_init(&cache->sh->lru);

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


static void
ngx_http_credit_cache_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_credit_cache_node_t   *n, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */
            n = (ngx_http_credit_cache_node_t *) node;
            t = (ngx_http_credit_cache_node_t *) temp;

            p = (ngx_memn2cmp(n->key, t->key, n->len, t->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_credit_cache_node_t *
ngx_http_credit_cache_find(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_credit_cache_node_t  *cn;

    node = cache->sh->tree.root;
    sentinel = cache->sh->tree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        cn = (ngx_http_credit_cache_node_t *) node;

        rc = ngx_memn2cmp(key, cn->key, len, cn->len);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
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

    cn = ngx_http_credit_cache_find(cache, key, len,
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
    uint32_t                       hash;
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_http_credit_cache_node_t  *cn, *old;

    hash = ngx_crc32_short(key, len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_credit_cache_find(cache, key, len, hash);

    if (cn) {
        if (cn->instance == instance && cn->cas > cas) {
            goto done;
        }

        ngx_queue_remove(&cn->queue);

    } else {
        cn = ngx_slab_alloc_locked(cache->shpool,
                                   offsetof(ngx_http_credit_cache_node_t, key)
                                   + len);

        /* full: forget the least recently used entries and try again */

        for (i = 0; cn == NULL && i < 16 && !ngx_queue_empty(&cache->sh->lru);
             i++)
        {
            q = ngx_queue_last(&cache->sh->lru);
            old = ngx_queue_data(q, ngx_http_credit_cache_node_t, queue);

            ngx_queue_remove(q);
            ngx_rbtree_delete(&cache->sh->tree, &old->node);
            ngx_slab_free_locked(cache->shpool, old);

            cn = ngx_slab_alloc_locked(cache->shpool,
                                 offsetof(ngx_http_credit_cache_node_t, key)
                                 + len);
        }

        if (cn == NULL) {
            goto done;
        }

        cn->node.key = hash;
        cn->len = (u_short) len;
        ngx_memcpy(cn->key, key, len);

        ngx_rbtree_insert(&cache->sh->tree, &cn->node);
    }

    cn->plan = plan;
    cn->pack = pack;
    cn->cas = cas;
    cn->instance = instance;

    ngx_queue_insert_head(&cache->sh->lru, &cn->queue);

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

    cn = ngx_http_credit_cache_find(cache, key, len,
                                    ngx_crc32_short(key, len));

    if (cn && (cas == 0 || cn->cas == cas)) {
        ngx_queue_remove(&cn->queue);
        ngx_rbtree_delete(&cache->sh->tree, &cn->node);
        ngx_slab_free_locked(cache->shpool, cn);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}
