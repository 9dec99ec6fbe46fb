#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
# shellcheck disable=SC2016,SC2034,SC2317 # conditions are single-quoted and eval'd (expect, check_sh)
#
# The deployment files (deploy/): the container image build, the Kubernetes
# manifests and the systemd unit, checked against the binary they deploy,
# and the daemon's capability check, for real.
#
# Static (no Docker engine, no cluster, no systemd needed):
#   - every manifest parses; kinds, names, namespace, required fields, no
#     unknown field in the DaemonSet (a typo like "mountPropogation" fails);
#   - the DaemonSet: hostNetwork, privileged false, capabilities exactly the
#     documented set (BPF NET_ADMIN PERFMON, the same as the unit's), each
#     explained in a comment; probes on /healthz and /readyz at the --metrics
#     address the args configure; every path option (--config, --keys, --db,
#     --pin-root) lands on the right volume (the Secret item at --keys, mode
#     0600, no fsGroup; the host's /sys/fs/bpf with HostToContainer);
#   - the Dockerfile: Debian 12 stages, the build stage uses
#     scripts/deps.sh --build and make, every COPY source exists (in the repo
#     or as a build output), the runtime packages exist in Debian 12 and
#     provide every library build/vigil links against, ENTRYPOINT vigil run;
#   - the unit: ExecStart's binary is the documented install target,
#     capabilities, Restart=always, no detach on stop, every path exists or
#     is created by the unit; systemd-analyze verify (when installed); every
#     syscall vigil makes passes the unit's SystemCallFilter (with strace);
#   - every `vigil CMD --flag` anywhere in deploy/ is a flag of that CMD.
# Live, in a throwaway network namespace (pin root /sys/fs/bpf/vg$$-deploy):
#   - the example agents file and key file parse;
#   - with CAP_NET_ADMIN dropped (setpriv), `vigil run` exits 1 with one line
#     naming CAP_NET_ADMIN and pins nothing; likewise for each of the three;
#   - with exactly the three, it loads, answers /healthz and /readyz, stops
#     leaving the instance pinned, and a restart adopts it.
. "$(dirname "$0")/lib.sh"

e2e_init
command -v setpriv >/dev/null || die "setpriv is missing (util-linux; scripts/deps.sh installs it)"

PY=
for cand in python3 /usr/bin/python3; do
	if "$cand" -c 'import yaml' 2>/dev/null; then
		PY=$cand
		break
	fi
done
[ -n "$PY" ] || die "python3 with the yaml module is missing (python3-yaml; scripts/deps.sh installs it)"

# expect WHAT 'CONDITION' [LABEL FILE]: one result line; on failure, show FILE.
expect() {
	if eval "$2"; then
		ok "$1"
	else
		not_ok "$1"
		[ $# -ge 4 ] && show_file "$3" "$4"
	fi
	return 0
}

DEPLOY=$E2E_ROOT/deploy
K8S=$DEPLOY/kubernetes
UNIT=$DEPLOY/systemd/vigil.service
CAPS_DOC="BPF NET_ADMIN PERFMON" # the documented set (deploy/kubernetes/README.md)

# ------------------------------------------------------------ static checks
cat >"$E2E_TMP/check.py" <<'PYEOF'
"""Static checks of deploy/. Prints one line per check:
ok<TAB>what  |  not ok<TAB>what<TAB>detail  |  skip<TAB>what"""
import glob
import os
import re
import shlex
import subprocess
import sys

import yaml

ROOT, VIGIL, CAPS_DOC = sys.argv[1], sys.argv[2], set(sys.argv[3].split())
K8S = os.path.join(ROOT, "deploy/kubernetes")
DOCKERFILE = os.path.join(ROOT, "deploy/Dockerfile")
UNIT = os.path.join(ROOT, "deploy/systemd/vigil.service")


def out(verdict, what, detail=""):
    print(f"{verdict}\t{what}\t{detail}".replace("\n", " | "), flush=True)


def check(what, cond, detail=""):
    out("ok" if cond else "not ok", what, "" if cond else detail)
    return bool(cond)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- what the binary accepts -------------------------------------------
def help_text(cmd):
    p = subprocess.run([VIGIL, cmd, "--help"], capture_output=True, text=True)
    return p.stdout + p.stderr


def run_spec():
    """--flag -> 'req' (takes a value), 'opt' ([=X]) or 'none', from run --help."""
    spec = {"--help": "none"}
    pat = re.compile(r"(--[a-z][a-z0-9-]*)(\[=[^\]]*\])?"
                     r"(?: ((?:[A-Z][A-Za-z0-9_:,.\[\]]*)|(?:[a-z]+(?:\|[a-z]+)+)))?")
    for line in help_text("run").split("Examples:")[0].splitlines():
        if not re.match(r"(  -[A-Za-z], |      )--", line):
            continue  # an option's line, not its help or the command's text
        for name, opt, arg in pat.findall(line):
            spec.setdefault(name, "opt" if opt else "req" if arg else "none")
    return spec


RUN = run_spec()
CMD_FLAGS = {}


def cmd_flags(cmd):
    if cmd == "run":
        return set(RUN)
    if cmd not in CMD_FLAGS:
        CMD_FLAGS[cmd] = set(re.findall(r"--[a-z][a-z0-9-]*", help_text(cmd))) | {"--help"}
    return CMD_FLAGS[cmd]


def parse_run_args(tokens):
    """The options of one `vigil run` command line: ({flag: value}, [errors])."""
    flags, errors, i = {}, [], 0
    while i < len(tokens):
        t = tokens[i]
        if not t.startswith("--"):
            errors.append(f"stray argument {t!r}")
            i += 1
            continue
        name, eq, val = t.partition("=")
        kind = RUN.get(name)
        if kind is None:
            errors.append(f"{name} is not an option of vigil run")
        elif kind == "req" and not eq:
            if i + 1 >= len(tokens):
                errors.append(f"{name} needs a value")
                break
            i += 1
            val = tokens[i]
        elif kind == "none" and eq:
            errors.append(f"{name} takes no value")
        flags[name] = val if (eq or kind == "req") else True
        i += 1
    return flags, errors


def host_port(addr):
    m = re.fullmatch(r"\[?([0-9a-fA-F.:]+?)\]?:(\d+)", str(addr))
    return (m.group(1), int(m.group(2))) if m else (None, None)


def under(path, directory):
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


# ---- 1. `vigil CMD --flag` mentions anywhere in deploy/ ----------------
mention = re.compile(r"(?<![\w.-])vigil (run|detach|status|key|events|log|agent|beat)\b([^;|&`)\n]*)")
bad = []
for path in sorted(glob.glob(os.path.join(ROOT, "deploy/**/*"), recursive=True)):
    if os.path.isdir(path):
        continue
    for n, line in enumerate(read(path).splitlines(), 1):
        for m in mention.finditer(line):
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", m.group(2)):
                if flag not in cmd_flags(m.group(1)):
                    bad.append(f"{os.path.relpath(path, ROOT)}:{n}: vigil {m.group(1)} {flag}")
check("every `vigil CMD --flag` written in deploy/ is an option of that command", not bad,
      "; ".join(bad))

# ---- 2. Kubernetes manifests -------------------------------------------
docs = {}
for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
    name = os.path.basename(path)
    try:
        loaded = [d for d in yaml.safe_load_all(read(path)) if d is not None]
    except yaml.YAMLError as e:
        check(f"{name} parses as YAML", False, str(e))
        continue
    check(f"{name} parses as YAML", loaded, "empty file")
    for d in loaded:
        docs.setdefault(d.get("kind"), []).append((name, d))

want = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "DaemonSet": "apps/v1",
        "Kustomization": "kustomize.config.k8s.io/v1beta1"}
for kind, api in want.items():
    found = docs.get(kind, [])
    check(f"one {kind} ({api})", len(found) == 1 and found[0][1].get("apiVersion") == api,
          f"found {[(n, d.get('apiVersion')) for n, d in found]}")
ns = [d for _, d in docs.get("Namespace", [])]
NS = ns[0]["metadata"]["name"] if ns else None
check("the namespace is vigil, Pod Security level privileged (hostNetwork, hostPath, added capabilities)",
      NS == "vigil" and ns[0]["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "privileged",
      f"namespace {NS}")
wrong_ns = [f"{n}: {d['kind']} {d['metadata'].get('name')} in {d['metadata'].get('namespace')}"
            for kind in ("ConfigMap", "Secret", "DaemonSet") for n, d in docs.get(kind, [])
            if d.get("metadata", {}).get("namespace") != "vigil" or not d["metadata"].get("name")]
check("ConfigMap, Secret and DaemonSet are named and in namespace vigil", not wrong_ns, "; ".join(wrong_ns))

kust = docs.get("Kustomization", [(None, {})])[0][1]
res = kust.get("resources", [])
check("kustomization.yaml lists existing files, not the example Secret",
      res and all(os.path.exists(os.path.join(K8S, r)) for r in res)
      and not any("secret" in r for r in res), f"resources {res}")

# A schema of the fields used (Kubernetes API reference): unknown keys fail.
ANY = None


def K(*names, **subs):
    d = dict.fromkeys(names, ANY)
    d.update(subs)
    return d


PROBE = K("exec", "tcpSocket", "grpc", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
          "successThreshold", "failureThreshold", "terminationGracePeriodSeconds",
          httpGet=K("host", "path", "port", "scheme", "httpHeaders"))
PROFILE = K("type", "localhostProfile")
SECCTX = K("allowPrivilegeEscalation", "privileged", "procMount", "readOnlyRootFilesystem",
           "runAsGroup", "runAsNonRoot", "runAsUser", "seLinuxOptions", "windowsOptions",
           appArmorProfile=PROFILE, seccompProfile=PROFILE, capabilities=K("add", "drop"))
PODSECCTX = K("fsGroup", "fsGroupChangePolicy", "runAsGroup", "runAsNonRoot", "runAsUser",
              "seLinuxChangePolicy", "seLinuxOptions", "supplementalGroups",
              "supplementalGroupsPolicy", "sysctls", "windowsOptions",
              appArmorProfile=PROFILE, seccompProfile=PROFILE)
CONTAINER = K("name", "image", "imagePullPolicy", "command", "args", "envFrom", "ports", "lifecycle",
              "terminationMessagePath", "terminationMessagePolicy", "workingDir", "stdin",
              "stdinOnce", "tty", "volumeDevices", "resizePolicy", "restartPolicy",
              env=[K("name", "value", "valueFrom")], resources=K("limits", "requests", "claims"),
              volumeMounts=[K("name", "mountPath", "mountPropagation", "readOnly",
                              "recursiveReadOnly", "subPath", "subPathExpr")],
              livenessProbe=PROBE, readinessProbe=PROBE, startupProbe=PROBE, securityContext=SECCTX)
ITEMS = [K("key", "path", "mode")]
VOLUME = K("name", "projected", "downwardAPI", "persistentVolumeClaim", "csi", "ephemeral",
           hostPath=K("path", "type"), emptyDir=K("medium", "sizeLimit"),
           configMap=K("name", "defaultMode", "optional", items=ITEMS),
           secret=K("secretName", "defaultMode", "optional", items=ITEMS))
PODSPEC = K("activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "dnsConfig",
            "dnsPolicy", "enableServiceLinks", "hostAliases", "hostIPC", "hostNetwork", "hostPID",
            "hostUsers", "hostname", "imagePullSecrets", "nodeName", "nodeSelector", "os",
            "overhead", "preemptionPolicy", "priority", "priorityClassName", "readinessGates",
            "restartPolicy", "runtimeClassName", "schedulerName", "serviceAccountName",
            "shareProcessNamespace", "terminationGracePeriodSeconds", "tolerations",
            "topologySpreadConstraints", containers=[CONTAINER], initContainers=[CONTAINER],
            securityContext=PODSECCTX, volumes=[VOLUME])
META = K("name", "namespace", "labels", "annotations")
DAEMONSET = K("apiVersion", "kind", metadata=META, spec=K(
    "minReadySeconds", "revisionHistoryLimit", selector=K("matchLabels", "matchExpressions"),
    updateStrategy=K("type", rollingUpdate=K("maxSurge", "maxUnavailable")),
    template=K(metadata=META, spec=PODSPEC)))


def unknown_keys(obj, schema, path="", found=None):
    found = [] if found is None else found
    if schema is ANY:
        return found
    if isinstance(schema, list):
        for i, item in enumerate(obj if isinstance(obj, list) else [obj]):
            unknown_keys(item, schema[0], f"{path}[{i}]", found)
        return found
    if not isinstance(obj, dict):
        found.append(f"{path} is not a mapping")
        return found
    for k, v in obj.items():
        if k not in schema:
            found.append(f"{path}.{k}")
        else:
            unknown_keys(v, schema[k], f"{path}.{k}", found)
    return found


ds = docs.get("DaemonSet", [(None, None)])[0][1]
if ds is None:
    sys.exit(0)
dstext = read(os.path.join(K8S, "daemonset.yaml"))
check("the DaemonSet has no unknown field", not unknown_keys(ds, DAEMONSET), ", ".join(unknown_keys(ds, DAEMONSET)))
spec = ds["spec"]
pod = spec["template"]["spec"]
tlabels = spec["template"].get("metadata", {}).get("labels", {})
sel = spec.get("selector", {}).get("matchLabels", {})
check("the selector matches the pod template's labels",
      sel and all(tlabels.get(k) == v for k, v in sel.items()), f"{sel} vs {tlabels}")
check("hostNetwork: true, dnsPolicy: ClusterFirstWithHostNet",
      pod.get("hostNetwork") is True and pod.get("dnsPolicy") == "ClusterFirstWithHostNet",
      f"{pod.get('hostNetwork')}, {pod.get('dnsPolicy')}")
tgps = pod.get("terminationGracePeriodSeconds")
check("terminationGracePeriodSeconds is set", isinstance(tgps, int) and tgps > 0, str(tgps))
ru = spec.get("updateStrategy", {}).get("rollingUpdate", {})
check("updates never run two daemons on a node (maxSurge 0)", ru.get("maxSurge") in (0, "0", "0%"), str(ru))
check("hostUsers is not false (capabilities in a user namespace do not count for bpf)",
      pod.get("hostUsers", True) is not False, str(pod.get("hostUsers")))
ctrs = pod.get("containers", [])
check("one container, with an image", len(ctrs) == 1 and ctrs[0].get("image"), str(len(ctrs)))
c = ctrs[0]
sc = c.get("securityContext", {})
psc = pod.get("securityContext", {})
check("privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true",
      sc.get("privileged") is False and sc.get("allowPrivilegeEscalation") is False
      and sc.get("readOnlyRootFilesystem") is True, str(sc))
caps = sc.get("capabilities", {})
added = set(caps.get("add", []))
try:
    known = set(re.findall(r"#define CAP_([A-Z_]+)\s+\d+", read("/usr/include/linux/capability.h")))
except OSError:
    known = added | {"ALL", "SYS_ADMIN"}
check("capabilities: drop ALL", caps.get("drop") == ["ALL"], str(caps.get("drop")))
check(f"capabilities: add exactly the documented set ({' '.join(sorted(CAPS_DOC))})",
      added == CAPS_DOC and len(caps.get("add", [])) == len(added), str(caps.get("add")))
check("every added capability is a Linux capability name", added <= known, str(added - known))
why = [cap for cap in sorted(added) if not re.search(rf"^\s*#\s+{cap}\s+\S", dstext, re.M)]
check("each added capability is explained in a comment of daemonset.yaml", not why, f"no comment for {why}")
check("no SYS_ADMIN anywhere (the host's bpffs is mounted instead)", "SYS_ADMIN" not in added
      and "SYS_ADMIN" not in str(psc), "")
uid = sc.get("runAsUser", psc.get("runAsUser"))
check("runs as uid 0 without fsGroup (the key file must stay root-owned, mode 0600)",
      uid == 0 and "fsGroup" not in psc, f"runAsUser {uid}, fsGroup {psc.get('fsGroup')}")
seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
check("seccomp profile RuntimeDefault or Localhost", seccomp in ("RuntimeDefault", "Localhost"), str(seccomp))
aa = sc.get("appArmorProfile", psc.get("appArmorProfile", {})).get("type")
check("AppArmor profile Unconfined or Localhost (the default one denies writes to /sys/fs/bpf)",
      aa in ("Unconfined", "Localhost"), str(aa))

env = {e["name"]: e.get("value") for e in c.get("env", [])}
raw_args = [str(a) for a in c.get("args", [])]
unresolved = [a for a in raw_args for v in re.findall(r"\$\((\w+)\)", a) if env.get(v) in (None, "")]
check("every $(VAR) in args has a value in env", not unresolved, str(unresolved))
args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1)) or m.group(0), a) for a in raw_args]
flags, errors = parse_run_args(args)
check("the DaemonSet's args are options of `vigil run --help`", not errors, "; ".join(errors))
need = ["--iface", "--config", "--keys", "--pin-root", "--db", "--metrics"]
check("args give " + " ".join(need), all(f in flags for f in need), f"missing {[f for f in need if f not in flags]}")
check("the interface comes from an env var with a default",
      re.fullmatch(r"\$\(\w+\)", raw_args[raw_args.index("--iface") + 1] if "--iface" in raw_args else "")
      is not None and flags.get("--iface") not in (None, ""), str(flags.get("--iface")))

mhost, mport = host_port(flags.get("--metrics", ""))
for kind, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    p = c.get(kind)
    if kind == "startupProbe" and p is None:
        continue
    h = (p or {}).get("httpGet", {})
    check(f"{kind}: GET {path} on {mhost}:{mport}, the --metrics address",
          h.get("path") == path and h.get("port") == mport and h.get("host") == mhost
          and h.get("scheme", "HTTP") == "HTTP", str(h))
check("metrics stay on the node's loopback (hostNetwork)", mhost == "127.0.0.1", str(mhost))
r = c.get("resources", {})
check("resource requests and limits (cpu, memory)",
      {"cpu", "memory"} <= set(r.get("requests", {})) and "memory" in r.get("limits", {}), str(r))

mounts = c.get("volumeMounts", [])
vols = {v["name"]: v for v in pod.get("volumes", [])}
check("every volumeMount names a volume, every volume is mounted",
      {m["name"] for m in mounts} == set(vols), f"{sorted(m['name'] for m in mounts)} vs {sorted(vols)}")


def mount_for(path):
    best = None
    for m in mounts:
        if under(path, m["mountPath"]) and (best is None or len(m["mountPath"]) > len(best["mountPath"])):
            best = m
    return best


def rel(path, m):
    return os.path.relpath(path, m["mountPath"]) if m else None


cm = {d["metadata"]["name"]: d for _, d in docs.get("ConfigMap", [])}
sec = {d["metadata"]["name"]: d for _, d in docs.get("Secret", [])}

cfg = flags.get("--config", "")
m = mount_for(cfg)
v = vols.get(m["name"], {}) if m else {}
src = v.get("configMap", {})
items = {i["path"]: i["key"] for i in src.get("items", [])} or None
key = (items or {}).get(rel(cfg, m)) if items else rel(cfg, m)
check(f"--config {cfg} is a key of ConfigMap {src.get('name')}, mounted read-only",
      m and m.get("readOnly") is True and src.get("name") in cm
      and key in cm[src["name"]].get("data", {}), f"mount {m}, volume {v}")

keys = flags.get("--keys", "")
m = mount_for(keys)
v = vols.get(m["name"], {}) if m else {}
src = v.get("secret", {})
item = next((i for i in src.get("items", []) if i["path"] == rel(keys, m)), None)
key = item["key"] if item else (rel(keys, m) if not src.get("items") else None)
mode = (item or {}).get("mode", src.get("defaultMode", 0o644))
s = sec.get(src.get("secretName"), {})
check(f"--keys {keys} is a key of Secret {src.get('secretName')}, mounted read-only",
      m and m.get("readOnly") is True and s
      and key in {**s.get("data", {}), **s.get("stringData", {})}, f"mount {m}, volume {v}")
check("the key file is mounted with mode 0600", mode == 0o600, oct(mode))
stext = read(os.path.join(K8S, [n for n, d in docs["Secret"]][0])) if docs.get("Secret") else ""
check("the example Secret is marked as dummy values", "DUMMY" in stext and "DO NOT" in stext, "")

db = flags.get("--db", "")
m = mount_for(os.path.dirname(db))
v = vols.get(m["name"], {}) if m else {}
check(f"--db {db} is on a writable hostPath volume",
      m and not m.get("readOnly") and v.get("hostPath", {}).get("path") == m["mountPath"]
      and v["hostPath"].get("type") in ("Directory", "DirectoryOrCreate"), f"mount {m}, volume {v}")

pin = flags.get("--pin-root", "")
m = mount_for(pin)
v = vols.get(m["name"], {}) if m else {}
check(f"--pin-root {pin} is on the host's /sys/fs/bpf (hostPath, writable)",
      under(pin, "/sys/fs/bpf") and pin.rstrip("/") != "/sys/fs/bpf" and m
      and m["mountPath"] == "/sys/fs/bpf" and not m.get("readOnly")
      and v.get("hostPath", {}).get("path") == "/sys/fs/bpf", f"mount {m}, volume {v}")
check("the bpffs mount propagates from the host (HostToContainer)",
      m and m.get("mountPropagation") == "HostToContainer", str(m))
check("readOnlyRootFilesystem has a writable /tmp (SQLite temporary files)",
      any(mm["mountPath"] == "/tmp" and "emptyDir" in vols.get(mm["name"], {}) for mm in mounts), "")

# ---- 3. Dockerfile -------------------------------------------------------
text = read(DOCKERFILE)
instrs, cur = [], ""
for line in text.splitlines():
    s = line.strip()
    if s.startswith("#") or (not s and not cur):
        continue
    if line.rstrip().endswith("\\"):
        cur += line.rstrip()[:-1] + " "
        continue
    cur += line
    if cur.strip():
        op, _, rest = cur.strip().partition(" ")
        instrs.append((op.upper(), rest.strip()))
    cur = ""
stages = []  # [{name, image, instrs, workdir}]
for op, rest in instrs:
    if op == "FROM":
        parts = rest.split()
        name = parts[2] if len(parts) == 3 and parts[1].lower() == "as" else None
        stages.append({"name": name, "image": parts[0], "instrs": [], "workdir": "/"})
    elif stages:
        stages[-1]["instrs"].append((op, rest))
        if op == "WORKDIR":
            stages[-1]["workdir"] = os.path.join(stages[-1]["workdir"], rest)
check("Dockerfile: multi-stage, every stage FROM debian:bookworm-slim",
      len(stages) >= 2 and all(st["image"] == "debian:bookworm-slim" for st in stages),
      str([st["image"] for st in stages]))
build = next((st for st in stages if st["name"]), None)
runtime = stages[-1]
bruns = " ".join(r for op, r in (build or {"instrs": []})["instrs"] if op == "RUN")
check("the build stage installs with scripts/deps.sh --build and runs make",
      re.search(r"scripts/deps\.sh --build", bruns) and re.search(r"\bmake\b", bruns)
      and "--build)" in read(os.path.join(ROOT, "scripts/deps.sh")), bruns)
check("the build stage builds as a non-root USER",
      any(op == "USER" and r not in ("root", "0") for op, r in build["instrs"]) if build else False, "")

ignore = [ln.strip().rstrip("/") for ln in read(DOCKERFILE + ".dockerignore").splitlines()
          if ln.strip() and not ln.startswith("#")] if os.path.exists(DOCKERFILE + ".dockerignore") else []
check("Dockerfile.dockerignore keeps build/ and .git out of the context", "build" in ignore and ".git" in ignore, str(ignore))
makefile = read(os.path.join(ROOT, "Makefile"))
copy_bad, copies = [], []
for si, st in enumerate(stages):
    for op, rest in st["instrs"]:
        if op not in ("COPY", "ADD"):
            continue
        toks = shlex.split(rest)
        opts = [t for t in toks if t.startswith("--")]
        paths = [t for t in toks if not t.startswith("--")]
        srcs, dest = paths[:-1], paths[-1]
        frm = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")), None)
        for src in srcs:
            copies.append((si, frm, src, dest))
            if frm:
                st2 = next((x for x in stages if x["name"] == frm), None)
                relp = os.path.relpath(src, st2["workdir"]) if st2 else None
                target = relp and relp.startswith("build/") and \
                    re.search(r"^\$\(BUILD\)/" + re.escape(relp[6:]) + r":", makefile, re.M)
                if not (relp and os.path.exists(os.path.join(ROOT, relp)) and (target or not relp.startswith("build/"))):
                    copy_bad.append(f"--from={frm} {src} (repo path {relp})")
            else:
                if not os.path.exists(os.path.join(ROOT, src)):
                    copy_bad.append(f"{src} does not exist")
                elif any(src.rstrip("/") == i or src.startswith(i + "/") for i in ignore):
                    copy_bad.append(f"{src} is excluded by the .dockerignore")
check("every COPY source exists in the repository or is a make output (build/vigil)",
      copies and not copy_bad, "; ".join(copy_bad))
rcopies = [(f, s, d) for si, f, s, d in copies if si == len(stages) - 1]
check("the runtime stage gets only build/vigil, as /usr/local/bin/vigil",
      [d for _, _, d in rcopies] == ["/usr/local/bin/vigil"] and rcopies[0][1].endswith("/build/vigil"), str(rcopies))
ep = [r for op, r in runtime["instrs"] if op == "ENTRYPOINT"]
check('ENTRYPOINT ["vigil", "run"]', ep and yaml.safe_load(ep[-1]) == ["vigil", "run"], str(ep))
users = [r for op, r in runtime["instrs"] if op == "USER"]
check("the runtime stage says why it runs as root (a comment on non-root)",
      users and users[-1] in ("root", "0", "0:0") and re.search(r"#.*non-root", text), str(users))
foreign = {"--network", "--cap-drop", "--cap-add", "--security-opt", "--rm", "--from", "--chown",
           "--no-install-recommends", "--system", "--no-create-home", "--home-dir", "--build", "--help"}
stray = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) - foreign - set(RUN))
check("every other --flag in the Dockerfile is a `vigil run` option", not stray, str(stray))

apt = " ".join(r for op, r in runtime["instrs"] if op == "RUN" and "apt-get install" in r)
pkgs = []
for seg in re.findall(r"apt-get install([^&;]*)", apt):
    pkgs += [t for t in seg.split() if not t.startswith("-")]
check("the runtime stage installs no build tools or -dev packages",
      pkgs and not [p for p in pkgs if p.endswith("-dev") or p in ("gcc", "make", "clang-14", "bpftool")], str(pkgs))
if glob.glob("/var/lib/apt/lists/*_Packages*"):
    missing = []
    for p in pkgs:
        pol = subprocess.run(["apt-cache", "policy", p], capture_output=True, text=True).stdout
        if "Candidate:" not in pol or "Candidate: (none)" in pol:
            missing.append(p)
    check("every runtime package exists in Debian 12 (apt-cache policy)", not missing, str(missing))
else:
    out("skip", "runtime package names not checked: no apt lists (apt-get update)")
needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(["readelf", "-d", VIGIL], capture_output=True, text=True).stdout)
ldd = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(["ldd", VIGIL], capture_output=True, text=True).stdout, re.M))
uncovered = []
for so in needed:
    path = ldd.get(so)
    real = os.path.realpath(path) if path else None
    owner = None
    for cand in filter(None, {real, real and real.replace("/usr/lib/", "/lib/", 1), real and real.replace("/lib/", "/usr/lib/", 1)}):
        q = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
        if q.returncode == 0:
            owner = q.stdout.split(":")[0]
            break
    if owner in ("libc6",):  # in the base image
        continue
    if owner not in pkgs:
        uncovered.append(f"{so} ({owner})")
check(f"the runtime packages provide every library build/vigil needs ({len(needed)} NEEDED)",
      needed and not uncovered, "not installed: " + ", ".join(uncovered))

# ---- 4. systemd unit -----------------------------------------------------
sections, section = {}, None
for line in read(UNIT).splitlines():
    s = line.strip()
    if not s or s[0] in "#;":
        continue
    if s.startswith("["):
        section = s.strip("[]")
        sections.setdefault(section, [])
        continue
    k, _, v = s.partition("=")
    sections.setdefault(section, []).append((k.strip(), v.strip()))


def get(sec_name, key):
    return [v for k, v in sections.get(sec_name, []) if k == key]


check("the unit has [Unit] Description, [Service] ExecStart, [Install] WantedBy",
      get("Unit", "Description") and len(get("Service", "ExecStart")) == 1 and get("Install", "WantedBy"), str(list(sections)))
uenv = {}
for e in get("Service", "Environment"):
    for a in shlex.split(e):
        k, _, v = a.partition("=")
        uenv[k] = v
exec_tokens = shlex.split(get("Service", "ExecStart")[0].lstrip("-@+!:"))
exec_tokens = [re.sub(r"\$\{(\w+)\}", lambda mm: uenv.get(mm.group(1), mm.group(0)), t) for t in exec_tokens]
check("ExecStart runs /usr/local/bin/vigil run", exec_tokens[:2] == ["/usr/local/bin/vigil", "run"], str(exec_tokens[:2]))
uflags, uerrors = parse_run_args(exec_tokens[2:])
check("ExecStart's options are options of `vigil run --help`, every ${VAR} set",
      not uerrors and "${" not in " ".join(exec_tokens), "; ".join(uerrors))
utext = read(UNIT)
check("the unit documents installing build/vigil as /usr/local/bin/vigil",
      re.search(r"install .*build/vigil /usr/local/bin/vigil", utext) and os.access(VIGIL, os.X_OK), "")
check("Restart=always", get("Service", "Restart") == ["always"], str(get("Service", "Restart")))
stops = get("Service", "ExecStopPost") + get("Service", "ExecStop")
check("nothing detaches on stop (state stays pinned); `vigil detach` is documented for removal",
      not any("detach" in x for x in stops) and re.search(r"#.*vigil detach", utext), str(stops))
bset = set(" ".join(get("Service", "CapabilityBoundingSet")).split())
amb = set(" ".join(get("Service", "AmbientCapabilities")).split())
docset = {"CAP_" + x for x in CAPS_DOC}
check("CapabilityBoundingSet and AmbientCapabilities are the documented set, as in the DaemonSet",
      bset == docset and amb == docset and {"CAP_" + a for a in added} == docset, f"{bset} {amb}")
rw = " ".join(get("Service", "ReadWritePaths")).split()
check("ProtectSystem=strict with /sys/fs/bpf writable", get("Service", "ProtectSystem") == ["strict"]
      and "/sys/fs/bpf" in rw, f"{get('Service', 'ProtectSystem')} {rw}")
check("SystemCallFilter allows bpf", "bpf" in " ".join(get("Service", "SystemCallFilter")).split(), "")
state = ["/var/lib/" + d for d in " ".join(get("Service", "StateDirectory")).split()]
conf = ["/etc/" + d for d in " ".join(get("Service", "ConfigurationDirectory")).split()]
paths_bad = []
for flag in ("--config", "--keys"):
    if not any(under(str(uflags.get(flag, "")), d) for d in conf):
        paths_bad.append(f"{flag} {uflags.get(flag)} not under ConfigurationDirectory {conf}")
if not any(under(os.path.dirname(str(uflags.get("--db", ""))), d) for d in state):
    paths_bad.append(f"--db {uflags.get('--db')} not under StateDirectory {state}")
if not any(under(str(uflags.get("--pin-root", "")), d) for d in rw) or not under(str(uflags.get("--pin-root", "")), "/sys/fs/bpf"):
    paths_bad.append(f"--pin-root {uflags.get('--pin-root')} not under a ReadWritePaths bpffs")
for p in rw + [v.lstrip("-!|") for v in get("Unit", "AssertPathIsMountPoint")]:
    if not os.path.exists(p) and not any(under(p, d) for d in state + conf):
        paths_bad.append(f"{p} does not exist and the unit does not create it")
for cmdline in get("Service", "ExecReload"):
    b = shlex.split(cmdline)[0]
    if not os.access(b, os.X_OK):
        paths_bad.append(f"{b} is not executable")
check("every path in the unit exists or is created by it (StateDirectory, ConfigurationDirectory)",
      not paths_bad, "; ".join(paths_bad))
check("the unit's metrics address is loopback", host_port(uflags.get("--metrics", ""))[0] == "127.0.0.1",
      str(uflags.get("--metrics")))
PYEOF

"$PY" "$E2E_TMP/check.py" "$E2E_ROOT" "$VIGIL" "$CAPS_DOC" >"$E2E_TMP/static.out" 2>"$E2E_TMP/static.err"
static_rc=$?
while IFS=$'\t' read -r verdict what detail; do
	case $verdict in
	ok) ok "$what" ;;
	"not ok")
		not_ok "$what"
		[ -n "$detail" ] && note "$detail"
		;;
	skip) echo "# skip: $what" ;;
	esac
done <"$E2E_TMP/static.out"
if [ "$static_rc" -ne 0 ]; then
	not_ok "the static checks ran to the end"
	show_file "check.py stderr" "$E2E_TMP/static.err"
fi

if command -v kubectl >/dev/null; then
	kinds=$(kubectl kustomize "$K8S" 2>"$E2E_TMP/kustomize.err" | awk '/^kind:/ { print $2 }' | sort | xargs)
	expect "kubectl kustomize builds Namespace, ConfigMap and DaemonSet" \
		'[ "$kinds" = "ConfigMap DaemonSet Namespace" ]' kustomize "$E2E_TMP/kustomize.err"
else
	echo "# skip: kubectl not installed, kustomization not built"
fi

# systemd-analyze checks the unit as systemd would load it; ExecStart points
# at the built binary, since /usr/local/bin/vigil need not be installed here.
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$E2E_TMP/unit"
	sed "s#^ExecStart=/usr/local/bin/vigil #ExecStart=$VIGIL #" "$UNIT" >"$E2E_TMP/unit/vigil.service"
	(cd "$E2E_TMP/unit" && systemd-analyze verify ./vigil.service) >"$E2E_TMP/verify.out" 2>&1
	vrc=$?
	expect "systemd-analyze verify accepts the unit (no unknown key, no warning)" \
		'[ "$vrc" -eq 0 ] && ! [ -s "$E2E_TMP/verify.out" ]' verify "$E2E_TMP/verify.out"
	exposure=$(cd "$E2E_TMP/unit" && systemd-analyze security --offline=yes ./vigil.service 2>/dev/null |
		sed -n 's/.*Overall exposure level for vigil.service: //p')
	[ -n "$exposure" ] && note "systemd-analyze security: exposure $exposure"
else
	echo "# skip: systemd-analyze not installed, unit not verified by systemd"
fi

# ------------------------------------------------------------ live checks
NS=vg$$d
setup_lo_ns "$NS" || die "cannot create network namespace $NS"
new_pin_root PIN deploy
MPORT=$(awk '/--metrics/ { getline; gsub(/[^0-9.:]/, ""); print; exit }' "$K8S/daemonset.yaml")
MPORT=${MPORT##*:}
[ -n "$MPORT" ] || MPORT=9747

# The example agents file (ConfigMap) and key file (Secret), as mounted.
"$PY" - "$K8S" "$E2E_TMP" <<'PYEOF'
import os, sys, yaml
k8s, tmp = sys.argv[1:3]
cm = yaml.safe_load(open(os.path.join(k8s, "configmap.yaml")))
sec = yaml.safe_load(open(os.path.join(k8s, "secret.example.yaml")))
open(os.path.join(tmp, "agents.conf"), "w").write(cm["data"]["agents.conf"])
fd = os.open(os.path.join(tmp, "keys"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, sec["stringData"]["keys"].encode())
os.close(fd)
PYEOF

# run_vigil NAME CAPS-ARGS... -- VIGIL-RUN-ARGS...: `vigil run` in $NS under
# setpriv, stdout/stderr in $E2E_TMP/NAME.{out,err}, exit status in LAST_RC.
run_vigil() {
	local name=$1 caps=()
	shift
	while [ "$1" != -- ]; do
		caps+=("$1")
		shift
	done
	shift
	timeout 30 nsenter --net="/run/netns/$NS" setpriv "${caps[@]}" -- "$VIGIL" run \
		--iface lo --mode skb --pin-root "$PIN" --db "$E2E_TMP/$name.db" "$@" \
		>"$E2E_TMP/$name.out" 2>"$E2E_TMP/$name.err"
	LAST_RC=$?
}

nothing_pinned() {
	[ ! -e "$PIN" ] && ! ip -n "$NS" link show lo | grep -q xdp
}

# Inputs are checked before capabilities: exit 1 naming CAP_BPF (not 2) means
# both example files parsed.
run_vigil examples --bounding-set=-all --inh-caps=-all -- \
	--config "$E2E_TMP/agents.conf" --keys "$E2E_TMP/keys" --metrics off
expect "the example agents file and key file parse (then: missing CAP_BPF, exit 1)" \
	'[ "$LAST_RC" -eq 1 ] && grep -q "^vigil: missing CAP_BPF" "$E2E_TMP/examples.err"' \
	stderr "$E2E_TMP/examples.err"

# Root without CAP_NET_ADMIN. The kernel lets CAP_SYS_ADMIN stand in for it
# (bpf_prog_load: bpf_token_capable(CAP_NET_ADMIN) accepts CAP_SYS_ADMIN),
# and so does the check: it must never refuse what the kernel would allow.
run_vigil sysadmin --inh-caps=-net_admin --bounding-set=-net_admin -- \
	--no-auth --metrics off --duration 1
expect "root without CAP_NET_ADMIN but with CAP_SYS_ADMIN loads (as the kernel allows)" \
	'[ "$LAST_RC" -eq 0 ] && grep -q "attached to lo" "$E2E_TMP/sysadmin.err"' \
	stderr "$E2E_TMP/sysadmin.err"
"$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1

# Root without CAP_NET_ADMIN, and without CAP_SYS_ADMIN standing in for it.
run_vigil nonetadmin --inh-caps=-net_admin,-sys_admin --bounding-set=-net_admin,-sys_admin -- \
	--no-auth --metrics off --duration 5
lines=$(wc -l <"$E2E_TMP/nonetadmin.err")
check_sh "without CAP_NET_ADMIN: exit 1" '[ "$LAST_RC" -eq 1 ]'
expect "without CAP_NET_ADMIN: exactly one line, naming CAP_NET_ADMIN and the interface" \
	'[ "$lines" -eq 1 ] && grep -qE "^vigil: missing CAP_NET_ADMIN: .*XDP.* lo;" "$E2E_TMP/nonetadmin.err" &&
	! grep -qE "CAP_(BPF|PERFMON|SYS_ADMIN)" "$E2E_TMP/nonetadmin.err"' \
	stderr "$E2E_TMP/nonetadmin.err"
check_sh "without CAP_NET_ADMIN: nothing pinned, no XDP attached, no event log created" \
	'nothing_pinned && [ ! -e "$E2E_TMP/nonetadmin.db" ]'

# Exactly the documented set minus one: that one is named.
for cap in $CAPS_DOC; do
	set_minus=-all
	for other in $CAPS_DOC; do
		[ "$other" = "$cap" ] || set_minus+=",+${other,,}"
	done
	run_vigil "no$cap" --bounding-set="$set_minus" --inh-caps=-all -- --no-auth --metrics off --duration 5
	expect "the DaemonSet's set without $cap: exit 1, one line naming CAP_$cap, nothing pinned" \
		'[ "$LAST_RC" -eq 1 ] && [ "$(wc -l <"$E2E_TMP/no$cap.err")" -eq 1 ] &&
		grep -q "^vigil: missing CAP_$cap: needed" "$E2E_TMP/no$cap.err" && nothing_pinned' \
		stderr "$E2E_TMP/no$cap.err"
done

# Exactly the documented set is enough: load, probes, stop (pins stay), adopt.
exact=-all
for cap in $CAPS_DOC; do exact+=",+${cap,,}"; done
probe() { # probe PATH: HTTP status of GET 127.0.0.1:$MPORT/PATH inside $NS
	in_ns "$NS" "$PY" -c 'import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)' "http://127.0.0.1:$MPORT$1"
}
ready() { [ "$(probe /readyz)" = 200 ]; }
start_bg exact "$NS" setpriv --bounding-set="$exact" --inh-caps=-all -- "$VIGIL" run --iface lo --mode skb \
	--pin-root "$PIN" --db "$E2E_TMP/exact.db" --config "$E2E_TMP/agents.conf" --keys "$E2E_TMP/keys" \
	--metrics "127.0.0.1:$MPORT" --quiet
wait_for 20 sh -c "[ -e '$PIN/link' ] || ! kill -0 ${PIDS[exact]}"
expect "with exactly $CAPS_DOC: vigil run loads, attaches and pins" '[ -e "$PIN/link" ]' \
	stderr "$E2E_TMP/exact.err"
wait_for 10 ready
expect "the probes answer: GET /healthz 200, GET /readyz 200" \
	'[ "$(probe /healthz)" = 200 ] && ready'
kill_bg exact TERM
expect "SIGTERM: exit 0, the instance stays pinned (detection goes on)" \
	'[ "$LAST_RC" -eq 0 ] && [ -e "$PIN/link" ]' stderr "$E2E_TMP/exact.err"
run_vigil adopt --bounding-set="$exact" --inh-caps=-all -- \
	--config "$E2E_TMP/agents.conf" --keys "$E2E_TMP/keys" --metrics off --duration 1
expect "a restart with the same set adopts the pinned instance" \
	'[ "$LAST_RC" -eq 0 ] && grep -q "adopted the running instance" "$E2E_TMP/adopt.err"' \
	stderr "$E2E_TMP/adopt.err"

# The unit's SystemCallFilter against what vigil really calls (load, adopt).
if command -v strace >/dev/null && command -v systemd-analyze >/dev/null; then
	"$VIGIL" detach --pin-root "$PIN" >/dev/null 2>&1
	for phase in load adopt; do
		timeout 30 nsenter --net="/run/netns/$NS" strace -f -qq -o "$E2E_TMP/strace.$phase" \
			"$VIGIL" run --iface lo --mode skb --pin-root "$PIN" --db "$E2E_TMP/strace.db" \
			--config "$E2E_TMP/agents.conf" --keys "$E2E_TMP/keys" --metrics "127.0.0.1:$MPORT" \
			--duration 1 -q >/dev/null 2>&1
	done
	sed -E 's/^[0-9]+ +//' "$E2E_TMP"/strace.* | grep -aoE '^[a-z_0-9]+\(' | tr -d '(' | sort -u >"$E2E_TMP/syscalls"
	filter=$(sed -n 's/^SystemCallFilter=//p' "$UNIT")
	# shellcheck disable=SC2086 # one filter item per word
	"$PY" - "$E2E_TMP/syscalls" $filter >"$E2E_TMP/filter.out" <<'PYEOF'
import subprocess, sys
cache = {}
def expand(item):
    if not item.startswith("@"):
        return {item}
    if item not in cache:
        lines = subprocess.run(["systemd-analyze", "syscall-filter", item], capture_output=True, text=True).stdout.splitlines()[1:]
        cache[item] = set().union(*[expand(t.strip()) for t in lines if t.strip() and not t.strip().startswith("#")])
    return cache[item]
allowed = set().union(*[expand(i) for i in sys.argv[2:]])
used = {l.strip() for l in open(sys.argv[1]) if l.strip()}
print(len(used), " ".join(sorted(used - allowed)))
PYEOF
	read -r nused denied <"$E2E_TMP/filter.out"
	expect "the unit's SystemCallFilter allows all ${nused:-0} syscalls of a load and an adopt" \
		'[ "${nused:-0}" -gt 20 ] && [ -z "$denied" ]'
	[ -n "$denied" ] && note "not allowed: $denied"
else
	echo "# skip: strace or systemd-analyze missing, SystemCallFilter not checked against vigil's syscalls"
fi

e2e_finish
