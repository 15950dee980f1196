// SPDX-License-Identifier: Apache-2.0
/* common/container.c: the cgroup paths docker, podman, containerd, CRI-O and
 * the kubelet (both cgroup drivers) create, and what is not a container. */
#include "container.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ids and pod UIDs in the shape the runtimes make them */
#define ID1 "4c01db0b339c5f2b8ec3fa81e61e4c8b4b1ed1a6c7f47a1c6a66d4e4e1d2f7a9"
#define ID2 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define UID1 "8f1c2a4e-7d3b-4c5a-9e6f-0a1b2c3d4e5f"
#define UID1_ "8f1c2a4e_7d3b_4c5a_9e6f_0a1b2c3d4e5f"
#define STATIC_UID "6d8a0f2b3c4d5e6f708192a3b4c5d6e7" /* a static pod's config hash */

struct row {
	const char *path;
	bool ok;
	const char *id, *pod_uid, *runtime;
};

static const struct row rows[] = {
	/* docker, cgroupfs driver (v1 line tail and v2) */
	{ "/docker/" ID1, true, ID1, "", "docker" },
	{ "12:memory:/docker/" ID1, true, ID1, "", "docker" },
	/* docker, systemd driver */
	{ "/system.slice/docker-" ID1 ".scope", true, ID1, "", "docker" },
	{ "0::/system.slice/docker-" ID1 ".scope", true, ID1, "", "docker" },
	/* podman, rootful and rootless, with the inner "container" cgroup */
	{ "/machine.slice/libpod-" ID1 ".scope", true, ID1, "", "podman" },
	{ "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" ID1
	  ".scope/container",
	  true, ID1, "", "podman" },
	{ "/libpod_parent/libpod-" ID1, true, ID1, "", "podman" },
	{ "/machine.slice/libpod-conmon-" ID1 ".scope", false, "", "", "" },
	/* kubelet, cgroupfs driver: burstable, besteffort, guaranteed */
	{ "/kubepods/burstable/pod" UID1 "/" ID1, true, ID1, UID1, "" },
	{ "/kubepods/besteffort/pod" UID1 "/" ID1, true, ID1, UID1, "" },
	{ "/kubepods/pod" UID1 "/" ID1, true, ID1, UID1, "" },
	{ "/kubepods/pod" STATIC_UID "/" ID1, true, ID1, STATIC_UID, "" },
	/* kubelet, systemd driver: containerd, CRI-O, dockershim */
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID1_
	  ".slice/cri-containerd-" ID1 ".scope",
	  true, ID1, UID1, "containerd" },
	{ "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID1_
	  ".slice/crio-" ID1 ".scope",
	  true, ID1, UID1, "cri-o" },
	{ "/kubepods.slice/kubepods-pod" UID1_ ".slice/docker-" ID1 ".scope", true, ID1, UID1,
	  "docker" },
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID1_
	  ".slice/crio-conmon-" ID1 ".scope",
	  false, "", "", "" },
	/* kind: a node that is a docker container, its pods nested below */
	{ "/docker/" ID2 "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
	  "kubelet-kubepods-besteffort-pod" UID1_ ".slice/cri-containerd-" ID1 ".scope",
	  true, ID1, UID1, "containerd" },
	{ "/docker/" ID2 "/kubepods/burstable/pod" UID1 "/" ID1, true, ID1, UID1, "" },
	/* nerdctl (containerd, systemd driver) */
	{ "/system.slice/nerdctl-" ID1 ".scope", true, ID1, "", "containerd" },
	/* no container */
	{ "/user.slice/user-1000.slice/session-2.scope", false, "", "", "" },
	{ "/system.slice/nginx.service", false, "", "", "" },
	{ "/", false, "", "", "" },
	{ "", false, "", "", "" },
	{ "0::/", false, "", "", "" },
	/* a pod's slice with no container in it */
	{ "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID1_ ".slice", false,
	  "", "", "" },
	/* truncated and garbage */
	{ "/docker/4c01db0b339c5f2b8ec3fa81e61e4c8b4b1ed1a6c7f47a1c6a66d4e4e1d2f7a", false, "", "",
	  "" }, /* 63 hex */
	{ "/docker/" ID1 "0", false, "", "", "" }, /* 65 hex */
	{ "/docker/4c01db0b339c5f2b8ec3fa81e61e4c8b4b1ed1a6c7f47a1c6a66d4e4e1d2f7aZ", false, "", "",
	  "" }, /* non-hex */
	{ "/docker/4C01DB0B339C5F2B8EC3FA81E61E4C8B4B1ED1A6C7F47A1C6A66D4E4E1D2F7A9", false, "", "",
	  "" }, /* the runtimes write lowercase */
	{ "/system.slice/dockerx" ID1 ".scope", false, "", "", "" }, /* no '-' before the id */
	{ "/kubepods/burstable/pod8f1c2a4e-7d3b-4c5a-9e6f/" ID1, true, ID1, "", "" }, /* short uid */
	{ "/kubepods/burstable/podzz1c2a4e-7d3b-4c5a-9e6f-0a1b2c3d4e5f/" ID1, true, ID1, "", "" },
	{ "///docker//" ID1 "//", true, ID1, "", "docker" },
	{ "/docker/" ID1 "\n11:cpu:/", true, ID1, "", "docker" }, /* stops at the line's end */
	{ "/a/b-" ID1 ".scope", true, ID1, "", "" }, /* an unknown prefix: the id, no runtime */
};

Test(container, real_world_paths)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct sw_container_ident ci;

		memset(&ci, 'X', sizeof(ci));
		cr_expect_eq(sw_container_parse(r->path, &ci), r->ok, "row %zu %s", i, r->path);
		cr_expect_str_eq(ci.id, r->id, "row %zu %s: id", i, r->path);
		cr_expect_str_eq(ci.pod_uid, r->pod_uid, "row %zu %s: pod_uid", i, r->path);
		cr_expect_str_eq(ci.runtime, r->runtime, "row %zu %s: runtime", i, r->path);
	}
}

Test(container, null_and_overlong)
{
	struct sw_container_ident ci;
	size_t n = 1 << 20;
	char *big = malloc(n + 200);

	memset(&ci, 'X', sizeof(ci));
	cr_assert_not(sw_container_parse(NULL, &ci));
	cr_assert_str_eq(ci.id, "");
	cr_assert_str_eq(ci.pod_uid, "");
	cr_assert_str_eq(ci.runtime, "");

	/* a megabyte of hex with no '/': one component, far longer than an id */
	cr_assert_not_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	cr_assert_not(sw_container_parse(big, &ci));
	cr_assert_str_eq(ci.id, "");
	/* ... and the same with a real id as its last component */
	snprintf(big + n, 200, "/docker-%s.scope", ID2);
	cr_assert(sw_container_parse(big, &ci));
	cr_assert_str_eq(ci.id, ID2);
	cr_assert_str_eq(ci.runtime, "docker");
	free(big);
}
