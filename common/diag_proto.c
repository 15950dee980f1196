// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "diag_proto.h"
#include "utf8.h"

void sw_diag_proto_free(Stallwatch__V1__Incident *m)
{
	for (size_t k = 0; k < m->n_stacks; k++) {
		Stallwatch__V1__Stack *s = m->stacks[k];

		if (!s)
			continue;
		for (size_t i = 0; i < s->n_frames; i++)
			free(s->frames[i]);
		free(s->frames);
		free(s);
	}
	free(m->stacks);
	m->stacks = NULL;
	m->n_stacks = 0;
	for (size_t i = 0; i < m->n_top_frames; i++) {
		if (m->top_frames[i])
			free(m->top_frames[i]->frame);
		free(m->top_frames[i]);
	}
	free(m->top_frames);
	m->top_frames = NULL;
	m->n_top_frames = 0;
	for (size_t i = 0; i < m->n_syscalls; i++) {
		Stallwatch__V1__SyscallStat *c = m->syscalls[i];

		if (!c)
			continue;
		free(c->name);
		free(c->fd_kind);
		free(c->target);
		free(c);
	}
	free(m->syscalls);
	m->syscalls = NULL;
	m->n_syscalls = 0;
	if (m->stack_note != protobuf_c_empty_string)
		free(m->stack_note);
	m->stack_note = (char *)protobuf_c_empty_string;
}

static int stacks_to_proto(Stallwatch__V1__Incident *m, const struct sw_diag_stacks *st)
{
	uint32_t n = st->n_stacks < SW_DIAG_STACKS ? st->n_stacks : SW_DIAG_STACKS;
	uint32_t nt = st->n_top < SW_DIAG_TOP ? st->n_top : SW_DIAG_TOP;

	m->stack_samples = st->samples;
	m->stack_weight_ns = st->weight_ns;
	m->gc_share_known = st->gc_share >= 0;
	m->gc_share = st->gc_share >= 0 ? st->gc_share : 0;
	if (st->note && !(m->stack_note = strdup(st->note)))
		return -ENOMEM;
	m->stacks = calloc(n ? n : 1, sizeof(*m->stacks));
	if (!m->stacks)
		return -ENOMEM;
	for (uint32_t k = 0; k < n; k++) {
		const struct sw_diag_stack *ds = &st->stacks[k];
		uint32_t nf = ds->n_frames < SW_DIAG_FRAMES ? ds->n_frames : SW_DIAG_FRAMES;
		Stallwatch__V1__Stack *s = calloc(1, sizeof(*s));

		if (!s)
			return -ENOMEM;
		stallwatch__v1__stack__init(s);
		m->stacks[m->n_stacks++] = s;
		s->weight_ns = ds->weight_ns;
		s->samples = ds->samples;
		s->frames = calloc(nf ? nf : 1, sizeof(char *));
		if (!s->frames)
			return -ENOMEM;
		for (uint32_t i = 0; i < nf; i++) {
			if (!(s->frames[i] = strdup(ds->frames[i] ? ds->frames[i] : "")))
				return -ENOMEM;
			s->n_frames++;
		}
	}
	m->top_frames = calloc(nt ? nt : 1, sizeof(*m->top_frames));
	if (!m->top_frames)
		return -ENOMEM;
	for (uint32_t i = 0; i < nt; i++) {
		Stallwatch__V1__FrameShare *f = calloc(1, sizeof(*f));

		if (!f)
			return -ENOMEM;
		stallwatch__v1__frame_share__init(f);
		m->top_frames[m->n_top_frames++] = f;
		f->share = st->top[i].share;
		if (!(f->frame = strdup(st->top[i].frame ? st->top[i].frame : "")))
			return -ENOMEM;
	}
	return 0;
}

static int syscalls_to_proto(Stallwatch__V1__Incident *m, const struct sw_diag_syscalls *sys)
{
	uint32_t n = sys->n < SW_DIAG_SYSCALLS ? sys->n : SW_DIAG_SYSCALLS;

	m->syscalls_dropped = sys->dropped;
	m->syscalls = calloc(n ? n : 1, sizeof(*m->syscalls));
	if (!m->syscalls)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct sw_diag_syscall *d = &sys->s[i];
		Stallwatch__V1__SyscallStat *c = calloc(1, sizeof(*c));

		if (!c)
			return -ENOMEM;
		stallwatch__v1__syscall_stat__init(c);
		m->syscalls[m->n_syscalls++] = c;
		c->count = d->count;
		c->total_ns = d->total_ns;
		c->fd = d->fd;
		c->port = d->port;
		c->name = strdup(d->name);
		c->fd_kind = strdup(sw_fd_kind_name(d->kind));
		c->target = strdup(d->target);
		if (!c->name || !c->fd_kind || !c->target)
			return -ENOMEM;
	}
	return 0;
}

int sw_diag_to_proto(Stallwatch__V1__Incident *m, const struct sw_diag_stacks *st,
		     const struct sw_diag_syscalls *sys)
{
	if ((st && st->n_stacks && stacks_to_proto(m, st)) ||
	    (sys && sys->n && syscalls_to_proto(m, sys))) {
		sw_diag_proto_free(m);
		return -ENOMEM;
	}
	return 0;
}

const struct sw_diag_stacks *sw_diag_from_proto_stacks(const Stallwatch__V1__Incident *m,
						       struct sw_diag_stacks *st)
{
	memset(st, 0, sizeof(*st));
	st->gc_share = m->gc_share_known ? m->gc_share : -1;
	if (!m->n_stacks)
		return NULL;
	st->samples = m->stack_samples;
	st->weight_ns = m->stack_weight_ns;
	st->note = m->stack_note && m->stack_note[0] ? m->stack_note : NULL;
	for (size_t k = 0; k < m->n_stacks && st->n_stacks < SW_DIAG_STACKS; k++) {
		const Stallwatch__V1__Stack *s = m->stacks[k];
		struct sw_diag_stack *ds = &st->stacks[st->n_stacks++];

		ds->weight_ns = s->weight_ns;
		ds->samples = s->samples;
		for (size_t i = 0; i < s->n_frames && ds->n_frames < SW_DIAG_FRAMES; i++)
			ds->frames[ds->n_frames++] = s->frames[i];
	}
	for (size_t i = 0; i < m->n_top_frames && st->n_top < SW_DIAG_TOP; i++) {
		st->top[st->n_top].frame = m->top_frames[i]->frame;
		st->top[st->n_top++].share = m->top_frames[i]->share;
	}
	return st;
}

const struct sw_diag_syscalls *sw_diag_from_proto_syscalls(const Stallwatch__V1__Incident *m,
							   struct sw_diag_syscalls *sys)
{
	memset(sys, 0, sizeof(*sys));
	if (!m->n_syscalls)
		return NULL;
	sys->dropped = m->syscalls_dropped;
	for (size_t i = 0; i < m->n_syscalls; i++) {
		const Stallwatch__V1__SyscallStat *c = m->syscalls[i];
		struct sw_diag_syscall *d;

		if (sys->n >= SW_DIAG_SYSCALLS) {
			sys->dropped++;
			continue;
		}
		d = &sys->s[sys->n++];
		sw_utf8_copy_str(d->name, sizeof(d->name), c->name);
		sw_utf8_copy_str(d->target, sizeof(d->target), c->target);
		d->count = c->count;
		d->total_ns = c->total_ns;
		d->fd = c->fd;
		d->kind = sw_fd_kind_parse(c->fd_kind);
		d->port = c->port > 65535 ? 0 : (uint16_t)c->port;
	}
	return sys;
}
