// SPDX-License-Identifier: Apache-2.0
/* agent/sysio.c's /proc side against a fixture tree: the fd links, fdinfo
 * and /proc/PID/net files of tests/fixtures/proc/sysio (copied from a real
 * 6.18 /proc, inodes and peers edited), linked into a temp dir at setup. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "sysio.h"

#define PID 4242

static char root[64];
static struct sw_tio *tio;

static void mk(const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	cr_assert(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", p, strerror(errno));
}

static void ln(const char *target, const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	cr_assert_eq(symlink(target, p), 0, "symlink %s -> %s: %s", p, target, strerror(errno));
}

static void fixture(const char *name, const char *rel)
{
	char t[512];

	snprintf(t, sizeof(t), "%s/proc/sysio/%s", SW_FIXTURES, name);
	ln(t, rel);
}

static void setup(void)
{
	int fd;

	snprintf(root, sizeof(root), "/tmp/sw-sysio-XXXXXX");
	cr_assert(mkdtemp(root), "mkdtemp: %s", strerror(errno));
	mk("4242");
	mk("4242/fd");
	mk("4242/fdinfo");
	mk("4242/net");
	mk("4242/root");
	mk("4242/root/data");
	fd = open(strcat(strcpy((char[512]){ 0 }, root), "/4242/root/data/big.bin"),
		  O_CREAT | O_WRONLY, 0644);
	cr_assert(fd >= 0);
	close(fd);
	ln("/data/big.bin", "4242/fd/3");
	fixture("fdinfo_3", "4242/fdinfo/3");
	ln("socket:[5555]", "4242/fd/4");
	ln("socket:[6666]", "4242/fd/5");
	ln("socket:[6667]", "4242/fd/6");
	ln("pipe:[7777]", "4242/fd/7");
	ln("anon_inode:[eventfd]", "4242/fd/8");
	ln("socket:[8888]", "4242/fd/9");
	ln("socket:[9999]", "4242/fd/10");
	ln("socket:[55551]", "4242/fd/11");
	ln("socket:[12]", "4242/fd/12");
	fixture("net_tcp", "4242/net/tcp");
	fixture("net_tcp6", "4242/net/tcp6");
	fixture("net_udp", "4242/net/udp");
	fixture("net_udp6", "4242/net/udp6");
	fixture("net_unix", "4242/net/unix");
	tio = sw_tio__new_fixture(root);
	cr_assert(tio);
}

static void teardown(void)
{
	char cmd[128];

	sw_tio__free(tio);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(sysio, .init = setup, .fini = teardown);

Test(sysio, path_checked_against_inode)
{
	char out[160];

	cr_assert_eq(sw_sysio_fd_path(tio, PID, 3, 1234, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "/data/big.bin");
	/* another file behind the same fd number now */
	cr_assert_eq(sw_sysio_fd_path(tio, PID, 3, 999, out, sizeof(out)), -ESTALE);
	/* 0: any inode */
	cr_assert_eq(sw_sysio_fd_path(tio, PID, 3, 0, out, sizeof(out)), 0);
	/* a socket is no path */
	cr_assert_eq(sw_sysio_fd_path(tio, PID, 4, 5555, out, sizeof(out)), -ESTALE);
	/* closed */
	cr_assert_eq(sw_sysio_fd_path(tio, PID, 42, 1, out, sizeof(out)), -ENOENT);
}

Test(sysio, path_cut_to_the_buffer_stays_utf8)
{
	char out[6];

	cr_assert_eq(sw_sysio_fd_path(tio, PID, 3, 1234, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "/data");
}

Test(sysio, walked_path_checked_under_the_target_root)
{
	char comp[SW_SYSIO_PATH_DEPTH][SW_SYSIO_COMP_LEN] = { "big.bin", "data" };
	char out[160], p[512];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/4242/root/data/big.bin", root);
	cr_assert_eq(stat(p, &sb), 0);
	cr_assert_eq(sw_sysio_walked_path(tio, PID, 2, comp, sb.st_ino, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "/data/big.bin");
	cr_assert_eq(sw_sysio_walked_path(tio, PID, 2, comp, sb.st_ino + 1, out, sizeof(out)),
		     -ESTALE);
	/* deeper than BPF keeps, or none */
	cr_assert_eq(sw_sysio_walked_path(tio, PID, SW_SYSIO_PATH_DEPTH + 1, comp, 0, out,
					  sizeof(out)),
		     -ENAMETOOLONG);
	cr_assert_eq(sw_sysio_walked_path(tio, PID, 0, comp, 0, out, sizeof(out)), -ENAMETOOLONG);
	/* a component that filled its slot may have been cut */
	memset(comp[0], 'x', SW_SYSIO_COMP_LEN - 1);
	comp[0][SW_SYSIO_COMP_LEN - 1] = 0;
	cr_assert_eq(sw_sysio_walked_path(tio, PID, 2, comp, 0, out, sizeof(out)), -ENAMETOOLONG);
	/* gone */
	strcpy(comp[0], "other.bin");
	cr_assert_eq(sw_sysio_walked_path(tio, PID, 2, comp, 0, out, sizeof(out)), -ENOENT);
}

static struct sw_diag_syscall classify(int fd)
{
	struct sw_diag_syscall c;

	memset(&c, 0, sizeof(c));
	cr_assert_eq(sw_sysio_classify_proc(tio, PID, fd, &c), 0, "fd %d", fd);
	return c;
}

Test(sysio, classify_from_proc)
{
	struct sw_diag_syscall c;

	c = classify(3);
	cr_assert_eq(c.kind, SW_FD_FILE);
	cr_assert_str_eq(c.target, "/data/big.bin");

	c = classify(4);
	cr_assert_eq(c.kind, SW_FD_TCP);
	cr_assert_str_eq(c.target, "127.0.0.1:5432");
	cr_assert_eq(c.port, 5432);

	c = classify(11);
	cr_assert_eq(c.kind, SW_FD_TCP);
	cr_assert_str_eq(c.target, "10.0.0.5:443");

	c = classify(5);
	cr_assert_eq(c.kind, SW_FD_TCP);
	cr_assert_str_eq(c.target, "[::1]:443");
	cr_assert_eq(c.port, 443);

	/* an IPv4 peer of a dual-stack socket is written as IPv4 */
	c = classify(6);
	cr_assert_eq(c.kind, SW_FD_TCP);
	cr_assert_str_eq(c.target, "127.0.0.1:3306");

	c = classify(7);
	cr_assert_eq(c.kind, SW_FD_PIPE);
	cr_assert_str_eq(c.target, "");

	c = classify(8);
	cr_assert_eq(c.kind, SW_FD_OTHER);
	cr_assert_str_eq(c.target, "anon_inode:[eventfd]");

	c = classify(9);
	cr_assert_eq(c.kind, SW_FD_UNIX);
	cr_assert_str_eq(c.target, "/run/postgresql/.s.PGSQL.5432");

	c = classify(10);
	cr_assert_eq(c.kind, SW_FD_UDP);
	cr_assert_str_eq(c.target, "192.168.1.1:53");

	/* a socket in none of the tables (netlink...) */
	c = classify(12);
	cr_assert_eq(c.kind, SW_FD_OTHER);
	cr_assert_str_eq(c.target, "socket");
}

Test(sysio, classify_closed_fd)
{
	struct sw_diag_syscall c = { 0 };

	cr_assert_eq(sw_sysio_classify_proc(tio, PID, 77, &c), -ENOENT);
}

Test(sysio, format_peer)
{
	uint8_t a4[4] = { 10, 1, 2, 3 }, a6[16];
	char out[64];

	sw_sysio_format_peer(AF_INET, a4, 80, out, sizeof(out));
	cr_assert_str_eq(out, "10.1.2.3:80");
	inet_pton(AF_INET6, "2001:db8::7", a6);
	sw_sysio_format_peer(AF_INET6, a6, 5432, out, sizeof(out));
	cr_assert_str_eq(out, "[2001:db8::7]:5432");
	inet_pton(AF_INET6, "::ffff:192.0.2.9", a6);
	sw_sysio_format_peer(AF_INET6, a6, 6379, out, sizeof(out));
	cr_assert_str_eq(out, "192.0.2.9:6379");
}
