"""deploy/k8s: valid Kubernetes 1.32 and KEDA 2.16 objects, and in step with the code they deploy.

The base and the example overlay are rendered (tests/kustomize.py, checked against `kubectl kustomize`
when kubectl is installed), every object is validated against the Kubernetes JSON schemas that the
`kubernetes-validate` package bundles for KUBERNETES_VERSION (strict: unknown fields fail), and the KEDA
objects against the models `cloudcoil-models-keda` generates from KEDA's CRDs (pinned to the KEDA version).
Then the cross-checks: env
names are settings, ports and probe paths are the ones the code serves, queue and table names are the
ones shared/ uses, and the Secret template holds placeholders only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import msgspec
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from flower import urls as flower_urls
from flower.options import options as flower_options

from dev import procs
from shared import names
from shared.models import Job, JobState
from shared.queue import create_celery
from shared.settings import Settings
from tests.kustomize import Manifest, containers, key, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RENDERS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}
# The Kubernetes version the manifests are written for; deploy/README.md states it too.
KUBERNETES_VERSION = "1.32.0"
CRD_KINDS = {"ScaledObject": keda.ScaledObject, "TriggerAuthentication": keda.TriggerAuthentication}

SETTINGS = {field.name.upper() for field in msgspec.structs.fields(Settings)}
# Read by Celery itself (billiard): SIGTERM starts the soft shutdown.
CELERY_ENV = {"REMAP_SIGTERM"}
# Settings whose values are secrets: never in a ConfigMap.
SECRET_NAME = re.compile(r"(^|_)(KEY|KEYS|SECRET|PASSWORD|TOKEN|AUTH)(_|$)|^(DATABASE|REDIS)_URL$")
PLACEHOLDER = "change-me"


def is_flower_option(name: str) -> bool:
    option = name.removeprefix("FLOWER_").lower()
    return name.startswith("FLOWER_") and (
        option in flower_options._options or option.replace("_", "-") in flower_options._options
    )


@pytest.fixture(scope="module", params=sorted(RENDERS))
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(RENDERS[request.param])


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(objects: list[Manifest], deployment: str) -> Manifest:
    kind = "Job" if deployment.endswith("migrate") else "Deployment"
    spec = pod_spec(one(objects, kind, deployment))
    assert spec is not None and len(spec["containers"]) == 1
    return spec["containers"][0]


def env_of(objects: list[Manifest], item: Manifest) -> dict[str, str]:
    """The environment a container gets: envFrom ConfigMaps and Secrets, then env (values or refs)."""
    env: dict[str, str] = {}
    for source in item.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(one(objects, "Secret", source["secretRef"]["name"])["stringData"])
    for var in item.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"]["configMapKeyRef"]
            kind = "Secret" if "secretKeyRef" in var["valueFrom"] else "ConfigMap"
            source = one(objects, kind, ref["name"])
            env[var["name"]] = source["stringData" if kind == "Secret" else "data"][ref["key"]]
    return env


def config(objects: list[Manifest]) -> dict[str, str]:
    return one(objects, "ConfigMap", "sora-gateway-config")["data"]


def secrets(objects: list[Manifest]) -> dict[str, str]:
    return one(objects, "Secret", "sora-gateway-secrets")["stringData"]


# Rendering and schemas ----------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) not installed"
)
@pytest.mark.parametrize("name", sorted(RENDERS))
def test_the_test_renderer_agrees_with_kubectl_kustomize(name: str) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(RENDERS[name])], capture_output=True, text=True, timeout=120, check=True
    )
    theirs = {key(obj): obj for obj in yaml.safe_load_all(result.stdout) if obj}
    ours = {key(obj): obj for obj in render(RENDERS[name])}
    assert sorted(ours) == sorted(theirs)
    for k, obj in ours.items():
        assert obj == theirs[k], k


def test_every_object_is_valid_for_the_pinned_kubernetes_version(rendered: list[Manifest]) -> None:
    errors = []
    for obj in rendered:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {getattr(exc, 'message', exc)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("kind", sorted(CRD_KINDS))
def test_keda_objects_are_valid_for_the_keda_crds(rendered: list[Manifest], kind: str) -> None:
    objects = [obj for obj in rendered if obj["kind"] == kind]
    assert objects
    for obj in objects:
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        model = CRD_KINDS[kind].model_validate(obj)  # types and required fields
        # The models ignore what the CRD does not declare, as the API server prunes it: what comes back
        # must be what went in, so an unknown or misspelt field (or a coerced value) fails here.
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj


def test_trigger_authentications_read_secret_keys_that_exist(rendered: list[Manifest]) -> None:
    auths = {obj["metadata"]["name"]: obj for obj in rendered if obj["kind"] == "TriggerAuthentication"}
    (scaled,) = [obj for obj in rendered if obj["kind"] == "ScaledObject"]
    for trigger in scaled["spec"]["triggers"]:
        auth = auths[trigger["authenticationRef"]["name"]]
        assert auth["apiVersion"] == "keda.sh/v1alpha1"
        assert set(auth["spec"]) == {"secretTargetRef"}
        for ref in auth["spec"]["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}
            assert ref["key"] in one(rendered, "Secret", ref["name"])["stringData"]


# The code they deploy -------------------------------------------------------------


def test_every_environment_name_is_a_setting_or_read_by_celery_or_flower(rendered: list[Manifest]) -> None:
    for item in containers(rendered):
        for name in env_of(rendered, item):
            assert name in SETTINGS or name in CELERY_ENV or is_flower_option(name), (item["name"], name)


def test_the_config_map_holds_settings_and_no_secrets(rendered: list[Manifest]) -> None:
    data = config(rendered)
    assert set(data) <= SETTINGS
    assert [name for name in data if SECRET_NAME.search(name)] == []
    for name, value in data.items():  # each value parses as its setting
        Settings.from_env({name: value})


def test_the_secret_template_holds_placeholders_only(rendered: list[Manifest]) -> None:
    for secret in (obj for obj in rendered if obj["kind"] == "Secret"):
        assert "data" not in secret, "base64 data hides what is in it: use stringData placeholders"
        for name, value in secret["stringData"].items():
            assert PLACEHOLDER in value, f"{secret['metadata']['name']}.{name} is not a placeholder"
            rest = value.replace(PLACEHOLDER, "")
            assert not re.search(r"[A-Za-z0-9+/=_-]{24,}", rest), f"{name} looks like a real secret"
            assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}|sk-[A-Za-z0-9]{20,}", value), name


def test_every_container_runs_a_process_of_dev_procs_by_name(rendered: list[Manifest]) -> None:
    for obj in rendered:
        spec = pod_spec(obj)
        if spec is None:
            continue
        (item,) = spec["containers"]
        assert "command" not in item, "keep the image's entrypoint (tini and deploy/entrypoint.sh)"
        assert item["args"] == [obj["metadata"]["labels"]["app.kubernetes.io/component"]]
        assert item["args"][0] in procs.PROCESSES
        assert item["name"] == item["args"][0]
    images = {item["image"] for item in containers(rendered)}
    assert len(images) == 1, f"one image runs every process: {images}"


def api_paths() -> set[str]:
    from api.app import create_app  # builds the app; connects nowhere until its lifespan runs

    return {route.path for route in create_app(Settings()).routes}


def test_api_port_and_probes_are_the_ones_the_code_serves(rendered: list[Manifest]) -> None:
    api = container(rendered, "sora-gateway-api")
    (port,) = api["ports"]
    env = env_of(rendered, api)
    assert port == {"name": "http", "containerPort": int(env["PORT"])}
    assert int(env["PORT"]) == Settings().port
    assert env["HOST"] == "0.0.0.0"
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"/healthz", "/readyz"} <= api_paths()


def test_services_hpa_and_pdb_select_what_exists(rendered: list[Manifest]) -> None:
    pods = {obj["metadata"]["name"]: obj for obj in rendered if pod_spec(obj) is not None}
    for service in (obj for obj in rendered if obj["kind"] == "Service"):
        selector = service["spec"]["selector"]
        targets = [
            o
            for o in pods.values()
            if selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in pod_spec(targets[0])["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
    for budget in (obj for obj in rendered if obj["kind"] == "PodDisruptionBudget"):
        labels = budget["spec"]["selector"]["matchLabels"]
        assert any(
            labels.items() <= o["spec"]["template"]["metadata"]["labels"].items() for o in pods.values()
        )
    for hpa in (obj for obj in rendered if obj["kind"] == "HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] in pods
    for obj in (o for o in pods.values() if o["kind"] == "Deployment"):
        assert (
            obj["spec"]["selector"]["matchLabels"].items()
            <= obj["spec"]["template"]["metadata"]["labels"].items()
        )


def test_flower_is_internal_and_asks_for_a_password(rendered: list[Manifest]) -> None:
    service = one(rendered, "Service", "sora-gateway-flower")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert not [obj for obj in rendered if obj["kind"] in {"Ingress", "Route", "Gateway", "HTTPRoute"}]
    assert [
        s for s in rendered if s["kind"] == "Service" and s["spec"].get("type", "ClusterIP") != "ClusterIP"
    ] == []
    flower = container(rendered, "sora-gateway-flower")
    by_name = {var["name"]: var for var in flower["env"]}
    assert "secretKeyRef" in by_name["FLOWER_BASIC_AUTH"]["valueFrom"]
    (port,) = flower["ports"]
    assert port["containerPort"] == int(by_name["FLOWER_PORT"]["value"])
    patterns = {h[0] if isinstance(h, tuple) else h.regex.pattern.rstrip("$") for h in flower_urls.handlers}
    for probe in ("livenessProbe", "readinessProbe"):
        assert flower[probe]["httpGet"]["path"] in patterns
        assert flower[probe]["httpGet"]["port"] == port["name"]


def test_the_worker_stops_softly_within_its_grace_period(rendered: list[Manifest]) -> None:
    deployment = one(rendered, "Deployment", "sora-gateway-worker")
    worker = container(rendered, "sora-gateway-worker")
    env = env_of(rendered, worker)
    assert env["REMAP_SIGTERM"] == "SIGQUIT"
    timeout = float(env["WORKER_SOFT_SHUTDOWN_TIMEOUT_S"])
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    # Room after the soft window for the cold shutdown that hands the rest back to the broker.
    assert timeout + 10 <= grace
    # The setting reaches Celery.
    app = create_celery(
        Settings.from_env({"WORKER_SOFT_SHUTDOWN_TIMEOUT_S": env["WORKER_SOFT_SHUTDOWN_TIMEOUT_S"]})
    )
    assert app.conf.worker_soft_shutdown_timeout == timeout


def heartbeat_probe(rendered: list[Manifest]) -> tuple[list[str], str, float]:
    worker = container(rendered, "sora-gateway-worker")
    env = env_of(rendered, worker)
    command = worker["livenessProbe"]["exec"]["command"]
    assert worker["startupProbe"]["exec"]["command"] == command
    return command, env["WORKER_HEARTBEAT_FILE"], float(env["WORKER_HEARTBEAT_INTERVAL_S"])


def test_the_worker_liveness_probe_checks_the_heartbeat_file_age(
    rendered: list[Manifest], tmp_path: Path
) -> None:
    command, path, interval = heartbeat_probe(rendered)
    script = " ".join(command)
    assert "celery" not in script and "inspect" not in script
    assert path in command[-1] and "-mmin -1" in command[-1]
    assert interval * 3 <= 60, "a minute's window must hold several beats"

    beat_file = tmp_path / "heartbeat"
    probe = [*command[:-1], command[-1].replace(path, str(beat_file))]

    def probe_passes() -> bool:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0

    assert not probe_passes(), "no file: not alive"
    beat_file.touch()
    assert probe_passes()
    stale = time.time() - 5 * 60
    os.utime(beat_file, (stale, stale))
    assert not probe_passes(), "a file five minutes old: not alive"


def test_beat_runs_once_and_is_replaced_not_rolled(rendered: list[Manifest]) -> None:
    beat = one(rendered, "Deployment", "sora-gateway-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(rendered, container(rendered, "sora-gateway-beat"))
    assert float(env["BEAT_LOCK_TTL_S"]) > 0


def test_keda_reads_the_submit_queue_and_the_open_jobs(rendered: list[Manifest]) -> None:
    (scaled,) = [obj for obj in rendered if obj["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sora-gateway-worker",
    }
    assert "replicas" not in one(rendered, "Deployment", "sora-gateway-worker")["spec"], "KEDA owns it"
    assert scaled["spec"]["minReplicaCount"] >= 1, "beat's periodic tasks need a worker"
    triggers = {trigger["type"]: trigger["metadata"] for trigger in scaled["spec"]["triggers"]}
    assert set(triggers) == {"redis", "postgresql"}

    # Celery's Redis transport: the queue is a list named after it, behind the transport's global_keyprefix.
    redis_meta = triggers["redis"]
    prefix = config(rendered).get("REDIS_PREFIX", "")
    app = create_celery(Settings.from_env({"REDIS_PREFIX": prefix}))
    assert app.conf.broker_transport_options["global_keyprefix"] == prefix
    assert redis_meta["listName"] == prefix + names.QUEUE_SUBMIT
    assert int(redis_meta["listLength"]) > 0
    redis_url = urlsplit(secrets(rendered)["REDIS_URL"])
    assert redis_meta["address"] == f"{redis_url.hostname}:{redis_url.port or 6379}"
    assert redis_meta["databaseIndex"] == (redis_url.path.strip("/") or "0")

    pg_meta = triggers["postgresql"]
    match = re.fullmatch(r"SELECT count\(\*\) FROM (\w+) WHERE (\w+) IN \(([^)]*)\)", pg_meta["query"])
    assert match, pg_meta["query"]
    table, column, states = match[1], match[2], {s.strip().strip("'") for s in match[3].split(",")}
    assert table == Job.__tablename__
    assert column in Job.__table__.columns and column == "state"
    assert states == set(JobState.OPEN)
    assert int(pg_meta["targetQueryValue"]) > 0
    keda_pg = urlsplit(one(rendered, "Secret", "sora-gateway-keda")["stringData"]["postgres-connection"])
    app_pg = urlsplit(secrets(rendered)["DATABASE_URL"])
    assert keda_pg.scheme == "postgresql", "KEDA's scaler takes a libpq URL, not SQLAlchemy's"
    assert (keda_pg.hostname, keda_pg.port, keda_pg.path, keda_pg.username) == (
        app_pg.hostname,
        app_pg.port,
        app_pg.path,
        app_pg.username,
    )


def test_the_migration_job_runs_once_to_completion(rendered: list[Manifest]) -> None:
    job = one(rendered, "Job", "sora-gateway-migrate")
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert container(rendered, "sora-gateway-migrate")["args"] == ["migrate"]
    assert procs.PROCESSES["migrate"][1:] == ["-m", "alembic", "upgrade", "head"]


def dockerfile_user() -> int:
    users = re.findall(r"^USER (\d+)", (ROOT / "deploy" / "Dockerfile").read_text(), flags=re.M)
    return int(users[-1].split(":")[0])


def test_pods_run_as_the_image_user_with_a_read_only_root(rendered: list[Manifest]) -> None:
    for obj in rendered:
        spec = pod_spec(obj)
        if spec is None:
            continue
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == dockerfile_user() != 0
        for item in spec["containers"]:
            assert item["securityContext"]["readOnlyRootFilesystem"] is True
            assert item["securityContext"]["allowPrivilegeEscalation"] is False
            assert "/tmp" in {mount["mountPath"] for mount in item["volumeMounts"]}
            assert "memory" in item["resources"]["limits"]


def test_the_example_overlay_puts_everything_in_its_namespace() -> None:
    objects = render(RENDERS["example"])
    (namespace,) = [obj for obj in objects if obj["kind"] == "Namespace"]
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"], key(obj)
    assert {item["image"] for item in containers(objects)} == {"registry.example.com/sora-gateway:0.1.0"}
