"""The deployment files, checked offline: Kubernetes manifests against Kubernetes' own
schemas (kubernetes-validate, strict), the compose file against the Compose
Specification's JSON schema (vendored from compose-spec, Apache-2.0, in
tests/fixtures/compose-spec.json), Prometheus' configuration with promtool, the
PrometheusRule equal to the exported rules, and the Dockerfile's promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CRDS = {"ServiceMonitor", "PrometheusRule"}  # the Prometheus operator's, not Kubernetes'
KUBERNETES = "1.33.0"


def _manifests() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def test_kubernetes_manifests_validate_against_the_schemas():
    kinds = set()
    for name, doc in _manifests():
        kinds.add(doc["kind"])
        if doc["kind"] in CRDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1", name
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}: {exc.message} at {list(exc.path)}")
    assert {"Deployment", "Service", "Ingress", "ConfigMap", "Secret", "Job", "DaemonSet",
            "ServiceMonitor", "PrometheusRule"} <= kinds  # fmt: skip


def test_the_agent_runs_on_gpu_nodes_and_nothing_runs_as_root():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in _manifests()}
    agent = docs[("DaemonSet", "frameops-agent")]["spec"]["template"]["spec"]
    assert agent["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    for (kind, _), doc in docs.items():
        if kind in {"Deployment", "Job"}:
            assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize(
    ("name", "exported_file"),
    [("frameops", "frameops-rules.yml"), ("frameops-gpu-minutes", "frameops-minute-rules.yml")],
)
def test_the_prometheus_rules_carry_the_exported_rules(tmp_path, name, exported_file):
    exported = yaml.safe_load((DEPLOY / "prometheus" / exported_file).read_text())
    (rule,) = [
        d
        for _, d in _manifests()
        if d["kind"] == "PrometheusRule" and d["metadata"]["name"] == name
    ]
    assert rule["spec"]["groups"] == exported["groups"]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    _promtool("check", "rules", str(path))


def test_the_compose_file_follows_the_compose_specification():
    schema = json.loads((ROOT / "tests" / "fixtures" / "compose-spec.json").read_text())
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)  # the draft its $schema names
    services = compose["services"]
    assert {"frameops", "worker", "beat", "postgres", "redis", "prometheus", "grafana",
            "dcgm-exporter"} <= set(services)  # fmt: skip
    assert services["dcgm-exporter"]["profiles"] == ["gpu"]
    queues = services["worker"]["command"][services["worker"]["command"].index("-Q") + 1]
    from finops.celery import QUEUES

    assert set(queues.split(",")) >= set(QUEUES)
    for mount in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith(".."):
            assert (DEPLOY / "compose" / source).resolve().exists(), source


def test_the_prometheus_configuration_passes_promtool():
    _promtool("check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml"))


def test_the_dockerfile_builds_a_web_image_without_torch_and_a_runner_with_it():
    text = (ROOT / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM (\S+) AS (\w+)", text, flags=re.MULTILINE)[i][::-1]
                  for i in range(3))  # fmt: skip
    assert set(stages) == {"build", "web", "runner"}
    web = text.split("AS web")[1].split("AS runner")[0]
    assert "torch" not in web.replace("torch:", "") or "no torch" in web.lower()
    assert "collectstatic" in web and "gunicorn" in web and "USER frameops" in web
    runner = text.split("AS runner")[1]
    assert "torch==2.13.0" in runner and "USER frameops" in runner
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"gunicorn>=', pyproject)


def test_the_systemd_unit_runs_the_agent():
    unit = (DEPLOY / "systemd" / "frameops-agent.service").read_text()
    assert "ExecStart=/opt/frameops/venv/bin/python -m collectors.agent" in unit
    assert "DynamicUser=yes" in unit and "Restart=always" in unit


def _promtool(*args: str) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("Debian's prometheus package (promtool) is required: `make test`")
    done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)  # noqa: S603,S607
    assert done.returncode == 0, done.stdout + done.stderr
