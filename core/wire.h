#ifndef MM_WIRE_H
#define MM_WIRE_H

/* The framing between the core and a plugin's helper process (isolate.c,
 * helper.c): messages of a type and a payload of fields, over a stream
 * socket.  Both ends are the same binary, so numbers go in host order.
 * Everything read is bounded: a helper is not trusted to keep to the
 * protocol. */
#include <stddef.h>
#include <stdint.h>

/* The longest string a helper may hand back (a receipt, a report): a
 * longer one is a protocol error that ends the helper. */
#define MM_WIRE_STRING_MAX (16u * 1024 * 1024)
/* A message: one such string plus the fixed fields around it. */
#define MM_WIRE_MESSAGE_MAX (MM_WIRE_STRING_MAX + 64u * 1024)

/* A message being built; the header is filled by mm_wire_send.  failed:
 * out of memory on the way (the message is not sent). */
struct mm_wire_buf {
	char *data;
	size_t len, cap;
	int failed;
};

void mm_wire_put_u32(struct mm_wire_buf *b, uint32_t v);
/* NULL is sent as NULL. */
void mm_wire_put_str(struct mm_wire_buf *b, const char *s);
void mm_wire_put_bytes(struct mm_wire_buf *b, const void *p, size_t n);
void mm_wire_buf_free(struct mm_wire_buf *b);

/* Sends one message (type, the fields of b; b may be NULL for none).
 * 0 on success, -1 when the peer is gone or b failed.  Never raises
 * SIGPIPE. */
int mm_wire_send(int fd, uint32_t type, struct mm_wire_buf *b);

enum mm_wire_status {
	MM_WIRE_OK = 0,
	MM_WIRE_EOF,        /* the peer closed its end (or the read failed) */
	MM_WIRE_TIMEOUT,    /* the deadline passed */
	MM_WIRE_TOO_BIG,    /* the peer announced more than max bytes */
	MM_WIRE_BAD         /* (for callers) a message that does not hold what
	                       its type needs */
};

/* One received message; data is malloc'd (free it). */
struct mm_wire_msg {
	uint32_t type;
	char *data;
	size_t len;
};

/* Receives one message of at most max payload bytes, until deadline
 * (monotonic ms, as mm_host_mono_ms; < 0: no deadline). */
enum mm_wire_status mm_wire_recv(int fd, int64_t deadline, size_t max, struct mm_wire_msg *m);

/* Reading the fields of a message, in the order they were put; bad is set
 * (and stays set) when the payload does not hold them. */
struct mm_wire_rd {
	const char *p;
	size_t left;
	int bad;
};

void mm_wire_rd_init(struct mm_wire_rd *rd, const struct mm_wire_msg *m);
uint32_t mm_wire_get_u32(struct mm_wire_rd *rd);
/* A malloc'd, NUL-terminated copy, or NULL (sent as NULL, or bad). */
char *mm_wire_get_str(struct mm_wire_rd *rd);
void mm_wire_get_bytes(struct mm_wire_rd *rd, void *out, size_t n);

#endif
