// SPDX-License-Identifier: Apache-2.0
/* /metrics text and /api/incidents JSON for a known store. */
#define _GNU_SOURCE /* memmem */
#include "store.h"
#include "export.h"
#include "test_collector_helpers.h"
#include "utf8.h"
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>

#define NOW (1000ull * 1000000000ull)

static struct sw_store *s;
static struct sw_buf text;

static void teardown(void)
{
	sw_buf__free(&text);
	sw_store__free(s);
	s = NULL;
}

/* One node main loop (comm with characters that need escaping), one python
 * loop, one ended incident, health of the agent. */
static void fill_store(void)
{
	struct sw_store_opts o = {.max_loops = 16, .max_incidents = 16};
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Hello hello = STALLWATCH__V1__HELLO__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT;
	Stallwatch__V1__ProcessInfo *pp[1] = {&pi};
	Stallwatch__V1__AgentHealth h = STALLWATCH__V1__AGENT_HEALTH__INIT;
	Stallwatch__V1__AgentHealth__CountersEntry kv = STALLWATCH__V1__AGENT_HEALTH__COUNTERS_ENTRY__INIT, *kvp = &kv;
	Stallwatch__V1__Incident inc, *ip[1] = {&inc};
	struct t_loop n, py;
	Stallwatch__V1__LoopSummary *lp[2] = {&n.ls, &py.ls};

	s = sw_store__new(&o);
	cr_assert_not_null(s);
	hello.agent_id = "web-1:77";
	hello.hostname = "web-1";
	hello.mono_to_unix_ns = 1700000000000000000ull;
	cr_assert_eq(sw_store__agent_up(s, "web-1:77", &hello, NOW), 0);
	pi.pid = 100;
	pi.runtime = "node";
	pi.comm = "we\"ird\\na\nme";
	t_loop_init(&n, 100, 100, "node");
	t_loop_add(&n, 50000, 10);     /* 50 us: under the first le */
	t_loop_add(&n, 3 * MS, 5);     /* in le=0.005 */
	t_loop_add(&n, 200 * MS, 1);   /* in le=0.25 */
	t_loop_add(&n, 90000 * MS, 1); /* 90 s: only +Inf */
	n.ls.idle_ns = n.ls.busy_ns;
	t_loop_init(&py, 300, 301, "python");
	py.ls.role = "asyncio";
	t_loop_add(&py, 2 * MS, 4);
	t_incident(&inc, 100, 100, 5000 * MS, 700 * MS, 0);
	kv.key = "ringbuf_drops";
	kv.value = 3;
	h.counters = &kvp;
	h.n_counters = 1;
	b.seq = 1;
	b.hello = &hello;
	b.processes = pp;
	b.n_processes = 1;
	b.loops = lp;
	b.n_loops = 2;
	b.incidents = ip;
	b.n_incidents = 1;
	b.health = &h;
	cr_assert_eq(sw_store__apply(s, "web-1:77", &b, NOW), 0);
}

static char *line_with(const char *prefix, const char *needle)
{
	for (char *p = text.p; p && *p;) {
		char *e = strchr(p, '\n');

		if (!e)
			break;
		*e = '\0';
		if (!strncmp(p, prefix, strlen(prefix)) && (!needle || strstr(p, needle))) {
			char *r = strdup(p);

			*e = '\n';
			return r;
		}
		*e = '\n';
		p = e + 1;
	}
	return NULL;
}

static double value_of(const char *prefix, const char *needle)
{
	char *l = line_with(prefix, needle);
	double v;

	cr_assert_not_null(l, "no line %s ... %s", prefix, needle ? needle : "");
	v = strtod(strrchr(l, ' ') + 1, NULL);
	free(l);
	return v;
}

TestSuite(export, .fini = teardown);

Test(export, every_line_is_valid_exposition)
{
	char *save = NULL, *copy, *line, name[160], last_type[160] = "";
	int samples = 0;

	fill_store();
	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);
	copy = strdup(text.p);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "# HELP ", 7))
			continue;
		if (!strncmp(line, "# TYPE ", 7)) {
			cr_assert_eq(sscanf(line + 7, "%159s", last_type), 1);
			continue;
		}
		cr_assert_neq(line[0], '#', "stray comment: %s", line);
		cr_assert_eq(sscanf(line, "%159[a-zA-Z0-9_:]", name), 1, "bad name: %s", line);
		/* a sample belongs to the family declared just before it */
		cr_assert(!strncmp(name, last_type, strlen(last_type)), "%s outside family %s",
			  name, last_type);
		cr_assert(line[strlen(name)] == '{' || line[strlen(name)] == ' ');
		samples++;
	}
	free(copy);
	cr_assert_gt(samples, 100);
}

Test(export, histogram_is_cumulative_and_inf_equals_count)
{
	static const char *les[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
				    "0.01",   "0.025",	 "0.05",   "0.1",   "0.25",   "0.5",
				    "1",      "2.5",	 "5",	   "10",    "30",     "60"};
	char needle[64];
	double prev = 0, v;

	fill_store();
	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);
	for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
		snprintf(needle, sizeof(needle), "le=\"%s\"}", les[i]);
		v = value_of(
		    "stallwatch_eventloop_delay_seconds_bucket{host=\"web-1\",service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\"",
		    needle);
		cr_assert_geq(v, prev, "le=%s not cumulative", les[i]);
		prev = v;
	}
	cr_assert_eq(
	    value_of("stallwatch_eventloop_delay_seconds_bucket{host=\"web-1\",service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\"",
		     "le=\"0.0001\""),
	    10);
	cr_assert_eq(
	    value_of("stallwatch_eventloop_delay_seconds_bucket{host=\"web-1\",service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\"",
		     "le=\"0.005\""),
	    15);
	cr_assert_eq(prev, 16, "le=60 excludes the 90 s iteration");
	v = value_of("stallwatch_eventloop_delay_seconds_bucket{host=\"web-1\",service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\"",
		     "le=\"+Inf\"");
	cr_assert_eq(v, 17);
	cr_assert_eq(
	    value_of("stallwatch_eventloop_delay_seconds_count{host=\"web-1\",service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\"",
		     NULL),
	    v);
	v = value_of("stallwatch_eventloop_delay_seconds_sum{host=\"web-1\",service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\"",
		     NULL);
	/* bucket middles: within 0.8 % of the true 90.2155 s */
	cr_assert(v > 89.4 && v < 91.0, "sum %f", v);
}

Test(export, labels_are_escaped)
{
	fill_store();
	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);
	/* the service is the comm when the agent names none */
	cr_assert_not_null(strstr(text.p, "service=\"we\\\"ird\\\\na\\nme\""), "%s", text.p);
	cr_assert_not_null(strstr(text.p, "stallwatch_eventloop_iterations_total{host=\"web-1\","
					  "service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\","
					  "pid=\"100\",tid=\"100\",role=\"main\"} "),
			   "%s", text.p);
}

Test(export, node_only_series_and_gauges)
{
	char *l;

	fill_store();
	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);
	cr_assert_eq(value_of("stallwatch_eventloop_delay_max_seconds{", "pid=\"100\""), 90);
	cr_assert_eq(value_of("nodejs_eventloop_delay_max_seconds{", "pid=\"100\""), 90);
	cr_assert_eq(value_of("stallwatch_eventloop_utilization_ratio{", "pid=\"100\""), 0.5);
	cr_assert_eq(value_of("stallwatch_eventloop_utilization_ratio{", "pid=\"300\""), 1);
	l = line_with("nodejs_eventloop_", "pid=\"300\"");
	cr_assert_null(l, "python loop in a nodejs_ series: %s", l);
	cr_assert_not_null(strstr(text.p, "nodejs_eventloop_time_seconds_total{host=\"web-1\","));
	cr_assert_not_null(strstr(text.p, "nodejs_eventloop_state=\"idle\"} "));
	cr_assert_eq(value_of("stallwatch_eventloop_time_seconds_total{", "state=\"idle\""),
		     90.2155);
	cr_assert_eq(value_of("stallwatch_eventloop_blocked_total{", "pattern=\"node.cpu_bound_callback\""), 1);
	cr_assert_eq(value_of("stallwatch_eventloop_blocked_total{", "pattern=\"node.sync_fs\""), 0);
	cr_assert_eq(
	    value_of("stallwatch_eventloop_blocked_seconds_total{", "pattern=\"node.cpu_bound_callback\""), 0.7);
	cr_assert_eq(value_of("stallwatch_eventloop_blocked_ongoing_seconds{", "pid=\"100\""), 0);
	/* a loop gets its runtime's patterns and the generic ones, no others */
	l = line_with("stallwatch_eventloop_blocked_total{", "pattern=\"python.gc\"");
	cr_assert(l && strstr(l, "pid=\"300\""), "python.gc on a node loop: %s", l);
	free(l);
	l = line_with("stallwatch_eventloop_blocked_total{", "pid=\"100\"");
	cr_assert(l && strstr(l, "pattern=\"") && !strstr(l, "pattern=\"python."), "%s", l);
	free(l);
	for (char *p = text.p; (p = strstr(p, "pid=\"100\"")); p++) {
		char *eol = strchr(p, '\n');

		cr_assert(!eol || !memmem(p, (size_t)(eol - p), "pattern=\"python.", 16),
			  "a python pattern on the node loop: %.*s", (int)(eol ? eol - p : 80), p);
	}
	cr_assert_eq(value_of("stallwatch_eventloop_blocked_total{", "pattern=\"cpu_starvation\""), 0);
	cr_assert_eq(value_of("stallwatch_agent_up{host=\"web-1\",agent=\"web-1:77\"}", NULL), 1);
	cr_assert_eq(value_of("stallwatch_agent_ringbuf_drops_total{host=\"web-1\",agent=\"web-1:77\"}", NULL), 3);
}

static void add_incident(uint32_t pid, uint64_t start_ms, uint64_t dur_ms, int ongoing);

Test(export, a_loop_stuck_now_shows_in_its_max_delay)
{
	fill_store();
	add_incident(100, 6000, 120000, 1); /* stuck for 120 s so far */
	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);
	cr_assert_eq(value_of("stallwatch_eventloop_blocked_ongoing_seconds{", "pid=\"100\""), 120);
	cr_assert_eq(value_of("stallwatch_eventloop_delay_max_seconds{", "pid=\"100\""), 120);
	cr_assert_eq(value_of("nodejs_eventloop_delay_max_seconds{", "pid=\"100\""), 120);
	/* the percentiles stay those of the iterations that ended */
	cr_assert_lt(value_of("nodejs_eventloop_delay_p50_seconds{", "pid=\"100\""), 120);
}

Test(export, collector_counters)
{
	struct sw_ingest_stats st = {.connections = 2, .frames = 9, .refused = 1};

	st.bad[SW_BAD_ZLIB] = 4;
	fill_store();
	cr_assert_eq(sw_export__metrics(s, &st, &text), 0);
	cr_assert_eq(value_of("stallwatch_collector_connections ", NULL), 2);
	cr_assert_eq(value_of("stallwatch_collector_frames_total ", NULL), 9);
	cr_assert_eq(value_of("stallwatch_collector_bad_frames_total{reason=\"bad_zlib\"}", NULL),
		     4);
	cr_assert_eq(value_of("stallwatch_collector_bad_frames_total{reason=\"bad_magic\"}", NULL),
		     0);
	cr_assert_eq(value_of("stallwatch_collector_connections_refused_total ", NULL), 1);
	cr_assert_eq(value_of("stallwatch_collector_series_dropped_total{reason=\"cap\"} ", NULL), 0);
	cr_assert_eq(value_of("stallwatch_collector_incidents_dropped_total ", NULL), 0);
	cr_assert_eq(value_of("stallwatch_collector_batches_gap_total ", NULL), 0);
}

static json_object *incidents(const struct sw_incident_query *q)
{
	json_object *root, *arr;
	size_t len;
	char *j;

	cr_assert_eq(sw_export__incidents(s, q, &j, &len), 0);
	cr_assert_eq(strlen(j), len);
	root = json_tokener_parse(j);
	free(j);
	cr_assert_not_null(root);
	cr_assert(json_object_object_get_ex(root, "incidents", &arr));
	return root;
}

static json_object *nth(json_object *root, size_t i)
{
	json_object *arr;

	json_object_object_get_ex(root, "incidents", &arr);
	return json_object_array_get_idx(arr, i);
}

static size_t count(json_object *root)
{
	json_object *arr;

	json_object_object_get_ex(root, "incidents", &arr);
	return json_object_array_length(arr);
}

static const char *str(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s", k);
	return json_object_get_string(v);
}

static int64_t num(json_object *o, const char *k)
{
	json_object *v;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s", k);
	return json_object_get_int64(v);
}

static void add_incident(uint32_t pid, uint64_t start_ms, uint64_t dur_ms, int ongoing)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Incident inc, *ip[1] = {&inc};

	t_incident(&inc, pid, pid, start_ms * MS, dur_ms * MS, ongoing);
	b.incidents = ip;
	b.n_incidents = 1;
	cr_assert_eq(sw_store__apply(s, "web-1:77", &b, NOW), 0);
}

Test(export, incidents_json_newest_first_and_updated_in_place)
{
	static const char *keys[] = {
	    "host",    "agent",	   "pid",	    "tid",	   "thread",  "role",
	    "runtime", "start_ns", "start_unix_ms", "duration_ms", "ongoing", "pattern",
	    "summary", "advice",   "oncpu_ms",	    "offcpu_ms",   "runq_ms", "top_syscall"};
	struct sw_incident_query q = {0};
	json_object *root, *o, *v;

	fill_store(); /* pid 100 at 5000 ms */
	/* arrival order differs from start order */
	add_incident(200, 9000, 300, 1);
	add_incident(300, 7000, 400, 0);
	root = incidents(NULL);
	cr_assert_eq(count(root), 3);
	cr_assert_eq(num(nth(root, 0), "pid"), 200);
	cr_assert_eq(num(nth(root, 1), "pid"), 300);
	cr_assert_eq(num(nth(root, 2), "pid"), 100);
	o = nth(root, 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert(json_object_object_get_ex(o, keys[i], &v), "missing %s", keys[i]);
	cr_assert_str_eq(str(o, "host"), "web-1");
	cr_assert_str_eq(str(o, "agent"), "web-1:77");
	cr_assert_str_eq(str(o, "pattern"), "node.cpu_bound_callback");
	cr_assert_eq(num(o, "start_unix_ms"), 1700000000000ll + 9000);
	cr_assert(json_object_get_boolean(json_object_object_get(o, "ongoing")));
	json_object_put(root);

	/* the ongoing one ends: same entry, final values */
	add_incident(200, 9000, 1500, 0);
	root = incidents(NULL);
	cr_assert_eq(count(root), 3);
	o = nth(root, 0);
	cr_assert_eq(num(o, "pid"), 200);
	cr_assert_not(json_object_get_boolean(json_object_object_get(o, "ongoing")));
	cr_assert_float_eq(json_object_get_double(json_object_object_get(o, "duration_ms")), 1500,
			   1e-9);
	json_object_put(root);

	q.limit = 2;
	root = incidents(&q);
	cr_assert_eq(count(root), 2);
	json_object_put(root);
	q.limit = 0;
	q.have_pid = true;
	q.pid = 300;
	root = incidents(&q);
	cr_assert_eq(count(root), 1);
	cr_assert_eq(num(nth(root, 0), "pid"), 300);
	json_object_put(root);
}

/* ---- interval gauges of an interval without iterations ---- */

static const char *const interval_gauges[] = {"p50", "p90", "p99", "min", "mean", "stddev"};

static void apply_empty_interval(uint32_t pid, uint32_t tid, const char *runtime)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};

	t_loop_init(&l, pid, tid, runtime);
	l.ls.idle_ns = 1000 * MS; /* a loop that waited all along */
	b.loops = lp;
	b.n_loops = 1;
	cr_assert_eq(sw_store__apply(s, "web-1:77", &b, NOW), 0);
}

/* An interval of n iterations of ns each, on node loop pid (tid = pid). */
static void apply_loop(uint32_t pid, uint64_t ns, uint32_t n)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	struct t_loop l;
	Stallwatch__V1__LoopSummary *lp[1] = {&l.ls};

	t_loop_init(&l, pid, pid, "node");
	t_loop_add(&l, ns, n);
	b.loops = lp;
	b.n_loops = 1;
	cr_assert_eq(sw_store__apply(s, "web-1:77", &b, NOW), 0);
}

/* Node loops have nodejs_ twins of each, others never do; the interval
 * percentiles are Node's OTel gauges only (the histogram has them all). */
static void assert_delay_gauges(const char *pid_label, bool is_node, bool present, bool max_present)
{
	char name[96];

	sw_buf__free(&text);
	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);
	for (int node = 0; node < 2; node++) {
		const char *prefix = node ? "nodejs" : "stallwatch";

		if (node && !is_node)
			present = max_present = false;

		for (size_t g = 0; g < sizeof(interval_gauges) / sizeof(interval_gauges[0]); g++) {
			char *l;

			snprintf(name, sizeof(name), "%s_eventloop_delay_%s_seconds{", prefix,
				 interval_gauges[g]);
			l = line_with(name, pid_label);
			cr_assert_eq(!!l, node && present, "%s %s: %s", name, pid_label,
				     l ? l : "absent");
			free(l);
		}
		snprintf(name, sizeof(name), "%s_eventloop_delay_max_seconds{", prefix);
		{
			char *l = line_with(name, pid_label);

			cr_assert_eq(!!l, max_present, "%s %s: %s", name, pid_label,
				     l ? l : "absent");
			free(l);
		}
	}
}

Test(export, no_iteration_in_the_interval_no_delay_gauges)
{
	fill_store();
	assert_delay_gauges("pid=\"100\"", true, true, true);
	/* the node loop's next interval has no iteration, and it is not stuck:
	 * the interval gauges are absent, not 0 */
	apply_empty_interval(100, 100, "node");
	assert_delay_gauges("pid=\"100\"", true, false, false);
	/* the histogram and the counters carry on */
	cr_assert_eq(
	    value_of("stallwatch_eventloop_delay_seconds_count{host=\"web-1\",service=\"we\\\"ird\\\\na\\nme\",runtime=\"node\"",
		     NULL),
	    17);
	cr_assert_eq(value_of("stallwatch_eventloop_iterations_total{", "pid=\"100\""), 17);
	cr_assert_eq(value_of("stallwatch_eventloop_utilization_ratio{", "pid=\"100\""), 0);
	/* the python loop still had its iterations */
	assert_delay_gauges("pid=\"300\"", false, true, true);

	/* stuck now: still no iteration, but the max is the block so far */
	add_incident(100, 6000, 2500, 1);
	assert_delay_gauges("pid=\"100\"", true, false, true);
	cr_assert_eq(value_of("stallwatch_eventloop_delay_max_seconds{", "pid=\"100\""), 2.5);
	cr_assert_eq(value_of("nodejs_eventloop_delay_max_seconds{", "pid=\"100\""), 2.5);

	/* iterations again: every gauge is back */
	add_incident(100, 6000, 2600, 0);
	apply_loop(100, 2 * MS, 3);
	/* the max is the block that ended since the previous scrape, longer
	 * than the iterations of the interval after it... */
	assert_delay_gauges("pid=\"100\"", true, true, true);
	cr_assert_eq(value_of("stallwatch_eventloop_delay_max_seconds{", "pid=\"100\""), 2.6);
	cr_assert_eq(value_of("nodejs_eventloop_delay_max_seconds{", "pid=\"100\""), 2.6);
	/* ...and at the next scrape with nothing new, still that */
	assert_delay_gauges("pid=\"100\"", true, true, true);
	cr_assert_eq(value_of("stallwatch_eventloop_delay_max_seconds{", "pid=\"100\""), 2.6);
	apply_loop(100, 2 * MS, 3);
	assert_delay_gauges("pid=\"100\"", true, true, true);
	cr_assert_eq(value_of("stallwatch_eventloop_delay_max_seconds{", "pid=\"100\""), 0.002);
}

Test(export, a_loop_first_seen_stuck_has_only_its_max)
{
	struct sw_store_opts o = {.max_loops = 16, .max_incidents = 16};

	/* attached to a loop already blocked: the incident creates the series,
	 * no LoopSummary has come yet */
	s = sw_store__new(&o);
	cr_assert_not_null(s);
	cr_assert_eq(sw_store__agent_up(s, "web-1:77", NULL, NOW), 0);
	add_incident(500, 1000, 4000, 1);
	assert_delay_gauges("pid=\"500\"", true, false, true);
	cr_assert_eq(value_of("stallwatch_eventloop_delay_max_seconds{", "pid=\"500\""), 4);
}

/* ---- every string from an agent comes out as UTF-8, cut between chars ---- */

/* n copies of the 2-byte char c */
static char *repeat2(const char *c, size_t n)
{
	char *s = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(s + 2 * i, c, 2);
	s[2 * n] = '\0';
	return s;
}

/* the value of label key on the first line starting with prefix */
static char *label_of(const char *prefix, const char *needle, const char *key)
{
	char *l = line_with(prefix, needle), *v, *e, k[64];

	cr_assert_not_null(l, "no line %s ... %s", prefix, needle ? needle : "");
	snprintf(k, sizeof(k), "%s=\"", key);
	v = strstr(l, k);
	cr_assert_not_null(v, "no %s in %s", key, l);
	v += strlen(k);
	e = strchr(v, '"'); /* none of our test values has an escaped quote */
	*e = '\0';
	v = strdup(v);
	free(l);
	return v;
}

Test(export, agent_strings_are_utf8_cut_on_character_boundaries)
{
	struct sw_store_opts o = {.max_loops = 16, .max_incidents = 16};
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__Hello hello = STALLWATCH__V1__HELLO__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	Stallwatch__V1__Incident inc, *ip[1] = {&inc};
	struct t_loop a, t;
	Stallwatch__V1__LoopSummary *lp[2] = {&a.ls, &t.ls};
	char comm[16], *host = repeat2("ж", 100), *thread = repeat2("щ", 100), *v, *json;
	char agent_id[300];
	size_t len;

	/* what the kernel leaves of "приложение": 15 bytes, the last one the
	 * first half of 'н' */
	memcpy(comm, "приложение", 15);
	comm[15] = '\0';
	/* an id of 4-byte chars and a stray byte, longer than SW_NAME_LEN */
	agent_id[0] = '\0';
	for (int i = 0; i < 40; i++)
		strcat(agent_id, "😀");
	strcat(agent_id, "\xff:77");

	s = sw_store__new(&o);
	cr_assert_not_null(s);
	hello.agent_id = agent_id;
	hello.hostname = host;		 /* 200 bytes */
	hello.version = "0.1.0\xc0\xaf"; /* an overlong '/' */
	cr_assert_eq(sw_store__agent_up(s, agent_id, &hello, NOW), 0);
	pi.pid = 100;
	pi.runtime = "node";
	pi.comm = comm;
	t_loop_init(&a, 100, 100, "node");
	t_loop_add(&a, MS, 2);
	/* a loop with no ProcessInfo: the main thread's name is its comm */
	t_loop_init(&t, 200, 200, "python");
	t.ls.thread = thread; /* 200 bytes */
	t_loop_add(&t, MS, 2);
	t_incident(&inc, 200, 200, 5000 * MS, 700 * MS, 0);
	inc.thread = thread;
	inc.top_syscall = "read\xed\xa0\x80"; /* a surrogate */
	b.hello = &hello;
	b.processes = pp;
	b.n_processes = 1;
	b.loops = lp;
	b.n_loops = 2;
	b.incidents = ip;
	b.n_incidents = 1;
	cr_assert_eq(sw_store__apply(s, agent_id, &b, NOW), 0);

	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);
	cr_assert(sw_utf8_valid(text.p, text.len), "/metrics is not UTF-8");
	/* the cut char of the kernel's comm is one U+FFFD, the rest kept */
	v = label_of("stallwatch_eventloop_iterations_total{", "pid=\"100\"", "service");
	cr_assert_str_eq(v, "приложе\xef\xbf\xbd");
	free(v);
	/* 200 bytes of 2-byte chars: 30 of the 31 bytes a comm holds */
	v = label_of("stallwatch_eventloop_iterations_total{", "pid=\"200\"", "service");
	cr_assert_eq(strlen(v), 30);
	cr_assert_eq(strncmp(v, thread, 30), 0);
	free(v);
	/* and 126 of the 127 of a host */
	v = label_of("stallwatch_eventloop_iterations_total{", "pid=\"200\"", "host");
	cr_assert_eq(strlen(v), 126);
	cr_assert_eq(strncmp(v, host, 126), 0);
	free(v);
	/* 31 whole 4-byte chars fit in 127 bytes; the stray byte is cut off */
	v = label_of("stallwatch_agent_up{", NULL, "agent");
	cr_assert_eq(strlen(v), 124);
	cr_assert(sw_utf8_valid(v, strlen(v)));
	free(v);

	cr_assert_eq(sw_export__incidents(s, NULL, &json, &len), 0);
	cr_assert(sw_utf8_valid(json, len), "incidents JSON is not UTF-8");
	{
		json_object *root = json_tokener_parse(json), *o1 = NULL;

		cr_assert_not_null(root);
		o1 = nth(root, 0);
		cr_assert_eq(strlen(str(o1, "thread")), 30);
		cr_assert_eq(strncmp(str(o1, "thread"), thread, 30), 0);
		cr_assert_str_eq(str(o1, "top_syscall"),
				 "read\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
		cr_assert_eq(strlen(str(o1, "host")), 126);
		json_object_put(root);
	}
	free(json);
	sw_store__lock(s);
	cr_assert_str_eq(sw_store__agent(s, 0)->version, "0.1.0\xef\xbf\xbd\xef\xbf\xbd");
	sw_store__unlock(s);
	free(host);
	free(thread);
}

Test(export, process_metrics_and_busy_split)
{
	Stallwatch__V1__Batch b = STALLWATCH__V1__BATCH__INIT;
	Stallwatch__V1__ProcessInfo pi = STALLWATCH__V1__PROCESS_INFO__INIT, *pp[1] = {&pi};
	Stallwatch__V1__MemoryGrowth mg = STALLWATCH__V1__MEMORY_GROWTH__INIT, *mp[1] = {&mg};
	struct t_loop n;
	Stallwatch__V1__LoopSummary *lp[1] = {&n.ls};
	char *l;

	fill_store();
	t_loop_init(&n, 100, 100, "node");
	t_loop_add(&n, 100 * MS, 2);
	n.ls.rss_bytes = 50000000;
	n.ls.cpu_split = true;
	n.ls.oncpu_ns = 150 * MS;
	n.ls.offcpu_ns = 40 * MS;
	n.ls.runq_ns = 10 * MS;
	mg.pid = 100;
	mg.rate_bytes_per_s = 65536;
	b.seq = 2;
	b.loops = lp;
	b.n_loops = 1;
	b.memory = mp;
	b.n_memory = 1;
	cr_assert_eq(sw_store__apply(s, "web-1:77", &b, NOW), 0);
	/* and a python process that died of an uncaught exception */
	stallwatch__v1__batch__init(&b);
	b.seq = 3;
	pi.pid = 300;
	pi.runtime = "python";
	pi.exited = true;
	pi.exit_known = true;
	pi.exit_code = 1;
	pi.exit_stderr = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: x\n";
	b.processes = pp;
	b.n_processes = 1;
	cr_assert_eq(sw_store__apply(s, "web-1:77", &b, NOW), 0);
	cr_assert_eq(sw_export__metrics(s, NULL, &text), 0);

	cr_assert_float_eq(value_of("stallwatch_eventloop_oncpu_seconds_total{", "pid=\"100\""),
			   0.15, 1e-9);
	cr_assert_float_eq(value_of("stallwatch_eventloop_offcpu_seconds_total{", "pid=\"100\""),
			   0.04, 1e-9);
	cr_assert_float_eq(value_of("stallwatch_eventloop_runq_seconds_total{", "pid=\"100\""),
			   0.01, 1e-9);
	cr_assert_float_eq(value_of("stallwatch_eventloop_cpu_share_ratio{", "pid=\"100\""), 0.75,
			   1e-9);
	/* the python loop's agent sent no split: no series claims one */
	l = line_with("stallwatch_eventloop_cpu_share_ratio{", "pid=\"300\"");
	cr_assert_null(l);
	cr_assert_float_eq(value_of("stallwatch_process_resident_bytes{", "pid=\"100\""), 5e7,
			   0.5);
	cr_assert_float_eq(
	    value_of("stallwatch_process_memory_growth_bytes_per_second{", "pid=\"100\""), 65536,
	    1e-6);
	/* by host and service (no ProcessInfo came before its exit, nor a
	 * comm: "unknown"), every cause from 0 */
	cr_assert_float_eq(value_of("stallwatch_process_exits_total{host=\"web-1\",service=\"unknown\","
				    "runtime=\"python\",cause=\"python.uncaught_exception\"}",
				    NULL),
			   1, 1e-9);
	cr_assert_float_eq(value_of("stallwatch_process_exits_total{",
				    "runtime=\"python\",cause=\"exit_ok\""),
			   0, 1e-9);
	/* no node process exited: no node row */
	l = line_with("stallwatch_process_exits_total{", "runtime=\"node\"");
	cr_assert_null(l, "%s", l);
}
