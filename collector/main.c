// SPDX-License-Identifier: Apache-2.0
/*
 * stallwatch-collector: receives agents' batches, keeps per-loop series and
 * incidents, serves them to Prometheus and to people.
 *
 * Threads: the main thread owns the agent sockets (listener.c, epoll); the HTTP
 * server runs in libmicrohttpd's thread; the store between them has a mutex.
 */
#include "clock.h"
#include "store.h"
#include "http.h"
#include "http_auth.h"
#include "listener.h"
#include "secret.h"
#include "log.h" /* common/log.h, shared with the agent */
#include "net.h"
#include "tls.h" /* common/tls.h */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DEFAULT_LISTEN "127.0.0.1:7470"
#define DEFAULT_HTTP "127.0.0.1:7471"
/* the store is swept for expired series at least this often */
#define TICK_MS 1000

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: stallwatch-collector [OPTIONS]\n"
	    "Receive stallwatch agents' event-loop measurements and serve them as\n"
	    "Prometheus metrics and a JSON list of blocked-loop incidents.\n"
	    "\n"
	    "  -l, --listen HOST:PORT   where agents connect (default " DEFAULT_LISTEN ")\n"
	    "  -H, --http HOST:PORT     /metrics, /api/incidents, /healthz (default " DEFAULT_HTTP
	    ")\n"
	    "      --max-loops N        cap on loop-thread series (default 1024)\n"
	    "      --max-incidents N    incidents kept for /api/incidents (default 1000)\n"
	    "      --max-connections N  agents connected at once (default 256, at most 65536);\n"
	    "                           raises the open-file limit to fit when it can\n"
	    "      --handshake-timeout SEC  close an agent connection without a complete\n"
	    "                           frame SEC s after connecting (default 30)\n"
	    "      --frame-timeout SEC  close one whose started frame is not complete in\n"
	    "                           SEC s (default 30)\n"
	    "      --idle-timeout SEC   close one without a frame for SEC s (default 120;\n"
	    "                           keep it above the agents' --interval)\n"
	    "      --max-per-peer N     agent connections from one address (default 16)\n"
	    "      --frame-memory MIB   unfinished frames held over all agents (default 64)\n"
	    "      --token-file FILE    agents must present this token (the file's bytes,\n"
	    "                           16 to 4096, trailing newline trimmed); give the\n"
	    "                           agents the same --token-file\n"
	    "      --http-max-connections N  HTTP connections in all (default 1024)\n"
	    "      --http-max-per-ip N  HTTP connections from one address (default 16)\n"
	    "      --http-header-timeout SEC  close an HTTP connection that sent part of a\n"
	    "                           request but not all of it SEC s after connecting\n"
	    "                           or after its last reply (default 10)\n"
	    "      --tls-cert FILE      TLS on the agent port: this certificate (PEM, chain\n"
	    "                           first to last), with --tls-key; agents need --tls\n"
	    "      --tls-key FILE       the certificate's private key (PEM, unencrypted)\n"
	    "      --tls-client-ca FILE require agents to present a client certificate\n"
	    "                           signed by this CA (PEM)\n"
	    "      --token-file FILE    agents must present this token (the file's bytes,\n"
	    "                           16 to 4096, trailing newline trimmed); give the\n"
	    "                           agents the same --token-file\n"
	    "      --http-token-file PATH  every path but /healthz needs the header\n"
	    "                           'Authorization: Bearer TOKEN', TOKEN the file's\n"
	    "                           contents (16 to 4096 printable bytes; trailing\n"
	    "                           whitespace is cut)\n"
	    "      --http-tls-cert FILE --http-tls-key FILE  serve HTTPS with this PEM\n"
	    "                           certificate (chain) and its unencrypted key\n"
	    "  -v, --verbose            log connections; twice for more\n"
	    "  -h, --help               this text\n"
	    "\n"
	    "Both listeners are on loopback by default: agents and Prometheus on other\n"
	    "hosts need an explicit address. Without --token-file the agent stream is\n"
	    "not authenticated: any process that reaches the port can send data.\n"
	    "Beyond loopback, give the agent port TLS too (--tls-cert, --tls-key).\n"
	    "Serving /metrics beyond loopback, give it --http-token-file and TLS.\n"
	    "\n"
	    "Examples:\n"
	    "  stallwatch-collector\n"
	    "  openssl rand -hex 32 > /etc/stallwatch/token && chmod 600 /etc/stallwatch/token\n"
	    "  stallwatch-collector --listen 0.0.0.0:7470 --token-file /etc/stallwatch/token\n"
	    "  stallwatch-collector --listen [::]:7470 --max-loops 4096 -v\n"
	    "  stallwatch-collector --listen 0.0.0.0:7470 --tls-cert /etc/stallwatch/collector.pem \\\n"
	    "      --tls-key /etc/stallwatch/collector.key --tls-client-ca /etc/stallwatch/agents-ca.pem\n"
	    "  curl -s localhost:7471/metrics | grep stallwatch_eventloop_delay_p99\n"
	    "  curl -s 'localhost:7471/api/incidents?limit=10&pid=1234'\n"
	    "  stallwatch-collector --http 0.0.0.0:7471 --http-token-file http-token \\\n"
	    "      --http-tls-cert http.pem --http-tls-key http.key\n"
	    "  curl -s --cacert ca.pem -H \"Authorization: Bearer $(cat http-token)\" \\\n"
	    "      https://collector:7471/metrics\n");
}

/* Listener, HTTP server, logs: what is open besides agents and HTTP clients. */
#define FD_RESERVE 64

/*
 * Every agent and HTTP client is a socket: a soft RLIMIT_NOFILE of 1024
 * (systemd's and most shells' default) would refuse agents long before
 * --max-connections with EMFILE. Raise the soft limit up to the hard one,
 * which any process may; past the hard limit only the admin can help, so
 * say how.
 */
static void fit_nofile(size_t agents, size_t http)
{
	rlim_t need = (rlim_t)(agents + http) + FD_RESERVE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= need)
		return;
	sw_warn("--max-connections %zu and --http-max-connections %zu need %llu open files, the "
		"hard limit is %llu: connections past it will be refused; raise it (ulimit -Hn, "
		"systemd LimitNOFILE=) or lower them",
		agents, http, (unsigned long long)need, (unsigned long long)rl.rlim_max);
}

/* Positive integers only: "--max-loops 0" or "10k" is a mistake to report. */
static int parse_range(const char *opt, const char *s, unsigned long long max, size_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v == 0 || v > max) {
		fprintf(stderr, "stallwatch-collector: %s '%s': expected a number from 1 to %llu\n",
			opt, s, max);
		return -EINVAL;
	}
	*out = (size_t)v;
	return 0;
}

static int parse_count(const char *opt, const char *s, size_t *out)
{
	return parse_range(opt, s, 1ull << 24, out);
}

/* What --http-token-file, --http-tls-cert and --http-tls-key hold, read
 * before anything listens: a bad file is one line naming it, exit 2. */
struct http_secrets {
	struct sw_secret token; /* 4 KiB: the struct is static in main */
	char *cert, *key;
};

static void loose_warning(const char *opt, const char *path, const char *who, const char *what)
{
	sw_warn("%s %s is readable by %s: %s; chmod 600 it (a Kubernetes secret mounts 0644 "
		"unless its defaultMode says 0400)",
		opt, path, who, what);
}

static int load_http_secrets(const char *token_path, const char *cert_path, const char *key_path,
			     struct http_secrets *hs, struct sw_http_opts *ho)
{
	char why[256];
	bool loose;

	if (!cert_path != !key_path) {
		fprintf(stderr, "stallwatch-collector: %s without %s: HTTPS needs both the "
				"certificate and its key\n",
			cert_path ? "--http-tls-cert" : "--http-tls-key",
			cert_path ? "--http-tls-key" : "--http-tls-cert");
		return -EINVAL;
	}
	if (token_path) {
		if (sw_http_auth__read_token(token_path, &hs->token, why, sizeof(why))) {
			fprintf(stderr, "stallwatch-collector: bad --http-token-file: %s\n", why);
			return -EINVAL;
		}
		if (hs->token.world_readable)
			loose_warning("--http-token-file", token_path, "every user of this host",
				      "whoever reads it reads /metrics and /api/*");
		ho->token = &hs->token;
	}
	if (cert_path) {
		if (sw_http_auth__read_pem(cert_path, false, &hs->cert, &loose, why,
					   sizeof(why))) {
			fprintf(stderr, "stallwatch-collector: --http-tls-cert %s: %s\n", cert_path,
				why);
			return -EINVAL;
		}
		if (sw_http_auth__read_pem(key_path, true, &hs->key, &loose, why, sizeof(why))) {
			fprintf(stderr, "stallwatch-collector: --http-tls-key %s: %s\n", key_path,
				why);
			return -EINVAL;
		}
		if (loose)
			loose_warning("--http-tls-key", key_path, "group or others",
				      "whoever reads it can pose as this collector");
		ho->tls_cert_pem = hs->cert;
		ho->tls_key_pem = hs->key;
	}
	return 0;
}

static void free_http_secrets(struct http_secrets *hs)
{
	explicit_bzero(&hs->token, sizeof(hs->token));
	if (hs->cert)
		free(hs->cert); /* public */
	if (hs->key)
		sw_http_auth__free_secret(hs->key, strlen(hs->key));
}

/*
 * One line at start, at the default verbosity: who can read /metrics and
 * the APIs, and whether it is encrypted. A warning when the port is beyond
 * loopback and anyone who reaches it reads them, or sees the token pass.
 */
static void say_http_access(const struct sw_addr *a, int port, const struct sw_http_opts *ho)
{
	bool lo = sw_addr__is_loopback(a), tls = ho->tls_cert_pem != NULL;

	if (ho->token && tls)
		sw_log(SW_LOG_WARN,
		       "HTTP on %s (port %d): HTTPS; /metrics and /api/* need the bearer token of "
		       "--http-token-file, /healthz is open",
		       a->text, port);
	else if (ho->token && lo)
		sw_log(SW_LOG_WARN,
		       "HTTP on %s (port %d): plain HTTP on loopback; /metrics and /api/* need the "
		       "bearer token of --http-token-file, /healthz is open",
		       a->text, port);
	else if (ho->token)
		sw_warn("HTTP on %s (port %d): /metrics and /api/* need the bearer token of "
			"--http-token-file, but it travels in plain HTTP: add --http-tls-cert and "
			"--http-tls-key",
			a->text, port);
	else if (lo)
		sw_log(SW_LOG_WARN,
		       "HTTP on %s (port %d): %s, unauthenticated: any local user reads /metrics "
		       "and /api/* (--http-token-file to require a token)",
		       a->text, port, tls ? "HTTPS" : "plain HTTP on loopback");
	else
		sw_warn("HTTP on %s (port %d): %s and unauthenticated: whoever reaches the port "
			"reads /metrics and /api/*; add --http-token-file%s",
			a->text, port, tls ? "HTTPS" : "plain HTTP",
			tls ? "" : ", --http-tls-cert and --http-tls-key");
}

int main(int argc, char **argv)
{
	enum {
		OPT_MAX_LOOPS = 256,
		OPT_MAX_INCIDENTS,
		OPT_MAX_CONNS,
		OPT_HANDSHAKE_TIMEOUT,
		OPT_FRAME_TIMEOUT,
		OPT_IDLE_TIMEOUT,
		OPT_MAX_PER_PEER,
		OPT_FRAME_MEMORY,
		OPT_HTTP_MAX_CONNS,
		OPT_HTTP_PER_IP,
		OPT_HTTP_HEADER_TIMEOUT,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_TLS_CLIENT_CA,
		OPT_HTTP_TOKEN_FILE,
		OPT_HTTP_TLS_CERT,
		OPT_HTTP_TLS_KEY,
		OPT_TOKEN_FILE,
	};
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"http", required_argument, NULL, 'H'},
	    {"max-loops", required_argument, NULL, OPT_MAX_LOOPS},
	    {"max-incidents", required_argument, NULL, OPT_MAX_INCIDENTS},
	    {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
	    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
	    {"frame-timeout", required_argument, NULL, OPT_FRAME_TIMEOUT},
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {"max-per-peer", required_argument, NULL, OPT_MAX_PER_PEER},
	    {"frame-memory", required_argument, NULL, OPT_FRAME_MEMORY},
	    {"http-max-connections", required_argument, NULL, OPT_HTTP_MAX_CONNS},
	    {"http-max-per-ip", required_argument, NULL, OPT_HTTP_PER_IP},
	    {"http-header-timeout", required_argument, NULL, OPT_HTTP_HEADER_TIMEOUT},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
	    {"http-token-file", required_argument, NULL, OPT_HTTP_TOKEN_FILE},
	    {"http-tls-cert", required_argument, NULL, OPT_HTTP_TLS_CERT},
	    {"http-tls-key", required_argument, NULL, OPT_HTTP_TLS_KEY},
	    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *listen_s = DEFAULT_LISTEN, *http_s = DEFAULT_HTTP, *why, *env;
	const char *http_token_path = NULL, *http_cert_path = NULL, *http_key_path = NULL;
	static struct http_secrets hs;
	const char *token_path = NULL;
	static struct sw_secret token; /* 4 KiB: not on the stack */
	struct sw_store_opts so = {.max_loops = 1024, .max_incidents = 1000};
	struct sw_addr listen_a, http_a;
	struct sw_ingest_opts io = {0};
	struct sw_http_opts ho = {0};
	struct sw_conn_limits lim;
	struct sw_tls_files tf = {
	    .cert_opt = "--tls-cert", .key_opt = "--tls-key", .ca_opt = "--tls-client-ca"};
	struct sw_tls_ctx *tls = NULL;
	char msg[1024];
	size_t v;
	struct sw_store *store = NULL;
	struct sw_ingest *in = NULL;
	struct sw_http *http = NULL;
	struct sigaction sa = {0};
	sigset_t block, waitmask;
	uint64_t last_tick = 0, now;
	char http_why[256] = "";
	bool bad_input = false;
	int c, err = 0, verbose = 0;

	sw_conn_limits__default(&lim);
	while ((c = getopt_long(argc, argv, "l:H:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_s = optarg;
			break;
		case OPT_TOKEN_FILE:
			token_path = optarg;
			break;
		case 'H':
			http_s = optarg;
			break;
		case OPT_MAX_LOOPS:
			if (parse_count("--max-loops", optarg, &so.max_loops))
				return 2;
			break;
		case OPT_MAX_INCIDENTS:
			if (parse_count("--max-incidents", optarg, &so.max_incidents))
				return 2;
			break;
		case OPT_MAX_CONNS:
			/* 65536: each is a socket and a slot; far past one fleet */
			if (parse_range("--max-connections", optarg, 65536, &io.max_conns))
				return 2;
			break;
		/* seconds, counts and MiB: parse_count's 1..2^24 fits each */
		case OPT_HANDSHAKE_TIMEOUT:
			if (parse_count("--handshake-timeout", optarg, &v))
				return 2;
			lim.handshake_ns = (uint64_t)v * SW_NS_PER_SEC;
			break;
		case OPT_FRAME_TIMEOUT:
			if (parse_count("--frame-timeout", optarg, &v))
				return 2;
			lim.frame_ns = (uint64_t)v * SW_NS_PER_SEC;
			break;
		case OPT_IDLE_TIMEOUT:
			if (parse_count("--idle-timeout", optarg, &v))
				return 2;
			lim.idle_ns = (uint64_t)v * SW_NS_PER_SEC;
			break;
		case OPT_MAX_PER_PEER:
			if (parse_count("--max-per-peer", optarg, &lim.max_per_peer))
				return 2;
			break;
		case OPT_FRAME_MEMORY:
			if (parse_count("--frame-memory", optarg, &v))
				return 2;
			lim.frame_memory = v << 20;
			break;
		case OPT_HTTP_MAX_CONNS:
			if (parse_count("--http-max-connections", optarg, &v))
				return 2;
			ho.max_conns = (unsigned int)v;
			break;
		case OPT_HTTP_PER_IP:
			if (parse_count("--http-max-per-ip", optarg, &v))
				return 2;
			ho.per_ip = (unsigned int)v;
			break;
		case OPT_HTTP_HEADER_TIMEOUT:
			if (parse_count("--http-header-timeout", optarg, &v))
				return 2;
			ho.header_timeout_sec = (unsigned int)v;
			break;
		case OPT_TLS_CERT:
			tf.cert = optarg;
			break;
		case OPT_TLS_KEY:
			tf.key = optarg;
			break;
		case OPT_TLS_CLIENT_CA:
			tf.ca = optarg;
			break;
		case OPT_HTTP_TOKEN_FILE:
			http_token_path = optarg;
			break;
		case OPT_HTTP_TLS_CERT:
			http_cert_path = optarg;
			break;
		case OPT_HTTP_TLS_KEY:
			http_key_path = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr,
				"Try 'stallwatch-collector --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "stallwatch-collector: unexpected argument '%s'; try --help\n",
			argv[optind]);
		return 2;
	}
	sw_log_prog = "stallwatch-collector";
	sw_log_level = SW_LOG_WARN + verbose;

	if (sw_addr__parse(listen_s, &listen_a, &why)) {
		fprintf(stderr, "stallwatch-collector: bad --listen '%s': %s\n", listen_s, why);
		return 2;
	}
	if (sw_addr__parse(http_s, &http_a, &why)) {
		fprintf(stderr, "stallwatch-collector: bad --http '%s': %s\n", http_s, why);
		return 2;
	}
	if (token_path) {
		char msg[512];

		if (sw_secret__load(token_path, &token, msg, sizeof(msg))) {
			fprintf(stderr, "stallwatch-collector: bad --token-file: %s\n", msg);
			return 2;
		}
		io.token = &token;
	}
	if (tf.ca && !tf.cert) {
		fprintf(stderr, "stallwatch-collector: --tls-client-ca needs TLS: give --tls-cert "
				"and --tls-key too\n");
		return 2;
	}
	/* Before anything listens: a bad file is one line and exit 2. */
	if (tf.cert || tf.key) {
		tls = sw_tls_ctx__server(&tf, msg, sizeof(msg));
		if (!tls) {
			fprintf(stderr, "stallwatch-collector: %s\n", msg);
			return 2;
		}
	}
	if (load_http_secrets(http_token_path, http_cert_path, http_key_path, &hs, &ho)) {
		free_http_secrets(&hs);
		return 2;
	}
	/* Not in --help: tests lower the 5 min expiry of stale series. */
	env = getenv("SW_COLLECTOR_EXPIRE_SEC");
	if (env && *env) {
		size_t sec;

		if (parse_count("SW_COLLECTOR_EXPIRE_SEC", env, &sec)) {
			sw_tls_ctx__free(tls);
			return 2;
		}
		so.expire_ns = (uint64_t)sec * 1000000000ull;
	}

	/* Signals are blocked everywhere (libmicrohttpd's thread inherits the
	 * mask) and let through only inside epoll_pwait(): no race between checking
	 * `exiting` and going to sleep, and no thread but main ever runs the
	 * handler. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &block, &waitmask)) {
		err = -errno;
		fprintf(stderr, "stallwatch-collector: sigprocmask: %s\n", strerror(errno));
		goto cleanup;
	}
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* a scraper hanging up mid-response must not kill us */
	signal(SIGPIPE, SIG_IGN);

	store = sw_store__new(&so);
	if (!store) {
		err = -errno;
		fprintf(stderr, "stallwatch-collector: cannot allocate the store: %s\n",
			strerror(errno));
		goto cleanup;
	}
	fit_nofile(io.max_conns ? io.max_conns : SW_INGEST_MAX_CONNS,
		   ho.max_conns ? ho.max_conns : SW_HTTP_MAX_CONNS);
	io.listen = &listen_a;
	io.limits = &lim;
	io.tls = tls;
	in = sw_ingest__new(&io, store);
	if (!in) {
		err = -errno;
		fprintf(stderr,
			"stallwatch-collector: cannot listen on %s: %s; pick another port with "
			"--listen\n",
			listen_a.text, strerror(errno));
		goto cleanup;
	}
	http = sw_http__new(&http_a, store, in, &ho, http_why, sizeof(http_why));
	if (!http && errno == ENOTSUP) {
		fprintf(stderr, "stallwatch-collector: --http-tls-cert: %s\n", http_why);
		err = -ENOTSUP;
		goto cleanup;
	}
	if (!http && errno == EPROTO) {
		/* the files passed our checks; GnuTLS parses them for real */
		fprintf(stderr,
			"stallwatch-collector: --http-tls-cert %s and --http-tls-key %s refused: %s; "
			"check that both are PEM and that the key is the certificate's (openssl x509 "
			"-noout -pubkey -in CERT; openssl pkey -pubout -in KEY)\n",
			http_cert_path, http_key_path, http_why);
		err = -EINVAL;
		bad_input = true;
		goto cleanup;
	}
	if (!http) {
		err = -errno;
		fprintf(stderr,
			"stallwatch-collector: cannot listen on %s: %s; pick another port with "
			"--http\n",
			http_a.text, http_why);
		goto cleanup;
	}
	sw_info("agents on %s (port %d%s%s), HTTP on %s (port %d)", listen_a.text,
		sw_ingest__port(in), tls ? ", TLS" : "", tf.ca ? " with client certificates" : "",
		http_a.text, sw_http__port(http));
	say_http_access(&http_a, sw_http__port(http), &ho);
	if (!token.len)
		sw_warn("the agent stream on %s is not authenticated: any %s can send data "
			"as any agent; give the collector and the agents --token-file",
			listen_a.text,
			sw_addr__is_loopback(&listen_a) ? "local process" : "host that reaches it");
	else if (token.world_readable)
		sw_warn("--token-file %s is readable by every user of this host: chmod o-r it",
			token_path);
	/* Said once, at the default verbosity: beyond loopback anyone on the
	 * path reads and alters the measurements. */
	if (!tls && !sw_addr__is_loopback(&listen_a))
		sw_warn("agents on %s: the stream is not encrypted (plain TCP) on an address other "
			"hosts can reach%s; give --tls-cert and --tls-key (agents: --tls)",
			listen_a.text,
			token.len ? ": the token and the measurements cross the network in clear" : "");

	while (!exiting) {
		err = sw_ingest__run_once(in, TICK_MS, &waitmask);
		if (err) {
			fprintf(stderr, "stallwatch-collector: poll: %s\n", strerror(-err));
			goto cleanup;
		}
		now = sw_mono_ns();
		if (now - last_tick >= TICK_MS * 1000000ull) {
			sw_store__tick(store, now);
			sw_http__sweep(http, now);
			/* the count of a flood that stopped, not only at its next line */
			sw_log__flush(false);
			last_tick = now;
		}
	}
	sw_info("exiting on signal");
cleanup:
	sw_log__flush(true);
	/* HTTP first: its thread reads the store and the ingest counters */
	sw_http__free(http);
	sw_ingest__free(in);
	sw_tls_ctx__free(tls);
	sw_store__free(store);
	free_http_secrets(&hs);
	memset(&token, 0, sizeof(token));
	return bad_input ? 2 : err ? 1 : 0;
}
