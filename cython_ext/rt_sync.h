/* Small portable helpers for the ring buffer: atomics (GCC/Clang builtins) and a
 * mutex + condition variable so a reader can sleep until the writer has published a sample
 * count, without holding the GIL. */
#ifndef RT_SYNC_H
#define RT_SYNC_H
#include <pthread.h>
#include <time.h>
#include <errno.h>
#include <limits.h>

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    long long target;   /* the count a waiting reader needs (LLONG_MAX when nobody waits) */
} rt_sync_t;

static inline long long rt_load(const long long *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void rt_store(long long *p, long long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void rt_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void rt_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline int rt_load_int(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void rt_store_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline void rt_sync_init(rt_sync_t *s) {
    pthread_condattr_t attr;
    s->target = LLONG_MAX;
    pthread_mutex_init(&s->mutex, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &attr);
    pthread_condattr_destroy(&attr);
}

static inline void rt_sync_destroy(rt_sync_t *s) {
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mutex);
}

/* Wake the reader only if what it waits for is there: a broadcast per chunk would wake it for
 * every write. Both sides use sequentially consistent operations (Dekker style): either the
 * writer sees the new target or the reader sees the new count before it sleeps. */
static inline void rt_sync_notify_if(rt_sync_t *s, const long long *counter) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < __atomic_load_n(&s->target, __ATOMIC_SEQ_CST))
        return;
    pthread_mutex_lock(&s->mutex);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mutex);
}

static inline void rt_sync_notify(rt_sync_t *s) {
    pthread_mutex_lock(&s->mutex);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mutex);
}

/* Wait until *counter >= target, *closed != 0, or timeout_s passes. Returns 1 if the target
 * was reached. */
static inline int rt_sync_wait(rt_sync_t *s, const long long *counter, long long target,
                               const int *closed, double timeout_s) {
    struct timespec deadline;
    int reached;
    if (rt_load(counter) >= target) return 1;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_s < 0) timeout_s = 0;
    deadline.tv_sec += (time_t)timeout_s;
    deadline.tv_nsec += (long)((timeout_s - (double)(time_t)timeout_s) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec += 1; deadline.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&s->mutex);
    __atomic_store_n(&s->target, target, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    while (!(reached = (rt_load(counter) >= target)) && !rt_load_int(closed)) {
        if (pthread_cond_timedwait(&s->cond, &s->mutex, &deadline) == ETIMEDOUT) {
            reached = rt_load(counter) >= target;
            break;
        }
    }
    __atomic_store_n(&s->target, LLONG_MAX, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&s->mutex);
    return reached;
}
#endif
