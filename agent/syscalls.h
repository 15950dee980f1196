/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SW_SYSCALLS_H
#define SW_SYSCALLS_H

/* Name of an x86_64 syscall number, from the build machine's
 * asm/unistd_64.h (generated at build time); NULL when unknown. */
const char *sw_syscall_name(int nr);

#endif
