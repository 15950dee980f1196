// SPDX-License-Identifier: Apache-2.0
/*
 * ingest_load: load generator of the collector ingest benchmark (bench stage
 * `ingest`, docs/PERFORMANCE.md "Collector ingest").
 *
 *   ingest_load record --listen PORT --out FILE [--duration S]
 *	Accept one agent (stallwatch-agent --collector 127.0.0.1:PORT) and
 *	save its stream, frame for frame, until it hangs up or S seconds.
 *   ingest_load replay --in FILE --collector HOST:PORT --connections N
 *		       --duration S [--rate R]
 *	N connections, each a distinct agent, send the recorded frames over
 *	and over: as fast as the collector takes them, or R batches a second
 *	per connection. Prints one JSON line of what was sent.
 *	--no-incidents strips the incidents: what the rest costs alone.
 *	--linger keeps the connections open after the last batch until stdin
 *	closes, for reading what the collector holds while the agents live.
 *   ingest_load info --in FILE
 *	The same counts for the recording itself.
 *
 * Replay sends what a real agent sent, not a synthetic batch: every frame of
 * the recording is decoded once at setup, and per connection rewritten
 * (Hello.agent_id and hostname, every pid and tid) and encoded again,
 * compressed when the agent had compressed it. What changes per frame sent
 * is done without encoding again, so that the generator costs far less than
 * the collector it feeds on the same two cores:
 *   - Batch.seq, renumbered per connection: protobuf merges a message given
 *     in pieces, so the seq field is a prefix before the rest, and for a
 *     zlib frame that prefix is a stored deflate block in front of the
 *     rest's own deflate blocks (RFC 1951 3.2.4), the checksum combined
 *     with adler32_combine();
 *   - incidents, which the collector folds once per (agent, pid, tid,
 *     start_ns): every pass over the recording (an epoch) shifts their
 *     start_ns, and only the frames that carry incidents are encoded again,
 *     once per epoch.
 *
 * "Samples": see count_batch(). Nothing here needs root.
 */
#define _GNU_SOURCE
#include "frame.h"
#include "stallwatch.pb-c.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PROG "ingest_load"
/* a connection's output is topped up to this before each write(): several
 * frames per syscall, as an agent with a backlog would send them */
#define OUT_FILL (64u * 1024)
/* epochs are this far apart in the agent's clock: more than any recording */
#define EPOCH_NS (3600ull * 1000000000ull)

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v < min || v > max)
		die("%s '%s': expected a number from %llu to %llu", opt, s,
		    (unsigned long long)min, (unsigned long long)max);
	return v;
}

/* ---- what a batch holds ---- */

struct counts {
	uint64_t frames, bytes, samples, loops, buckets, iterations, incidents, gil, gil_threads,
	    processes, health;
};

/*
 * A sample is one number the collector folds into what it exports:
 *   LoopSummary: iterations, busy_ns, idle_ns, max_busy_ns (4), rss_bytes
 *	when sent, oncpu/offcpu/runq when cpu_split (3), and one per
 *	histogram bucket sent (each is added to a bucket counter);
 *   GilSummary: samples, held_samples, switches (3), and per GilThread its
 *	wait, hold, acquisitions, drop_requests, forced_switches (5);
 *   Incident, MemoryGrowth: 1 each (one event counted, one gauge set);
 *   AgentHealth: one per counter.
 * ProcessInfo and Hello are identity, not samples.
 */
static void count_batch(const Stallwatch__V1__Batch *b, struct counts *c)
{
	for (size_t i = 0; i < b->n_loops; i++) {
		const Stallwatch__V1__LoopSummary *ls = b->loops[i];

		c->samples += 4 + (ls->rss_bytes ? 1 : 0) + (ls->cpu_split ? 3 : 0) + ls->n_buckets;
		c->buckets += ls->n_buckets;
		c->iterations += ls->iterations;
	}
	c->loops += b->n_loops;
	for (size_t i = 0; i < b->n_gil; i++) {
		c->samples += 3 + 5 * b->gil[i]->n_threads;
		c->gil_threads += b->gil[i]->n_threads;
	}
	c->gil += b->n_gil;
	c->samples += b->n_incidents + b->n_memory;
	c->incidents += b->n_incidents;
	c->processes += b->n_processes;
	if (b->health) {
		c->samples += b->health->n_counters;
		c->health += b->health->n_counters;
	}
}

static void add_counts(struct counts *to, const struct counts *c)
{
	to->frames += c->frames;
	to->bytes += c->bytes;
	to->samples += c->samples;
	to->loops += c->loops;
	to->buckets += c->buckets;
	to->iterations += c->iterations;
	to->incidents += c->incidents;
	to->gil += c->gil;
	to->gil_threads += c->gil_threads;
	to->processes += c->processes;
	to->health += c->health;
}

static void print_counts(const char *event, const struct counts *c)
{
	printf("\"event\":\"%s\",\"frames\":%llu,\"bytes\":%llu,\"samples\":%llu,\"loops\":%llu,"
	       "\"buckets\":%llu,\"iterations\":%llu,\"incidents\":%llu,\"gil\":%llu,"
	       "\"gil_threads\":%llu,\"processes\":%llu,\"health\":%llu",
	       event, (unsigned long long)c->frames, (unsigned long long)c->bytes,
	       (unsigned long long)c->samples, (unsigned long long)c->loops,
	       (unsigned long long)c->buckets, (unsigned long long)c->iterations,
	       (unsigned long long)c->incidents, (unsigned long long)c->gil,
	       (unsigned long long)c->gil_threads, (unsigned long long)c->processes,
	       (unsigned long long)c->health);
}

/* ---- the recording ---- */

struct rec_frame {
	uint8_t *msg; /* the serialized Batch, inflated */
	size_t len;
	bool zlib;    /* the agent compressed it */
	bool has_incidents;
	struct counts counts;
};

struct recording {
	struct rec_frame *f;
	size_t n;
	uint32_t *ids; /* every pid and tid seen, sorted: remapped per connection */
	size_t nids;
};

static void ids_add(struct recording *r, size_t *cap, uint32_t id)
{
	if (!id)
		return;
	for (size_t i = 0; i < r->nids; i++)
		if (r->ids[i] == id)
			return;
	if (r->nids == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		r->ids = realloc(r->ids, *cap * sizeof(*r->ids));
		if (!r->ids)
			die("out of memory");
	}
	r->ids[r->nids++] = id;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void collect_ids(struct recording *r, size_t *cap, const Stallwatch__V1__Batch *b)
{
	for (size_t i = 0; i < b->n_processes; i++)
		ids_add(r, cap, b->processes[i]->pid);
	for (size_t i = 0; i < b->n_loops; i++) {
		ids_add(r, cap, b->loops[i]->pid);
		ids_add(r, cap, b->loops[i]->tid);
	}
	for (size_t i = 0; i < b->n_incidents; i++) {
		ids_add(r, cap, b->incidents[i]->pid);
		ids_add(r, cap, b->incidents[i]->tid);
		ids_add(r, cap, b->incidents[i]->gil_holder_tid);
	}
	for (size_t i = 0; i < b->n_memory; i++)
		ids_add(r, cap, b->memory[i]->pid);
	for (size_t i = 0; i < b->n_gil; i++) {
		ids_add(r, cap, b->gil[i]->pid);
		for (size_t j = 0; j < b->gil[i]->n_threads; j++)
			ids_add(r, cap, b->gil[i]->threads[j]->tid);
	}
}

/* no_incidents: the frames as if no loop had blocked (bench: what incidents
 * cost, apart from the rest) */
static void load_recording(const char *path, struct recording *r, bool no_incidents)
{
	size_t cap = 0, fcap = 0, off = 0, len = 0, idcap = 0;
	uint8_t *buf = NULL;
	FILE *f;

	f = fopen(path, "rb");
	if (!f)
		die("cannot open recording %s: %s; record one with '" PROG
		    " record --listen PORT --out %s'",
		    path, strerror(errno), path);
	for (;;) {
		size_t n;

		if (len == cap) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			if (!buf)
				die("out of memory");
		}
		n = fread(buf + len, 1, cap - len, f);
		if (!n)
			break;
		len += n;
	}
	fclose(f);
	memset(r, 0, sizeof(*r));
	while (off < len) {
		struct sw_frame_hdr h;
		Stallwatch__V1__Batch *b;
		const uint8_t *msg;
		struct rec_frame *rf;
		size_t mlen;
		bool owned;

		if (len - off < SW_FRAME_HDR_LEN || sw_frame_parse_hdr(buf + off, &h) ||
		    len - off - SW_FRAME_HDR_LEN < h.len)
			die("%s: bad or truncated frame at byte %zu; record it again", path, off);
		if (sw_frame_payload(&h, buf + off + SW_FRAME_HDR_LEN, &msg, &mlen, &owned))
			die("%s: frame at byte %zu does not inflate; record it again", path, off);
		b = stallwatch__v1__batch__unpack(NULL, mlen, msg);
		if (!b)
			die("%s: frame at byte %zu is not a stallwatch.v1.Batch", path, off);
		if (r->n == fcap) {
			fcap = fcap ? fcap * 2 : 64;
			r->f = realloc(r->f, fcap * sizeof(*r->f));
			if (!r->f)
				die("out of memory");
		}
		rf = &r->f[r->n++];
		memset(rf, 0, sizeof(*rf));
		rf->msg = malloc(mlen ? mlen : 1);
		if (!rf->msg)
			die("out of memory");
		memcpy(rf->msg, msg, mlen);
		rf->len = mlen;
		rf->zlib = h.flags & SW_FRAME_F_ZLIB;
		{
			size_t ni = b->n_incidents;

			if (no_incidents)
				b->n_incidents = 0;
			rf->has_incidents = b->n_incidents > 0;
			rf->counts.frames = 1;
			count_batch(b, &rf->counts);
			collect_ids(r, &idcap, b);
			b->n_incidents = ni; /* free_unpacked frees them */
		}
		if (owned)
			free((void *)msg);
		stallwatch__v1__batch__free_unpacked(b, NULL);
		off += SW_FRAME_HDR_LEN + h.len;
	}
	free(buf);
	if (r->n < 2)
		die("%s: %zu frames; a recording needs the Hello batch and at least one more", path,
		    r->n);
	qsort(r->ids, r->nids, sizeof(*r->ids), cmp_u32);
}

/* ---- per connection encoding ---- */

struct enc_frame {
	uint8_t *body; /* zlib: raw deflate of the rest; else the rest itself */
	size_t body_len;
	size_t raw_len; /* the rest, uncompressed */
	uint32_t adler; /* of the rest */
	bool zlib;
};

struct conn {
	int fd;
	uint32_t idx;
	struct enc_frame *ef; /* one per recorded frame */
	uint64_t seq;
	uint64_t epoch;
	size_t next;  /* recorded frame to send next */
	uint64_t due; /* rate mode: when the next frame is due */
	uint8_t *out;
	size_t olen, ooff, ocap;
	bool blocked;
	struct counts sent; /* frames fully queued */
};

struct replay {
	const struct recording *rec;
	struct conn *c;
	size_t nconns;
	char host_prefix[32];
	bool no_incidents;
};

static uint32_t map_id(const struct recording *r, uint32_t conn, uint32_t id)
{
	size_t lo = 0, hi = r->nids;

	if (!id)
		return 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (r->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* distinct per connection and never 0; a connection's ids stay in the
	 * order of the recording's, so a main thread's tid is still its pid */
	return 1000 + conn * (uint32_t)r->nids + (uint32_t)lo;
}

static void rewrite(const struct replay *rp, uint32_t conn, uint64_t epoch,
		    Stallwatch__V1__Batch *b)
{
	const struct recording *r = rp->rec;

	b->seq = 0; /* sent as a prefix, see the top of this file */
	for (size_t i = 0; i < b->n_processes; i++)
		b->processes[i]->pid = map_id(r, conn, b->processes[i]->pid);
	for (size_t i = 0; i < b->n_loops; i++) {
		b->loops[i]->pid = map_id(r, conn, b->loops[i]->pid);
		b->loops[i]->tid = map_id(r, conn, b->loops[i]->tid);
	}
	for (size_t i = 0; i < b->n_incidents; i++) {
		Stallwatch__V1__Incident *in = b->incidents[i];

		in->pid = map_id(r, conn, in->pid);
		in->tid = map_id(r, conn, in->tid);
		in->gil_holder_tid = map_id(r, conn, in->gil_holder_tid);
		in->start_ns += epoch * EPOCH_NS;
	}
	for (size_t i = 0; i < b->n_memory; i++)
		b->memory[i]->pid = map_id(r, conn, b->memory[i]->pid);
	for (size_t i = 0; i < b->n_gil; i++) {
		b->gil[i]->pid = map_id(r, conn, b->gil[i]->pid);
		for (size_t j = 0; j < b->gil[i]->n_threads; j++)
			b->gil[i]->threads[j]->tid = map_id(r, conn, b->gil[i]->threads[j]->tid);
	}
}

static void encode_frame(const struct replay *rp, uint32_t conn, uint64_t epoch, size_t i,
			 struct enc_frame *ef)
{
	const struct rec_frame *rf = &rp->rec->f[i];
	char agent_id[64], host[48];
	Stallwatch__V1__Batch *b;
	char *old_id = NULL, *old_host = NULL;
	size_t len, n_incidents;
	uint8_t *raw;

	b = stallwatch__v1__batch__unpack(NULL, rf->len, rf->msg);
	if (!b)
		die("cannot decode a recorded frame again");
	rewrite(rp, conn, epoch, b);
	n_incidents = b->n_incidents;
	if (rp->no_incidents)
		b->n_incidents = 0;
	if (b->hello) {
		snprintf(host, sizeof(host), "%s-%05u", rp->host_prefix, conn);
		snprintf(agent_id, sizeof(agent_id), "%s:%u", host, 1000 + conn);
		old_id = b->hello->agent_id;
		old_host = b->hello->hostname;
		b->hello->agent_id = agent_id;
		b->hello->hostname = host;
	}
	len = stallwatch__v1__batch__get_packed_size(b);
	raw = malloc(len ? len : 1);
	if (!raw)
		die("out of memory");
	stallwatch__v1__batch__pack(b, raw);
	b->n_incidents = n_incidents;
	if (b->hello) {
		b->hello->agent_id = old_id;
		b->hello->hostname = old_host;
	}
	stallwatch__v1__batch__free_unpacked(b, NULL);

	free(ef->body);
	memset(ef, 0, sizeof(*ef));
	ef->raw_len = len;
	ef->zlib = rf->zlib;
	if (!ef->zlib) {
		ef->body = raw;
		ef->body_len = len;
		return;
	}
	{
		/* raw deflate (no zlib header): it follows our stored block */
		z_stream zs = {0};
		uLong bound;

		if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			die("deflateInit2 failed");
		bound = deflateBound(&zs, len);
		ef->body = malloc(bound);
		if (!ef->body)
			die("out of memory");
		zs.next_in = raw;
		zs.avail_in = (uInt)len;
		zs.next_out = ef->body;
		zs.avail_out = (uInt)bound;
		if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
			die("deflate failed");
		ef->body_len = zs.total_out;
		deflateEnd(&zs);
		ef->adler = (uint32_t)adler32(adler32(0, NULL, 0), raw, (uInt)len);
		free(raw);
	}
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static void out_reserve(struct conn *c, size_t need)
{
	if (c->ooff && c->ooff == c->olen)
		c->ooff = c->olen = 0;
	if (c->olen + need <= c->ocap)
		return;
	if (c->ooff) {
		memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	if (c->olen + need > c->ocap) {
		c->ocap = c->olen + need + OUT_FILL;
		c->out = realloc(c->out, c->ocap);
		if (!c->out)
			die("out of memory");
	}
}

/* Appends the connection's next frame to its output. */
static void queue_frame(struct replay *rp, struct conn *c)
{
	const struct recording *r = rp->rec;
	struct enc_frame *ef = &c->ef[c->next];
	uint8_t seqf[11], *p;
	size_t seql, plen;

	c->seq++;
	seqf[0] = 0x08; /* field 1 (seq), varint */
	seql = 1 + put_varint(seqf + 1, c->seq);
	if (ef->zlib)
		/* raw len, zlib header, stored block (hdr, LEN, NLEN, seq), deflate, adler */
		plen = 4 + 2 + 5 + seql + ef->body_len + 4;
	else
		plen = seql + ef->body_len;
	out_reserve(c, SW_FRAME_HDR_LEN + plen);
	p = c->out + c->olen;
	p[0] = 'S';
	p[1] = 'W';
	p[2] = SW_FRAME_VERSION;
	p[3] = ef->zlib ? SW_FRAME_F_ZLIB : 0;
	put_be32(p + 4, (uint32_t)plen);
	p += SW_FRAME_HDR_LEN;
	if (ef->zlib) {
		uint32_t ad;

		put_be32(p, (uint32_t)(seql + ef->raw_len));
		p += 4;
		*p++ = 0x78; /* deflate, 32 KiB window, level "fastest": 0x7801 % 31 == 0 */
		*p++ = 0x01;
		*p++ = 0x00; /* BFINAL 0, BTYPE 00 (stored), padded to the byte */
		*p++ = (uint8_t)seql;
		*p++ = 0;
		*p++ = (uint8_t)~seql;
		*p++ = 0xff;
		memcpy(p, seqf, seql);
		p += seql;
		memcpy(p, ef->body, ef->body_len);
		p += ef->body_len;
		ad = (uint32_t)adler32_combine(adler32(adler32(0, NULL, 0), seqf, (uInt)seql),
					       ef->adler, (z_off_t)ef->raw_len);
		put_be32(p, ad);
	} else {
		memcpy(p, seqf, seql);
		memcpy(p + seql, ef->body, ef->body_len);
	}
	c->olen += SW_FRAME_HDR_LEN + plen;
	add_counts(&c->sent, &r->f[c->next].counts); /* its bytes are 0 */
	c->sent.bytes += SW_FRAME_HDR_LEN + plen;

	/* the Hello batch goes once per connection; then frames 1.. over and
	 * over, a new epoch of incidents each time round */
	if (++c->next == r->n) {
		c->next = 1;
		c->epoch++;
		for (size_t i = 1; i < r->n; i++)
			if (r->f[i].has_incidents)
				encode_frame(rp, c->idx, c->epoch, i, &c->ef[i]);
	}
}

/* 1: all written, 0: would block, -1: the collector hung up */
static int flush_conn(struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = write(c->fd, c->out + c->ooff, c->olen - c->ooff);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->ooff += (size_t)n;
	}
	return 1;
}

static void raise_nofile(size_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur < need)
		die("%zu connections need %zu file descriptors, the hard limit is %llu: raise it "
		    "(ulimit -Hn) or use fewer --connections",
		    need - 16, need, (unsigned long long)rl.rlim_max);
}

static int connect_to(const struct addrinfo *ai)
{
	int fd, one = 1;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"in", required_argument, NULL, 'i'},
	    {"collector", required_argument, NULL, 'c'},
	    {"connections", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'd'},
	    {"rate", required_argument, NULL, 'r'},
	    {"host-prefix", required_argument, NULL, 'p'},
	    {"no-incidents", no_argument, NULL, 'I'},
	    {"linger", no_argument, NULL, 'L'},
	    {0},
	};
	const char *in = NULL, *coll = NULL, *prefix = "bench";
	uint64_t nconns = 1, duration = 10, rate = 0, t0, t1, end, period = 0;
	struct addrinfo hints = {0}, *ai = NULL;
	struct recording rec;
	struct replay rp = {0};
	struct counts tot = {0};
	struct epoll_event ev;
	char host[256], *colon;
	int o, ep, lost = 0;
	bool linger = false;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'i': in = optarg; break;
		case 'c': coll = optarg; break;
		case 'n': nconns = parse_num("--connections", optarg, 1, 100000); break;
		case 'd': duration = parse_num("--duration", optarg, 1, 86400); break;
		case 'r': rate = parse_num("--rate", optarg, 1, 1000000); break;
		case 'p': prefix = optarg; break;
		case 'I': rp.no_incidents = true; break;
		case 'L': linger = true; break;
		default: die("usage: replay --in FILE --collector HOST:PORT --connections N "
			     "--duration S [--rate BATCHES_PER_S_PER_CONN] [--no-incidents] "
			     "[--linger]");
		}
	}
	if (!in || !coll)
		die("replay needs --in FILE and --collector HOST:PORT");
	snprintf(host, sizeof(host), "%s", coll);
	colon = strrchr(host, ':');
	if (!colon)
		die("--collector '%s': expected HOST:PORT", coll);
	*colon = '\0';
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &ai) || !ai)
		die("--collector '%s': does not resolve", coll);
	load_recording(in, &rec, rp.no_incidents);
	raise_nofile(nconns + 16);

	/* all encoding before the first byte is sent: the collector is idle
	 * meanwhile, so its CPU time counts only the ingest */
	rp.rec = &rec;
	rp.nconns = nconns;
	snprintf(rp.host_prefix, sizeof(rp.host_prefix), "%s", prefix);
	rp.c = calloc(nconns, sizeof(*rp.c));
	if (!rp.c)
		die("out of memory");
	for (size_t k = 0; k < nconns; k++) {
		struct conn *c = &rp.c[k];

		c->fd = -1;
		c->idx = (uint32_t)k;
		c->ef = calloc(rec.n, sizeof(*c->ef));
		if (!c->ef)
			die("out of memory");
		for (size_t i = 0; i < rec.n; i++)
			encode_frame(&rp, c->idx, 0, i, &c->ef[i]);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	for (size_t k = 0; k < nconns; k++) {
		struct conn *c = &rp.c[k];

		c->fd = connect_to(ai);
		if (c->fd < 0)
			die("cannot connect to the collector at %s (connection %zu): %s", coll, k,
			    strerror(errno));
		ev.events = EPOLLOUT | EPOLLET;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev))
			die("epoll_ctl: %s", strerror(errno));
	}
	freeaddrinfo(ai);

	if (rate)
		period = 1000000000ull / rate;
	t0 = mono_ns();
	printf("{\"event\":\"start\",\"connections\":%llu,\"rate\":%llu}\n",
	       (unsigned long long)nconns, (unsigned long long)rate);
	fflush(stdout);
	end = t0 + duration * 1000000000ull;
	/* rate mode: agents' phases spread over one period, as a fleet's are */
	for (size_t k = 0; k < nconns; k++)
		rp.c[k].due = t0 + (period ? period * k / nconns : 0);

	while (!exiting) {
		uint64_t now = mono_ns(), wake = end;
		struct epoll_event evs[256];
		bool any_ready = false;
		int n, timeout;

		if (now >= end)
			break;
		for (size_t k = 0; k < nconns; k++) {
			struct conn *c = &rp.c[k];

			if (c->fd < 0)
				continue;
			if (period) {
				/* a late frame is sent late, not dropped: the
				 * collector sets the pace, as for an agent */
				while (c->due <= now && c->olen - c->ooff < OUT_FILL) {
					queue_frame(&rp, c);
					c->due += period;
				}
				if (c->due < wake)
					wake = c->due;
			} else if (!c->blocked) {
				while (c->olen - c->ooff < OUT_FILL)
					queue_frame(&rp, c);
			}
			if (c->blocked || c->ooff == c->olen)
				continue;
			o = flush_conn(c);
			if (o < 0) {
				fprintf(stderr, PROG ": connection %zu: the collector hung up: %s\n",
					k, strerror(errno));
				close(c->fd);
				c->fd = -1;
				lost++;
			} else if (o == 0) {
				c->blocked = true;
			} else if (!period) {
				any_ready = true;
			}
		}
		if (any_ready)
			timeout = 0;
		else
			timeout = (int)((wake > now ? wake - now : 0) / 1000000) + 1;
		n = epoll_wait(ep, evs, 256, timeout);
		for (int i = 0; i < n; i++)
			((struct conn *)evs[i].data.ptr)->blocked = false;
	}
	/* finish the frames begun: a cut frame would be a bad frame */
	for (size_t k = 0; k < nconns; k++) {
		struct conn *c = &rp.c[k];

		if (c->fd < 0)
			continue;
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
		if (flush_conn(c) < 0) {
			fprintf(stderr, PROG ": connection %zu: the collector hung up: %s\n", k,
				strerror(errno));
			lost++;
		}
	}
	t1 = mono_ns();
	for (size_t k = 0; k < nconns; k++)
		add_counts(&tot, &rp.c[k].sent);
	printf("{");
	print_counts("sent", &tot);
	printf(",\"connections\":%llu,\"lost\":%d,\"rate\":%llu,\"seconds\":%.3f}\n",
	       (unsigned long long)nconns, lost, (unsigned long long)rate, (double)(t1 - t0) / 1e9);
	fflush(stdout);
	/* --linger: the agents stay connected until stdin closes, so that what
	 * the collector holds is read while they live (a gone agent's series
	 * leave the exposition once a scraper has seen their last values) */
	if (linger) {
		char buf[256];

		while (read(0, buf, sizeof(buf)) > 0)
			;
	}
	for (size_t k = 0; k < nconns; k++)
		if (rp.c[k].fd >= 0)
			close(rp.c[k].fd);
	return lost ? 1 : 0;
}

static int cmd_info(int argc, char **argv)
{
	struct recording rec;
	struct counts tot = {0};

	if (argc != 3 || strcmp(argv[1], "--in"))
		die("usage: info --in FILE");
	load_recording(argv[2], &rec, false);
	for (size_t i = 0; i < rec.n; i++) {
		add_counts(&tot, &rec.f[i].counts);
		tot.bytes += rec.f[i].len;
	}
	printf("{");
	print_counts("recording", &tot);
	printf(",\"ids\":%zu}\n", rec.nids);
	return 0;
}

/* ---- record ---- */

static int cmd_record(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"out", required_argument, NULL, 'o'},
	    {"duration", required_argument, NULL, 'd'},
	    {0},
	};
	uint64_t port = 0, duration = 0, frames = 0, deadline;
	struct sockaddr_in sa = {0};
	const char *out = NULL;
	socklen_t sl = sizeof(sa);
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, off = 0;
	int o, lfd, fd = -1, one = 1;
	struct sigaction sig = {0};
	FILE *f;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'l': port = parse_num("--listen", optarg, 0, 65535); break;
		case 'o': out = optarg; break;
		case 'd': duration = parse_num("--duration", optarg, 1, 86400); break;
		default: die("usage: record --listen PORT --out FILE [--duration S]");
		}
	}
	if (!out)
		die("record needs --out FILE");
	sig.sa_handler = on_signal;
	sigaction(SIGINT, &sig, NULL);
	sigaction(SIGTERM, &sig, NULL);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4))
		die("cannot listen on 127.0.0.1:%llu: %s; pick another port",
		    (unsigned long long)port, strerror(errno));
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	printf("{\"event\":\"listening\",\"port\":%u}\n", ntohs(sa.sin_port));
	fflush(stdout);
	deadline = duration ? mono_ns() + duration * 1000000000ull : UINT64_MAX;
	/* one agent; its stream ends when it drains and hangs up on SIGINT */
	while (!exiting && fd < 0) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && errno != EINTR)
			die("accept: %s", strerror(errno));
	}
	while (!exiting && fd >= 0 && mono_ns() < deadline) {
		ssize_t n;

		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			if (!buf)
				die("out of memory");
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	close(lfd);
	/* whole, valid frames only: an agent stopped mid-write leaves a tail */
	while (len - off >= SW_FRAME_HDR_LEN) {
		struct sw_frame_hdr h;

		if (sw_frame_parse_hdr(buf + off, &h))
			die("the peer did not send stallwatch frames (byte %zu): is it an agent "
			    "with --collector?",
			    off);
		if (len - off - SW_FRAME_HDR_LEN < h.len)
			break;
		off += SW_FRAME_HDR_LEN + h.len;
		frames++;
	}
	f = fopen(out, "wb");
	if (!f || (off && fwrite(buf, 1, off, f) != off) || fclose(f))
		die("cannot write %s: %s", out, strerror(errno));
	printf("{\"event\":\"recorded\",\"frames\":%llu,\"bytes\":%zu}\n",
	       (unsigned long long)frames, off);
	free(buf);
	return frames ? 0 : 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "record"))
		return cmd_record(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "replay"))
		return cmd_replay(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "info"))
		return cmd_info(argc - 1, argv + 1);
	fprintf(stderr, "usage: " PROG " record --listen PORT --out FILE [--duration S]\n"
			"       " PROG " replay --in FILE --collector HOST:PORT --connections N "
			"--duration S [--rate R] [--no-incidents] [--linger]\n"
			"       " PROG " info --in FILE\n");
	return 2;
}
