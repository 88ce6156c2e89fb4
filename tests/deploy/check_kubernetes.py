#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Checks deploy/kubernetes/*.yaml offline, without a cluster.

1. Schema: every object against the Kubernetes API types, as shipped in Debian's
   python3-kubernetes (models generated from the Kubernetes OpenAPI document): no unknown field,
   every value of its type, every required field present, plus the enumerations the API server
   checks (Service type, dnsPolicy, hostPath type, capability names...).
2. Consistency the API server or kubelet would reject or silently break on: selectors match the
   pod template, mounts name volumes, ConfigMaps, ServiceAccounts and the Namespace exist,
   Service target ports are container ports, port names are at most 15 characters.
3. In step with the daemons: every flag in a container's command line exists in that program's
   --help; every config file a container loads (a ConfigMap key behind its --config path) is
   accepted by the daemon's --check-config; the files it names are under the container's mounts.
4. What the README promises: every pod sets enableServiceLinks: false; the server and proxy run
   as non-root with no capability; the client gets exactly the capabilities listed in its
   manifest; every Secret referenced is one the README tells how to create.
5. The checker itself: a set of broken copies of the manifests must each be rejected.

Usage: check_kubernetes.py --src TOP --build DIR (DIR/user/D/ntun-D are the daemons)
"""
import argparse
import copy
import glob
import os
import re
import subprocess
import sys
import tempfile

import yaml
import kubernetes.client as k8s
from kubernetes.client import Configuration

DAEMONS = ("server", "proxy", "client")
# The client's capabilities, each explained in deploy/kubernetes/30-client.yaml.
CLIENT_CAPS = {"BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "DAC_OVERRIDE"}

# Enumerations the API server validates (the generated models do not).
ENUMS = {
    ("V1ServiceSpec", "type"): {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
    ("V1ServicePort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1ContainerPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1DeploymentStrategy", "type"): {"Recreate", "RollingUpdate"},
    ("V1DaemonSetUpdateStrategy", "type"): {"RollingUpdate", "OnDelete"},
    ("V1HostPathVolumeSource", "type"): {"", "DirectoryOrCreate", "Directory", "FileOrCreate",
                                         "File", "Socket", "CharDevice", "BlockDevice"},
    ("V1PodSpec", "dns_policy"): {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"},
    ("V1PodSpec", "restart_policy"): {"Always", "OnFailure", "Never"},
    ("V1Container", "image_pull_policy"): {"Always", "Never", "IfNotPresent"},
    ("V1SeccompProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("V1Toleration", "operator"): {"Exists", "Equal"},
    ("V1Toleration", "effect"): {"NoSchedule", "PreferNoSchedule", "NoExecute"},
    ("V1VolumeMount", "mount_propagation"): {"None", "HostToContainer", "Bidirectional"},
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")


def kernel_caps():
    """Capability names the kernel headers know, without CAP_."""
    try:
        text = open("/usr/include/linux/capability.h").read()
    except OSError:
        return None
    return set(re.findall(r"#define CAP_([A-Z_]+)\s+\d+\b", text)) - {"LAST_CAP"}


_required = {}


def required_fields(cls):
    """Attributes whose setter refuses None: the API's required fields."""
    if cls not in _required:
        obj = cls.__new__(cls)
        obj.local_vars_configuration = Configuration()
        req = set()
        for attr in cls.openapi_types:
            try:
                setattr(obj, attr, None)
            except ValueError:
                req.add(attr)
        _required[cls] = req
    return _required[cls]


def model_class(api_version, kind):
    version = api_version.split("/")[-1]
    name = version[0].upper() + version[1:] + kind
    return getattr(k8s, name, None)


def check_type(value, typ, path, errs, owner=None):
    """Checks value against an openapi type string of the generated client."""
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            errs.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            check_type(v, m.group(1), f"{path}[{i}]", errs)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            errs.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for key, v in value.items():
            if not isinstance(key, str):
                errs.append(f"{path}: key {key!r} is not a string")
            check_type(v, m.group(1), f"{path}.{key}", errs)
        return
    prim = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
            "datetime": (str,), "date": (str,)}
    if typ == "object":
        return
    if typ in prim:
        ok = isinstance(value, prim[typ]) and not (typ in ("int", "float") and
                                                   isinstance(value, bool))
        if not ok:
            errs.append(f"{path}: expected {typ}, got {type(value).__name__} {value!r}")
        return
    cls = getattr(k8s, typ, None)
    if cls is None:
        errs.append(f"{path}: checker does not know type {typ}")
        return
    if not isinstance(value, dict):
        errs.append(f"{path}: expected a {typ} mapping, got {type(value).__name__}")
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            errs.append(f"{path}: unknown field '{key}' in {typ}")
            continue
        if v is None:
            continue
        check_type(v, cls.openapi_types[attr], f"{path}.{key}", errs)
        allowed = ENUMS.get((typ, attr))
        if allowed is not None and v not in allowed:
            errs.append(f"{path}.{key}: '{v}' is not one of {sorted(allowed)}")
    for attr in sorted(required_fields(cls)):
        if value.get(cls.attribute_map[attr]) is None:
            errs.append(f"{path}: required field '{cls.attribute_map[attr]}' missing in {typ}")


def where(doc):
    meta = doc.get("metadata") or {}
    return f"{doc.get('_file', '?')}: {doc.get('kind')}/{meta.get('name')}"


def check_schema(docs, errs):
    caps = kernel_caps()
    for doc in docs:
        at = where(doc)
        body = {k: v for k, v in doc.items() if k != "_file"}
        cls = model_class(str(body.get("apiVersion", "")), str(body.get("kind", "")))
        if cls is None:
            errs.append(f"{at}: unknown apiVersion/kind {body.get('apiVersion')}/"
                        f"{body.get('kind')}")
            continue
        check_type(body, cls.__name__, at, errs)
        meta = body.get("metadata") or {}
        name = meta.get("name")
        rule = DNS_LABEL if body.get("kind") in ("Namespace", "Service") else DNS_SUBDOMAIN
        if not isinstance(name, str) or not rule.match(name):
            errs.append(f"{at}: metadata.name {name!r} is not a valid name")
        for c in containers(doc):
            for cap in ((c.get("securityContext") or {}).get("capabilities") or {}).get(
                    "add") or []:
                if cap.startswith("CAP_") or (caps is not None and cap not in caps):
                    errs.append(f"{at}: container {c.get('name')}: capability '{cap}' is not "
                                f"a kernel capability name without CAP_")
            for p in c.get("ports") or []:
                if "name" in p and (len(str(p["name"])) > 15 or
                                    not DNS_LABEL.match(str(p["name"]))):
                    errs.append(f"{at}: port name {p['name']!r}: at most 15 of [a-z0-9-]")


def pod_spec(doc):
    if doc.get("kind") in WORKLOADS:
        return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def containers(doc):
    spec = pod_spec(doc)
    return [c for c in (spec or {}).get("containers") or [] if isinstance(c, dict)]


def find(docs, kind, name, ns=None):
    for d in docs:
        m = d.get("metadata") or {}
        if d.get("kind") == kind and m.get("name") == name and (
                ns is None or m.get("namespace") == ns):
            return d
    return None


def check_consistency(docs, readme, errs):
    namespaces = {(d.get("metadata") or {}).get("name") for d in docs if d.get("kind") ==
                  "Namespace"}
    for doc in docs:
        at = where(doc)
        meta = doc.get("metadata") or {}
        ns = meta.get("namespace")
        if doc.get("kind") != "Namespace" and ns not in namespaces:
            errs.append(f"{at}: namespace {ns!r} is not among the manifests' Namespaces")
        spec = pod_spec(doc)
        if spec is not None:
            tmpl = doc["spec"].get("template") or {}
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            sel = ((doc["spec"].get("selector") or {}).get("matchLabels")) or {}
            if not sel or any(labels.get(k) != v for k, v in sel.items()):
                errs.append(f"{at}: selector {sel} does not match the template labels {labels}")
            if spec.get("enableServiceLinks") is not False:
                errs.append(f"{at}: enableServiceLinks must be false (NTUN_* service links)")
            if spec.get("automountServiceAccountToken") is not False:
                errs.append(f"{at}: automountServiceAccountToken must be false (no API use)")
            sa = spec.get("serviceAccountName")
            if sa and not find(docs, "ServiceAccount", sa, ns):
                errs.append(f"{at}: ServiceAccount {sa} is not in the manifests")
            volumes = {v.get("name"): v for v in spec.get("volumes") or []}
            mounted = set()
            for c in containers(doc):
                paths = set()
                for vm in c.get("volumeMounts") or []:
                    if vm.get("name") not in volumes:
                        errs.append(f"{at}: mount of unknown volume {vm.get('name')}")
                    if vm.get("mountPath") in paths:
                        errs.append(f"{at}: two mounts at {vm.get('mountPath')}")
                    paths.add(vm.get("mountPath"))
                    mounted.add(vm.get("name"))
            for name, v in volumes.items():
                if name not in mounted:
                    errs.append(f"{at}: volume {name} is never mounted")
                cm = (v.get("configMap") or {}).get("name")
                if cm and not find(docs, "ConfigMap", cm, ns):
                    errs.append(f"{at}: ConfigMap {cm} is not in the manifests")
                secret = (v.get("secret") or {}).get("secretName")
                if secret and secret not in readme:
                    errs.append(f"{at}: Secret {secret} is not explained in README.md")
        if doc.get("kind") == "Service":
            sel = (doc.get("spec") or {}).get("selector") or {}
            targets = [d for d in docs if pod_spec(d) is not None and
                       (d.get("metadata") or {}).get("namespace") == ns and
                       all(((d["spec"].get("template") or {}).get("metadata") or {}).get(
                           "labels", {}).get(k) == v for k, v in sel.items())]
            if not sel or not targets:
                errs.append(f"{at}: selector {sel} matches no workload")
            names = {p.get("name") for t in targets for c in containers(t)
                     for p in c.get("ports") or []}
            numbers = {p.get("containerPort") for t in targets for c in containers(t)
                       for p in c.get("ports") or []}
            for p in (doc.get("spec") or {}).get("ports") or []:
                tp = p.get("targetPort", p.get("port"))
                if (isinstance(tp, str) and tp not in names) or (
                        isinstance(tp, int) and tp not in numbers):
                    errs.append(f"{at}: targetPort {tp!r} is no port of the selected pods")


def check_security(docs, errs):
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        at = where(doc)
        for c in containers(doc):
            daemon = daemon_of(c)
            sc = c.get("securityContext") or {}
            caps = sc.get("capabilities") or {}
            if caps.get("drop") != ["ALL"]:
                errs.append(f"{at}: container {c.get('name')} must drop ALL capabilities")
            if sc.get("privileged"):
                errs.append(f"{at}: container {c.get('name')} must not be privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                errs.append(f"{at}: container {c.get('name')}: allowPrivilegeEscalation: false")
            if sc.get("readOnlyRootFilesystem") is not True:
                errs.append(f"{at}: container {c.get('name')}: readOnlyRootFilesystem: true")
            add = set(caps.get("add") or [])
            if daemon == "client":
                if add != CLIENT_CAPS:
                    errs.append(f"{at}: the client's capabilities {sorted(add)} are not the "
                                f"documented {sorted(CLIENT_CAPS)}")
                if not spec.get("hostPID"):
                    errs.append(f"{at}: the client needs hostPID (pods' /proc/<pid>/ns)")
            elif daemon in ("server", "proxy"):
                if add:
                    errs.append(f"{at}: ntun-{daemon} needs no capability, got {sorted(add)}")
                psc = spec.get("securityContext") or {}
                if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                    errs.append(f"{at}: ntun-{daemon} must run as non-root")
                if spec.get("hostPID") or spec.get("hostNetwork") or any(
                        "hostPath" in v for v in spec.get("volumes") or []):
                    errs.append(f"{at}: ntun-{daemon} needs no host namespace or path")


def cmdline(c):
    return [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]


def daemon_of(c):
    for tok in cmdline(c):
        m = re.search(r"(?:^|/)ntun-(server|proxy|client)$", tok)
        if m:
            return m.group(1)
    return None


_help = {}


def daemon_bin(build, d):
    return os.path.join(build, "user", d, "ntun-" + d)


def help_text(prog):
    if prog not in _help:
        try:
            r = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=20,
                               env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            _help[prog] = r.stdout + r.stderr
        except OSError as e:
            _help[prog] = ""
            print(f"  cannot run {prog} --help: {e}", file=sys.stderr)
    return _help[prog]


def flags_of(tokens):
    return [t.split("=", 1)[0] for t in tokens if t.startswith("--") and t != "--"]


def check_flags(docs, bindir, errs):
    """Every --flag of a command line exists in its program's --help."""
    for doc in docs:
        at = where(doc)
        for c in containers(doc):
            toks = cmdline(c)
            # Split into programs: the first token, and each ntun-* binary after a wrapper.
            starts = [0] + [i for i, t in enumerate(toks) if i and re.search(
                r"(?:^|/)ntun-(server|proxy|client)$", t)]
            for n, s in enumerate(starts):
                end = starts[n + 1] if n + 1 < len(starts) else len(toks)
                prog = toks[s]
                m = re.search(r"(?:^|/)(ntun-(?:server|proxy|client))$", prog)
                exe = daemon_bin(bindir, m.group(1)[5:]) if m else prog
                text = help_text(exe)
                for f in flags_of(toks[s + 1:end]):
                    if not re.search(r"(?<![\w-])" + re.escape(f) + r"(?![\w-])", text):
                        errs.append(f"{at}: {os.path.basename(prog)} has no flag {f} "
                                    f"(not in its --help)")
            d = daemon_of(c)
            for e in c.get("env") or []:
                name = e.get("name", "")
                if d and name.startswith("NTUN_") and not re.search(
                        r"\b" + re.escape(name) + r"\b",
                        help_text(daemon_bin(bindir, d))):
                    errs.append(f"{at}: ntun-{d} has no setting {name}")


def mount_source(doc, c, path):
    """(volume, key) a container sees at path: the deepest mount that holds it."""
    spec = pod_spec(doc)
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    best = None
    for vm in c.get("volumeMounts") or []:
        mp = vm.get("mountPath", "").rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best[0]):
                best = (mp, vm)
    if best is None:
        return None, None
    return volumes.get(best[1].get("name")), path[len(best[0]):].lstrip("/")


def check_configs(docs, bindir, errs):
    """The config file each daemon loads is accepted by --check-config, its files are mounted."""
    for doc in docs:
        at = where(doc)
        ns = (doc.get("metadata") or {}).get("namespace")
        for c in containers(doc):
            d = daemon_of(c)
            toks = cmdline(c)
            if not d:
                continue
            if "--config" not in toks or toks.index("--config") + 1 >= len(toks):
                errs.append(f"{at}: ntun-{d} gets no --config FILE")
                continue
            i = toks.index("--config")
            vol, key = mount_source(doc, c, toks[i + 1])
            cm = find(docs, "ConfigMap", ((vol or {}).get("configMap") or {}).get("name"), ns)
            text = ((cm or {}).get("data") or {}).get(key)
            if text is None:
                errs.append(f"{at}: ntun-{d} --config {toks[i + 1]} is no key of a mounted "
                            f"ConfigMap")
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                f.write(text)
                f.flush()
                rest = toks[toks.index(next(t for t in toks if t.endswith("ntun-" + d))) + 1:]
                rest = [f.name if t == toks[i + 1] else t for t in rest]
                r = subprocess.run([daemon_bin(bindir, d), "--check-config"] + rest,
                                   capture_output=True, text=True, timeout=20, env={})
                if r.returncode != 0 or "configuration OK" not in r.stdout:
                    msg = (r.stdout + r.stderr).strip().replace(f.name, f"{cm_name(cm)}/{key}")
                    errs.append(f"{at}: ntun-{d} --check-config refuses it: {msg}")
                    continue
            cfg = yaml.safe_load(text) or {}
            files = [v for k, v in (cfg.get("tls") or {}).items() if k.endswith("_file")]
            for path in files:
                vol, key = mount_source(doc, c, str(path))
                secret = (vol or {}).get("secret")
                if not secret or (secret.get("items") and key not in
                                  [it.get("path") for it in secret["items"]]):
                    errs.append(f"{at}: ntun-{d} reads {path}, which is in no mounted Secret")
            if d == "client" and cfg.get("cgroup"):
                vol, _ = mount_source(doc, c, cfg["cgroup"])
                if not vol or "hostPath" not in vol:
                    errs.append(f"{at}: the client's cgroup {cfg['cgroup']} is not on a "
                                f"hostPath mount")


def cm_name(cm):
    return (cm or {}).get("metadata", {}).get("name", "?")


def load(src):
    docs = []
    for path in sorted(glob.glob(os.path.join(src, "deploy", "kubernetes", "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                if not isinstance(doc, dict):
                    raise SystemExit(f"{path}: a document is not a mapping")
                doc["_file"] = os.path.basename(path)
                docs.append(doc)
    return docs


def check_all(docs, readme, bindir):
    errs = []
    check_schema(docs, errs)
    check_consistency(docs, readme, errs)
    check_security(docs, errs)
    check_flags(docs, bindir, errs)
    check_configs(docs, bindir, errs)
    return errs


def broken_copies(docs):
    """(what, expected error text, mutated manifests): each must be rejected."""
    def mutate(what, want, fn):
        d = copy.deepcopy(docs)
        fn(d)
        return what, want, d

    def get(d, kind, name):
        return find(d, kind, name)

    def ds_pod(d):
        return get(d, "DaemonSet", "ntun-client")["spec"]["template"]["spec"]

    def srv_pod(d):
        return get(d, "Deployment", "ntun-server")["spec"]["template"]["spec"]

    return [
        mutate("misspelt field", "unknown field 'hostPid'",
               lambda d: ds_pod(d).update(hostPid=True)),
        mutate("container without a name", "required field 'name' missing",
               lambda d: srv_pod(d)["containers"][0].pop("name")),
        mutate("replicas as a string", "expected int, got str",
               lambda d: get(d, "Deployment", "ntun-server")["spec"].update(replicas="1")),
        mutate("bad enumeration", "'ClusterFirstWithHostNetwork' is not one of",
               lambda d: ds_pod(d).update(dnsPolicy="ClusterFirstWithHostNetwork")),
        mutate("CAP_ prefix", "capability 'CAP_BPF'",
               lambda d: ds_pod(d)["containers"][0]["securityContext"]["capabilities"][
                   "add"].append("CAP_BPF")),
        mutate("flag the daemon lacks", "has no flag --listen-addr",
               lambda d: srv_pod(d)["containers"][0]["args"].extend(["--listen-addr", ":1"])),
        mutate("config the daemon refuses", "--check-config refuses it",
               lambda d: get(d, "ConfigMap", "ntun-server")["data"].update(
                   {"server.yaml": get(d, "ConfigMap", "ntun-server")["data"][
                       "server.yaml"].replace('":8443"', '":0"')})),
        mutate("service links on", "enableServiceLinks must be false",
               lambda d: srv_pod(d).pop("enableServiceLinks")),
        mutate("selector off the template", "does not match the template labels",
               lambda d: get(d, "Deployment", "ntun-server")["spec"]["selector"][
                   "matchLabels"].update({"app.kubernetes.io/name": "other"})),
        mutate("Service port name unknown", "targetPort 'nope'",
               lambda d: get(d, "Service", "ntun-server")["spec"]["ports"][0].update(
                   targetPort="nope")),
        mutate("extra capability", "are not the documented",
               lambda d: ds_pod(d)["containers"][0]["securityContext"]["capabilities"][
                   "add"].append("SYS_MODULE")),
        mutate("wrapper flag that does not exist", "nsenter has no flag --cgroups",
               lambda d: ds_pod(d)["containers"][0]["command"].insert(1, "--cgroups=/x")),
        mutate("unknown capability", "capability 'BPFF'",
               lambda d: ds_pod(d)["containers"][0]["securityContext"]["capabilities"][
                   "add"].append("BPFF")),
        mutate("cgroup not mounted", "is not on a hostPath mount",
               lambda d: ds_pod(d)["containers"][0]["volumeMounts"].pop(2)),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--build", required=True, help="build directory of the daemons")
    a = ap.parse_args()
    readme = open(os.path.join(a.src, "README.md")).read()
    docs = load(a.src)
    kinds = sorted({d.get("kind") for d in docs})
    errs = check_all(docs, readme, a.build)
    for e in errs:
        print("FAIL:", e)
    print(f"{len(docs)} objects ({', '.join(kinds)}): {len(errs)} problem(s)")
    bad = 0
    for what, want, mutated in broken_copies(docs):
        got = check_all(mutated, readme, a.build)
        hit = [e for e in got if want in e]
        print(f"{'ok' if hit else 'FAIL'}: broken copy rejected: {what}: "
              f"{hit[0] if hit else got}")
        bad += not hit
    if not docs or errs or bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
