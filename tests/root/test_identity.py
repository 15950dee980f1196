# SPDX-License-Identifier: Apache-2.0
"""Root tier: the identity the agent sends for each watched process (issue 8).

Three real workloads, one agent (--json):
- a "pod": py_asyncio.py with OTEL_SERVICE_NAME=checkout-api, moved into a
  kubelet-style (systemd driver) cgroup v2 path
  kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, '_'>.slice/
  cri-containerd-<64 hex>.scope (uid and id random), in its own mount
  namespace with a file bind-mounted on /etc/hostname, as the kubelet does,
  and the CRI annotations containerd keeps in the task's bundle config.json
  (written under /run/containerd only where no containerd runs);
- a "docker container": node_block.js without the env, in a docker cgroupfs
  path (/docker/<64 hex>: a cgroup v1 hierarchy on a hybrid host, so the
  agent must find it in the v1 lines, else v2's system.slice/docker-<id>.scope),
  named by --service PID=billing;
- a bare py_asyncio.py without the env, in no container.
Each path is made below a test-owned parent (swtest-ident-<pid>), so a real
kubelet's kubepods.slice is never touched, and removed after, processes
moved out first, even on failure.

Asserts on each process line: container_id and pod_uid are what the test
generated ('_' turned back into '-'); container_name and pod are the
annotations and the bind-mounted hostname; service is checkout-api, billing,
and the third's comm (/proc/PID/comm); start_ticks equals field 22 of the
test's own read of /proc/PID/stat; container is the cgroup v2 path; the
third has no container_id, pod_uid or pod.
"""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

import swtest
from swtest import NODE, SYS_PYTHON, workload

ROOTS_V2 = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
BUNDLES = "/run/containerd/io.containerd.runtime.v2.task/k8s.io"


def cgroup2_root():
    for r in ROOTS_V2:
        if os.path.exists(os.path.join(r, "cgroup.controllers")):
            return r
    return None


def cgroup1_root():
    """A v1 hierarchy that holds processes (pids), on a hybrid host."""
    r = "/sys/fs/cgroup/pids"
    if os.path.exists(os.path.join(r, "cgroup.clone_children")):
        return r
    return None


def own_cgroup(root):
    """The test's own cgroup in the hierarchy mounted at root (where the
    workloads are moved back to)."""
    v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))
    ctrl = os.path.basename(root)
    with open("/proc/self/cgroup") as f:
        for line in f:
            num, ctrls, path = line.rstrip("\n").split(":", 2)
            if (v2 and num == "0" and ctrls == "") or (not v2 and ctrl in ctrls.split(",")):
                return os.path.join(root, path.lstrip("/"))
    return root


class NestedCgroup:
    """root/<parts...>, made dir by dir; remove() moves the processes back
    to the test's own cgroup and removes every dir it made, deepest first.
    Registered with the harness's cleanup (swtest._cg_live)."""

    def __init__(self, root, rel):
        self.root = root
        self.rel = rel.strip("/")
        self.path = os.path.join(root, self.rel)
        self.made = []
        swtest._cg_live.append(self)
        d = root
        for part in self.rel.split("/"):
            d = os.path.join(d, part)
            if not os.path.isdir(d):
                os.mkdir(d)
                self.made.append(d)

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def remove(self):
        if self in swtest._cg_live:
            swtest._cg_live.remove(self)
        back = os.path.join(own_cgroup(self.root), "cgroup.procs")
        for d in reversed(self.made):
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids = [p.strip() for p in f if p.strip()]
            except OSError:
                pids = []
            for p in pids:
                try:
                    with open(back, "w") as fh:
                        fh.write(p)
                except OSError:
                    pass
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    swtest.time.sleep(0.1)
            else:
                swtest.log("WARNING: could not remove cgroup %s" % d)
        self.made = []


def stat_start_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    # comm (field 2) may hold spaces and ')': fields 3.. follow the last ')'
    return int(s[s.rindex(")") + 2:].split()[22 - 3])


def read_comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().rstrip("\n")


def clean_env():
    env = dict(os.environ)
    env.pop("OTEL_SERVICE_NAME", None)
    env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
    return env


class Identity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.made_files = []
        cls.cgs = []
        cls.tmp = tempfile.mkdtemp(prefix="sw-ident-")
        try:
            cls._run()
        finally:
            cls._cleanup()

    @classmethod
    def _cleanup(cls):
        for w in getattr(cls, "workloads", []):
            w.stop()
        if getattr(cls, "agent", None) and cls.agent.rc is None:
            cls.agent.stop()
        if getattr(cls, "collector", None):
            cls.collector.stop()
        for cg in cls.cgs:
            cg.remove()
        for d in reversed(cls.made_files):
            try:
                if os.path.isdir(d):
                    os.rmdir(d)
                else:
                    os.unlink(d)
            except OSError as e:
                swtest.log("WARNING: cannot remove %s: %s" % (d, e))
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _bundle(cls, cid, container, pod):
        """containerd's bundle config.json with the CRI annotations, only
        where no containerd keeps its state (a real one must not see it)."""
        if os.path.exists("/run/containerd"):
            swtest.log("/run/containerd exists: container_name and pod from the CRI "
                       "annotations are not tested here")
            return False
        d = "/"
        for part in (BUNDLES + "/" + cid).strip("/").split("/"):
            d = os.path.join(d, part)
            if not os.path.isdir(d):
                os.mkdir(d)
                cls.made_files.append(d)
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump({"ociVersion": "1.1.0", "annotations": {
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": container,
                "io.kubernetes.cri.sandbox-name": pod}}, f)
        cls.made_files.append(path)
        return True

    @classmethod
    def _run(cls):
        v2 = cgroup2_root()
        if v2 is None:
            raise RuntimeError("no cgroup v2 hierarchy (%s)" % ", ".join(ROOTS_V2))
        v1 = cgroup1_root()
        top = "swtest-ident-%d" % os.getpid()

        # the pod: kubelet systemd-driver path, random pod UID and container id
        cls.pod_uid = str(uuid.uuid4())
        cls.cid = secrets.token_hex(32)
        cls.pod_name = "checkout-%s" % secrets.token_hex(3)
        cls.pod_cg = "%s/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/" \
            "cri-containerd-%s.scope" % (top, cls.pod_uid.replace("-", "_"), cls.cid)
        cls.cgs.append(NestedCgroup(v2, cls.pod_cg))
        cls.named = cls._bundle(cls.cid, "api", cls.pod_name)
        hostname = os.path.join(cls.tmp, "hostname")
        with open(hostname, "w") as f:
            f.write(cls.pod_name + "\n")
        env = clean_env()
        env["OTEL_SERVICE_NAME"] = "checkout-api"
        # unshare without --fork and sh's exec keep the pid: the workload's
        # own mount namespace, /etc/hostname as the kubelet mounts it
        w1 = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount --bind "$0" /etc/hostname && exec "$@"', hostname,
              SYS_PYTHON, workload("py_asyncio.py")]
        cls.workloads = []
        cls.workloads.append(swtest.Workload(w1, name="pod", env=env))

        # the docker container: v1 lines on a hybrid host, else v2
        cls.did = secrets.token_hex(32)
        if v1 and v1 != v2:
            cls.docker_cg = NestedCgroup(v1, "%s/docker/%s" % (top, cls.did))
        else:
            cls.docker_cg = NestedCgroup(v2, "%s/system.slice/docker-%s.scope" % (top, cls.did))
        cls.cgs.append(cls.docker_cg)
        cls.workloads.append(swtest.Workload([NODE, workload("node_block.js")], name="docker",
                                             env=clean_env()))
        cls.workloads.append(swtest.Workload([SYS_PYTHON, workload("py_asyncio.py")],
                                             name="bare", env=clean_env()))
        w1, w2, w3 = cls.workloads
        cls.cgs[0].add(w1.pid)
        cls.docker_cg.add(w2.pid)
        cls.truth = {w.pid: {"start_ticks": stat_start_ticks(w.pid), "comm": read_comm(w.pid)}
                     for w in cls.workloads}
        with open("/proc/%d/cgroup" % w3.pid) as f:
            cls.bare_in_container = bool(re.search(r"(^|[/-])[0-9a-f]{64}(\.scope)?(/|$)",
                                                   f.read(), re.M))
        # and through a collector: the labels of /metrics
        cls.listen, cls.http = swtest.free_port(), swtest.free_port()
        cls.collector = swtest.Collector(cls.listen, cls.http)
        cls.agent = swtest.Agent([w.pid for w in cls.workloads],
                                 extra=["--service", "%d=billing" % w2.pid,
                                        "--collector", "127.0.0.1:%d" % cls.listen])
        cls.lines = cls.agent.wait_attached()
        cls.metrics = swtest.wait_for(cls._loops_exported, timeout=20, step=0.2)
        cls.rc = cls.agent.stop()

    @classmethod
    def _loops_exported(cls):
        """/metrics once every workload's loop has its iterations series."""
        m = swtest.metrics(cls.http)
        pids = {dict(k[1]).get("pid") for k in m if k[0] == "stallwatch_eventloop_iterations_total"}
        return m if all(str(w.pid) in pids for w in cls.workloads) else None

    def line(self, i):
        return self.lines[self.workloads[i].pid]

    def test_pod(self):
        o = self.line(0)
        pid = self.workloads[0].pid
        self.assertEqual(o.get("container_id"), self.cid, o)
        self.assertEqual(o.get("pod_uid"), self.pod_uid, o)
        self.assertEqual(o.get("service"), "checkout-api", o)
        self.assertEqual(o.get("start_ticks"), self.truth[pid]["start_ticks"], o)
        self.assertTrue(o.get("container", "").endswith("/" + self.pod_cg), o)
        self.assertEqual(o.get("pod"), self.pod_name,
                         "the pod's name: %s" % ("the CRI annotation" if self.named
                                                 else "its /etc/hostname"))
        if self.named:
            self.assertEqual(o.get("container_name"), "api", o)

    def test_service_from_the_command_line(self):
        o = self.line(1)
        pid = self.workloads[1].pid
        self.assertEqual(o.get("service"), "billing", o)
        self.assertEqual(o.get("container_id"), self.did, o)
        self.assertNotIn("pod_uid", o)
        self.assertNotIn("pod", o)
        self.assertNotIn("container_name", o, "no docker here: no config.v2.json to read")
        self.assertEqual(o.get("start_ticks"), self.truth[pid]["start_ticks"], o)

    def test_service_is_the_comm(self):
        o = self.line(2)
        pid = self.workloads[2].pid
        self.assertEqual(o.get("comm"), self.truth[pid]["comm"], o)
        self.assertEqual(o.get("service"), self.truth[pid]["comm"], o)
        self.assertEqual(o.get("start_ticks"), self.truth[pid]["start_ticks"], o)
        self.assertNotIn("pod_uid", o)
        self.assertNotIn("pod", o)
        if not self.bare_in_container:
            self.assertNotIn("container_id", o)

    def series_labels(self, i):
        """The labels of workload i's iterations series (exactly one)."""
        pid = str(self.workloads[i].pid)
        found = [dict(k[1]) for k in self.metrics
                 if k[0] == "stallwatch_eventloop_iterations_total" and dict(k[1])["pid"] == pid]
        self.assertEqual(len(found), 1, found)
        return found[0]

    def test_collector_labels(self):
        """What the agent read is what a fleet's series carry."""
        pod, docker, bare = (self.series_labels(i) for i in range(3))
        self.assertEqual(pod["service"], "checkout-api", pod)
        self.assertEqual(pod["container_id"], self.cid[:12], pod)
        self.assertEqual(pod["pod_uid"], self.pod_uid, pod)
        self.assertEqual(pod["pod"], self.pod_name, pod)
        self.assertEqual(pod["runtime"], "python", pod)
        self.assertRegex(pod["runtime_version"], r"^3\.\d+\.\d+", pod)
        if self.named:
            self.assertEqual(pod["container"], "api", pod)
        self.assertEqual(docker["service"], "billing", docker)
        self.assertEqual(docker["container_id"], self.did[:12], docker)
        self.assertRegex(docker["runtime_version"], r"^\d+\.\d+\.\d+", docker)
        self.assertNotIn("pod_uid", docker)
        self.assertEqual(bare["service"], self.truth[self.workloads[2].pid]["comm"], bare)
        self.assertNotIn("pod_uid", bare)
        if not self.bare_in_container:
            self.assertNotIn("container_id", bare)

    def test_agent_clean(self):
        self.assertEqual(self.rc, 0, self.agent.describe())
        self.assertEqual(self.agent.crash_markers(), [], self.agent.describe())
        self.assertEqual(self.agent.out.bad, [], "lines that are not JSON")


def gate_cgroup():
    """No cgroup v2 or no unshare: skip (77), a failure under SW_CI=1."""
    reason = None
    if cgroup2_root() is None:
        reason = "no cgroup v2 hierarchy at %s" % " or ".join(ROOTS_V2)
    elif not shutil.which("unshare"):
        reason = "no unshare(1) (util-linux)"
    if reason:
        if swtest.CI:
            print("FAIL: test_identity cannot run under SW_CI=1: %s" % reason, flush=True)
            sys.exit(1)
        print("SKIP: test_identity: %s" % reason, flush=True)
        sys.exit(swtest.SKIP)


if __name__ == "__main__":
    gate_cgroup()
    swtest.main("test_identity")
