"""Deployment files agree with the code: modules, config paths, image tags and the Ray version they name."""

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import ray
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


def _commands() -> list[list[str]]:
    found = []
    for path in MANIFESTS:
        for key, value in _walk(yaml.safe_load(path.read_text())):
            if key in ("command", "entrypoint") and isinstance(value, str):
                found.append(shlex.split(value))
    return found


def test_every_module_and_config_a_manifest_runs_exists():
    commands = _commands()
    modules = [c[c.index("-m") + 1] for c in commands if "-m" in c]
    assert {"lam_platform.ray_jobs.pretrain", "lam_platform.ray_jobs.score"} <= set(modules)
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
    from lam_platform.cli import main as lam

    lam_commands = [c[1] for c in commands if c[0] == "lam"]
    assert "serve" in lam_commands
    for name in lam_commands:  # every `lam X` a manifest runs is a command of the CLI
        assert name in lam.commands, name
    configs = [c[c.index("--config") + 1] for c in commands if "--config" in c]
    assert configs, commands
    for config in configs:  # each names a config the package ships (the image holds no source tree), and parses
        from lam_platform.ray_jobs.training import JobConfig

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
    assert images and all(re.fullmatch(rf"lam-platform:{re.escape(PROJECT['version'])}(-gpu)?", i) for i in images), images
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
