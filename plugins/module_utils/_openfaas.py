# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenFaaS gateway REST: the shared connection options, a small client, and the work of
openfaas_function and openfaas_function_info (private: may change without notice).

HTTP goes through Ansible's own ansible.module_utils.urls (Request), not faas-cli and not the
requests library: it ships with ansible-core on every host a module runs on (nothing to install,
nothing to add to an execution environment), and it already does what users expect of every
Ansible HTTP module -- validate_certs, ca_path, proxies from the environment, basic auth -- the
same way ansible.builtin.uri does.
"""

from __future__ import annotations

import copy
import json
import socket
import time
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request, SSLValidationError
from ansible_collections.streamops.day2.plugins.module_utils._common import OperationError, StreamopsModule
from ansible_collections.streamops.day2.plugins.module_utils._http import transport_reason
from ansible_collections.streamops.day2.plugins.module_utils._openfaas_spec import (
    SpecError,
    deployment_body,
    describe,
    desired_spec,
    differences,
    function_view,
    initial_replicas,
    predicted_status,
    replicas_reached,
)

# gateway_url is not marked required: OPENFAAS_URL may give it, and ansible-doc would say otherwise (see issue 9).
OPENFAAS_CONNECTION_SPEC = dict(
    gateway_url=dict(type="str", fallback=(env_fallback, ["OPENFAAS_URL"])),
    gateway_username=dict(type="str", default="admin", aliases=["username"], fallback=(env_fallback, ["OPENFAAS_USERNAME"])),
    gateway_password=dict(type="str", no_log=True, aliases=["password"], fallback=(env_fallback, ["OPENFAAS_PASSWORD"])),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    timeout=dict(type="float", default=30.0),
)

USER_AGENT = "streamops.day2-openfaas"
POLL = 0.25  # seconds between two reads while waiting


def openfaas_argument_spec(**module_options):
    """The module's own options plus the shared gateway connection options (deep-copied)."""
    spec = copy.deepcopy(OPENFAAS_CONNECTION_SPEC)
    spec.update(module_options)
    return spec


class OpenFaaSError(OperationError):
    """An OpenFaaS failure worth one clear sentence to the user (no traceback)."""


class OpenFaaSClient:
    """The gateway's REST API (the /system endpoints): JSON in and out, failures as one sentence."""

    def __init__(self, params):
        if not (params["gateway_url"] or "").strip():
            raise OpenFaaSError("No OpenFaaS gateway given: set gateway_url (or the environment variable OPENFAAS_URL).")
        self.url = params["gateway_url"].strip().rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise OpenFaaSError("gateway_url %s is not an http:// or https:// URL." % self.url)
        self.timeout = params["timeout"]
        self.user, password = params["gateway_username"], params["gateway_password"]
        self.has_password = bool(password)
        self._request = Request(
            headers={"Accept": "application/json"},
            timeout=self.timeout,
            validate_certs=params["validate_certs"],
            url_username=self.user if password else None,
            url_password=password or None,
            force_basic_auth=bool(password),
            ca_path=params["ca_path"],
            http_agent=USER_AGENT,
            use_netrc=False,
        )

    def call(self, method, path, body=None, missing_ok=False):
        """(HTTP status, decoded JSON or None). A provider's 404 returns (404, None) when missing_ok, else fails."""
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            response = self._request.open(method, self.url + path, data=data, headers=headers)
            raw = response.read()
        except HTTPError as e:
            message = self._message(e)
            if e.code == 404 and missing_ok:
                if message == "404 page not found":  # the router's own 404: no such endpoint, so not an OpenFaaS gateway
                    raise OpenFaaSError("%s answered HTTP 404 (%s) to %s %s; is gateway_url the OpenFaaS gateway?"
                                        % (self.url, message, method, path.split("?")[0]))
                return 404, None
            raise OpenFaaSError(self._http_sentence(e.code, method, path, message), status=e.code)
        except (URLError, UrlsConnectionError, SSLValidationError, socket.timeout, OSError) as e:
            raise OpenFaaSError("Cannot reach the OpenFaaS gateway at %s: %s." % (self.url, self._reason(e)))
        if not raw:
            return response.status, None
        try:
            return response.status, json.loads(raw)
        except ValueError:
            if raw.lstrip()[:1] in (b"[", b"{"):
                raise OpenFaaSError("The OpenFaaS gateway at %s answered %s %s with broken JSON." % (self.url, method, path.split("?")[0]))
            return response.status, raw.decode("utf-8", "replace")

    @staticmethod
    def _message(error):
        try:
            raw = error.read().decode("utf-8", "replace")
        except Exception:  # a body that cannot be read adds nothing to the status code
            raw = ""
        try:  # a JSON error (of a proxy or another API in front of the gateway): its message
            body = json.loads(raw)
            raw = str(body.get("message") or body.get("error") or raw) if isinstance(body, dict) else raw
        except ValueError:
            pass
        message = " ".join(raw.split()).rstrip(".")
        if message.startswith("<"):  # an HTML error page of a proxy in front of the gateway
            message = ""
        return message or (error.reason if isinstance(error.reason, str) else "") or "no message"

    def _http_sentence(self, code, method, path, message):
        if code == 401:
            if not self.has_password:
                return ("The OpenFaaS gateway at %s requires credentials (HTTP 401): set gateway_password "
                        "(or OPENFAAS_PASSWORD), and gateway_username if it is not admin." % self.url)
            return ("The OpenFaaS gateway at %s refused the credentials of user %s (HTTP 401): check gateway_username "
                    "and gateway_password (or OPENFAAS_USERNAME / OPENFAAS_PASSWORD)." % (self.url, self.user))
        if code == 403:
            return "The OpenFaaS gateway at %s denied %s %s to user %s (HTTP 403): %s." % (self.url, method, path.split("?")[0], self.user, message)
        return "The OpenFaaS gateway at %s answered HTTP %d to %s %s: %s." % (self.url, code, method, path.split("?")[0], message)

    def _reason(self, error):
        return transport_reason(error, self.timeout, "is the gateway running, and is the port right?", "is gateway_url the gateway's HTTP address?")

    # -- the endpoints used ------------------------------------------------------------------

    @staticmethod
    def _query(namespace):
        return ("?" + urlencode(dict(namespace=namespace))) if namespace else ""

    def namespaces(self):
        """The gateway's function namespaces, or None when its provider has no namespace support."""
        try:
            status, data = self.call("GET", "/system/namespaces", missing_ok=True)
        except OpenFaaSError as e:
            if e.result.get("status") in (500, 501, 502):
                return None
            raise
        if status == 404 or not isinstance(data, list):
            return None
        return [str(n) for n in data]

    def check_namespace(self, namespace):
        """Fails with one sentence when namespace is not one of the gateway's function namespaces."""
        if not namespace:
            return
        known = self.namespaces()
        if known and namespace not in known:
            raise OpenFaaSError("Namespace %s is not one of the OpenFaaS gateway's function namespaces (%s)."
                                % (namespace, ", ".join(known)))

    def function(self, name, namespace):
        """The live FunctionStatus, or None when there is no such function."""
        status, data = self.call("GET", "/system/function/%s%s" % (quote(name, safe=""), self._query(namespace)), missing_ok=True)
        if status == 404:
            return None
        if not isinstance(data, dict):
            raise OpenFaaSError("The OpenFaaS gateway at %s answered GET /system/function/%s with %r, not a function."
                                % (self.url, name, str(data)[:80]))
        return data

    def functions(self, namespace):
        status, data = self.call("GET", "/system/functions%s" % self._query(namespace))
        if not isinstance(data, list):
            raise OpenFaaSError("The OpenFaaS gateway at %s answered GET /system/functions with %r, not a list."
                                % (self.url, str(data)[:80]))
        return data

    def deploy(self, body):
        self.call("POST", "/system/functions", body)

    def update(self, body):
        self.call("PUT", "/system/functions", body)

    def delete(self, name, namespace):
        body = dict(functionName=name)
        if namespace:
            body["namespace"] = namespace
        return self.call("DELETE", "/system/functions", body, missing_ok=True)[0] != 404

    def scale(self, name, namespace, replicas):
        body = dict(serviceName=name, replicas=replicas)
        if namespace:
            body["namespace"] = namespace
        self.call("POST", "/system/scale-function/%s%s" % (quote(name, safe=""), self._query(namespace)), body)


class OpenFaaSModule(StreamopsModule):
    """AnsibleModule with the shared gateway connection options and a client built on first use."""

    def __init__(self, argument_spec, **kwargs):
        super().__init__(argument_spec=openfaas_argument_spec(**argument_spec), **kwargs)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = OpenFaaSClient(self.params)
        return self._client


# ---------------------------------------------------------------------------------------------
# openfaas_function


def _where(name, namespace):
    return "%s in namespace %s" % (name, namespace) if namespace else name


def run_function(module):
    """Bring one function to the spec, replicas and state asked for; the module's result dict."""
    params, client = module.params, module.client
    name, namespace = params["name"], params["namespace"]
    client.check_namespace(namespace)
    live = client.function(name, namespace)
    if params["state"] == "absent":
        return _absent(module, live)

    try:
        desired = desired_spec(params)
    except SpecError as e:
        raise OpenFaaSError("Function %s: %s." % (name, e))
    if live is None and not desired.get("image"):
        raise OpenFaaSError("Function %s does not exist and no image was given to deploy it." % _where(name, namespace))

    actions = []
    create = live is None
    changed_fields = [] if create else differences(desired, live)
    wanted = params["replicas"]
    current_replicas = initial_replicas(desired) if create else int(live.get("replicas") or 0)
    scale = wanted is not None and wanted != current_replicas
    if create:
        actions.append("deploy function %s" % _where(name, namespace))
    if changed_fields:
        actions.append("update %s" % describe(changed_fields, desired, live))
    if scale:
        actions.append("scale from %d to %d replicas" % (current_replicas, wanted))
    changed = bool(create or changed_fields or scale)

    if changed and not module.check_mode:
        body = deployment_body(name, namespace, desired, live)
        if create:
            client.deploy(body)
        elif changed_fields:
            client.update(body)
        if scale:
            client.scale(name, namespace, wanted)

    predicted = predicted_status(name, namespace, desired, live, wanted)
    if module.check_mode:
        after = predicted
    elif params["wait"]:
        after = _wait_available(module, name, namespace, wanted)
    elif changed:
        after = client.function(name, namespace) or predicted
    else:
        after = live
    result = dict(changed=changed, actions=actions, function=function_view(after))
    if module._diff:
        result["diff"] = dict(before=_diff_view(live), after=_diff_view(predicted))
    return result


def _diff_view(status):
    """The spec and replica count (not the moving parts: availability, creation time)."""
    if not status:
        return {}
    view = function_view(status)
    for key in ("available_replicas", "created_at"):
        view.pop(key, None)
    return view


def _wait_available(module, name, namespace, wanted):
    """Until the function has wanted (else its own replica count) available replicas, or none when that is 0."""
    client, timeout = module.client, module.params["wait_timeout"]
    deadline = time.monotonic() + timeout
    while True:
        status = client.function(name, namespace)
        if status is None:
            raise OpenFaaSError("Function %s disappeared while waiting for its replicas." % _where(name, namespace))
        target = wanted if wanted is not None else int(status.get("replicas") or 0)
        if replicas_reached(status, target):
            return status
        if time.monotonic() > deadline:
            available = int(status.get("availableReplicas") or 0)
            if target == 0:
                problem = "still has %d available replica(s) instead of 0" % available
            else:
                problem = "has %d of %d replica(s) available" % (available, target)
            raise OpenFaaSError("Function %s %s after %gs; check its image and its pods' events (kubectl describe pods), or raise wait_timeout."
                                % (_where(name, namespace), problem, timeout), function=function_view(status))
        time.sleep(POLL)


def _absent(module, live):
    params, client = module.params, module.client
    name, namespace = params["name"], params["namespace"]
    changed = live is not None
    actions = ["delete function %s" % _where(name, namespace)] if changed else []
    if changed and not module.check_mode:
        client.delete(name, namespace)
        if params["wait"]:
            deadline = time.monotonic() + params["wait_timeout"]
            while client.function(name, namespace) is not None:
                if time.monotonic() > deadline:
                    raise OpenFaaSError("Function %s was deleted but still shows after %gs; raise wait_timeout."
                                        % (_where(name, namespace), params["wait_timeout"]))
                time.sleep(POLL)
    result = dict(changed=changed, actions=actions, function={})
    if module._diff:
        result["diff"] = dict(before=_diff_view(live), after={})
    return result


# ---------------------------------------------------------------------------------------------
# openfaas_function_info


def run_function_info(module):
    """Functions of one namespace (or all), with replicas and invocation counts; never changes anything."""
    params, client = module.params, module.client
    name, namespace = params["name"], params["namespace"]
    if params["all_namespaces"]:
        namespaces = client.namespaces() or [None]
    else:
        client.check_namespace(namespace)
        namespaces = [namespace]
    functions = []
    for ns in namespaces:
        for status in client.functions(ns):
            if name is None or status.get("name") == name:
                functions.append(function_view(status, invocations=True))
    functions.sort(key=lambda f: (f["namespace"] or "", f["name"] or ""))
    return dict(changed=False, functions=functions, exists=bool(functions))
