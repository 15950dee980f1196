// SPDX-License-Identifier: Apache-2.0
/* /proc and ELF parsing against fixtures: a /proc tree built in a temp dir
 * from tests/fixtures/proc, with exe links to the built ELF fixture. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "discovery.h"
#include "runtime/python.h"
#include "symbolize.h"

static char root[64];

static void link_or_die(const char *target, const char *path)
{
	cr_assert_eq(symlink(target, path), 0, "symlink %s -> %s: %s", path, target,
		     strerror(errno));
}

static void make_proc(int pid, const char *fixture, const char *exe_name)
{
	char d[256], p[512], t[512];

	snprintf(d, sizeof(d), "%s/%d", root, pid);
	mkdir(d, 0755);
	for (const char **f = (const char *[]){ "comm", "cgroup", "maps", "status", NULL }; *f;
	     f++) {
		snprintf(t, sizeof(t), "%s/proc/%s/%s", SW_FIXTURES, fixture, *f);
		snprintf(p, sizeof(p), "%s/%s", d, *f);
		link_or_die(t, p);
	}
	snprintf(t, sizeof(t), "%s/proc/%s/stat", SW_FIXTURES, fixture);
	snprintf(p, sizeof(p), "%s/stat", d);
	link_or_die(t, p);
	/* exe -> <root>/bin/<exe_name> -> the built ELF fixture, so the
	 * runtime is judged by the name and the version read from the ELF */
	snprintf(t, sizeof(t), "%s/bin/%s", root, exe_name);
	if (access(t, F_OK))
		link_or_die(SW_ELF_FIXTURE, t);
	snprintf(p, sizeof(p), "%s/exe", d);
	link_or_die(t, p);
}

static void setup(void)
{
	char bin[96];

	snprintf(root, sizeof(root), "/tmp/sw-proc-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	snprintf(bin, sizeof(bin), "%s/bin", root);
	mkdir(bin, 0755);
	make_proc(4242, "node", "node");
	make_proc(4343, "python", "python3.12");
	make_proc(4250, "node-thread", "node");
	sw_discovery_set_proc_root(root);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
	sw_discovery_set_proc_root("/proc");
}

TestSuite(discovery, .init = setup, .fini = teardown);

Test(discovery, node_runtime_version_and_container)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(4242, &pi), 0);
	cr_assert_eq(pi.runtime, SW_RT_NODE);
	cr_assert_str_eq(sw_runtime_name(pi.runtime), "node");
	cr_assert_str_eq(pi.version, "42.7.1", "version from the ELF's .rodata");
	cr_assert_str_eq(pi.comm, "node");
	cr_assert_eq(pi.tgid, 4242);
	cr_assert_str_eq(pi.cgroup, "/kubepods.slice/kubepods-pod1234.slice/cri-containerd-abcd.scope");
	cr_assert(sw_process_alive(4242));
}

Test(discovery, python_with_libpython_in_maps)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(4343, &pi), 0);
	cr_assert_eq(pi.runtime, SW_RT_PYTHON);
	cr_assert_str_eq(pi.runtime_lib, "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0");
	/* the library is not under the fixture root: the minor from its name */
	cr_assert_str_eq(pi.version, "3.12");
}

Test(discovery, a_thread_id_names_its_process)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(4250, &pi), 0);
	cr_assert_eq(pi.tgid, 4242, "the agent refuses a tid and names the pid to use");
}

Test(discovery, a_zombie_is_not_alive)
{
	/* node-thread's stat fixture says Z, with ") (" in its comm */
	cr_assert_not(sw_process_alive(4250));
	cr_assert(sw_process_alive(4343));
}

Test(discovery, missing_pid)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(99999, &pi), -ENOENT);
	cr_assert_not(sw_process_alive(99999));
}

Test(discovery, python_names_and_hex_versions)
{
	char v[32];

	cr_assert_eq(sw_python_minor_from_name("python3.11", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "3.11");
	cr_assert_eq(sw_python_minor_from_name("libpython3.9.so.1.0", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "3.9");
	cr_assert_eq(sw_python_minor_from_name("python3", v, sizeof(v)), -ENOENT);
	cr_assert_eq(sw_python_minor_from_name("node", v, sizeof(v)), -ENOENT);
	sw_python_hex_version(0x030B07F0, v, sizeof(v));
	cr_assert_str_eq(v, "3.11.7");
	sw_python_hex_version(0x030D00F0, v, sizeof(v));
	cr_assert_str_eq(v, "3.13.0");
}

Test(symbolize, semver)
{
	cr_assert(sw_is_semver("20.20.2", 7));
	cr_assert(sw_is_semver("3.9.18", 6));
	cr_assert_not(sw_is_semver("20.20", 5));
	cr_assert_not(sw_is_semver("20..2", 5));
	cr_assert_not(sw_is_semver("20.20.2-pre", 11));
	cr_assert_not(sw_is_semver("1.2.3.", 6));
}

Test(symbolize, symbols_and_versions_from_the_fixture)
{
	struct sw_elf_sym sym;
	char v[32];

	cr_assert_eq(sw_elf_find_symbol(SW_ELF_FIXTURE, "sw_fixture_function", &sym), 0);
	cr_assert_gt(sym.size, 0);
	cr_assert_gt(sym.file_off, 0);
	cr_assert_eq(sym.is_exec, 0, "built as PIE");
	cr_assert_eq(sym.load_vaddr, 0);
	cr_assert_eq(sw_elf_find_symbol(SW_ELF_FIXTURE, "sw_fixture_bss", &sym), 0);
	cr_assert_eq(sym.size, 64);
	cr_assert_eq(sym.file_off, 0, ".bss has no bytes in the file");
	cr_assert_gt(sym.value, 0);
	cr_assert_eq(sw_elf_find_symbol(SW_ELF_FIXTURE, "no_such_symbol", &sym), -ENOENT);
	cr_assert_eq(sw_elf_find_version(SW_ELF_FIXTURE, "node.js/v", 9, v, sizeof(v)), 0);
	cr_assert_str_eq(v, "42.7.1");
	cr_assert_eq(sw_elf_find_version(SW_ELF_FIXTURE, "python/v", 8, v, sizeof(v)), -ENOENT);
	cr_assert_lt(sw_elf_find_version("/nonexistent/binary", "v", 1, v, sizeof(v)), 0);
	/* not an ELF at all */
	cr_assert_lt(sw_elf_find_symbol(SW_FIXTURES "/proc/node/maps", "x", &sym), 0);
}
