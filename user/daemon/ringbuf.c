// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* Follows the kernel's ring-buffer ABI (kernel/bpf/ringbuf.c): one
 * read-write page holding the consumer position, then a read-only page with
 * the producer position, then the data area mapped twice in a row so a
 * record that wraps is contiguous. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include "common/log.h"
#include "daemon/ringbuf.h"

struct vg_ringbuf {
	int map_fd, epfd;
	size_t page, size;
	unsigned long *consumer_pos;
	unsigned long *producer_pos;
	__u8 *data;
	unsigned long pending; /* position after the last record handed out */
};

struct vg_ringbuf *vg_ringbuf_open(int map_fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct epoll_event ev = { .events = EPOLLIN };
	struct vg_ringbuf *rb = calloc(1, sizeof(*rb));
	void *p;

	if (!rb)
		return NULL;
	rb->map_fd = map_fd;
	rb->epfd = -1;
	rb->page = (size_t)sysconf(_SC_PAGESIZE);
	if (bpf_obj_get_info_by_fd(map_fd, &info, &len) || info.type != BPF_MAP_TYPE_RINGBUF) {
		pr_warn("the events map is not a ring buffer\n");
		goto fail;
	}
	rb->size = info.max_entries;
	p = mmap(NULL, rb->page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (p == MAP_FAILED)
		goto fail_errno;
	rb->consumer_pos = p;
	p = mmap(NULL, rb->page + 2 * rb->size, PROT_READ, MAP_SHARED, map_fd, (off_t)rb->page);
	if (p == MAP_FAILED)
		goto fail_errno;
	rb->producer_pos = p;
	rb->data = (__u8 *)p + rb->page;
	rb->pending = __atomic_load_n(rb->consumer_pos, __ATOMIC_ACQUIRE);
	rb->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (rb->epfd < 0 || epoll_ctl(rb->epfd, EPOLL_CTL_ADD, map_fd, &ev))
		goto fail_errno;
	return rb;
fail_errno:
	pr_warn("mapping the event ring buffer failed: %s\n", strerror(errno));
fail:
	vg_ringbuf_close(rb);
	return NULL;
}

void vg_ringbuf_close(struct vg_ringbuf *rb)
{
	if (!rb)
		return;
	if (rb->epfd >= 0)
		close(rb->epfd);
	if (rb->consumer_pos)
		munmap(rb->consumer_pos, rb->page);
	if (rb->producer_pos)
		munmap(rb->producer_pos, rb->page + 2 * rb->size);
	free(rb);
}

int vg_ringbuf_wait(struct vg_ringbuf *rb, int timeout_ms)
{
	struct epoll_event ev;
	int n = epoll_wait(rb->epfd, &ev, 1, timeout_ms);

	return n < 0 && errno != EINTR ? -errno : 0;
}

long vg_ringbuf_peek(struct vg_ringbuf *rb, vg_ringbuf_fn fn, void *ctx, long max)
{
	unsigned long cons = __atomic_load_n(rb->consumer_pos, __ATOMIC_ACQUIRE);
	unsigned long prod = __atomic_load_n(rb->producer_pos, __ATOMIC_ACQUIRE);
	long n = 0;

	while (cons < prod && n < max) {
		__u32 *hdr = (__u32 *)(rb->data + (cons & (rb->size - 1)));
		__u32 len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);

		if (len & BPF_RINGBUF_BUSY_BIT)
			break; /* reserved, not yet submitted: later records wait too */
		cons += ((len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) +
			 BPF_RINGBUF_HDR_SZ + 7) & ~7ul;
		if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
			fn(ctx, (__u8 *)hdr + BPF_RINGBUF_HDR_SZ, len);
			n++;
		}
	}
	rb->pending = cons;
	return n;
}

unsigned long vg_ringbuf_backlog(struct vg_ringbuf *rb)
{
	return __atomic_load_n(rb->producer_pos, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(rb->consumer_pos, __ATOMIC_ACQUIRE);
}

void vg_ringbuf_release(struct vg_ringbuf *rb)
{
	__atomic_store_n(rb->consumer_pos, rb->pending, __ATOMIC_RELEASE);
}
