/* common/sandbox/local/sbx_netns.h: fresh network namespaces made ahead of time.
 *
 * A new network namespace is the most expensive part of a sandbox's
 * clone() (about 0.45 ms of the 0.5 ms here). A helper thread of the
 * provider keeps a few fresh ones ready, each with only lo, already up;
 * create() takes one, enters it on the calling thread just around clone()
 * (setns affects only that thread; the child inherits it) and closes its
 * fd, so each namespace serves exactly one sandbox and dies with it. The
 * namespaces are owned by the worker's user namespace, so nothing inside
 * a sandbox has any capability over its network (with CLONE_NEWNET its own
 * root did, until the commands dropped every capability).
 *
 * Making a network namespace needs CAP_SYS_ADMIN: without it (a worker that
 * is not root) there is no pool and create() uses CLONE_NEWNET.
 * Thread: every function may be called from any thread. */
#ifndef SF_SBX_NETNS_H
#define SF_SBX_NETNS_H

struct sf_sbx_netns_pool;

/* Start a pool that keeps 'size' namespaces ready. Returns NULL when this
 * process may not make network namespaces (then it sets *err to the errno)
 * or cannot start the thread. Free with sf_sbx_netns_pool_free. */
struct sf_sbx_netns_pool *sf_sbx_netns_pool_new(int size, int *err);

/* Free the pool: stops the helper, closes the unused namespaces. NULL ok. */
void sf_sbx_netns_pool_free(struct sf_sbx_netns_pool *p);

/* Take a fresh namespace: an fd the caller owns, never handed out again.
 * -EAGAIN when none is ready (or in a forked child of the pool's process):
 * the caller then makes its own. */
int sf_sbx_netns_pool_take(struct sf_sbx_netns_pool *p);

/* Move the calling thread into the namespace 'nsfd'. Returns an fd of the
 * thread's previous namespace for sf_sbx_netns_leave, or -errno (the
 * thread did not move). */
int sf_sbx_netns_enter(int nsfd);

/* Move the calling thread back into 'prev' and close it. A thread left in
 * a sandbox's namespace would open the worker's own sockets there, so a
 * failure aborts the process (it needs CAP_SYS_ADMIN, which enter had). */
void sf_sbx_netns_leave(int prev);

/* Bring `lo` up in the calling thread's network namespace. Only socket(2)
 * and ioctl(2): safe in the sandbox child between clone and exec. 0 or
 * -errno. */
int sf_sbx_netns_lo_up(void);

#endif
