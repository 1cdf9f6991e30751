#include "wire.h"

#include "host.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HEADER_SIZE 8
#define NULL_STRING UINT32_MAX

/* Room for n more bytes; the header's place comes first. */
static int reserve(struct mm_wire_buf *b, size_t n)
{
	size_t want, cap;
	char *grown;

	if (b->failed)
		return -1;
	if (b->len == 0)
		b->len = HEADER_SIZE;
	want = b->len + n;
	if (want <= b->cap)
		return 0;
	cap = 2 * b->cap > want ? 2 * b->cap : want;
	if (cap < 256)
		cap = 256;
	grown = realloc(b->data, cap);
	if (!grown) {
		b->failed = 1;
		return -1;
	}
	b->data = grown;
	b->cap = cap;
	return 0;
}

void mm_wire_put_bytes(struct mm_wire_buf *b, const void *p, size_t n)
{
	if (reserve(b, n) != 0)
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void mm_wire_put_u32(struct mm_wire_buf *b, uint32_t v)
{
	mm_wire_put_bytes(b, &v, sizeof(v));
}

void mm_wire_put_str(struct mm_wire_buf *b, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	/* Longer than the other end takes: it would end the helper anyway. */
	if (len >= NULL_STRING) {
		b->failed = 1;
		return;
	}
	mm_wire_put_u32(b, s ? (uint32_t)len : NULL_STRING);
	if (s)
		mm_wire_put_bytes(b, s, len);
}

void mm_wire_buf_free(struct mm_wire_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t sent = send(fd, p, n, MSG_NOSIGNAL);

		if (sent < 0 && errno == EINTR)
			continue;
		if (sent <= 0)
			return -1;
		p += sent;
		n -= (size_t)sent;
	}
	return 0;
}

int mm_wire_send(int fd, uint32_t type, struct mm_wire_buf *b)
{
	struct mm_wire_buf empty = { 0 };
	uint32_t header[2];
	int rc;

	if (!b)
		b = &empty;
	if (reserve(b, 0) != 0) {
		mm_wire_buf_free(&empty);
		return -1;
	}
	header[0] = type;
	header[1] = (uint32_t)(b->len - HEADER_SIZE);
	memcpy(b->data, header, sizeof(header));
	rc = send_all(fd, b->data, b->len);
	mm_wire_buf_free(&empty);
	return rc;
}

/* Reads n bytes, waiting at most until deadline. */
static enum mm_wire_status recv_all(int fd, char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait = -1, ready;
		ssize_t got;

		if (deadline >= 0) {
			int64_t left = deadline - mm_host_mono_ms(NULL);

			if (left <= 0)
				return MM_WIRE_TIMEOUT;
			wait = left > 60000 ? 60000 : (int)left;
		}
		ready = poll(&pfd, 1, wait);
		if (ready < 0 && errno != EINTR)
			return MM_WIRE_EOF;
		if (ready <= 0)
			continue;
		got = recv(fd, p, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return MM_WIRE_EOF;
		p += got;
		n -= (size_t)got;
	}
	return MM_WIRE_OK;
}

enum mm_wire_status mm_wire_recv(int fd, int64_t deadline, size_t max, struct mm_wire_msg *m)
{
	uint32_t header[2];
	enum mm_wire_status st;

	memset(m, 0, sizeof(*m));
	if ((st = recv_all(fd, (char *)header, sizeof(header), deadline)) != MM_WIRE_OK)
		return st;
	if (header[1] > max)
		return MM_WIRE_TOO_BIG;
	m->type = header[0];
	m->len = header[1];
	m->data = malloc(m->len + 1);
	if (!m->data)
		return MM_WIRE_TOO_BIG;
	st = recv_all(fd, m->data, m->len, deadline);
	if (st != MM_WIRE_OK) {
		free(m->data);
		m->data = NULL;
	}
	return st;
}

void mm_wire_rd_init(struct mm_wire_rd *rd, const struct mm_wire_msg *m)
{
	rd->p = m->data;
	rd->left = m->len;
	rd->bad = 0;
}

void mm_wire_get_bytes(struct mm_wire_rd *rd, void *out, size_t n)
{
	if (rd->bad || rd->left < n) {
		rd->bad = 1;
		memset(out, 0, n);
		return;
	}
	memcpy(out, rd->p, n);
	rd->p += n;
	rd->left -= n;
}

uint32_t mm_wire_get_u32(struct mm_wire_rd *rd)
{
	uint32_t v;

	mm_wire_get_bytes(rd, &v, sizeof(v));
	return v;
}

char *mm_wire_get_str(struct mm_wire_rd *rd)
{
	uint32_t len = mm_wire_get_u32(rd);
	char *s;

	if (rd->bad || len == NULL_STRING)
		return NULL;
	if (len > MM_WIRE_STRING_MAX || rd->left < len) {
		rd->bad = 1;
		return NULL;
	}
	s = malloc((size_t)len + 1);
	if (!s) {
		rd->bad = 1;
		return NULL;
	}
	memcpy(s, rd->p, len);
	s[len] = '\0';
	rd->p += len;
	rd->left -= len;
	return s;
}
