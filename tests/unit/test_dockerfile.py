"""The Dockerfile and .dockerignore, read statically (tests/packaging/test_image.py builds
the image and runs the operator from it).

A small parser splits the Dockerfile into stages and instructions; the tests check what
the Deployment relies on: non-root uid 65532, the entrypoint, a venv-only runtime stage on
the slim base, a /healthz HEALTHCHECK without curl, nothing secret baked in, and a build
context that holds only the package.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE = "docker.io/library/python:3.11-slim"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")
SECRET_NAME = re.compile(r"TOKEN|API_?KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AWS_|PRIVATE", re.I)


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        text = self.args.strip()
        if self.keyword == "HEALTHCHECK":  # HEALTHCHECK [--options] CMD [...]
            options, _, text = text.partition("CMD ")
            assert all(o.startswith("--") for o in options.split()), options
            text = text.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(a, str) for a in value)
        return value


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue  # comments and parser directives
        if line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            continue  # a global ARG (read by global_args) only parameterises FROM lines
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            assert len(parts) in (1, 3), line
            stages.append(Stage(image=parts[0], name=name))
            continue
        assert stages, f"instruction before FROM: {line}"
        stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return stages


def global_args(text: str) -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            break
        if line.upper().startswith("ARG "):
            name, _, default = line[4:].strip().partition("=")
            args[name] = default
    return args


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def env_pairs(instruction: Instruction) -> dict[str, str]:
    """ENV k=v k2="v 2" (the modern form) or ENV k v (legacy)."""
    tokens = shlex.split(instruction.args, posix=True)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def test_multi_stage_on_the_slim_base(stages: list[Stage], final: Stage) -> None:
    assert len(stages) >= 2
    # The same base for both stages, from the build argument BASE_IMAGE (build-image.sh
    # passes a local base where no registry answers) whose default is the slim base, pinned
    # by digest (a tag moves; a digest is the same image for ever), fully qualified (podman
    # resolves no short name without a registries.conf).
    images = {stage.image for stage in stages}
    assert images == {"${BASE_IMAGE}"}, images
    image = global_args(DOCKERFILE.read_text())["BASE_IMAGE"]
    tag, digest = image.split("@", 1) if "@" in image else (image, "")
    assert tag == BASE and DIGEST.fullmatch("@" + digest), image
    # Both bases: `python3` makes the venv (a Debian base has no `python`); everything
    # after runs the venv's own `python`.
    builder_runs = " ".join(r.args for r in stages[0].all("RUN"))
    assert "python3 -m venv --without-pip /opt/venv" in builder_runs
    names = [stage.name for stage in stages]
    assert names[0] == "builder" and final.name == "runtime"
    # The runtime stage copies the venv from the builder and installs nothing itself.
    copies = final.all("COPY")
    # The dependencies' venv and the package: two layers, so that a change to the package
    # ships a small layer and leaves the dependencies' layer as it was.
    assert [c.args for c in copies] == [
        "--from=builder /opt/venv /opt/venv",
        "--from=builder /opt/app /opt/app",
    ]
    for run in final.all("RUN"):
        assert not re.search(r"\bpip\b|apt-get|\bcurl\b|\bwget\b", run.args), run.args


def test_runtime_dependencies_only(stages: list[Stage]) -> None:
    builder_runs = " ".join(i.args for i in stages[0].all("RUN"))
    assert "['project']['dependencies']" in builder_runs
    assert "optional-dependencies" not in DOCKERFILE.read_text()
    assert "[test]" not in DOCKERFILE.read_text()
    assert "--no-deps" in builder_runs  # the wheel adds no dependency of its own
    # Every path the builder copies exists in the repository.
    for copy in stages[0].all("COPY"):
        *sources, _dest = copy.args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("kopf") for d in deps)


def test_runs_as_non_root_uid_65532(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the runtime stage sets no USER"
    # The last USER wins: numeric (runAsNonRoot can verify it), never root.
    assert users[-1].args == "65532:65532"
    env = {k: val for i in final.all("ENV") for k, val in env_pairs(i).items()}
    # Read-only root filesystem: home and temporary files live on the /tmp emptyDir, and
    # Python writes no bytecode next to the code.
    assert env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["LOGNAME"]  # kopf's getpass.getuser() works for any uid
    assert env["PATH"].startswith("/opt/venv/bin:/opt/app/bin:")
    assert env["PYTHONPATH"] == "/opt/app"


def test_version_label_comes_from_the_build_argument(final: Stage) -> None:
    # build-image.sh passes pyproject.toml's version: the label is written nowhere else.
    assert [a.args.split("=")[0] for a in final.all("ARG")] == ["VERSION"]
    labels = " ".join(i.args for i in final.all("LABEL"))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def test_entrypoint_and_ports(final: Stage) -> None:
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.exec_form() == ["python", "-m", "controller", "run"]
    assert not final.all("CMD")  # the Deployment passes its scope as args
    exposed = {p for i in final.all("EXPOSE") for p in i.args.split()}
    assert exposed == {"8080", "9090"}


def test_healthcheck_probes_healthz_with_python(final: Stage) -> None:
    (healthcheck,) = final.all("HEALTHCHECK")
    command = healthcheck.exec_form()
    assert command is not None, "use the exec form: the image needs no shell to check health"
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2] and "/healthz" in command[2] and "8080" in command[2]
    compile(command[2], "<healthcheck>", "exec")
    assert not re.search(r"\bcurl\b|\bwget\b", healthcheck.args)
    assert re.search(r"--interval=\d+s", healthcheck.args)
    assert re.search(r"--timeout=\d+s", healthcheck.args)


def test_nothing_secret_is_baked_in(stages: list[Stage]) -> None:
    for stage in stages:
        for instruction in stage.all("ENV") + stage.all("ARG"):
            names = (
                env_pairs(instruction)
                if instruction.keyword == "ENV"
                else {instruction.args.split("=")[0]: ""}
            )
            for name in names:
                assert not SECRET_NAME.search(name), f"{instruction.keyword} {name}"
        for instruction in stage.instructions:
            assert not re.search(r"\.env\b|credentials|\.aws|\.kube", instruction.args), (
                instruction.args
            )


# --- .dockerignore ---------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or any of its
    parent directories; '!' re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        if pattern.startswith("**/"):
            regex = "(?:.*/)?" + fnmatch.translate(pattern[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, p) for p in prefixes):
            result = not negate
    return result


def test_dockerignore_sends_only_the_package() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in ("pyproject.toml", "controller/__main__.py", "controller/api/crd.py"):
        assert not ignored(path, patterns), path
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/conftest.py",
        "tests/support/replicate_server.py",
        "benchmarks/bench.py",
        "scripts/test.sh",
        "manifests/deployment.yaml",
        "Dockerfile",
        "README.md",  # the image builds the package with a stub README
        ".hypothesis/x",
        "controller/__pycache__/settings.cpython-311.pyc",
        "controller/api/__pycache__/crd.cpython-311.pyc",
        ".env",
        "secret.yaml",
    ):
        assert ignored(path, patterns), path
