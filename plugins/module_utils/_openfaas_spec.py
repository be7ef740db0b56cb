# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An OpenFaaS function's spec: what the user asked for, what the gateway holds, how they compare
(pure logic, no I/O; private: may change without notice).

The gateway speaks in FunctionDeployment / FunctionStatus JSON (camelCase keys); the modules speak
in snake_case options and results. Comparison rules:

- only the fields the user gave are compared; a field left out keeps its live value (and is sent
  back as it is when something else is updated, since an update replaces the whole spec);
- env_vars, labels and annotations are compared as complete dicts, except keys the server fills
  in itself (SERVER_LABELS, SERVER_ANNOTATIONS) unless the user names them;
- secrets and constraints as sets (constraints written ``key=value``, ``key==value`` or
  ``key == value``);
- limits and requests by quantity (``0.5`` equals ``500m``, ``1Gi`` equals ``1024Mi``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Labels and annotations that providers add to every function (faas-netes and the lab's provider).
SERVER_LABELS = frozenset(["faas_function", "uid"])
SERVER_ANNOTATIONS = frozenset(["prometheus.io.scrape"])
SERVER_ANNOTATION_PREFIXES = ("kubectl.kubernetes.io/", "deployment.kubernetes.io/")

# module option -> FunctionDeployment key
FIELDS = (
    ("image", "image"),
    ("env_process", "envProcess"),
    ("env_vars", "envVars"),
    ("labels", "labels"),
    ("annotations", "annotations"),
    ("secrets", "secrets"),
    ("constraints", "constraints"),
    ("limits", "limits"),
    ("requests", "requests"),
    ("read_only_root_filesystem", "readOnlyRootFilesystem"),
)
RESOURCE_KEYS = ("memory", "cpu")

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIX = {
    None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2 ** 10), "Mi": Decimal(2 ** 20), "Gi": Decimal(2 ** 30), "Ti": Decimal(2 ** 40), "Pi": Decimal(2 ** 50), "Ei": Decimal(2 ** 60),
}


class SpecError(ValueError):
    """A value the gateway would refuse, said in one sentence."""


def parse_quantity(text):
    """A Kubernetes quantity ('500m', '0.5', '128Mi', '1e3') as a Decimal; SpecError when it is not one."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise SpecError("%r is not a Kubernetes quantity (for example 100m or 0.5 for CPU, 128Mi or 1Gi for memory)" % (text,))
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise SpecError("%r is not a Kubernetes quantity" % (text,))
    if exponent:
        return value * (Decimal(10) ** int(exponent[1:]))
    return value * _SUFFIX[suffix]


def normalize_constraint(text):
    """'key=value', 'key==value' or 'key == value' as 'key=value'."""
    key, sep, value = str(text).partition("=")
    value = value[1:] if value.startswith("=") else value
    key, value = key.strip(), value.strip()
    if not sep or not key or "=" in value:
        raise SpecError("constraint %r is not key=value (for example topology.kubernetes.io/region=b)" % (text,))
    return "%s=%s" % (key, value)


def _text(value):
    """A dict value as the string the gateway keeps (YAML booleans as true/false, not True/False)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _string_dict(value, option):
    if not isinstance(value, dict):
        raise SpecError("%s must be a dict of names to values" % option)
    return dict((str(k), _text(v)) for k, v in value.items())


def _resources(value, option):
    if value is None:
        return {}
    unknown = sorted(set(value) - set(RESOURCE_KEYS))
    if unknown:
        raise SpecError("%s takes memory and cpu only, not %s" % (option, ", ".join(unknown)))
    out = {}
    for key in RESOURCE_KEYS:
        if value.get(key) not in (None, ""):
            text = _text(value[key]).strip()
            try:
                parse_quantity(text)
            except SpecError as e:
                raise SpecError("%s.%s: %s" % (option, key, e))
            out[key] = text
    return out


def desired_spec(params):
    """The fields the user gave, normalized, keyed as the gateway names them (FunctionDeployment)."""
    spec = {}
    for option, key in FIELDS:
        value = params.get(option)
        if value is None:
            continue
        if option in ("env_vars", "labels", "annotations"):
            value = _string_dict(value, option)
        elif option == "secrets":
            value = sorted(set(str(s) for s in value if str(s)))
        elif option == "constraints":
            value = sorted(set(normalize_constraint(c) for c in value))
        elif option in ("limits", "requests"):
            value = _resources(value, option)
        elif option == "read_only_root_filesystem":
            value = bool(value)
        else:
            value = str(value)
        spec[key] = value
    return spec


def _live(status, key):
    """A field of the live FunctionStatus, normalized like desired_spec normalizes the user's."""
    value = status.get(key)
    if key in ("envVars", "labels", "annotations"):
        return dict((str(k), _text(v)) for k, v in (value or {}).items())
    if key == "secrets":
        return sorted(set(value or []))
    if key == "constraints":
        out = set()
        for c in value or []:
            try:
                out.add(normalize_constraint(c))
            except SpecError:
                out.add(str(c))
        return sorted(out)
    if key in ("limits", "requests"):
        return dict((k, str(v)) for k, v in (value or {}).items() if k in RESOURCE_KEYS and v not in (None, ""))
    if key == "readOnlyRootFilesystem":
        return bool(value)
    return "" if value is None else str(value)


def _server_filled(key, name, given):
    """Whether a label/annotation name is one the server adds (and the user did not name)."""
    if name in given:
        return False
    if key == "labels":
        return name in SERVER_LABELS
    if key == "annotations":
        return name in SERVER_ANNOTATIONS or name.startswith(SERVER_ANNOTATION_PREFIXES)
    return False


def _comparable_live(key, live_value, desired_value):
    if key in ("labels", "annotations"):
        return dict((k, v) for k, v in live_value.items() if not _server_filled(key, k, desired_value))
    return live_value


def _same(key, desired_value, live_value):
    if key in ("limits", "requests"):
        if set(desired_value) != set(live_value):
            return False
        try:
            return all(parse_quantity(desired_value[k]) == parse_quantity(live_value[k]) for k in desired_value)
        except SpecError:
            return desired_value == live_value
    return desired_value == live_value


def differences(desired, status):
    """The FunctionDeployment keys whose desired value differs from the live function's, in FIELDS order."""
    out = []
    for unused, key in FIELDS:
        if key not in desired:
            continue
        live_value = _comparable_live(key, _live(status, key), desired[key])
        if not _same(key, desired[key], live_value):
            out.append(key)
    return out


def describe(keys, desired, status):
    """One short phrase per changed field: 'image', 'env_vars (set A, remove B)', ..."""
    names = dict((key, option) for option, key in FIELDS)
    parts = []
    for key in keys:
        detail = ""
        if key in ("envVars", "labels", "annotations", "limits", "requests"):
            live_value = _comparable_live(key, _live(status, key), desired[key]) if status else {}
            changed = sorted(k for k in desired[key] if k not in live_value or not _same(key, {k: desired[key][k]}, {k: live_value[k]}))
            removed = sorted(k for k in live_value if k not in desired[key])
            bits = (["set %s" % ", ".join(changed)] if changed else []) + (["remove %s" % ", ".join(removed)] if removed else [])
            detail = " (%s)" % "; ".join(bits) if bits else ""
        parts.append(names[key] + detail)
    return ", ".join(parts)


def deployment_body(name, namespace, desired, status):
    """The whole FunctionDeployment to send: the user's fields, the live function's for the rest.

    Server-filled labels and annotations are not sent back (the provider adds them again).
    """
    status = status or {}
    body = {"service": name}
    if namespace:
        body["namespace"] = namespace
    for unused, key in FIELDS:
        if key in desired:
            value = desired[key]
        else:
            value = _comparable_live(key, _live(status, key), {})
        if key in ("envProcess", "image") and value == "":
            continue
        if key in ("secrets", "constraints") and not value:
            continue
        body[key] = value
    return body


def function_view(status, invocations=False):
    """A FunctionStatus as the modules return it (snake_case keys); with invocations, its invocation_count too."""
    status = status or {}
    view = dict(
        name=status.get("name"),
        namespace=status.get("namespace") or None,
        image=status.get("image"),
        env_process=status.get("envProcess") or "",
        env_vars=_live(status, "envVars"),
        labels=_live(status, "labels"),
        annotations=_live(status, "annotations"),
        secrets=_live(status, "secrets"),
        constraints=_live(status, "constraints"),
        limits=_live(status, "limits"),
        requests=_live(status, "requests"),
        read_only_root_filesystem=bool(status.get("readOnlyRootFilesystem")),
        replicas=int(status.get("replicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        created_at=status.get("createdAt"),
    )
    if invocations:
        view["invocation_count"] = int(round(float(status.get("invocationCount") or 0)))
    return view


def predicted_status(name, namespace, desired, status, replicas):
    """The FunctionStatus the gateway should show after the change (for check mode and diffs).

    Fields that compare equal keep the live function's form (its canonical quantities, say), so
    an unchanged function's before and after are the same.
    """
    out = dict(status or {})
    out["name"] = name
    if namespace or "namespace" not in out:
        out["namespace"] = namespace or out.get("namespace")
    changed = differences(desired, status) if status else list(desired)
    for unused, key in FIELDS:
        if key not in changed:
            continue
        value = desired[key]
        if key in ("labels", "annotations") and status:
            kept = dict((k, v) for k, v in _live(status, key).items() if _server_filled(key, k, value))
            value = dict(kept, **value)
        out[key] = value
    if replicas is not None:
        out["replicas"] = replicas
    elif not status:
        out["replicas"] = initial_replicas(desired)
    out.setdefault("availableReplicas", 0)
    return out


def initial_replicas(desired):
    """Replicas of a new function: its com.openfaas.scale.min label when positive, else 1 (as providers deploy)."""
    try:
        wanted = int((desired.get("labels") or {}).get("com.openfaas.scale.min", ""))
    except ValueError:
        wanted = 0
    return wanted if wanted > 0 else 1


def replicas_reached(status, wanted):
    """Whether the function shows the replicas waited for: >= wanted available, or none when wanted is 0."""
    available = int((status or {}).get("availableReplicas") or 0)
    if wanted == 0:
        return available == 0
    return available >= wanted
