"""Argo CD for real, as the project runs it in its tests and its demo (docs/gitops.md).

- `build()`: Argo CD's application controller and repo server, and kustomize, built from the Go
  module proxy by images/argocd/build.sh and cached; the image for a kind cluster too.
- `GitServer`: `git daemon` serving a throwaway copy of this repository whose Applications point
  at it, as a fork's point at the fork.
- `configure()`: what Argo CD reads from the cluster: its CRDs, `argocd/install/config`, and
  `argocd-cm` patched with the project's health checks, the step docs/gitops.md gives a user.
- `LocalArgoCD`: Redis, the repo server and the controller as local processes against a
  control plane (the fast mode); `install_in_cluster()`: the same as Deployments in kind.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelops_envtest import debian, upstream_crds
from modelops_envtest.controlplane import free_port
from modelops_envtest.kind import KindCluster, run_build
from modelops_envtest.processes import Service, answers, die_with_parent, end
from modelops_envtest.waiting import wait_until

REPOSITORY = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPOSITORY / "images" / "argocd" / "build.sh"
INSTALL = REPOSITORY / "argocd" / "install"
HEALTH_CHECKS_PATCH = REPOSITORY / "argocd" / "argocd-cm-patch.yaml"
NAMESPACE = "argocd"
# The repoURL argocd/ ships with: a fork replaces it with its own (docs/gitops.md).
PLACEHOLDER_REPO_URL = "https://github.com/example/modelops.git"
PLATFORM_APP = Path("argocd/apps/platform.yaml")
SHIPPED_PLATFORM_OVERLAY = "deploy/overlays/production"
# How often Argo CD looks at git here (argocd/install's flags): upstream polls every 3 minutes.
RESYNC_SECONDS = 10
STOP_GRACE_SECONDS = 15
GIT_IDENTITY = ("-c", "user.name=modelops tests", "-c", "user.email=tests@modelops.invalid")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class ArgoCDTools:
    """What images/argocd/build.sh built: the folder holding `argocd` and the scripts the repo
    server runs, kustomize, and (when asked) the image."""

    binaries: Path
    kustomize: Path
    image: str | None


def build(with_image: bool = False, show_progress: bool = False) -> ArgoCDTools:
    built = run_build(
        BUILD_SCRIPT, *([] if with_image else ["--no-image"]), show_progress=show_progress
    )
    return ArgoCDTools(
        binaries=Path(built["ARGOCD"]),
        kustomize=Path(built["KUSTOMIZE"]),
        image=built.get("ARGOCD_IMAGE"),
    )


def configure(kubectl: Kubectl, crds_beside_repository: Path | None = None) -> None:
    """Argo CD's CRDs (from its release), its settings and `default` project, and `argocd-cm`
    patched with the health checks, as docs/gitops.md has a user do it."""
    for path in upstream_crds.ARGOCD.paths(crds_beside_repository):
        kubectl("apply", "--server-side", "-f", str(path))
    wait_until(
        lambda: (
            kubectl(
                "wait",
                "--for=condition=Established",
                "crd/applications.argoproj.io",
                "crd/appprojects.argoproj.io",
                "--timeout=10s",
                check=False,
            ).returncode
            == 0
        ),
        timeout=90,
        what="Argo CD's CRDs to be established",
    )
    kubectl("apply", "-k", str(INSTALL / "config"))
    _patch_health_checks(kubectl)


def _patch_health_checks(kubectl: Kubectl) -> None:
    kubectl(
        "-n", NAMESPACE, "patch", "configmap", "argocd-cm",
        "--type", "merge", "--patch-file", str(HEALTH_CHECKS_PATCH),
    )  # fmt: skip


def install_in_cluster(cluster: KindCluster, tools: ArgoCDTools, timeout: str = "300s") -> None:
    """argocd/install in a kind cluster, its image loaded first (the cluster pulls nothing)."""
    if tools.image is None:
        raise ValueError("install_in_cluster needs the image: build(with_image=True)")
    cluster.load(tools.image)
    configure(cluster.kubectl)
    cluster.kubectl("apply", "-k", str(INSTALL))
    _patch_health_checks(cluster.kubectl)
    for workload in (
        "deployment/argocd-redis",
        "deployment/argocd-repo-server",
        "statefulset/argocd-application-controller",
    ):
        cluster.wait_rolled_out(NAMESPACE, workload, timeout)


class GitServer(Service):
    """`with GitServer(address) as git:` a git daemon on `address` serving `git.url`: a copy of
    this repository (its tracked and unignored files as they are now), then one commit pointing
    the Applications at `git.url` and the platform at `platform_overlay`. `commit()` and
    `revert()` change it as a user's pushes would."""

    def __init__(self, address: str = "127.0.0.1", platform_overlay: str = "kind") -> None:
        self.address = address
        self.platform_overlay = platform_overlay
        self.root = Path(tempfile.mkdtemp(prefix="modelops-git-"))
        self.work = self.root / "work"
        self.bare = self.root / "served" / "modelops.git"
        self.port = free_port(address)
        self.url = f"git://{address}:{self.port}/modelops.git"
        self.log = self.root / "git-daemon.log"
        self._daemon: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        self._copy_repository()
        self._git("init", "-q", "-b", "main")
        self._git("add", "-A")
        self._git("commit", "-q", "-m", "modelops, as this repository is now")
        self._git("clone", "-q", "--bare", str(self.work), str(self.bare))
        self._git("remote", "add", "origin", str(self.bare))
        self.commit("Point Argo CD at this server", self._pointed_at_this_server())
        self._serve()

    def stop(self) -> None:
        if self._daemon is not None:
            end(self._daemon, STOP_GRACE_SECONDS)
        shutil.rmtree(self.root, ignore_errors=True)

    def read(self, path: str) -> str:
        return (self.work / path).read_text()

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        """Write (None: delete) the files, commit and push; the new commit's SHA."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message)
        return self._push()

    def revert(self, sha: str) -> str:
        self._git("revert", "--no-edit", sha)
        return self._push()

    def _push(self) -> str:
        self._git("push", "-q", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD").stdout.strip()

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.work.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["git", *GIT_IDENTITY, *args], cwd=self.work, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def _copy_repository(self) -> None:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPOSITORY,
            capture_output=True,
            check=True,
        ).stdout.decode()
        for name in filter(None, listed.split("\0")):
            source = REPOSITORY / name
            if source.is_file():  # a tracked file deleted in the work tree is left out
                target = self.work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def _pointed_at_this_server(self) -> dict[str, str | None]:
        changed: dict[str, str | None] = {}
        for path in sorted((self.work / "argocd").glob("**/*.yaml")):
            text = path.read_text()
            if PLACEHOLDER_REPO_URL in text:
                changed[str(path.relative_to(self.work))] = text.replace(
                    PLACEHOLDER_REPO_URL, self.url
                )
        platform = str(PLATFORM_APP)
        changed[platform] = (changed.get(platform) or self.read(platform)).replace(
            SHIPPED_PLATFORM_OVERLAY, f"deploy/overlays/{self.platform_overlay}"
        )
        return changed

    def _serve(self) -> None:
        served = self.bare.parent
        with self.log.open("wb") as log:
            self._daemon = subprocess.Popen(
                [
                    "git", "daemon", "--reuseaddr", "--export-all",
                    f"--base-path={served}", f"--listen={self.address}", f"--port={self.port}",
                    str(served),
                ],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )  # fmt: skip
        wait_until(
            lambda: (
                subprocess.run(
                    ["git", "ls-remote", self.url], capture_output=True, check=False
                ).returncode
                == 0
            ),
            timeout=30,
            what=f"git daemon at {self.url}",
        )


class LocalArgoCD(Service):
    """`with LocalArgoCD(tools, kubeconfig):` Redis (Debian's, fresh: Argo CD caches errors in
    it), the repo server and the application controller as local processes, with the flags of
    argocd/install. The controller reaches the cluster through `kubeconfig` and treats it as
    the in-cluster destination, https://kubernetes.default.svc."""

    def __init__(self, tools: ArgoCDTools, kubeconfig: Path) -> None:
        self.tools = tools
        self.kubeconfig = kubeconfig
        self.workdir = Path(tempfile.mkdtemp(prefix="modelops-argocd-"))
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def _start(self) -> None:
        redis, repo_server = free_port(), free_port()
        repo_metrics, controller_metrics = free_port(), free_port()
        state = self.workdir / "state"
        for folder in ("tmp", "tls", "ssh", "gpg"):
            (state / folder).mkdir(parents=True)
        # As the install's (argocd/install/redis.yaml): any local process could reach it.
        redis_password = secrets.token_urlsafe(16)
        self._spawn(
            "redis",
            [
                str(debian.command("redis-server", package="redis-server")),
                "--port", str(redis), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--requirepass", redis_password,
            ],
        )  # fmt: skip
        self._argocd(
            "argocd-repo-server",
            [
                "--address", "127.0.0.1", "--port", str(repo_server),
                "--metrics-address", "127.0.0.1", "--metrics-port", str(repo_metrics),
                "--redis", f"127.0.0.1:{redis}",
                "--disable-tls", "--client-ca-path=",
                "--revision-cache-expiration", f"{RESYNC_SECONDS}s",
                "--logformat", "text",
            ],
            env={
                # The repo server runs git, kustomize and git-verify-wrapper.sh from PATH.
                "PATH": os.pathsep.join(
                    [str(self.tools.binaries), str(self.tools.kustomize.parent), os.environ["PATH"]]
                ),
                "TMPDIR": str(state / "tmp"),
                # Each instance its own (the default socket path is shared by all of them).
                "ARGOCD_ASK_PASS_SOCK": str(state / "askpass.sock"),
                "ARGOCD_TLS_DATA_PATH": str(state / "tls"),
                "ARGOCD_SSH_DATA_PATH": str(state / "ssh"),
                "ARGOCD_GNUPGHOME": str(state / "gpg"),
                "ARGOCD_GPG_ENABLED": "false",
                "REDIS_PASSWORD": redis_password,
            },
        )  # fmt: skip
        self._argocd(
            "argocd-application-controller",
            [
                "--kubeconfig", str(self.kubeconfig), "--namespace", NAMESPACE,
                "--repo-server", f"127.0.0.1:{repo_server}", "--repo-server-plaintext",
                "--redis", f"127.0.0.1:{redis}", "--metrics-port", str(controller_metrics),
                "--app-resync", str(RESYNC_SECONDS), "--app-resync-jitter", "0",
                "--persist-resource-health", "--logformat", "text",
            ],
            env={
                "ARGOCD_FAKE_IN_CLUSTER": "true",
                "KUBECONFIG": str(self.kubeconfig),
                "REDIS_PASSWORD": redis_password,
            },
        )  # fmt: skip
        for name, port in (
            ("argocd-repo-server", repo_metrics),
            ("argocd-application-controller", controller_metrics),
        ):
            wait_until(
                functools.partial(
                    answers,
                    self._processes[name],
                    f"http://127.0.0.1:{port}/healthz",
                    name,
                    functools.partial(self.log_tail, name),
                ),
                timeout=60,
                what=f"{name}'s /healthz",
            )

    def _argocd(self, component: str, args: list[str], env: dict[str, str]) -> None:
        # Argo CD's components are one binary, told apart by ARGOCD_BINARY_NAME.
        self._spawn(
            component,
            [str(self.tools.binaries / "argocd"), *args],
            env={"ARGOCD_BINARY_NAME": component, **env},
        )

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        with (self.workdir / f"{name}.log").open("wb") as log:
            self._processes[name] = subprocess.Popen(
                command,
                env=os.environ | (env or {}),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )

    def log_tail(self, name: str, lines: int = 40) -> str:
        text = (self.workdir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for process in self._processes.values():
            end(process, STOP_GRACE_SECONDS)
        # The logs stay, for a failure's post-mortem; the clones and caches go.
        shutil.rmtree(self.workdir / "state", ignore_errors=True)
