"""deploy/: what can be checked without a container runtime, a registry or a cluster.

The Dockerfile is parsed (dockerfile-parse) and checked for a Debian base, Chromium and fonts
from apt, dependencies from requirements.lock before the project (`--no-deps`), a non-root user
and a Prefect process worker as its command. The compose file is validated against the
compose-spec JSON schema (vendored in check-jsonschema) and for the HA shape; the Kubernetes
manifest against Kubernetes' own schemas (kubernetes-validate, strict); the nginx config with
`nginx -t`. `docker compose config` runs only where a compose client answers (not here).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HA_SETTINGS = {
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_MIGRATE_ON_START",
    "PREFECT_MESSAGING_BROKER",
    "PREFECT_MESSAGING_CACHE",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE",
    "PREFECT_REDIS_MESSAGING_HOST",
    "PREFECT_SERVER_DOCKET_URL",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
}


def _dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=(DEPLOY / "worker.Dockerfile").open("rb"))
    return parser


def _instructions(kind: str) -> list[str]:
    return [i["value"] for i in _dockerfile().structure if i["instruction"] == kind]


def test_dockerfile_is_debian_chromium_locked_and_non_root() -> None:
    parser = _dockerfile()
    assert parser.baseimage.startswith("debian:")
    runs = _instructions("RUN")
    apt = next(r for r in runs if "apt-get install" in r)
    assert re.search(r"\bchromium\b", apt)
    assert re.search(r"\bfonts-", apt)

    # Locked dependencies are installed before the project, which goes in without resolving.
    order = [(i["instruction"], i["value"]) for i in parser.structure]
    lock_install = next(
        n for n, (k, v) in enumerate(order) if k == "RUN" and "-r /src/requirements.lock" in v
    )
    copy_lock = next(
        n for n, (k, v) in enumerate(order) if k == "COPY" and v.startswith("requirements.lock")
    )
    copy_all = next(n for n, (k, v) in enumerate(order) if k == "COPY" and v.startswith(". "))
    project_install = next(
        n for n, (k, v) in enumerate(order) if k == "RUN" and "pip install --no-deps" in v
    )
    assert copy_lock < lock_install < copy_all < project_install

    users = _instructions("USER")
    assert users, "the image must switch to a non-root user"
    assert users[-1] not in {"root", "0"}
    user_created = next(r for r in runs if "useradd" in r)
    assert users[-1] in user_created.split()

    env = parser.envs
    assert env["FLEETWRIGHT_CHROMIUM_EXECUTABLE"] == "/usr/bin/chromium"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    # The pull step of prefect.yaml changes into this folder: the installed project files.
    assert env["FLEETWRIGHT_PROJECT_DIR"].endswith(
        "/lib/python3.11/site-packages/fleetwright/project"
    )
    assert (ROOT / "fleetwright" / "project" / "prefect.yaml").exists()
    cmd = " ".join(_instructions("CMD"))
    assert "prefect worker start" in cmd
    assert "--type process" in cmd


def test_dockerfile_context_keeps_local_state_out() -> None:
    ignored = (DEPLOY / "worker.Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)
    for copy in _instructions("COPY"):
        source = copy.split()[0]
        assert (ROOT / source).exists(), source


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    result = _check_compose_schema(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The check does catch mistakes: an unknown service key fails it.
    broken = _compose()
    broken["services"]["worker"]["replicaz"] = 3
    bad = tmp_path / "compose.yaml"
    bad.write_text(yaml.safe_dump(broken))
    assert _check_compose_schema(bad).returncode != 0


def test_compose_file_has_the_ha_topology() -> None:
    services = _compose()["services"]
    apis = [s for s in services.values() if "--no-services" in s.get("command", [])]
    assert len(apis) >= 2
    background = [
        s
        for s in services.values()
        if s.get("command") == ["prefect", "server", "services", "start"]
    ]
    assert len(background) == 1
    for service in [*apis, *background, services["migrate"]]:
        assert set(service["environment"]) >= HA_SETTINGS, service["command"]
        env = service["environment"]
        assert env["PREFECT_MESSAGING_BROKER"] == "prefect_redis.messaging"
        assert env["PREFECT_API_DATABASE_MIGRATE_ON_START"] == "false"
    assert {"postgres", "redis", "lb", "worker", "setup"} <= set(services)
    assert services["worker"]["environment"]["PREFECT_API_URL"] == "http://lb:4200/api"
    # The balancer's config names every API service.
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for name, service in services.items():
        if service in apis:
            assert f"server {name}:4200" in conf
    assert (DEPLOY / _compose()["configs"]["nginx"]["file"]).exists()


def test_docker_compose_config_where_a_compose_client_exists() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("no `docker compose` client here; the compose-spec schema check stands in")
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        env={"POSTGRES_PASSWORD": "check", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_kubernetes_manifests_match_kubernetes_schemas() -> None:
    manifests = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    assert manifests
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, "1.33.0", strict=True)
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    # Strict validation rejects what Kubernetes would: a misspelt field.
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "worker-deployment.yaml").read_text())
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_worker_deployment_runs_the_image_as_its_non_root_user() -> None:
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "worker-deployment.yaml").read_text())
    pod = doc["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    uid = re.search(r"--uid (\d+)", " ".join(_instructions("RUN")))
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "valueFrom" in env["FLEETWRIGHT_DATABASE_URL"], "the catalogue URL comes from a Secret"
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])


def test_helm_values_set_up_prefect_ha() -> None:
    server = yaml.safe_load((DEPLOY / "helm" / "prefect-server.values.yaml").read_text())
    assert server["server"]["replicaCount"] >= 2
    background = server["backgroundServices"]
    assert background["runAsSeparateDeployment"] is True
    assert background["replicaCount"] == 1
    assert background["messaging"]["broker"] == "prefect_redis.messaging"
    assert background["messaging"]["cache"] == "prefect_redis.messaging"
    assert background["messaging"]["docket"]["existingSecret"]
    assert server["postgresql"]["enabled"] is False
    assert server["secret"] == {"create": False, "name": "prefect-db"}
    env = {e["name"]: e["value"] for e in server["global"]["prefect"]["env"]}
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"

    worker = yaml.safe_load((DEPLOY / "helm" / "prefect-worker.values.yaml").read_text())
    assert worker["worker"]["apiConfig"] == "selfHostedServer"
    assert worker["worker"]["config"]["type"] == "kubernetes"
    assert worker["worker"]["selfHostedServerApiConfig"]["apiUrl"].endswith("/api")
    # Server and worker images carry the Prefect version the lock pins.
    pinned = re.search(r"^prefect==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M)
    assert pinned
    assert server["global"]["prefect"]["image"]["prefectTag"].startswith(pinned.group(1))
    assert worker["worker"]["image"]["prefectTag"].startswith(pinned.group(1))


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/test-services.sh installs Debian's nginx)")
    # The compose service names do not resolve here: point them at loopback, nothing else.
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    conf = re.sub(r"server prefect-api-(\d+):4200", r"server 127.0.0.\1:4200", conf)
    conf = conf.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
