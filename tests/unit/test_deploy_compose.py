"""compose.yaml and the image: valid for the Compose specification, and in step with the code.

Docker can't run here, so the file is validated against the Compose specification's JSON schema (the
copy the `check-jsonschema` package ships) and checked against what it starts: environment names are settings
(or read by Postgres, Flower or the simulator), commands are the processes of dev/procs.py, ports are
the settings' defaults and health checks hit paths the processes serve.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import msgspec
import pytest
import yaml
from flower import urls as flower_urls
from flower.options import options as flower_options

from dev import procs
from dev.config import parse_dotenv
from shared.settings import Settings
from sim.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
SIM_ENV = ROOT / "deploy" / "compose.sim.env"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
SCHEMA = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")

SETTINGS = {field.name.upper() for field in msgspec.structs.fields(Settings)}
SIM_ENV_NAMES = set(re.findall(r'"(SIM_[A-Z_]+)"', inspect.getsource(SimConfig.from_env)))
POSTGRES_IMAGE_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
# Variables only compose itself reads, to fill in the file.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"}


def is_flower_option(name: str) -> bool:
    option = name.removeprefix("FLOWER_").lower().replace("_", "-")
    return name.startswith("FLOWER_") and option in flower_options._options


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run our image."""
    return {name: svc for name, svc in services.items() if svc.get("build")}


def interpolated_default(value: str) -> str:
    """`${VAR:-default}` → default (what compose fills in when VAR is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def dockerfile_env() -> dict[str, str]:
    final_stage = DOCKERFILE.read_text().split("\nFROM ")[-1]
    block = re.search(r"^ENV (.*?)(?<!\\)\n", final_stage, flags=re.M | re.S)
    assert block
    pairs = re.findall(r'([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)', block[1])
    return {name: value.strip('"') for name, value in pairs}


def test_compose_file_is_valid_for_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(compose)


def test_every_environment_name_is_known_to_what_reads_it(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for var in service.get("environment", {}):
            if name == "postgres":
                assert var in POSTGRES_IMAGE_ENV, var
            elif name == "sim":
                assert var in SIM_ENV_NAMES, var
            else:
                assert var in SETTINGS or is_flower_option(var), (name, var)


def test_interpolated_variables_are_settings_or_compose_only() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))
    assert used <= SETTINGS | COMPOSE_ONLY, used - SETTINGS - COMPOSE_ONLY


def test_the_sim_env_file_points_every_upstream_host_at_the_sim_service(services: dict[str, Any]) -> None:
    values = parse_dotenv(SIM_ENV.read_text(encoding="utf-8"))
    assert set(values) == {"SORA_BACKEND_URL", "SORA_WEB_URL", "OPENAI_AUTH_URL", "SENTINEL_PROVIDER"}
    assert set(values) <= SETTINGS
    sim = services["sim"]
    assert sim["profiles"] == ["sim"]
    base = f"http://sim:{sim['environment']['SIM_PORT']}"
    assert sim["environment"]["SIM_PUBLIC_URL"] == base
    # The same layout `make run` uses against its local simulator.
    assert values == {
        "SORA_BACKEND_URL": f"{base}{SimConfig().backend_prefix}",
        "SORA_WEB_URL": base,
        "OPENAI_AUTH_URL": base,
        "SENTINEL_PROVIDER": f"{base}/sentinel",
    }
    app_env = services["api"]["environment"]
    for name in values:
        assert app_env[name] == f"${{{name}:-}}", "empty unless an env file names the simulator"
        assert Settings.from_env({name: ""}) == Settings(), "an empty value means the default"


def test_each_app_service_runs_its_process_of_dev_procs(services: dict[str, Any]) -> None:
    apps = app_services(services)
    assert set(apps) == set(procs.PROCESSES)
    for name, service in apps.items():
        assert service["command"] == [name]
        assert "entrypoint" not in service
    case = re.search(r"^\s*([a-z| ]+)\) exec python -m dev\.procs", ENTRYPOINT.read_text(), flags=re.M)
    assert case and {word.strip() for word in case[1].split("|")} == set(procs.PROCESSES)
    assert 'CMD ["api"]' in DOCKERFILE.read_text()


def test_the_entrypoint_runs_a_process_by_name_and_anything_else_as_given(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "python $*"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}

    def run(*args: str) -> str:
        result = subprocess.run(
            ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert run("worker") == "python -m dev.procs worker"
    assert run("echo", "hello") == "hello"
    assert run("python", "-m", "alembic", "current") == "python -m alembic current"


def test_ports_are_the_settings_defaults(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["environment"]["PORT"] == str(Settings().port)
    assert api["ports"] == [f"{Settings().port}:{Settings().port}"]
    flower = services["flower"]
    port = flower["environment"]["FLOWER_PORT"]
    assert port == str(flower_options._options["port"].default)
    assert flower["ports"] == [f"127.0.0.1:{port}:{port}"], "Flower stays on the host's loopback"
    sim = services["sim"]
    assert sim["environment"]["SIM_PORT"] == str(SimConfig().port)


def http_check(service: dict[str, Any]) -> tuple[int, str]:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    url = urlsplit(re.search(r"urlopen\('([^']+)'", test[-1])[1])
    return url.port, url.path


def test_health_checks_hit_paths_the_processes_serve(services: dict[str, Any]) -> None:
    from api.app import create_app
    from sim.app import create_app as create_sim

    port, path = http_check(services["api"])
    assert port == Settings().port
    assert path in {route.path for route in create_app(Settings()).routes} and path == "/readyz"

    port, path = http_check(services["flower"])
    assert port == int(services["flower"]["environment"]["FLOWER_PORT"])
    patterns = {h[0] if isinstance(h, tuple) else h.regex.pattern.rstrip("$") for h in flower_urls.handlers}
    assert path in patterns

    port, path = http_check(services["sim"])
    assert port == SimConfig().port
    assert path in {route.path for route in create_sim(SimConfig()).routes}


def test_the_worker_health_check_reads_the_heartbeat_file_the_image_names(services: dict[str, Any]) -> None:
    test = services["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "celery" not in test[1]
    assert f"find {dockerfile_env()['WORKER_HEARTBEAT_FILE']} -mmin -1" in test[1]


def test_redis_keeps_celery_keys(services: dict[str, Any]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])


def test_services_start_in_order(services: dict[str, Any]) -> None:
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "beat", "flower"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    for service in services.values():
        for target, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], target


def test_the_worker_gets_longer_than_its_soft_shutdown_to_stop(services: dict[str, Any]) -> None:
    grace = services["worker"]["stop_grace_period"]
    seconds = int(re.fullmatch(r"(\d+)s", grace)[1])
    assert Settings().worker_soft_shutdown_timeout_s + 10 <= seconds


def test_database_url_is_the_postgres_service(services: dict[str, Any]) -> None:
    url = urlsplit(interpolated_default(services["api"]["environment"]["DATABASE_URL"]))
    pg = services["postgres"]["environment"]
    assert url.scheme == "postgresql+asyncpg"
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{pg['POSTGRES_DB']}")
    assert (url.username, url.password) == (
        pg["POSTGRES_USER"],
        interpolated_default(pg["POSTGRES_PASSWORD"]),
    )


def test_the_image_is_multi_stage_non_root_and_forwards_signals() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("# syntax=docker/dockerfile:"), "a parser directive only counts on the first line"
    assert len(re.findall(r"^FROM ", text, flags=re.M)) == 2
    assert "uv sync --frozen --no-dev" in text
    final_stage = text.split("\nFROM ")[-1]
    user = re.findall(r"^USER (\d+):(\d+)$", final_stage, flags=re.M)
    assert user and user[-1][0] != "0"
    assert re.search(
        r'^ENTRYPOINT \["tini", "--", "sh", "/app/deploy/entrypoint.sh"\]$', final_stage, flags=re.M
    )
    for name in dockerfile_env():
        known = name in SETTINGS or name in SIM_ENV_NAMES or is_flower_option(name)
        assert known or name in {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}, name
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", ".data", "tests"} <= ignored
