"""The deployment files under deploy/ checked against the code they describe: every Grafana panel queries series
the router really exports (with labels it really sets), the Kubernetes manifests are well formed and point
their probes, ports and config at what ``routerforge serve`` answers, and the Dockerfile builds the serving
image the docs promise. Static checks: no Grafana, kubectl, helm or docker is needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from routerforge.serving.service import Metrics

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "routerforge.json"
# labels Prometheus adds when it scrapes (target labels), or that histogram_quantile reads
SCRAPE_LABELS = {"job", "instance", "namespace", "pod", "le"}
METRIC = re.compile(r"\b(routerforge_[a-z0-9_]+)\b")
BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\b(routerforge_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def exported_series() -> dict[str, set[str]]:
    """Sample name -> label names, from the router's own registry as Prometheus would scrape it."""
    metrics = Metrics()
    for collector in vars(metrics).values():
        labelnames = getattr(collector, "_labelnames", ())
        if labelnames:  # a labelled series only appears once a child exists
            collector.labels(*["x"] * len(labelnames))
    text = generate_latest(metrics.registry).decode()
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(k for k in sample.labels if k != "le")
    return series


def panel_targets(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, rows' nested panels included."""
    out = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            out += [(inner["title"], t["expr"]) for t in inner.get("targets", [])]
    return out


def test_every_dashboard_query_names_exported_series_and_their_labels():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    series = exported_series()
    targets = panel_targets(dashboard)
    assert len(targets) >= 10
    for title, expr in targets:
        names = METRIC.findall(expr)
        assert names, f"panel {title!r} queries no routerforge series: {expr}"
        unknown = sorted(set(names) - set(series))
        assert not unknown, f"panel {title!r} queries series the router does not export: {unknown}"
        labels = set().union(*(series[n] for n in names)) | SCRAPE_LABELS
        for group in BY.findall(expr):
            grouped = {g.strip() for g in group.split(",") if g.strip()}
            assert grouped <= labels, f"panel {title!r} groups by labels no series has: {sorted(grouped - labels)}"
        for name, matchers in SELECTOR.findall(expr):
            used = set(MATCHER.findall(matchers))
            assert used <= series[name] | SCRAPE_LABELS, f"panel {title!r}: {name} has no label {used - series[name]}"


def test_dashboard_covers_what_operators_watch():
    """Request rate and latency by route and model, decisions and blocks, classifier latency, queue depth, 429s
    and guard failures: each has a panel."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queried = {name for _, expr in panel_targets(dashboard) for name in METRIC.findall(expr)}
    wanted = {
        "routerforge_requests_total",
        "routerforge_request_seconds_bucket",
        "routerforge_decisions_total",
        "routerforge_blocks_total",
        "routerforge_classification_seconds_bucket",
        "routerforge_queue_depth",
        "routerforge_admission_refused_total",
        "routerforge_classification_failures_total",
        "routerforge_fail_open_total",
        "routerforge_refused_total",
        "routerforge_upstream_seconds_bucket",
        "routerforge_upstream_errors_total",
    }
    assert wanted <= queried, sorted(wanted - queried)
    exprs = " ".join(expr for _, expr in panel_targets(dashboard))
    assert 'status="429"' in exprs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"  # the import picks the data source
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job"} <= variables


def test_the_dashboard_check_catches_a_wrong_series():
    """The check above is not vacuous: a misspelt series or label fails it."""
    series = exported_series()
    assert "routerforge_requests_total" in series and "endpoint" in series["routerforge_requests_total"]
    assert "routerforge_request_total" not in series
    assert "route" not in series["routerforge_requests_total"]
    with pytest.raises(AssertionError):
        assert set(METRIC.findall("rate(routerforge_request_total[5m])")) <= set(series)


# -- Kubernetes manifests ------------------------------------------------------------------------------------

K8S = ROOT / "deploy" / "kubernetes"
API_VERSIONS = {  # kind -> the apiVersion current clusters serve
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
}
MEMORY = re.compile(r"^\d+(Ki|Mi|Gi)$")
CPU = re.compile(r"^\d+(\.\d+)?m?$")


def manifests(*names: str) -> list[dict]:
    import yaml

    files = names or sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    return [doc for name in files for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_manifest_is_a_known_kind_with_its_required_fields():
    docs = manifests()
    assert {d["kind"] for d in docs} == set(API_VERSIONS)
    for doc in docs:
        assert doc["apiVersion"] == API_VERSIONS[doc["kind"]], doc["kind"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
        assert "namespace" not in doc["metadata"]  # `kubectl apply -n` (or kustomize) picks it
    for deployment in by_kind(docs, "Deployment").values():
        spec = deployment["spec"]
        pod = spec["template"]
        assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in pod["spec"]["containers"]:
            assert container["image"] and container["name"]
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert CPU.match(str(resources[bound]["cpu"])) and MEMORY.match(resources[bound]["memory"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert "readinessProbe" in container and "livenessProbe" in container
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in pod["spec"]["volumes"]}
    for service in by_kind(docs, "Service").values():
        selector = service["spec"]["selector"].items()
        pods = [
            d
            for d in by_kind(docs, "Deployment").values()
            if selector <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(pods) == 1, f"service {service['metadata']['name']} selects {len(pods)} deployments"
        ports = {p["name"] for c in pods[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_kustomization_lists_the_proxy_files():
    import yaml

    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    for name in kustomization["resources"]:
        assert (K8S / name).is_file(), name
    assert "envoy-extproc.yaml" not in kustomization["resources"]  # the variant replaces deployment + service


def _container(deployment: dict, name: str) -> dict:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def _port(container: dict, port) -> int:
    return port if isinstance(port, int) else next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def _router_config(tmp_path: Path):
    from routerforge.serving.config import load_router_config

    [configmap] = manifests("configmap.yaml")
    path = tmp_path / "router.yaml"
    path.write_text(configmap["data"]["router.yaml"], encoding="utf-8")
    return load_router_config(path)


def test_the_proxy_deployment_matches_the_server_it_runs(tmp_path):
    from routerforge.serving.proxy import _OPEN_PATHS

    config = _router_config(tmp_path)  # routerforge's own loader: a field it does not know fails here
    docs = manifests("configmap.yaml", "secret.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml")
    deployment = by_kind(docs, "Deployment")["routerforge"]
    router = _container(deployment, "routerforge")
    ready, live = router["readinessProbe"]["httpGet"], router["livenessProbe"]["httpGet"]
    assert (ready["path"], live["path"]) == ("/readyz", "/healthz")
    assert {ready["path"], live["path"]} <= set(_OPEN_PATHS)  # probes carry no token and no Host of ours
    assert _port(router, ready["port"]) == _port(router, live["port"]) == config.server.port
    assert router["args"][0] == "serve"
    config_path = Path(router["args"][router["args"].index("--config") + 1])
    mounts = {m["mountPath"]: m["name"] for m in router["volumeMounts"]}
    assert mounts[str(config_path.parent)] == "config"
    assert mounts[str(config.bundle)] == "bundle"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "routerforge-config"
    # off loopback, serve refuses to start without a client token: it must come from the Secret
    assert config.server.host == "0.0.0.0" and config.server.auth_token_env
    [secret] = by_kind(docs, "Secret").values()
    assert [s["secretRef"]["name"] for s in router["envFrom"]] == [secret["metadata"]["name"]]
    needed = {config.server.auth_token_env} | {b.api_key_env for b in config.backends if b.api_key_env}
    assert needed <= set(secret["stringData"])
    threads = int(router["args"][router["args"].index("--threads") + 1])
    assert threads == int(float(str(router["resources"]["limits"]["cpu"])))  # ONNX pool sized to the pod, not node
    assert by_kind(docs, "HorizontalPodAutoscaler")["routerforge"]["spec"]["scaleTargetRef"]["name"] == "routerforge"
    pdb = by_kind(docs, "PodDisruptionBudget")["routerforge"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_envoy_variant_wires_envoy_to_a_loopback_extproc(tmp_path):
    import yaml
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2
    from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401 - registers the typed_config type
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
    from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401 - registers the typed_config type
    from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 - registers the type
    from google.protobuf import json_format

    config = _router_config(tmp_path)
    docs = manifests("envoy-extproc.yaml")
    deployment = by_kind(docs, "Deployment")["routerforge-envoy"]
    envoy_text = by_kind(docs, "ConfigMap")["routerforge-envoy"]["data"]["envoy.yaml"]
    bootstrap = json_format.ParseDict(yaml.safe_load(envoy_text), bootstrap_pb2.Bootstrap())  # Envoy's own protos
    [listener] = bootstrap.static_resources.listeners
    hcm = http_connection_manager_pb2.HttpConnectionManager()
    assert listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    ext_proc = ext_proc_pb2.ExternalProcessor()
    assert hcm.http_filters[0].typed_config.Unpack(ext_proc) and not ext_proc.failure_mode_allow
    clusters = {c.name: c for c in bootstrap.static_resources.clusters}
    grpc_address = clusters[ext_proc.grpc_service.envoy_grpc.cluster_name].load_assignment.endpoints[0]
    socket = grpc_address.lb_endpoints[0].endpoint.address.socket_address
    extproc = _container(deployment, "extproc")
    args = extproc["args"]
    assert args[0] == "extproc"
    assert args[args.index("--host") + 1] == socket.address == "127.0.0.1"  # its answers carry backend keys
    assert int(args[args.index("--port") + 1]) == socket.port_value
    metrics_port = int(args[args.index("--metrics-port") + 1])
    assert args[args.index("--metrics-host") + 1] == "0.0.0.0"  # scraped on the pod address
    assert _port(extproc, "metrics") == metrics_port
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(metrics_port)
    routed = {r.match.headers[0].string_match.exact for r in hcm.route_config.virtual_hosts[0].routes}
    assert routed == {b.name for b in config.backends}  # every backend has a route, every route a backend
    envoy = _container(deployment, "envoy")
    assert _port(envoy, envoy["readinessProbe"]["tcpSocket"]["port"]) == listener.address.socket_address.port_value
    [service] = by_kind(docs, "Service").values()
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_kustomize_renders_the_manifests_when_kubectl_is_here():
    """`kubectl kustomize` (offline, no cluster) builds what `kubectl apply -k` would send."""
    import shutil
    import subprocess

    import yaml

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    plain = manifests(*yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))["resources"])
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in plain
    )
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "routerforge" for d in rendered)


# -- Dockerfile ----------------------------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), flags=re.IGNORECASE)
            assert match, line
            current = match.group(2) or f"stage{len(stages)}"
            stages[current] = [("FROM", match.group(1))]
        else:
            stages[current].append((instruction, " ".join(args.split())))
    return stages


def _inherited(stages: dict, name: str) -> list[tuple[str, str]]:
    """A stage's instructions with those of the stages it is built FROM first."""
    own = stages[name]
    parent = own[0][1]
    return (_inherited(stages, parent) if parent in stages else []) + own


def test_the_dockerfile_builds_a_non_root_serving_image_without_torch():
    from routerforge.serving.config import ServerConfig

    stages = dockerfile_stages()
    assert list(stages)[-1] == "serve", "the default target (the last stage) serves a mounted bundle"
    assert {"build", "runtime", "baked", "serve"} <= set(stages)
    build = dict(stages["build"])
    run = " ".join(args for instruction, args in stages["build"] if instruction == "RUN")
    installs = [s.strip() for s in re.findall(r"pip install ([^&]+)", run)]
    assert installs == ["."], "the serving image installs the base dependencies only (no [train] extra)"
    assert "torch" in run and "sys.exit" in run  # the build fails if torch or transformers got in anyway
    assert build["FROM"] == "${PYTHON_IMAGE}"
    final = _inherited(stages, "serve")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    assert ("COPY", "--from=build /opt/routerforge /opt/routerforge") in final  # no compiler, no sources
    users = [args for instruction, args in final if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    uid = users[-1].split(":")[0]
    assert any(f"--uid {uid}" in args for instruction, args in final if instruction == "RUN")
    [health] = [args for instruction, args in final if instruction == "HEALTHCHECK"]
    port = ServerConfig().port
    assert f"http://127.0.0.1:{port}/healthz" in health
    assert str(port) in next(args for instruction, args in final if instruction == "EXPOSE").split()
    entrypoint = json.loads(next(args for instruction, args in final if instruction == "ENTRYPOINT"))
    cmd = json.loads(next(args for instruction, args in final if instruction == "CMD"))
    assert entrypoint == ["routerforge"] and cmd[:2] == ["serve", "/models/bundle"]
    assert cmd[cmd.index("--config") + 1] == "/etc/routerforge/router.yaml"
    baked = dict(stages["baked"])
    assert baked["FROM"] == "runtime" and "/models/bundle" in baked["COPY"]
    python = re.search(r"PYTHON_IMAGE=python:(\d+)\.(\d+)", DOCKERFILE.read_text(encoding="utf-8"))
    assert python and (int(python.group(1)), int(python.group(2))) >= (3, 11)  # pyproject's requires-python


def _docker_ignored(path: str, rules: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: the last matching rule wins, ``!`` re-includes."""
    import fnmatch

    ignored = False
    for rule in rules:
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        candidates = [path] + [str(Path(*Path(path).parts[:i])) for i in range(1, len(Path(path).parts))]
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.replace("**/", "*/")) for c in candidates):
            ignored = not negate
    return ignored


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_heavy():
    rules = [r.strip() for r in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    rules = [r for r in rules if r and not r.startswith("#")]
    copied = []
    for instruction, args in dockerfile_stages()["build"]:
        if instruction == "COPY" and not args.startswith("--from"):
            copied += args.split()[:-1]
    assert copied == ["pyproject.toml", "README.md", "src/"]
    for source in copied:
        assert (ROOT / source).exists() and not _docker_ignored(source.rstrip("/"), rules), source
    assert not _docker_ignored("src/routerforge/serving/proxy.py", rules)
    for heavy in (".venv/lib/x.py", "runs/quickstart/bundle/model.onnx", "models/x", "logs/a.log", "tests/x.py"):
        assert _docker_ignored(heavy, rules), heavy
    assert _docker_ignored("src/routerforge/__pycache__/cli.cpython-311.pyc", rules)


def test_the_image_builds_and_answers_when_docker_is_here(tmp_path):
    """Builds the image when a Docker daemon and the base image are reachable (not on this project's machine)."""
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        pytest.skip("docker not installed")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker daemon")
    base = re.search(r"PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(encoding="utf-8")).group(1)
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True, timeout=30).returncode != 0:
        pytest.skip(f"base image {base} not present (cannot be pulled here)")
    out = subprocess.run(["docker", "build", "-q", "-t", "routerforge:test", str(ROOT)], capture_output=True,
                         text=True, timeout=1800)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    probe = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", "routerforge:test", "-c",
                            "import routerforge.serving.proxy, importlib.util as u; print(u.find_spec('torch'))"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert probe.returncode == 0 and probe.stdout.strip() == "None", probe.stderr
    user = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", "routerforge:test", "-u"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert user.stdout.strip() == "10001"
