#!/usr/bin/env python3
"""Checks the deployment and observability files without running them.

    python3 tests/deploy/check.py                 # what CI runs
    python3 tests/deploy/check.py --metric-names  # metrics the dashboards and alerts use

- every YAML/JSON file under deploy/ (deploy/nats/generated/ aside) and
  docker-compose.yml parses;
- every manifest in deploy/kubernetes is valid against the Kubernetes
  1.30 schema, strictly (unknown fields fail), offline with the PyPI package
  kubernetes-validate; the CloudNativePG Cluster (a custom resource) is
  checked for its shape; kustomization.yaml and nats-values.yaml too;
- the Deployments keep to the product's rules (2 replicas, renkei-<service>,
  probes, non-root uid 10001, read-only root filesystem, resources), and
  each has its Service and PodDisruptionBudget and is listed in
  kustomization.yaml;
- docker-compose.yml has every service of the stack, sensible images and
  commands, and every file it mounts exists (deploy/nats/generated/ aside:
  deploy/nats/make-secrets.sh makes it);
- the console (renkei-console) reaches the four services at their own
  addresses and is given no bus or database setting or credential, in
  compose and on Kubernetes; its session key comes from a Secret there;
- deploy/Dockerfile puts every binary the deployments run into the image;
- Prometheus' configuration and alert rules, and the Grafana provisioning
  and dashboards, have the shape those tools need; with promtool on the
  PATH, it checks them too (and every dashboard query's PromQL);
- dashboards and alerts use only the metrics the services expose.

Prints one line per problem, naming the file, and exits 1 if there is any.
Needs python3 (installs PyYAML and kubernetes-validate from PyPI when
missing).
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KUBERNETES_VERSION = "1.30"
SERVICES = ["registry", "demarcation", "contacts", "emergency"]
# The web console: a client of the four services' HTTP API, with no NATS
# and no database of its own.
CONSOLE = "console"
COMPOSE_SERVICES = ["nats-1", "nats-2", "nats-3", "postgres", "otel-collector", "jaeger",
                    "prometheus", "grafana"] + SERVICES + [CONSOLE]
# Where the console finds each service (compose service / Kubernetes Service).
CONSOLE_URLS = {f"RENKEI_CONSOLE__{svc.upper()}_URL": f"http://{svc}:8080" for svc in SERVICES}
# Settings that would give the console the bus or the database.
BUS_OR_DATABASE = ("RENKEI_NATS__", "RENKEI_DATABASE__")
DATASOURCE_UID = "renkei-prometheus"
# What the services expose (and Prometheus' own `up`): the dashboards and
# alert rules may use nothing else. The names are the constants of
# shared/telemetry/src/metrics.rs (histograms without their
# _bucket/_sum/_count suffix); services/launcher/tests/metrics.rs checks the
# same queries against a real scrape of the running product.
def known_metrics():
    with open(os.path.join(ROOT, "shared", "telemetry", "src", "metrics.rs"), encoding="utf-8") as f:
        source = f.read()
    names = set(re.findall(r'pub const [A-Z_]+: &str = "(renkei_[a-z0-9_]+)";', source))
    return names | {"up"}


KNOWN_METRICS = known_metrics()


def ensure_packages():
    missing = []
    try:
        import yaml  # noqa: F401
    except ImportError:
        missing.append("PyYAML")
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        missing.append("kubernetes-validate")
    if missing:
        print(f"tests/deploy/check.py: installing {', '.join(missing)} (PyPI)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *missing], check=True)


class Problems:
    def __init__(self):
        self.items = []

    def add(self, path, message):
        self.items.append((os.path.relpath(path, ROOT), message))


def rel(*parts):
    return os.path.join(ROOT, *parts)


def get(obj, *keys, default=None):
    for key in keys:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return default
    return obj


# ---------------------------------------------------------------- parsing

def deploy_files():
    files = [rel("docker-compose.yml")]
    for path in sorted(glob.glob(rel("deploy", "**", "*"), recursive=True)):
        if not os.path.isfile(path) or path.startswith(rel("deploy", "nats", "generated") + os.sep):
            continue
        if path.endswith((".yaml", ".yml", ".json")):
            files.append(path)
    return files


def parse_all(problems):
    """path -> list of documents (JSON: one)."""
    import yaml
    parsed = {}
    for path in deploy_files():
        try:
            with open(path, encoding="utf-8") as f:
                if path.endswith(".json"):
                    parsed[path] = [json.load(f)]
                else:
                    parsed[path] = [d for d in yaml.safe_load_all(f)]
        except (OSError, ValueError, yaml.YAMLError) as e:
            problems.add(path, f"does not parse: {e}")
    return parsed


# ---------------------------------------------------------------- kubernetes

def check_kubernetes(parsed, problems):
    import kubernetes_validate
    from kubernetes_validate import utils as kv

    kdir = rel("deploy", "kubernetes")
    manifests = sorted(p for p in parsed if os.path.dirname(p) == kdir)
    if not manifests:
        problems.add(kdir, "no manifests")
        return
    deployments, services, pdbs, configmaps = {}, {}, {}, {}
    listed = None
    validated = 0
    for path in manifests:
        name = os.path.basename(path)
        if name == "kustomization.yaml":
            check_kustomization(path, parsed[path], problems)
            listed = (parsed[path][0] or {}).get("resources") or []
            continue
        if name == "nats-values.yaml":
            check_nats_values(path, parsed[path][0], problems)
            continue
        for doc in parsed[path]:
            if doc is None:
                continue
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                problems.add(path, "a document without apiVersion and kind")
                continue
            kind, what = doc["kind"], f"{doc['kind']} {get(doc, 'metadata', 'name')}"
            if not get(doc, "metadata", "name"):
                problems.add(path, f"{kind} without metadata.name")
            if str(doc["apiVersion"]).startswith("postgresql.cnpg.io/"):
                check_cnpg_cluster(path, doc, problems)
                continue
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                validated += 1
            except kv.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                problems.add(path, f"{what} is not valid Kubernetes {KUBERNETES_VERSION}: {where}: {e.message}")
            except kv.SchemaNotFoundError:
                problems.add(path, f"{what}: no Kubernetes {KUBERNETES_VERSION} schema for "
                                   f"{doc['apiVersion']} {kind}")
            name_ = get(doc, "metadata", "name")
            if get(doc, "metadata", "namespace") not in (None, "renkei") and kind != "Namespace":
                problems.add(path, f"{what} is not in namespace renkei")
            if kind == "Deployment":
                deployments[name_] = (path, doc)
            elif kind == "Service":
                services[name_] = (path, doc)
            elif kind == "PodDisruptionBudget":
                pdbs[name_] = (path, doc)
            elif kind == "ConfigMap":
                configmaps[name_] = doc.get("data") or {}
    if validated == 0:
        problems.add(kdir, "no manifest was validated against the Kubernetes schema")
    for svc in SERVICES + [CONSOLE]:
        if svc not in deployments:
            problems.add(kdir, f"no Deployment {svc}")
            continue
        path, dep = deployments[svc]
        if svc == CONSOLE:
            check_console_deployment(path, dep, configmaps, problems)
        else:
            check_service_deployment(path, svc, dep, problems)
        if listed is not None and os.path.basename(path) not in listed:
            problems.add(rel("deploy", "kubernetes", "kustomization.yaml"),
                         f"resources do not list {os.path.basename(path)} (Deployment {svc})")
        check_exposure(kdir, svc, dep, services, pdbs, problems)
    return validated


def check_exposure(kdir, svc, dep, services, pdbs, problems):
    """The Deployment's Service (port 8080) and PodDisruptionBudget select its pods."""
    labels = get(dep, "spec", "template", "metadata", "labels", default={}) or {}
    if svc not in services:
        problems.add(kdir, f"no Service {svc}")
    else:
        spath, service = services[svc]
        selector = get(service, "spec", "selector", default={}) or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.add(spath, f"Service {svc}: selector {selector} does not select the Deployment's pods")
        if 8080 not in [get(p, "port") for p in get(service, "spec", "ports", default=[]) or []]:
            problems.add(spath, f"Service {svc}: no port 8080")
    if svc not in pdbs:
        problems.add(kdir, f"no PodDisruptionBudget {svc}")
    else:
        ppath, pdb = pdbs[svc]
        if get(pdb, "spec", "minAvailable") != 1:
            problems.add(ppath, f"PodDisruptionBudget {svc}: minAvailable must be 1")
        selector = get(pdb, "spec", "selector", "matchLabels", default={}) or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.add(ppath, f"PodDisruptionBudget {svc}: selector does not select the Deployment's pods")


def check_pod(path, name, dep, problems):
    """The rules every Renkei Deployment keeps (services and console alike);
    returns its one container, or None."""
    what = f"Deployment {name}"
    if get(dep, "spec", "replicas") != 2:
        problems.add(path, f"{what}: replicas must be 2")
    pod = get(dep, "spec", "template", "spec", default={}) or {}
    containers = pod.get("containers") or []
    if len(containers) != 1:
        problems.add(path, f"{what}: expected one container")
        return None
    c = containers[0]
    image = str(c.get("image", ""))
    if not re.match(r"^([^/]+/)*renkei(:[\w.\-]+)?(@sha256:[0-9a-f]{64})?$", image):
        problems.add(path, f"{what}: image {image!r} is not the renkei image")
    if c.get("command") != [f"renkei-{name}"]:
        problems.add(path, f"{what}: command must be [renkei-{name}], is {c.get('command')}")
    for probe, wanted in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        if get(c, probe, "httpGet", "path") != wanted:
            problems.add(path, f"{what}: {probe} must ask {wanted}")
    for kind in ("requests", "limits"):
        res = get(c, "resources", kind, default={}) or {}
        if "memory" not in res or (kind == "requests" and "cpu" not in res):
            problems.add(path, f"{what}: resources.{kind} needs memory" + (" and cpu" if kind == "requests" else ""))
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    merged = {**psc, **csc}
    if merged.get("runAsNonRoot") is not True:
        problems.add(path, f"{what}: runAsNonRoot must be true")
    if merged.get("runAsUser") != 10001:
        problems.add(path, f"{what}: runAsUser must be 10001 (the image's user)")
    if csc.get("readOnlyRootFilesystem") is not True:
        problems.add(path, f"{what}: readOnlyRootFilesystem must be true")
    if csc.get("allowPrivilegeEscalation") is not False:
        problems.add(path, f"{what}: allowPrivilegeEscalation must be false")
    if not any(get(s, "configMapRef", "name") for s in c.get("envFrom") or []):
        problems.add(path, f"{what}: no envFrom ConfigMap of settings")
    mounts = {m.get("mountPath") for m in c.get("volumeMounts") or []}
    if "/var/lib/renkei" not in mounts:
        problems.add(path, f"{what}: the data dir /var/lib/renkei needs a writable volume (read-only root)")
    return c


def check_env_secrets(path, what, c, secrets, plain, problems):
    """`secrets` must come from a Secret, and no RENKEI_ variable named like a
    secret or an address (PASSWORD, KEY, SECRET, URL) is written in the
    manifest, `plain` aside."""
    env = {e.get("name"): e for e in c.get("env") or []}
    for name in secrets:
        if not get(env, name, "valueFrom", "secretKeyRef", "name"):
            problems.add(path, f"{what}: {name} must come from a Secret")
    for e in c.get("env") or []:
        if "value" in e and re.search(r"PASSWORD|KEY|SECRET|URL", e["name"]) and e["name"].startswith("RENKEI_") \
                and e["name"] not in plain:
            problems.add(path, f"{what}: {e['name']} is written in the manifest; take it from a Secret")
    return env


def check_service_deployment(path, svc, dep, problems):
    what = f"Deployment {svc}"
    c = check_pod(path, svc, dep, problems)
    if c is None:
        return
    env = check_env_secrets(path, what, c, ("RENKEI_NATS__PASSWORD", "RENKEI_DATABASE__URL",
                                            "RENKEI_AUDIT__SIGNING_KEY"), ("RENKEI_NATS__URL",), problems)
    if get(env, "RENKEI_NATS__USER", "value") != svc:
        problems.add(path, f"{what}: RENKEI_NATS__USER must be {svc}")


def check_console_deployment(path, dep, configmaps, problems):
    what = f"Deployment {CONSOLE}"
    c = check_pod(path, CONSOLE, dep, problems)
    if c is None:
        return
    env = check_env_secrets(path, what, c, ("RENKEI_CONSOLE__SESSION_KEY", "RENKEI_CONSOLE__OIDC_CLIENT_SECRET"),
                            tuple(CONSOLE_URLS), problems)
    for name, url in CONSOLE_URLS.items():
        if get(env, name, "value") != url:
            problems.add(path, f"{what}: {name} must be {url} (the Service)")
    # No bus or database: neither in its own env nor through a Secret of
    # settings, nor (credentials) through the ConfigMap it shares.
    for name in sorted(n for n in env if str(n).startswith(BUS_OR_DATABASE)):
        problems.add(path, f"{what}: {name}: the console uses no NATS and no database")
    for source in c.get("envFrom") or []:
        if source.get("secretRef"):
            problems.add(path, f"{what}: envFrom Secret {get(source, 'secretRef', 'name')}: "
                               "take the console's keys one by one (secretKeyRef)")
        data = configmaps.get(get(source, "configMapRef", "name"), {})
        for name in ("RENKEI_NATS__PASSWORD", "RENKEI_NATS__CREDENTIALS_FILE", "RENKEI_DATABASE__URL"):
            if name in data:
                problems.add(path, f"{what}: ConfigMap {get(source, 'configMapRef', 'name')} gives it {name}")


def check_cnpg_cluster(path, doc, problems):
    what = f"Cluster {get(doc, 'metadata', 'name')}"
    if doc.get("apiVersion") != "postgresql.cnpg.io/v1" or doc.get("kind") != "Cluster":
        problems.add(path, f"{what}: expected apiVersion postgresql.cnpg.io/v1, kind Cluster")
    spec = doc.get("spec") or {}
    allowed = {"instances", "imageName", "primaryUpdateStrategy", "primaryUpdateMethod", "bootstrap", "storage",
               "walStorage", "resources", "postgresql", "backup", "affinity", "monitoring", "description",
               "enableSuperuserAccess", "superuserSecret", "certificates", "minSyncReplicas",
               "maxSyncReplicas", "replicationSlots", "externalClusters", "managed", "plugins",
               "startDelay", "stopDelay", "smartShutdownTimeout", "switchoverDelay", "failoverDelay",
               "logLevel", "inheritedMetadata", "env", "envFrom", "topologySpreadConstraints"}
    for key in spec:
        if key not in allowed:
            problems.add(path, f"{what}: unknown spec field {key!r}")
    if spec.get("instances") != 3:
        problems.add(path, f"{what}: spec.instances must be 3")
    if not re.match(r"^\d+(Gi|Mi|Ti)$", str(get(spec, "storage", "size", default=""))):
        problems.add(path, f"{what}: spec.storage.size must be a size such as 20Gi")
    initdb = get(spec, "bootstrap", "initdb", default={}) or {}
    if not initdb.get("database") or not initdb.get("owner"):
        problems.add(path, f"{what}: spec.bootstrap.initdb needs database and owner")
    params = get(spec, "postgresql", "parameters", default={}) or {}
    for k, v in params.items():
        if not isinstance(v, str):
            problems.add(path, f"{what}: spec.postgresql.parameters.{k} must be a string")


def check_kustomization(path, docs, problems):
    doc = docs[0] or {}
    if doc.get("kind") != "Kustomization":
        problems.add(path, "kind must be Kustomization")
    for res in doc.get("resources") or []:
        if not os.path.isfile(os.path.join(os.path.dirname(path), res)):
            problems.add(path, f"resource {res} does not exist")
    if "secret-template.yaml" in (doc.get("resources") or []):
        problems.add(path, "lists secret-template.yaml: placeholders must never be applied")


def check_nats_values(path, doc, problems):
    doc = doc or {}
    want = [
        (("config", "cluster", "enabled"), True),
        (("config", "cluster", "replicas"), 3),
        (("config", "jetstream", "enabled"), True),
        (("config", "jetstream", "fileStore", "enabled"), True),
        (("config", "jetstream", "fileStore", "pvc", "enabled"), True),
        (("config", "jetstream", "merge", "sync_interval"), "always"),
        (("config", "nats", "tls", "enabled"), True),
        (("config", "cluster", "tls", "enabled"), True),
    ]
    for keys, value in want:
        if get(doc, *keys) != value:
            problems.add(path, f"{'.'.join(keys)} must be {value!r}")
    tag = str(get(doc, "container", "image", "tag", default=""))
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", tag)
    if not m or tuple(int(x) for x in m.groups()) < (2, 12, 3):
        problems.add(path, f"container.image.tag {tag!r}: NATS 2.12.3 or later")
    env = get(doc, "container", "env", default={}) or {}
    for user in SERVICES + ["observer"]:
        if f"{user.upper()}_NATS_PASSWORD" not in env:
            problems.add(path, f"container.env lacks {user.upper()}_NATS_PASSWORD (authorization.conf reads it)")


# ---------------------------------------------------------------- compose

def check_compose(parsed, problems):
    path = rel("docker-compose.yml")
    if path not in parsed:
        return
    compose = parsed[path][0] or {}
    services = compose.get("services") or {}
    for name in COMPOSE_SERVICES:
        if name not in services:
            problems.add(path, f"no service {name}")
    for name, svc in services.items():
        svc = svc or {}
        image = str(svc.get("image", ""))
        if not image:
            problems.add(path, f"service {name} has no image")
        elif ":" not in image.split("/")[-1] or image.endswith(":latest"):
            problems.add(path, f"service {name}: pin the image's version ({image})")
        for volume in svc.get("volumes") or []:
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if not source or not source.startswith((".", "/")):
                continue  # a named volume
            if os.path.isabs(source):
                problems.add(path, f"service {name} mounts an absolute host path {source}")
                continue
            full = os.path.normpath(os.path.join(ROOT, source))
            if full.startswith(rel("deploy", "nats", "generated")):
                continue
            if not os.path.exists(full):
                problems.add(path, f"service {name} mounts {source}, which does not exist")
        for env_file in ([svc["env_file"]] if isinstance(svc.get("env_file"), str) else svc.get("env_file") or []):
            env_file = env_file.get("path") if isinstance(env_file, dict) else env_file
            full = os.path.normpath(os.path.join(ROOT, env_file))
            if not full.startswith(rel("deploy", "nats", "generated")) and not os.path.exists(full):
                problems.add(path, f"service {name}: env_file {env_file} does not exist")
    for name in SERVICES + [CONSOLE]:
        if name not in services:
            continue  # said above
        svc = services.get(name) or {}
        if not str(svc.get("image", "")).startswith("renkei:"):
            problems.add(path, f"service {name}: image must be renkei:<tag>")
        if svc.get("command") != [f"renkei-{name}"]:
            problems.add(path, f"service {name}: command must be [renkei-{name}]")
        if get(svc, "deploy", "replicas") != 2:
            problems.add(path, f"service {name}: deploy.replicas must be 2")
        if "GET /readyz " not in " ".join(map(str, get(svc, "healthcheck", "test", default=[]) or [])):
            problems.add(path, f"service {name}: the healthcheck must ask GET /readyz")
        if not str(compose_env(svc).get("RENKEI_TELEMETRY__OTLP_ENDPOINT", "")).startswith("http://otel-collector:"):
            problems.add(path, f"service {name}: RENKEI_TELEMETRY__OTLP_ENDPOINT must point at otel-collector")
    for name in (n for n in SERVICES if n in services):
        env = compose_env(services.get(name) or {})
        if env.get("RENKEI_NATS__USER") != name:
            problems.add(path, f"service {name}: RENKEI_NATS__USER must be {name}")
        if str(env.get("RENKEI_NATS__STREAM_REPLICAS")) != "3":
            problems.add(path, f"service {name}: RENKEI_NATS__STREAM_REPLICAS must be 3")
    check_compose_console(path, services, problems)
    grafana_env = get(services, "grafana", "environment", default={}) or {}
    if str(grafana_env.get("GF_AUTH_ANONYMOUS_ENABLED", "")).lower() != "false":
        problems.add(path, "grafana: GF_AUTH_ANONYMOUS_ENABLED must be false")
    if "${" not in str(grafana_env.get("GF_SECURITY_ADMIN_PASSWORD", "")):
        problems.add(path, "grafana: GF_SECURITY_ADMIN_PASSWORD must come from the environment")


def compose_env(svc):
    """A compose service's environment as a dict (it may be written as a list)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return env


def check_compose_console(path, services, problems):
    if CONSOLE not in services:
        return  # said by check_compose
    console = services.get(CONSOLE) or {}
    env = compose_env(console)
    for name, url in CONSOLE_URLS.items():
        if env.get(name) != url:
            problems.add(path, f"service {CONSOLE}: {name} must be {url}")
    for name in sorted(n for n in env if n.startswith(BUS_OR_DATABASE)):
        problems.add(path, f"service {CONSOLE}: {name}: the console uses no NATS and no database "
                           "(give it no bus or database settings or credentials)")
    if console.get("env_file"):
        # deploy/nats/generated/<service>.env holds a NATS password and the services' keys.
        problems.add(path, f"service {CONSOLE}: no env_file (the services' ones hold bus credentials)")
    # A development default for the session key, long enough to be accepted.
    m = re.fullmatch(r"\$\{RENKEI_CONSOLE__SESSION_KEY:-(.*)\}", str(env.get("RENKEI_CONSOLE__SESSION_KEY", "")))
    if not m or len(m.group(1)) < 32:
        problems.add(path, f"service {CONSOLE}: RENKEI_CONSOLE__SESSION_KEY must be "
                           "${RENKEI_CONSOLE__SESSION_KEY:-<development default of at least 32 characters>}")
    dev_key = compose_env(services.get(SERVICES[0]) or {}).get("RENKEI_AUTH__DEV_KEY")
    if not env.get("RENKEI_AUTH__DEV_KEY") or env.get("RENKEI_AUTH__DEV_KEY") != dev_key:
        problems.add(path, f"service {CONSOLE}: RENKEI_AUTH__DEV_KEY must be the services' "
                           "(they must accept the tokens its development sign-in signs)")
    if not str(env.get("RENKEI_CONSOLE__PUBLIC_URL", "")):
        problems.add(path, f"service {CONSOLE}: no RENKEI_CONSOLE__PUBLIC_URL")
    depends = console.get("depends_on") or []
    for name in SERVICES:
        if name not in depends:
            problems.add(path, f"service {CONSOLE}: depends_on lacks {name}")


# ---------------------------------------------------------------- dockerfile

def check_dockerfile(problems):
    """The image holds every binary the deployments run."""
    path = rel("deploy", "Dockerfile")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        problems.add(path, f"unreadable: {e}")
        return
    copied = set(re.findall(r"target/release/(renkei[\w-]*)", text))
    for name in SERVICES + [CONSOLE]:
        if f"renkei-{name}" not in copied:
            problems.add(path, f"renkei-{name} is not copied into the image")


def check_collector(parsed, problems):
    path = rel("deploy", "observability", "otel-collector.yaml")
    doc = (parsed.get(path) or [None])[0]
    if doc is None:
        problems.add(path, "missing")
        return
    for proto, port in (("grpc", "4317"), ("http", "4318")):
        if not str(get(doc, "receivers", "otlp", "protocols", proto, "endpoint", default="")).endswith(":" + port):
            problems.add(path, f"receivers.otlp.protocols.{proto} must listen on {port}")
    exporters = doc.get("exporters") or {}
    jaeger = [k for k, v in exporters.items() if str(get(v, "endpoint", default="")) == "jaeger:4317"]
    if not jaeger:
        problems.add(path, "no exporter sends to jaeger:4317")
    traces = get(doc, "service", "pipelines", "traces", default={}) or {}
    for exporter in jaeger + ["debug"]:
        if exporter not in (traces.get("exporters") or []):
            problems.add(path, f"the traces pipeline does not export to {exporter}")
    if "batch" not in (traces.get("processors") or []):
        problems.add(path, "the traces pipeline does not batch")
    for pipeline in (get(doc, "service", "pipelines", default={}) or {}).values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind) or []:
                if component not in (doc.get(kind) or {}):
                    problems.add(path, f"a pipeline uses {kind[:-1]} {component}, which is not defined")


# ---------------------------------------------------------------- prometheus

def check_prometheus(parsed, problems):
    path = rel("deploy", "observability", "prometheus.yml")
    doc = (parsed.get(path) or [None])[0]
    if doc is None:
        problems.add(path, "missing")
        return
    if get(doc, "global", "scrape_interval") != "15s":
        problems.add(path, "global.scrape_interval must be 15s")
    rule_files = doc.get("rule_files") or []
    if not rule_files:
        problems.add(path, "no rule_files")
    for rf in rule_files:
        if not os.path.isfile(os.path.join(os.path.dirname(path), os.path.basename(rf))):
            problems.add(path, f"rule file {rf} is not in deploy/observability")
    jobs = {get(j, "job_name"): j for j in doc.get("scrape_configs") or []}
    for svc in SERVICES:
        job = jobs.get(svc)
        if job is None:
            problems.add(path, f"no scrape job for {svc}")
            continue
        if job.get("metrics_path", "/metrics") != "/metrics":
            problems.add(path, f"job {svc}: metrics_path must be /metrics")
        targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
        dns = [(n, sd.get("port")) for sd in job.get("dns_sd_configs") or [] for n in sd.get("names") or []]
        if not ((svc, 8080) in dns or any(t.startswith(svc) and t.endswith(":8080") for t in targets)):
            problems.add(path, f"job {svc}: does not scrape {svc}:8080 (every replica)")


def check_alerts(parsed, problems):
    path = rel("deploy", "observability", "alerts.yml")
    doc = (parsed.get(path) or [None])[0]
    if doc is None:
        problems.add(path, "missing")
        return
    groups = doc.get("groups")
    if not isinstance(groups, list) or not groups:
        problems.add(path, "no groups")
        return
    names, exprs = set(), []
    for gi, group in enumerate(groups):
        if not get(group, "name"):
            problems.add(path, f"group {gi} has no name")
        rules = get(group, "rules")
        if not isinstance(rules, list) or not rules:
            problems.add(path, f"group {get(group, 'name')} has no rules")
            continue
        for ri, rule in enumerate(rules):
            what = f"group {get(group, 'name')}, rule {get(rule, 'alert') or ri}"
            if not get(rule, "alert"):
                problems.add(path, f"{what}: no alert name")
            elif rule["alert"] in names:
                problems.add(path, f"{what}: alert name used twice")
            names.add(get(rule, "alert"))
            if not str(get(rule, "expr", default="")).strip():
                problems.add(path, f"{what}: no expr")
            exprs.append(str(get(rule, "expr", default="")))
            if not re.match(r"^\d+[smhd]$", str(get(rule, "for", default=""))):
                problems.add(path, f"{what}: `for` must be a duration such as 10m")
            if get(rule, "labels", "severity") not in ("critical", "warning", "info"):
                problems.add(path, f"{what}: labels.severity must be critical, warning or info")
            for annotation in ("summary", "description", "summary_ja"):
                if not str(get(rule, "annotations", annotation, default="")).strip():
                    problems.add(path, f"{what}: no annotations.{annotation}")
    text = "\n".join(exprs)
    for needed in ("renkei_outbox_backlog", "deriv(renkei_outbox_backlog", "renkei_outbox_oldest_age_seconds",
                   "increase(renkei_escalations_total", "renkei_report_deadline_nearest_seconds",
                   "renkei_consumer_pending", "up{", 'status=~"5'):
        if needed not in text:
            problems.add(path, f"no rule uses {needed}")


# ---------------------------------------------------------------- grafana

def dashboard_panels(panels):
    for panel in panels or []:
        yield panel
        yield from dashboard_panels(panel.get("panels"))


def check_grafana(parsed, problems):
    gdir = rel("deploy", "observability", "grafana")
    ds_path = os.path.join(gdir, "provisioning", "datasources", "prometheus.yml")
    ds = (parsed.get(ds_path) or [None])[0] or {}
    uids = [get(d, "uid") for d in ds.get("datasources") or []]
    if DATASOURCE_UID not in uids:
        problems.add(ds_path, f"no data source with uid {DATASOURCE_UID}")
    prov_path = os.path.join(gdir, "provisioning", "dashboards", "renkei.yml")
    prov = (parsed.get(prov_path) or [None])[0] or {}
    providers = prov.get("providers") or []
    paths = [get(p, "options", "path") for p in providers if get(p, "type") == "file"]
    if not any(paths):
        problems.add(prov_path, "no file provider with options.path")
    # The compose file mounts the dashboards where the provider looks.
    compose = (parsed.get(rel("docker-compose.yml")) or [{}])[0] or {}
    mounts = [str(v).split(":") for v in get(compose, "services", "grafana", "volumes", default=[]) or []]
    targets = [m[1] for m in mounts if len(m) > 1 and
               os.path.normpath(os.path.join(ROOT, m[0])) == os.path.join(gdir, "dashboards")]
    if not targets or not set(targets) & set(paths):
        problems.add(prov_path, f"the file provider reads {paths}, the compose file mounts the dashboards at {targets}")
    wanted = {"service-health.json", "incident-flow.json", "notifications.json", "rules-consensus.json"}
    found = {os.path.basename(p) for p in parsed if os.path.dirname(p) == os.path.join(gdir, "dashboards")}
    for missing in sorted(wanted - found):
        problems.add(os.path.join(gdir, "dashboards"), f"no {missing}")
    seen = {}
    for path in sorted(p for p in parsed if os.path.dirname(p) == os.path.join(gdir, "dashboards")):
        board = parsed[path][0]
        if not isinstance(board, dict):
            problems.add(path, "not a dashboard object")
            continue
        for key in ("uid", "title"):
            if not board.get(key):
                problems.add(path, f"no {key}")
        if board.get("uid") in seen:
            problems.add(path, f"uid {board['uid']} is also {seen[board['uid']]}'s")
        seen[board.get("uid")] = os.path.basename(path)
        if not isinstance(board.get("schemaVersion"), int):
            problems.add(path, "no schemaVersion")
        panels = list(dashboard_panels(board.get("panels")))
        if not panels:
            problems.add(path, "no panels")
        for panel in panels:
            what = f"panel {panel.get('title')!r}"
            if panel.get("type") == "row":
                continue
            if panel.get("type") not in ("timeseries", "stat", "table", "gauge", "bargauge", "text"):
                problems.add(path, f"{what}: unexpected type {panel.get('type')}")
            if not panel.get("gridPos"):
                problems.add(path, f"{what}: no gridPos")
            targets = panel.get("targets") or []
            if not targets and panel.get("type") != "text":
                problems.add(path, f"{what}: no targets")
            for target in targets:
                if not str(target.get("expr", "")).strip():
                    problems.add(path, f"{what}: target {target.get('refId')} has no expr")
                elif not balanced(target["expr"]):
                    problems.add(path, f"{what}: unbalanced brackets in {target['expr']}")
                uid = get(target, "datasource", "uid") or get(panel, "datasource", "uid")
                if uid != DATASOURCE_UID:
                    problems.add(path, f"{what}: data source uid {uid!r}, expected {DATASOURCE_UID}")


def balanced(expr):
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    in_string = None
    for ch in expr:
        if in_string:
            if ch == in_string:
                in_string = None
            continue
        if ch in "\"'`":
            in_string = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and in_string is None


# ---------------------------------------------------------------- metrics

def expressions(parsed):
    """(file, expr) for every alert rule and dashboard query."""
    out = []
    alerts = rel("deploy", "observability", "alerts.yml")
    for group in get((parsed.get(alerts) or [{}])[0] or {}, "groups", default=[]) or []:
        for rule in group.get("rules") or []:
            if rule.get("expr"):
                out.append((alerts, str(rule["expr"])))
    ddir = rel("deploy", "observability", "grafana", "dashboards")
    for path in sorted(p for p in parsed if os.path.dirname(p) == ddir):
        board = parsed[path][0]
        if isinstance(board, dict):
            for panel in dashboard_panels(board.get("panels")):
                for target in panel.get("targets") or []:
                    if target.get("expr"):
                        out.append((path, str(target["expr"])))
    return out


def metric_names(expr):
    names = set()
    for name in re.findall(r"(?<![A-Za-z0-9_:])renkei_[a-z0-9_]+", expr):
        names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    # Prometheus' own `up` (as a series, not inside a word or a label value).
    stripped = re.sub(r'"[^"]*"', '""', expr)
    if re.search(r"(?<![A-Za-z0-9_:.$])up(?![A-Za-z0-9_:])\s*(\{|==|!=|>|<|\)|$)", stripped):
        names.add("up")
    return names


def check_metrics(parsed, problems):
    for path, expr in expressions(parsed):
        for name in sorted(metric_names(expr) - KNOWN_METRICS):
            problems.add(path, f"uses {name}, which no service exposes: {expr}")


def check_promtool(parsed, problems):
    promtool = shutil.which("promtool")
    if not promtool:
        print("tests/deploy/check.py: promtool not found; Prometheus' own checks skipped", file=sys.stderr)
        return
    obs = rel("deploy", "observability")
    for args, path in ((["check", "config", "prometheus.yml"], "prometheus.yml"),
                       (["check", "rules", "alerts.yml"], "alerts.yml")):
        run = subprocess.run([promtool, *args], cwd=obs, capture_output=True, text=True)
        if run.returncode != 0:
            problems.add(os.path.join(obs, path), f"promtool {' '.join(args)}: {run.stdout}{run.stderr}".strip())
    # Every dashboard query's PromQL, as recording rules (Grafana's
    # $__rate_interval and friends replaced by a duration).
    ddir = rel("deploy", "observability", "grafana", "dashboards")
    queries = [(p, e) for p, e in expressions(parsed) if p.startswith(ddir)]
    if not queries:
        return
    import yaml
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, expr) in enumerate(queries):
            promql = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
            rules = {"groups": [{"name": "q", "rules": [{"record": "dashboard:query", "expr": promql}]}]}
            file = os.path.join(tmp, f"q{i}.yml")
            with open(file, "w") as f:
                yaml.safe_dump(rules, f)
            run = subprocess.run([promtool, "check", "rules", file], capture_output=True, text=True)
            if run.returncode != 0:
                problems.add(path, f"query is not valid PromQL: {expr}: {run.stdout}{run.stderr}".strip())


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metric-names", action="store_true",
                        help="print every metric the dashboards and alert rules use, one a line, and exit")
    args = parser.parse_args()
    ensure_packages()
    problems = Problems()
    parsed = parse_all(problems)
    if args.metric_names:
        for path, message in problems.items:
            print(f"FAIL {path}: {message}", file=sys.stderr)
        for name in sorted(set().union(*(metric_names(e) for _, e in expressions(parsed)))):
            print(name)
        return 1 if problems.items else 0
    validated = check_kubernetes(parsed, problems) or 0
    check_compose(parsed, problems)
    check_dockerfile(problems)
    check_collector(parsed, problems)
    check_prometheus(parsed, problems)
    check_alerts(parsed, problems)
    check_grafana(parsed, problems)
    check_metrics(parsed, problems)
    check_promtool(parsed, problems)
    for path, message in problems.items:
        print(f"FAIL {path}: {message}")
    if problems.items:
        print(f"tests/deploy/check.py: {len(problems.items)} problem(s)")
        return 1
    print(f"tests/deploy/check.py: {len(parsed)} files parse; {validated} Kubernetes objects valid for "
          f"{KUBERNETES_VERSION} (strict); compose, console, Prometheus, alerts and dashboards in shape")
    return 0


if __name__ == "__main__":
    sys.exit(main())
