"""deploy/k8s: rendered with kustomize, every object checked against the Kubernetes API
schema, then our own rules (probes, pod security, Secret references, network policy).

The ``layout`` init container's script is run for real on the rendered ConfigMap and a
key directory made by ``ketenhub keys init``: the policy it lays out passes
``ketenhub policy check`` and the key directory passes production's checks.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hub.auth.production import check_key_dir
from hub.settings import Settings
from tests.deploy.tools import DEPLOY, REPO, VENV_BIN, tool

K8S = DEPLOY / "k8s"
OVERLAYS = ("demo", "production")
# The oldest Kubernetes release still supported upstream when this was written, and the
# newest the schema package knows.
KUBERNETES_VERSIONS = ("1.31", kubernetes_validate.utils.latest_version())
HUB_LABELS = {"app.kubernetes.io/name": "ketenhub", "app.kubernetes.io/component": "hub"}


def render(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def rendered(overlay: str) -> list[dict[str, Any]]:
    if overlay not in _RENDERED:
        path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
        _RENDERED[overlay] = render(path)
    return _RENDERED[overlay]


def one(docs: list[dict[str, Any]], kind: str, name: str = "ketenhub") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def hub_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def settings_map(docs: list[dict[str, Any]]) -> dict[str, str]:
    name = hub_pod(docs)["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    data: dict[str, str] = next(
        d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name
    )
    return data


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schema(
    overlay: str, version: str
) -> None:
    docs = rendered(overlay)
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "Ingress",
        "ServiceAccount",
    }
    for doc in docs:
        # strict: a misspelt or misplaced field is an error, not silently ignored.
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_defined(overlay: str) -> None:
    docs = rendered(overlay)
    assert [d for d in docs if d["kind"] == "Secret"] == []
    secrets = {v["secret"]["secretName"] for v in hub_pod(docs)["volumes"] if "secret" in v}
    assert secrets == {"ketenhub-keys", "ketenhub-database"}
    assert one(docs, "Ingress")["spec"]["tls"][0]["secretName"] == "ketenhub-tls"
    text = yaml.safe_dump_all(docs)
    assert "BEGIN PRIVATE KEY" not in text
    assert re.search(r"postgresql\+psycopg://[^/@:]+:[^/@]+@", text) is None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_hub_runs_replicated_with_probes_on_the_hubs_real_endpoints(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = hub_pod(docs)
    hub = next(c for c in pod["containers"] if c["name"] == "hub")
    assert hub["args"][0] == "serve"
    port = next(p for p in hub["ports"] if p["name"] == "http")
    assert hub["args"][hub["args"].index("--port") + 1] == str(port["containerPort"])
    assert hub["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert hub["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    operations = (REPO / "hub" / "api" / "operations.py").read_text()
    for path in ("/readyz", "/healthz"):
        assert f'"{path}"' in operations, f"the hub serves no {path}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_non_root_read_only_without_capabilities_and_bounded(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    image_user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert image_user is not None
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == int(image_user[1]), name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False, name
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_and_disruption_budget_select_the_hub_pods(overlay: str) -> None:
    docs = rendered(overlay)
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["selector"] == HUB_LABELS
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == HUB_LABELS
    assert 1 <= pdb["spec"]["minAvailable"] < one(docs, "Deployment")["spec"]["replicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_policy_admits_only_the_ingress_and_prometheus_and_lets_out_little(
    overlay: str,
) -> None:
    docs = rendered(overlay)
    policy = one(docs, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == HUB_LABELS
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
    names = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in sources}
    assert names == {"ingress-nginx", "monitoring"}
    for rule in spec["ingress"]:
        assert rule["from"], "an ingress rule without `from` admits everyone"
        assert [p["port"] for p in rule["ports"]] == ["http"]
    egress_ports: set[int] = set()
    for rule in spec["egress"]:
        assert rule.get("to"), "an egress rule without `to` lets out to anywhere"
        assert rule.get("ports"), "an egress rule without ports lets out on any port"
        egress_ports |= {p["port"] for p in rule["ports"]}
    assert {53, 5432} <= egress_ports
    if overlay == "demo":
        assert {8101, 8102, 8103, 8104, 8105} <= egress_ports
    else:
        assert 443 in egress_ports
        assert all("ipBlock" in peer for rule in spec["egress"][2:] for peer in rule["to"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_the_api_but_not_metrics_or_readiness(overlay: str) -> None:
    docs = rendered(overlay)
    ingress = one(docs, "Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]

    def routed(url: str) -> bool:
        return any(
            url == p["path"] if p["pathType"] == "Exact" else url.startswith(p["path"])
            for p in paths
        )

    for url in ("/oauth/token", "/v1/exchange", "/v1/consents", "/.well-known/jwks.json"):
        assert routed(url), url
    for url in ("/metrics", "/readyz", "/metrics/", "/readyz/"):
        assert not routed(url), url
    for path in paths:
        assert path["backend"]["service"] == {"name": "ketenhub", "port": {"name": "http"}}
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    if overlay == "production":
        assert annotations["nginx.ingress.kubernetes.io/auth-tls-verify-client"] == "on"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_settings_are_real_hub_settings_and_pass_production(
    overlay: str, tmp_path: Path
) -> None:
    docs = rendered(overlay)
    settings = settings_map(docs)
    pod = hub_pod(docs)
    hub = next(c for c in pod["containers"] if c["name"] == "hub")
    mounts = {m["mountPath"]: m["name"] for m in hub["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    def volume_of(path: str) -> dict[str, Any]:
        mount = max((m for m in mounts if path.startswith(m + "/")), key=len)
        return volumes[mounts[mount]]

    password_file = settings["KETENHUB_DATABASE_PASSWORD_FILE"]
    secret = volume_of(password_file)["secret"]
    assert secret["secretName"] == "ketenhub-database"
    assert [i["path"] for i in secret["items"]] == [Path(password_file).name]
    assert "emptyDir" in volume_of(settings["KETENHUB_KEY_DIR"])
    assert "emptyDir" in volume_of(settings["KETENHUB_POLICY_DIR"] + "/partners.yaml")
    assert settings["KETENHUB_ENV"] == "production"
    # The hub itself reads them: with the password file where the pod has it, they
    # make valid production settings (an https public URL, rate limits on, ...).
    (tmp_path / "password").write_text("s3cret\n")
    env = {**settings, "KETENHUB_DATABASE_PASSWORD_FILE": str(tmp_path / "password")}
    read = Settings.from_env(env)
    assert read.production
    assert read.public_url is not None
    assert read.public_url.startswith("https://")


# -- the layout init container, run for real ------------------------------------------


def layout_script(docs: list[dict[str, Any]]) -> str:
    pod = hub_pod(docs)
    layout = next(c for c in pod["initContainers"] if c["name"] == "layout")
    assert layout["command"] == ["/bin/sh", "-c"]
    script: str = layout["args"][0]
    return script


@pytest.fixture
def key_secret(tmp_path: Path) -> Path:
    """A key directory as `ketenhub keys init` makes it (master key included), then
    seen the way a Secret volume shows it (files 0440)."""
    made = tmp_path / "made-keys"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENHUB_")}
    env["KETENHUB_KEY_DIR"] = str(made)  # keys init marks them keys-init in any mode
    done = subprocess.run(
        [sys.executable, "-m", "hub", "keys", "init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (made / "master-keys.json").is_file()
    mounted = tmp_path / "secret"
    mounted.mkdir()
    for path in made.iterdir():
        if path.suffix != ".lock":
            (mounted / path.name).write_bytes(path.read_bytes())
            (mounted / path.name).chmod(0o440)
    return mounted


def run_layout(
    script: str, tmp_path: Path, secret: Path, configmap: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    source = tmp_path / "configmap"
    source.mkdir()
    for key, value in configmap.items():
        (source / key).write_text(value)
    for mount in ("/run/secrets/ketenhub-keys", "/run/config/ketenhub-policy"):
        assert mount in script
    script = script.replace("/run/secrets/ketenhub-keys", str(secret))
    script = script.replace("/run/config/ketenhub-policy", str(source))
    key_dir, policy_dir = tmp_path / "state" / "keys", tmp_path / "config" / "policies"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENHUB_")}
    env |= {
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "KETENHUB_KEY_DIR": str(key_dir),
        "KETENHUB_POLICY_DIR": str(policy_dir),
    }
    done = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done, key_dir, policy_dir


def test_layout_makes_a_valid_policy_directory_and_a_production_grade_key_directory(
    tmp_path: Path, key_secret: Path
) -> None:
    docs = rendered("demo")
    policy = next(d for d in docs if d["metadata"]["name"].startswith("ketenhub-policy"))
    done, key_dir, policy_dir = run_layout(
        layout_script(docs), tmp_path, key_secret, policy["data"]
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout
    # The same files as deploy/policies, byte for byte, in the same places.
    expected = {
        p.relative_to(DEPLOY / "policies"): p.read_bytes()
        for p in (DEPLOY / "policies").rglob("*.yaml")
        if p.name != "kustomization.yaml"
    }
    laid_out = {p.relative_to(policy_dir): p.read_bytes() for p in policy_dir.rglob("*.yaml")}
    assert laid_out == expected
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in key_dir.iterdir()} == {0o600}
    assert {p.name for p in key_dir.iterdir()} == {p.name for p in key_secret.iterdir()}
    check_key_dir(key_dir, source_root=REPO)  # production accepts it


def test_layout_refuses_a_key_secret_without_master_keys(tmp_path: Path, key_secret: Path) -> None:
    (key_secret / "master-keys.json").unlink()
    docs = rendered("demo")
    policy = next(d for d in docs if d["metadata"]["name"].startswith("ketenhub-policy"))
    done, key_dir, _ = run_layout(layout_script(docs), tmp_path, key_secret, policy["data"])
    assert done.returncode == 2
    assert "master-keys.json" in done.stderr
    assert "ketenhub keys init" in done.stderr
    assert not key_dir.exists()


def test_layout_stops_the_pod_on_an_invalid_policy(tmp_path: Path, key_secret: Path) -> None:
    docs = rendered("demo")
    policy = next(d for d in docs if d["metadata"]["name"].startswith("ketenhub-policy"))
    data = dict(policy["data"])
    key = next(k for k in data if k.startswith("agreements__"))
    data[key] = data[key].replace("version:", "versoin:")
    done, _, _ = run_layout(layout_script(docs), tmp_path, key_secret, data)
    assert done.returncode != 0
    assert f"agreements/{key.removeprefix('agreements__')}" in done.stderr


def test_the_demo_policy_configmap_lists_every_file_of_the_policy_directory() -> None:
    kustomization = yaml.safe_load((DEPLOY / "policies" / "kustomization.yaml").read_text())
    listed = set()
    for item in kustomization["configMapGenerator"][0]["files"]:
        key, _, path = item.rpartition("=")
        path = path or item
        expected_key = path.replace("agreements/", "agreements__")
        assert (key or path) == expected_key, item
        listed.add(path)
    on_disk = {
        str(p.relative_to(DEPLOY / "policies"))
        for p in (DEPLOY / "policies").rglob("*")
        if p.is_file() and p.name != "kustomization.yaml"
    }
    assert listed == on_disk


def test_the_deploy_policy_is_the_demo_policy_with_the_simulators_service_as_sources() -> None:
    ours, theirs = DEPLOY / "policies", REPO / "policies"
    files = sorted(str(p.relative_to(theirs)) for p in theirs.rglob("*.yaml"))
    assert files == sorted(
        str(p.relative_to(ours)) for p in ours.rglob("*.yaml") if p.name != "kustomization.yaml"
    )
    for name in files:
        mine = (ours / name).read_text()
        if name == "partners.yaml":
            mine = re.sub(r"\A(#.*\n){3}", "", mine)  # this copy's own header
            mine = mine.replace("http://simulators:", "http://127.0.0.1:")
        assert mine == (theirs / name).read_text(), name


def test_kubectl_is_a_kustomize_v5() -> None:
    """The manifests use kustomize 5 (labels, inline patches); an older one misreads them."""
    done = subprocess.run(
        [tool("kubectl"), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    version = json.loads(done.stdout)["kustomizeVersion"]
    assert re.fullmatch(r"v[5-9]\.\d+\.\d+", version), version
