"""Checks of the Kubernetes manifests under deploy/.

Run with the project's Python environment:

    PY=$(bash .ci/pyenv.sh | tail -n1)
    "$PY" -m pytest tests/python

These tests read files only (no cluster, no network). They pin the facts the
deployment depends on: the DaemonSet is privileged and mounts the host's /sys,
its probes hit the v2 health paths on the port `ecoedge serve --listen` binds,
the InferenceService is a v2 custom predictor on KServe's port 8080, and the
Prometheus config scrapes /metrics of exactly those pods.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IMAGE = "ecoedge:0.1.0"

# `ecoedge serve` flags from the CLI contract (shared/design/CLI.md). A manifest
# that passes anything else would make the container exit at start-up.
SERVE_FLAGS = {
    "--model", "--listen", "--board", "--sysfs-root", "--optimizer", "--window",
    "--warmup", "--max-wait", "--max-batch", "--queue", "--max-body", "--log-dir",
    "--json", "--engine", "--ep", "--meter", "--state-dir", "--drain-timeout",
    "--force", "--knobs", "--alpha", "--seed",
}
# Flags that take no value.
SERVE_SWITCHES = {"--json", "--force"}

# No registry host names in deploy/ (the image is built locally and imported on
# the nodes): no image reference shaped `host.domain[:port]/path:tag`. (Label and
# annotation keys such as `nvidia.com/jetson: "true"` have a space after the
# colon, so they do not match.)
REGISTRY_REF = re.compile(r"\b(?:[a-z0-9-]+\.)+[a-z]{2,}(?::\d+)?/[\w./-]+:[\w.-]+", re.I)


# --------------------------------------------------------------------------- helpers


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_all() -> list[tuple[Path, dict]]:
    docs = []
    for path in yaml_files():
        with path.open() as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((path, doc))
    return docs


def one(kind: str) -> dict:
    found = [d for _, d in load_all() if d.get("kind") == kind]
    assert len(found) == 1, f"expected exactly one {kind} under deploy/, found {len(found)}"
    return found[0]


def parse_args(args: list[str]) -> dict[str, str | None]:
    """`serve --a x --b y --json` -> {'--a': 'x', '--b': 'y', '--json': None}."""
    assert args and args[0] == "serve", f"the container must run `ecoedge serve`, args: {args}"
    out: dict[str, str | None] = {}
    rest = args[1:]
    i = 0
    while i < len(rest):
        flag = rest[i]
        assert flag.startswith("--"), f"unexpected positional argument {flag!r} in {args}"
        if "=" in flag:
            name, value = flag.split("=", 1)
            out[name] = value
            i += 1
            continue
        if flag in SERVE_SWITCHES:
            out[flag] = None
            i += 1
            continue
        assert i + 1 < len(rest), f"{flag} has no value in {args}"
        out[flag] = str(rest[i + 1])
        i += 2
    unknown = set(out) - SERVE_FLAGS
    assert not unknown, f"flags outside the `ecoedge serve` contract: {sorted(unknown)}"
    return out


def serve_args(container: dict) -> dict[str, str | None]:
    command = container.get("command") or []
    args = container.get("args") or []
    full = [str(a) for a in command + args]
    # Drop the binary itself (ENTRYPOINT or command).
    while full and full[0] != "serve":
        assert full[0].endswith("ecoedge"), f"unexpected command {full}"
        full = full[1:]
    return parse_args(full)


def listen_port(container: dict) -> int:
    listen = serve_args(container)["--listen"]
    assert listen is not None
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0", f"--listen must bind all interfaces in a pod, got {listen}"
    return int(port)


def resolve_port(container: dict, port) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise AssertionError(f"probe port {port!r} names no container port")


def host_paths(pod_spec: dict) -> dict[str, dict]:
    """volume name -> hostPath source, for hostPath volumes."""
    return {v["name"]: v["hostPath"] for v in pod_spec.get("volumes", []) if "hostPath" in v}


def mount_of(container: dict, pod_spec: dict, host_path: str) -> dict:
    hp = host_paths(pod_spec)
    names = [name for name, src in hp.items() if src["path"] == host_path]
    assert names, f"no hostPath volume for {host_path}"
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] in names]
    assert mounts, f"hostPath {host_path} is not mounted in container {container['name']}"
    return mounts[0]


def check_server_container(container: dict, pod_spec: dict, port: int) -> None:
    """What every EcoEdge server container needs, DaemonSet or InferenceService."""
    assert container["image"] == IMAGE
    assert container.get("imagePullPolicy") in ("IfNotPresent", "Never"), (
        "the image is built locally and never pulled"
    )
    assert container.get("securityContext", {}).get("privileged") is True
    assert listen_port(container) == port
    args = serve_args(container)
    assert args.get("--sysfs-root") == "/"
    assert args.get("--board") in ("jetson", "auto")
    assert args.get("--model"), "a model is required"

    # Probes: the v2 health paths, on the port the server listens on.
    live = container["livenessProbe"]["httpGet"]
    ready = container["readinessProbe"]["httpGet"]
    assert live["path"] == "/v2/health/live"
    assert ready["path"] == "/v2/health/ready"
    assert resolve_port(container, live["port"]) == port
    assert resolve_port(container, ready["port"]) == port
    assert any(int(p["containerPort"]) == port for p in container["ports"])

    # Host mounts: /sys read-write at /sys (so --sysfs-root / sees the real tree),
    # debugfs for the EMC clock, the state dir for the store file and lock.
    sys_mount = mount_of(container, pod_spec, "/sys")
    assert sys_mount["mountPath"] == "/sys"
    assert not sys_mount.get("readOnly", False), "/sys must be writable (clock files)"
    debug_mount = mount_of(container, pod_spec, "/sys/kernel/debug")
    assert debug_mount["mountPath"] == "/sys/kernel/debug"
    assert not debug_mount.get("readOnly", False)
    state_mount = mount_of(container, pod_spec, "/run/ecoedge")
    assert state_mount["mountPath"] == args.get("--state-dir", "/run/ecoedge")

    # Long enough to drain accepted requests and restore the clocks.
    assert pod_spec.get("terminationGracePeriodSeconds", 30) >= 60

    # No CPU limit (CFS throttling distorts measured latency), a memory limit.
    resources = container.get("resources", {})
    assert "cpu" not in resources.get("limits", {})
    assert "memory" in resources.get("limits", {})


def selects_jetson(pod_spec: dict) -> bool:
    """The pod is constrained to nodes carrying a Jetson label."""
    keys = set(pod_spec.get("nodeSelector", {}))
    affinity = pod_spec.get("affinity", {}).get("nodeAffinity", {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", {})
    for term in required.get("nodeSelectorTerms", []):
        keys |= {e["key"] for e in term.get("matchExpressions", [])}
    return any("jetson" in k for k in keys)


# --------------------------------------------------------------------------- all files


def test_deploy_has_the_three_manifests():
    names = {p.name for p in yaml_files()}
    assert {"daemonset.yaml", "prometheus.yaml", "inferenceservice.yaml"} <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.name)
def test_every_yaml_parses_into_kubernetes_objects(path: Path):
    with path.open() as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, f"{path} is empty"
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: object without apiVersion/kind"
        assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without a name"


def test_no_registry_host_names_in_deploy():
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            m = REGISTRY_REF.search(path.read_text())
            assert m is None, f"{path.name} names a registry host: {m.group(0)!r}"
    # Base images in the Dockerfile are plain names too (a registry would be a
    # path component before the first '/').
    text = (DEPLOY / "Dockerfile").read_text()
    for ref in re.findall(r"^ARG \w+_IMAGE=(\S+)", text, flags=re.M):
        assert "/" not in ref, f"Dockerfile default image {ref} names a registry or namespace"


def images(node) -> list[str]:
    """Every value of an `image` key, at any depth."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "image" and isinstance(v, str)]
        return found + [i for v in node.values() for i in images(v)]
    if isinstance(node, list):
        return [i for v in node for i in images(v)]
    return []


def test_every_image_is_the_local_one():
    all_images = []
    for path, doc in load_all():
        for image in images(doc):
            assert image == IMAGE, f"{path.name}: image {image}"
            all_images.append(image)
    assert len(all_images) >= 2  # the DaemonSet's and the InferenceService's


# --------------------------------------------------------------------------- DaemonSet


def daemonset_parts():
    ds = one("DaemonSet")
    pod = ds["spec"]["template"]
    spec = pod["spec"]
    containers = spec["containers"]
    assert len(containers) == 1
    return ds, pod, spec, containers[0]


def test_daemonset_server_container():
    ds, pod, spec, c = daemonset_parts()
    assert ds["apiVersion"] == "apps/v1"
    check_server_container(c, spec, 8000)


def test_daemonset_is_privileged_with_host_sys():
    _, _, spec, c = daemonset_parts()
    assert c["securityContext"]["privileged"] is True
    assert host_paths(spec)[mount_of(c, spec, "/sys")["name"]]["path"] == "/sys"


def test_daemonset_selector_matches_template_and_jetson_nodes():
    ds, pod, spec, _ = daemonset_parts()
    selector = ds["spec"]["selector"]["matchLabels"]
    labels = pod["metadata"]["labels"]
    assert selector and all(labels.get(k) == v for k, v in selector.items())
    assert selects_jetson(spec)


def test_daemonset_scrape_annotations_point_at_metrics():
    _, pod, _, c = daemonset_parts()
    ann = pod["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert ann["prometheus.io/path"] == "/metrics"
    assert int(ann["prometheus.io/port"]) == listen_port(c)


def test_service_targets_the_server_port():
    svc = one("Service")
    _, pod, _, c = daemonset_parts()
    labels = pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    (port,) = svc["spec"]["ports"]
    assert resolve_port(c, port["targetPort"]) == listen_port(c)


# --------------------------------------------------------------------------- KServe


def isvc_parts():
    isvc = one("InferenceService")
    predictor = isvc["spec"]["predictor"]
    containers = predictor["containers"]
    server = [c for c in containers if c["name"] == "kserve-container"]
    assert len(server) == 1, "the predictor container must be named kserve-container"
    return isvc, predictor, server[0]


def test_inferenceservice_is_a_v2_custom_predictor():
    isvc, predictor, c = isvc_parts()
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    assert c["image"] == IMAGE
    # Custom containers declare the protocol with PROTOCOL (the built-in
    # predictors' protocolVersion field); KServe accepts v1 or v2.
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert env.get("PROTOCOL") == "v2"
    # Built-in predictor specs must not be mixed with a custom container.
    assert not ({"model", "sklearn", "onnx", "triton"} & set(predictor))


def test_inferenceservice_port_and_server():
    _, predictor, c = isvc_parts()
    (port,) = c["ports"]  # KServe exposes one port
    assert port["containerPort"] == 8080
    assert port["name"] in ("http1", "h2c")
    assert port["name"] == "http1", "EcoEdge serves REST (HTTP/1.1), not gRPC"
    check_server_container(c, predictor, 8080)


def test_inferenceservice_is_raw_deployment_on_jetson():
    isvc, predictor, _ = isvc_parts()
    # Knative (Serverless mode) rejects privileged containers and hostPath volumes.
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    assert mode in ("RawDeployment", "Standard")
    assert selects_jetson(predictor)
    assert predictor.get("maxReplicas", 1) == 1


# --------------------------------------------------------------------------- Prometheus


def prometheus_config() -> dict:
    cm = one("ConfigMap")
    assert "prometheus.yml" in cm["data"]
    config = yaml.safe_load(cm["data"]["prometheus.yml"])
    assert isinstance(config, dict)
    return config


def job(config: dict, name: str) -> dict:
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert name in jobs, f"no scrape job {name}; jobs: {sorted(jobs)}"
    return jobs[name]


def meta_labels_of_daemonset_pod() -> dict[str, str]:
    """The __meta_kubernetes_pod_* labels Prometheus would give the DaemonSet's pod."""
    _, pod, _, c = daemonset_parts()

    def sanitize(name: str) -> str:
        return re.sub(r"[^a-zA-Z0-9_]", "_", name)

    labels = {"__address__": f"10.0.0.7:{c['ports'][0]['containerPort']}"}
    for k, v in pod["metadata"].get("labels", {}).items():
        labels[f"__meta_kubernetes_pod_label_{sanitize(k)}"] = str(v)
    for k, v in pod["metadata"].get("annotations", {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{sanitize(k)}"] = str(v)
    labels["__meta_kubernetes_pod_container_port_name"] = c["ports"][0]["name"]
    labels["__meta_kubernetes_pod_container_port_number"] = str(c["ports"][0]["containerPort"])
    labels["__meta_kubernetes_pod_node_name"] = "xavier-nx-01"
    labels["__meta_kubernetes_namespace"] = "ecoedge"
    labels["__meta_kubernetes_pod_name"] = "ecoedge-abcde"
    return labels


def relabel(rules: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """A subset of Prometheus relabelling: keep, drop, replace. None = dropped."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        sep = rule.get("separator", ";")
        value = sep.join(labels.get(s, "") for s in rule.get("source_labels", []))
        regex = re.compile(rule.get("regex", "(.*)"))
        m = regex.fullmatch(value)  # Prometheus anchors regexes
        if action == "keep":
            if not m:
                return None
        elif action == "drop":
            if m:
                return None
        elif action == "replace":
            if m:
                repl = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
                labels[rule["target_label"]] = m.expand(repl)
        else:
            raise AssertionError(f"relabel action {action} not modelled by this test")
    return labels


def test_prometheus_pod_job_scrapes_metrics():
    j = job(prometheus_config(), "ecoedge-pods")
    assert j.get("metrics_path", "/metrics") == "/metrics"
    assert any(sd["role"] == "pod" for sd in j["kubernetes_sd_configs"])


def test_prometheus_regexes_are_re2_compatible():
    # Prometheus uses RE2: no back-references or look-arounds.
    for j in prometheus_config()["scrape_configs"]:
        for rule in j.get("relabel_configs", []):
            rx = rule.get("regex", "")
            assert not re.search(r"\\[1-9]|\(\?[=!<]", rx), f"{j['job_name']}: {rx}"


def test_prometheus_keeps_the_daemonset_pod_and_scrapes_its_port():
    j = job(prometheus_config(), "ecoedge-pods")
    out = relabel(j["relabel_configs"], meta_labels_of_daemonset_pod())
    assert out is not None, "the DaemonSet's pod is dropped by the relabel rules"
    _, _, _, c = daemonset_parts()
    assert out["__address__"] == f"10.0.0.7:{listen_port(c)}"
    assert out.get("__metrics_path__", j.get("metrics_path")) == "/metrics"
    assert out["node"] == "xavier-nx-01"


def test_prometheus_drops_other_pods():
    j = job(prometheus_config(), "ecoedge-pods")
    other = {
        "__address__": "10.0.0.8:9100",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "node-exporter",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "9100",
        "__meta_kubernetes_pod_container_port_name": "http",
    }
    assert relabel(j["relabel_configs"], other) is None


def test_prometheus_static_board_example():
    j = job(prometheus_config(), "ecoedge-board")
    assert j.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in j["static_configs"] for t in sc["targets"]]
    assert targets and all(t.endswith(":8000") for t in targets)


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_the_runner_on_a_neutral_base():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, flags=re.M)
    assert "FROM ${BASE_IMAGE}" in text
    assert "cargo build --release" in text and "-p ecoedge-runner" in text
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/ecoedge"\]', text, flags=re.M)
