// SPDX-License-Identifier: Apache-2.0
//
// Calls a trivial function N times and prints the ns per call, so that
// bench.py can time it with and without a uprobe on the function: the
// difference is the cost of one uprobe hit on this kernel and CPU.
//   uprobe_target emul|xol N
// The kernel handles a uprobe in one of two ways, by the probed instruction:
//  - emul: `push %rbp` is emulated in the int3 handler (one trap);
//  - xol:  a rip-relative `mov` is copied to an out-of-line slot and
//          single-stepped there (a second trap), the slow case.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile unsigned long sw_bench_sink;

// O0 keeps the frame-pointer prologue: the first instruction is push %rbp
__attribute__((noinline, optimize("O0"))) void sw_bench_emul(unsigned long i)
{
	sw_bench_sink += i;
}

// at -O2 the first instruction is mov sw_bench_sink(%rip),%rax
__attribute__((noinline)) void sw_bench_xol(unsigned long i)
{
	sw_bench_sink += i;
}

int main(int argc, char **argv)
{
	void (*fn)(unsigned long);
	unsigned long n;
	struct timespec a, b;

	if (argc != 3 || (strcmp(argv[1], "emul") && strcmp(argv[1], "xol"))) {
		fprintf(stderr, "usage: uprobe_target emul|xol N\n");
		return 2;
	}
	fn = strcmp(argv[1], "emul") ? sw_bench_xol : sw_bench_emul;
	n = strtoul(argv[2], NULL, 10);
	if (n == 0) {
		fprintf(stderr, "uprobe_target: N must be > 0\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (unsigned long i = 0; i < n; i++)
		fn(i);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n);
	return 0;
}
