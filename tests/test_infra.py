"""Deployment files agree with the code: modules, config paths, image tags and the Ray version they name."""

import importlib.util
import re
import shlex
from pathlib import Path

import ray
import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
MANIFESTS = [ROOT / "infra" / "docker-compose.yaml", *sorted((ROOT / "infra" / "kuberay").glob("*.yaml"))]


def _walk(node, key=None):
    """Yield (key, value) for every scalar in a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)
    else:
        yield key, node


def _split_command(value: str) -> list[list[str]]:
    """A command line as words; `sh -c "a && exec b"` as the commands of its script."""
    words = shlex.split(value)
    if len(words) == 3 and words[0] in ("sh", "bash") and words[1] == "-c":
        parts = [shlex.split(part) for part in re.split(r"&&|\|\||;", words[2]) if part.strip()]
        return [part[1:] if part[0] == "exec" else part for part in parts]
    return [words]


def _commands() -> list[list[str]]:
    found = []
    for path in MANIFESTS:
        for key, value in _walk(yaml.safe_load(path.read_text())):
            if key in ("command", "entrypoint") and isinstance(value, str):
                found.extend(_split_command(value))
    return found


def test_every_module_and_config_a_manifest_runs_exists():
    commands = _commands()
    modules = [c[c.index("-m") + 1] for c in commands if "-m" in c]
    assert {"lam_platform.ray_jobs.pretrain", "lam_platform.ray_jobs.score"} <= set(modules)
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
    from lam_platform.cli.main import main as lam

    lam_commands = [c[1] for c in commands if c[0] == "lam"]
    assert "serve" in lam_commands
    for name in lam_commands:  # every `lam X` a manifest runs is a command of the CLI
        assert name in lam.commands, name
    configs = [c[c.index("--config") + 1] for c in commands if "--config" in c]
    assert configs, commands
    for config in configs:  # each names a config the package ships (the image holds no source tree), and parses
        from lam_platform.ray_jobs.job_config import JobConfig

        assert "/" not in config, f"{config}: name a shipped config, the image has no source tree"
        JobConfig.load(config)


def test_images_and_ray_version_match_the_package():
    pinned = re.search(r"ray\[[^\]]*\]==([\d.]+)", " ".join(PROJECT["dependencies"])).group(1)
    assert pinned == ray.__version__
    versions, images = [], []
    for path in MANIFESTS:
        for key, value in _walk(yaml.safe_load(path.read_text())):
            if key == "rayVersion":
                versions.append(value)
            if key == "image" and str(value).startswith("lam-platform"):
                images.append(value)
    assert versions and set(versions) == {pinned}
    assert images and all(re.fullmatch(rf"lam-platform:{re.escape(PROJECT['version'])}(-gpu)?", i) for i in images), (
        images
    )
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"lam-platform:{PROJECT['version']}" in dockerfile
    for source in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (ROOT / source).exists(), source


def test_deployment_is_closed_by_default():
    compose = yaml.safe_load((ROOT / "infra" / "docker-compose.yaml").read_text())
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"scoring-service"}  # not Redis, PostgreSQL or Ray's code-executing Jobs API
    text = (ROOT / "infra" / "docker-compose.yaml").read_text()
    assert "POSTGRES_PASSWORD: lam" not in text and "--requirepass" in text and "dashboard-host=0.0.0.0" not in text
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    policy = yaml.safe_load((ROOT / "infra" / "kuberay" / "networkpolicy.yaml").read_text())
    assert policy["kind"] == "NetworkPolicy" and {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} >= {8265}


# --- Start order, health, volumes, shared memory and the production store's connections -------------------

COMPOSE_PATH = ROOT / "infra" / "docker-compose.yaml"
KUBERAY = sorted((ROOT / "infra" / "kuberay").glob("ray*.yaml"))
ONE_SHOT = {"data-init", "batch-scoring"}  # run to completion; every other compose service is long-running


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_PATH.read_text())


def _profile_variables() -> set[str]:
    """The ${VAR}s the shipped production store profile expands: what every job and service must be given."""
    from lam_platform.core.packaged import feast_profile_path

    profile = yaml.safe_load(feast_profile_path("production").read_text())
    names = {n for _, v in _walk(profile) if isinstance(v, str) for n in re.findall(r"\$\{(\w+)\}", v)}
    assert profile["online_store"]["type"] == "redis" and profile["registry"]["registry_type"] == "sql"
    assert len(names) >= 2, names  # the Redis connection and the registry URL
    return names


def _docker_bytes(size) -> int:
    """A compose size (`2gb`, `512m`, bytes): binary units, as Docker reads them."""
    if isinstance(size, int):
        return size
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", str(size).strip().lower()).groups()
    return int(float(number) * 1024 ** {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit])


def _k8s_bytes(quantity) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?", str(quantity)).groups()
    factors = {
        None: 1,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    return int(float(number) * factors[unit])


def _ray_start(service: dict) -> list[str] | None:
    return next((c for c in _split_command(service.get("command", "")) if c[:2] == ["ray", "start"]), None)


def _ray_clusters():
    """(file, RayCluster spec) for the RayCluster and each RayJob's cluster."""
    for path in KUBERAY:
        doc = yaml.safe_load(path.read_text())
        yield path.name, doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def _node_groups(spec: dict):
    yield "head", spec["headGroupSpec"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["groupName"], group


def test_compose_services_are_health_checked_and_start_in_order():
    services = _compose()["services"]
    assert ONE_SHOT <= set(services)
    probes = {}
    for name, service in services.items():
        if name not in ONE_SHOT:
            test = (service.get("healthcheck") or {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: a long-running service without a healthcheck"
            probes[name] = " ".join(test[1:])
    gcs_port = re.search(r"--port=(\d+)", services["ray-head"]["command"]).group(1)
    serve = shlex.split(services["scoring-service"]["command"])
    assert "redis-cli ping" in probes["redis"] and "PONG" in probes["redis"]
    assert "pg_isready" in probes["postgres"]
    assert f"ray health-check --address ray-head:{gcs_port}" in probes["ray-head"]
    assert "local_raylet_healthz" in probes["ray-worker"]
    assert f":{serve[serve.index('--port') + 1]}/readyz" in probes["scoring-service"]  # python, no curl in the image
    assert services["ray-head"]["environment"]["RAY_ADDRESS"] == f"ray-head:{gcs_port}"
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without a condition waits only for a container start"
        for target, spec in depends.items():
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == expected, (name, target, spec)
    assert {"redis", "postgres", "ray-head", "ray-worker"} <= set(services["batch-scoring"]["depends_on"])
    assert {"redis", "postgres"} <= set(services["scoring-service"]["depends_on"])
    assert "ray-head" in services["ray-worker"]["depends_on"]


def test_compose_data_volume_is_declared_and_prepared_for_the_image_user():
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    uid = re.search(r"useradd --uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1)
    init = compose["services"]["data-init"]
    target = next(m.split(":")[1] for m in init["volumes"] if m.split(":")[0] == "lam-data")
    assert str(init.get("user")) in ("0", "root")  # only root can chown
    assert shlex.split(init["command"]) == ["chown", uid, target]  # the image's user, not recursive
    assert "lam-data" in declared
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/", "~")):  # a named volume
                assert source in declared, f"{name}: volume {source} is not declared"
                if source == "lam-data" and name != "data-init":
                    assert service["depends_on"]["data-init"]["condition"] == "service_completed_successfully", name


def test_compose_ray_nodes_have_shared_memory_for_the_object_store():
    nodes = {name: s for name, s in _compose()["services"].items() if _ray_start(s)}
    assert {"ray-head", "ray-worker", "batch-scoring"} <= set(nodes)  # the scoring job's driver joins as a node
    for name, service in nodes.items():
        assert service.get("shm_size"), f"{name}: Docker's 64 MB /dev/shm sends Ray's object store to disk"
        store = re.search(r"--object-store-memory=(\d+)", " ".join(_ray_start(service)))
        assert store and int(store.group(1)) <= _docker_bytes(service["shm_size"]), name


def test_compose_sets_the_production_store_connections_from_env():
    compose, text = _compose(), COMPOSE_PATH.read_text()
    variables = _profile_variables()
    runs_lam = {
        name
        for name, s in compose["services"].items()
        if any(
            c[:1] == ["lam"]
            or c[:3] == ["python", "-m", "lam_platform"]
            or c[:1] == ["python"]
            and "-m" in c
            and c[c.index("-m") + 1].startswith("lam_platform")
            or c[:2] == ["ray", "start"]
            for c in _split_command(s.get("command", ""))
        )
    }
    assert {"ray-head", "ray-worker", "batch-scoring", "scoring-service"} <= runs_lam
    for name in runs_lam:
        environment = compose["services"][name].get("environment")
        assert isinstance(environment, dict), name
        for variable in variables:
            assert variable in environment, f"{name}: {variable} unset, the production profile cannot open the store"
            assert "${" in environment[variable], f"{name}: {variable} must take its secret from infra/.env"
    # every variable the file interpolates is one the header's infra/.env recipe writes
    used = {n for _, v in _walk(compose) if isinstance(v, str) for n in re.findall(r"\$\{(\w+)", v)}
    assert used and used <= set(re.findall(r"([A-Z][A-Z0-9_]*)=%s", text)), used


def test_kuberay_pods_mount_shared_memory_and_take_store_connections_from_a_secret():
    variables, secrets, clusters = _profile_variables(), set(), list(_ray_clusters())
    documented = (ROOT / "infra" / "kuberay" / "raycluster.yaml").read_text()
    assert len(clusters) == 2
    for source, spec in clusters:
        for group_name, group in _node_groups(spec):
            where = f"{source} {group_name}"
            pod = group["template"]["spec"]
            ray = pod["containers"][0]  # KubeRay's Ray container
            assert all(isinstance(v, str) for v in group["rayStartParams"].values()), where  # map[string]string
            shm = [m for m in ray.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"]
            assert len(shm) == 1, f"{where}: no /dev/shm mount for Ray's object store"
            volume = next(v for v in pod["volumes"] if v["name"] == shm[0]["name"])
            assert volume["emptyDir"]["medium"] == "Memory", where
            size = _k8s_bytes(volume["emptyDir"]["sizeLimit"])
            assert size <= _k8s_bytes(ray["resources"]["limits"]["memory"]), where  # tmpfs pages count as memory
            store = group["rayStartParams"].get("object-store-memory")
            assert store and int(store) <= size, f"{where}: an object store larger than /dev/shm falls back to disk"
            env = {e["name"]: e for e in ray.get("env", [])}
            for variable in variables:
                assert variable in env, f"{where}: {variable} unset, the production profile cannot open the store"
                assert "value" not in env[variable], f"{where}: {variable} must come from a Secret"
                ref = env[variable]["valueFrom"]["secretKeyRef"]
                secrets.add(ref["name"])
                assert f"`{ref['key']}`" in documented, f"the Secret's key {ref['key']} is not documented"
    assert len(secrets) == 1, secrets  # one Secret, documented in raycluster.yaml
    assert secrets.pop() in documented


def test_kuberay_replica_ranges_only_with_the_autoscaler_and_ports_match_the_network_policy():
    policy = yaml.safe_load((ROOT / "infra" / "kuberay" / "networkpolicy.yaml").read_text())
    admitted = {p["port"] for p in policy["spec"]["ingress"][0]["ports"]}
    for source, spec in _ray_clusters():
        autoscaling = spec.get("enableInTreeAutoscaling", False)
        for group in spec.get("workerGroupSpecs", []):
            if not autoscaling:
                assert not {"minReplicas", "maxReplicas"} & set(group), f"{source}: replica ranges need the autoscaler"
        gcs_port = spec["headGroupSpec"]["rayStartParams"].get("port", "6379")
        if autoscaling:  # KubeRay's autoscaler sidecar dials the GCS at 6379 whatever port says (kuberay#1644)
            assert gcs_port == "6379", source
        assert {8265, int(gcs_port)} <= admitted, source
