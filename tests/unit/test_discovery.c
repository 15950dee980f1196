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
#include "identity.h"
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

/* ---- identity fixtures: files written here, environ has NULs ---- */

#define CID "4c01db0b339c5f2b8ec3fa81e61e4c8b4b1ed1a6c7f47a1c6a66d4e4e1d2f7a9"
#define DID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define XID "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define PUID "8f1c2a4e-7d3b-4c5a-9e6f-0a1b2c3d4e5f"

static void write_file(const char *rel, const void *bytes, size_t len)
{
	char path[512], dir[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	/* mkdir -p of its directory */
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(dir, 0755);
		*p = '/';
	}
	f = fopen(path, "we");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(bytes, 1, len, f), len);
	fclose(f);
}

#define WRITE_STR(rel, s) write_file(rel, s, strlen(s))
#define WRITE_LIT(rel, lit) write_file(rel, lit, sizeof(lit) - 1)

static void identity_proc(int pid, const char *comm, const char *cgroup)
{
	char rel[64], line[512];

	snprintf(rel, sizeof(rel), "%d/comm", pid);
	WRITE_STR(rel, comm);
	snprintf(rel, sizeof(rel), "%d/cgroup", pid);
	WRITE_STR(rel, cgroup);
	/* comm with ") (" as a process.title can make it; starttime 987654321 */
	snprintf(rel, sizeof(rel), "%d/stat", pid);
	snprintf(line, sizeof(line),
		 "%d (a) (b c) S 1 %d %d 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 11 0 987654321 0 0\n",
		 pid, pid, pid);
	WRITE_STR(rel, line);
	snprintf(rel, sizeof(rel), "%d/exe", pid);
	snprintf(line, sizeof(line), "%s/%s", root, rel);
	link_or_die(SW_ELF_FIXTURE, line);
}

static void make_identity_procs(void)
{
	/* a kubelet (systemd driver) containerd pod, service from the env */
	identity_proc(5001, "node",
		      "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
		      "8f1c2a4e_7d3b_4c5a_9e6f_0a1b2c3d4e5f.slice/cri-containerd-" CID ".scope\n");
	WRITE_LIT("5001/environ", "PATH=/bin\0OTEL_SERVICE_NAME=checkout-api\0HOME=/\0");
	WRITE_LIT("5001/root/etc/hostname", "checkout-7d9f-xk2p\n");
	WRITE_LIT("1/root/run/containerd/io.containerd.runtime.v2.task/k8s.io/" CID "/config.json",
		  "{\"ociVersion\":\"1.1.0\",\"annotations\":{"
		  "\"io.kubernetes.cri.container-name\":\"api\","
		  "\"io.kubernetes.cri.sandbox-name\":\"checkout-7d9f-xk2p\"}}");
	/* docker on a cgroup v1 host: the container in the controllers' lines;
	 * service.name from OTEL_RESOURCE_ATTRIBUTES, percent-encoded */
	identity_proc(5002, "python3",
		      "12:memory:/docker/" DID "\n11:cpu,cpuacct:/docker/" DID "\n0::/\n");
	WRITE_LIT("5002/environ",
		  "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod, service.name = "
		  "billing%20worker ,x=y\0");
	WRITE_LIT("1/root/var/lib/docker/containers/" DID "/config.v2.json",
		  "{\"ID\":\"" DID "\",\"Name\":\"/web-1\",\"Config\":{}}");
	/* no container, no environ (as when it cannot be read) */
	identity_proc(5003, "worker", "0::/system.slice/api.service\n");
	/* a kubelet cgroupfs pod: runtime unknown, no runtime file; the pod's
	 * name from the /etc/hostname the kubelet mounts */
	identity_proc(5005, "python3", "0::/kubepods/besteffort/pod" PUID "/" XID "\n");
	WRITE_LIT("5005/root/etc/hostname", "web-0\nnot this\n");
	/* garbage: no env entry terminated, a runtime file that is not JSON */
	identity_proc(5004, "node", "0::/system.slice/docker-" CID ".scope\n");
	WRITE_LIT("5004/environ", "OTEL_SERVICE_NAME=cut-short");
	WRITE_LIT("1/root/var/lib/docker/containers/" CID "/config.v2.json", "{\"Name\": \"/x");
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
	make_identity_procs();
	sw_discovery_set_proc_root(root);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
	sw_discovery_set_proc_root("/proc");
	sw_discovery_clear_services();
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

Test(discovery, identity_of_a_kubernetes_pod)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(5001, &pi), 0);
	cr_assert_str_eq(pi.service, "checkout-api");
	cr_assert_str_eq(pi.container_id, CID);
	cr_assert_str_eq(pi.pod_uid, PUID);
	cr_assert_str_eq(pi.container_name, "api");
	cr_assert_str_eq(pi.pod_name, "checkout-7d9f-xk2p");
	cr_assert_eq(pi.start_ticks, 987654321ull);
}

Test(discovery, identity_of_a_docker_container_on_cgroup_v1)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(5002, &pi), 0);
	cr_assert_str_eq(pi.cgroup, "/");
	cr_assert_str_eq(pi.container_id, DID);
	cr_assert_str_eq(pi.container_name, "web-1");
	cr_assert_str_eq(pi.pod_uid, "");
	cr_assert_str_eq(pi.pod_name, "", "no pod: /etc/hostname is not read");
	cr_assert_str_eq(pi.service, "billing worker");
}

Test(discovery, identity_without_a_container_or_env)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(5003, &pi), 0);
	cr_assert_str_eq(pi.service, "worker", "the comm when environ cannot be read");
	cr_assert_str_eq(pi.container_id, "");
	cr_assert_str_eq(pi.container_name, "");
	/* the existing fixtures: a cgroup with no real id, start time 100 */
	cr_assert_eq(sw_discover_process(4242, &pi), 0);
	cr_assert_str_eq(pi.container_id, "");
	cr_assert_str_eq(pi.pod_uid, "");
	cr_assert_str_eq(pi.service, "node");
	cr_assert_eq(pi.start_ticks, 100);
}

Test(discovery, pod_name_from_the_hostname_file)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(5005, &pi), 0);
	cr_assert_str_eq(pi.container_id, XID);
	cr_assert_str_eq(pi.pod_uid, PUID);
	cr_assert_str_eq(pi.container_name, "", "no runtime keeps a file for it");
	cr_assert_str_eq(pi.pod_name, "web-0");
}

Test(discovery, identity_from_garbage_does_not_fail_discovery)
{
	struct sw_proc_info pi;

	cr_assert_eq(sw_discover_process(5004, &pi), 0);
	cr_assert_str_eq(pi.service, "node", "an environ entry cut short is not used");
	cr_assert_str_eq(pi.container_id, CID);
	cr_assert_str_eq(pi.container_name, "", "truncated JSON");
}

Test(discovery, service_from_the_command_line)
{
	struct sw_proc_info pi;
	char long_name[65];

	cr_assert_eq(sw_discovery_set_service(0, "fleet"), 0);
	cr_assert_eq(sw_discover_process(5001, &pi), 0);
	cr_assert_str_eq(pi.service, "fleet", "--service NAME over OTEL_SERVICE_NAME");
	cr_assert_eq(sw_discovery_set_service(5001, "billing"), 0);
	cr_assert_eq(sw_discover_process(5001, &pi), 0);
	cr_assert_str_eq(pi.service, "billing", "--service PID=NAME over NAME");
	cr_assert_eq(sw_discover_process(5003, &pi), 0);
	cr_assert_str_eq(pi.service, "fleet");

	cr_assert_eq(sw_discovery_set_service(5001, ""), -EINVAL);
	cr_assert_eq(sw_discovery_set_service(5001, "\xff\xfe"), -EINVAL);
	memset(long_name, 'x', 64);
	long_name[64] = '\0';
	cr_assert_eq(sw_discovery_set_service(0, long_name), -EINVAL, "64 bytes");
	long_name[63] = '\0';
	cr_assert_eq(sw_discovery_set_service(0, long_name), 0, "63 bytes");
	sw_discovery_clear_services();
	for (int i = 0; i < SW_SERVICE_MAX; i++)
		cr_assert_eq(sw_discovery_set_service(100 + i, "s"), 0);
	cr_assert_eq(sw_discovery_set_service(100, "again"), 0, "a pid named again");
	cr_assert_eq(sw_discovery_set_service(99, "s"), -ENOSPC);
}

Test(identity, stat_start_ticks)
{
	cr_assert_eq(sw_stat_start_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0"), 42);
	cr_assert_eq(sw_stat_start_ticks("1 (a) b) 1 2 3 4) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 "
					 "18446744073709551615 0"),
		     18446744073709551615ull, "comm with spaces and ')'");
	cr_assert_eq(sw_stat_start_ticks("1 (x) S 1 1 1"), 0, "cut short");
	cr_assert_eq(sw_stat_start_ticks("no paren"), 0);
	cr_assert_eq(sw_stat_start_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4x2 0"), 0);
}

Test(identity, environ_and_resource_attributes)
{
	static const char env[] = "A=1\0OTEL_SERVICE_NAMEX=no\0OTEL_SERVICE_NAME=\xc3\xa9t\xff" "e\0"
				  "OTEL_SERVICE_NAME=second\0CUT=abc";
	char out[64];

	cr_assert_eq(sw_environ_get(env, sizeof(env) - 1, "OTEL_SERVICE_NAME", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "\xc3\xa9t\xef\xbf\xbd" "e", "the first, made valid UTF-8");
	cr_assert_eq(sw_environ_get(env, sizeof(env) - 1, "CUT", out, sizeof(out)), -ENOENT);
	cr_assert_eq(sw_environ_get(env, sizeof(env) - 1, "A", out, 2), 0);
	cr_assert_str_eq(out, "1");
	cr_assert_eq(sw_environ_get("X=\0", 3, "X", out, sizeof(out)), -ENOENT, "empty");

	cr_assert_eq(sw_otel_resource_service("service.name=a%2Cb", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "a,b");
	cr_assert_eq(sw_otel_resource_service("k=v,service.namespace=x", out, sizeof(out)), -ENOENT);
	cr_assert_eq(sw_otel_resource_service("service.name=", out, sizeof(out)), -ENOENT);
	cr_assert_eq(sw_otel_resource_service("", out, sizeof(out)), -ENOENT);
	cr_assert_eq(sw_otel_resource_service("service.name=%zz%4", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "%zz%4");
}
