// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "lastwords.h"
#include "lastwords.skel.h"
#include "log.h"

/* node::errors::TriggerUncaughtException(v8::Isolate*, v8::Local<v8::Value>,
 * v8::Local<v8::Message>, bool), src/node_errors.cc: the same mangled name
 * in the symtab of Node 18, 20, 22 and 24. */
#define NODE_UNCAUGHT_SYM                                                                           \
	"_ZN4node6errors24TriggerUncaughtExceptionEPN2v87IsolateENS1_5LocalINS1_5ValueEEENS4_"     \
	"INS1_7MessageEEEb"

struct probe {
	uint32_t pid;
	struct bpf_link *link;
};

struct lastwords {
	struct lastwords_bpf *skel;
	struct probe *probes;
	size_t n_probes;
};

struct lastwords *lastwords__new(int targets_fd, bool tracefs)
{
	struct lastwords *lw = calloc(1, sizeof(*lw));
	int err;

	if (!lw)
		return NULL;
	lw->skel = lastwords_bpf__open();
	if (!lw->skel) {
		err = -errno;
		goto cleanup;
	}
	err = bpf_map__reuse_fd(lw->skel->maps.targets, targets_fd);
	if (err)
		goto cleanup;
	bpf_program__set_autoload(lw->skel->progs.tp_enter_write, tracefs);
	err = lastwords_bpf__load(lw->skel);
	if (err)
		goto cleanup;
	/* the uprobe is attached per process (lastwords__watch) */
	if (tracefs) {
		lw->skel->links.tp_enter_write = bpf_program__attach(lw->skel->progs.tp_enter_write);
		if (!lw->skel->links.tp_enter_write) {
			err = -errno;
			goto cleanup;
		}
	}
	return lw;
cleanup:
	lastwords__free(lw);
	errno = -err;
	return NULL;
}

void lastwords__free(struct lastwords *lw)
{
	if (!lw)
		return;
	for (size_t i = 0; i < lw->n_probes; i++)
		bpf_link__destroy(lw->probes[i].link);
	free(lw->probes);
	lastwords_bpf__destroy(lw->skel);
	free(lw);
}

int lastwords__watch(struct lastwords *lw, const struct sw_proc_info *pi)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = NODE_UNCAUGHT_SYM);
	struct bpf_link *link;
	struct probe *np;
	char exe[64];

	/* an exec'd process is watched again: its old image's probe goes */
	for (size_t i = 0; i < lw->n_probes; i++) {
		if (lw->probes[i].pid != (uint32_t)pi->pid)
			continue;
		bpf_link__destroy(lw->probes[i].link);
		lw->probes[i] = lw->probes[--lw->n_probes];
		break;
	}
	if (pi->runtime != SW_RT_NODE)
		return 0;
	/* the magic link: the binary as the process sees it, in its mount
	 * namespace too */
	snprintf(exe, sizeof(exe), "/proc/%d/exe", pi->pid);
	link = bpf_program__attach_uprobe_opts(lw->skel->progs.node_uncaught, pi->pid, exe, 0, &uo);
	if (!link) {
		int err = -errno;

		sw_dbg("pid %d: no uprobe on TriggerUncaughtException in %s (%s): an unhandled "
		       "rejection is told from its stderr only",
		       pi->pid, pi->exe, strerror(-err));
		return err;
	}
	np = realloc(lw->probes, (lw->n_probes + 1) * sizeof(*np));
	if (!np) {
		bpf_link__destroy(link);
		return -ENOMEM;
	}
	lw->probes = np;
	lw->probes[lw->n_probes++] = (struct probe){ .pid = (uint32_t)pi->pid, .link = link };
	return 0;
}

int lastwords__take(struct lastwords *lw, uint32_t pid, struct sw_last_words *out)
{
	int err;

	for (size_t i = 0; i < lw->n_probes; i++) {
		if (lw->probes[i].pid != pid)
			continue;
		bpf_link__destroy(lw->probes[i].link);
		lw->probes[i] = lw->probes[--lw->n_probes];
		break;
	}
	err = bpf_map__lookup_and_delete_elem(lw->skel->maps.words, &pid, sizeof(pid), out,
					      sizeof(*out), 0);
	/* hash maps took lookup-and-delete only in 5.14 */
	if (err == -EINVAL || err == -524 /* ENOTSUPP */ || err == -EOPNOTSUPP) {
		err = bpf_map__lookup_elem(lw->skel->maps.words, &pid, sizeof(pid), out,
					   sizeof(*out), 0);
		bpf_map__delete_elem(lw->skel->maps.words, &pid, sizeof(pid), 0);
	}
	return err;
}

void lastwords__bpf_stats(struct lastwords *lw, struct sw_bpf_stats *out)
{
	*out = lw->skel->bss->stats;
}

size_t sw_last_words_text(const struct sw_last_words *w, char *buf, size_t len)
{
	uint64_t first = w->writes > SW_LW_WRITES ? w->writes - SW_LW_WRITES : 0;
	size_t o = 0;

	if (!len)
		return 0;
	for (uint64_t k = first; k < w->writes; k++) {
		const struct sw_lw_write *lw = &w->w[k % SW_LW_WRITES];
		uint32_t n = lw->len < SW_LW_WRITE_LEN ? lw->len : SW_LW_WRITE_LEN;

		for (uint32_t i = 0; i < n && o + 1 < len; i++) {
			unsigned char c = (unsigned char)lw->buf[i];

			buf[o++] = (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) ? (char)c : '?';
		}
		if (lw->total > n && o + 6 < len) {
			memcpy(buf + o, "[...]\n", 6);
			o += 6;
		}
	}
	buf[o] = 0;
	return o;
}

static int src_watch(void *ctx, const struct sw_proc_info *pi)
{
	return lastwords__watch(ctx, pi);
}

static int src_take(void *ctx, uint32_t pid, struct sw_last_words *out)
{
	return lastwords__take(ctx, pid, out);
}

struct sw_exit_source lastwords__source(struct lastwords *lw)
{
	return (struct sw_exit_source){ .watch = src_watch, .take = src_take, .ctx = lw };
}
