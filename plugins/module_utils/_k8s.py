# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Kubernetes connection helper of the collection (private: may change without notice).

The official `kubernetes` Python client does the work: it reads kubeconfigs (contexts, exec
plugins, client certificates, tokens) exactly as kubectl does, and knows every API group, so
nothing here builds an HTTP request by hand. Objects are handled as plain dicts (the API's own
camelCase JSON), which is what users read in their manifests and what diffs show.
"""

from __future__ import annotations

import copy
import json
import os
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.streamops.day2.plugins.module_utils._common import OperationError

try:
    import kubernetes
    from kubernetes.client.rest import ApiException
    K8S_IMPORT_ERROR = None
except ImportError:
    kubernetes = None

    class ApiException(Exception):
        """Stands in for the client's exception when the library is missing (the module then fails first)."""
    K8S_IMPORT_ERROR = traceback.format_exc()

try:
    import urllib3
except ImportError:  # comes with kubernetes
    urllib3 = None


K8S_CONNECTION_SPEC = dict(
    kubeconfig=dict(type="path", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], no_log=False, fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    verify_ssl=dict(type="bool", default=True, fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
)

API_TIMEOUT = 30  # seconds for one API request; waits are loops of requests, each bounded by this

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def k8s_argument_spec(**module_options):
    """The module's own options plus the shared Kubernetes connection options (deep-copied)."""
    spec = copy.deepcopy(K8S_CONNECTION_SPEC)
    spec.update(module_options)
    return spec


def check_library(module):
    if K8S_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=K8S_IMPORT_ERROR)


class K8sError(OperationError):
    """A Kubernetes failure worth one clear sentence to the user (no traceback)."""


class K8sClient:
    """A Kubernetes API connection built from the shared options, with errors as one sentence each."""

    def __init__(self, params):
        self.params = params
        self._api = None

    # -- connection --------------------------------------------------------------------------

    @property
    def api(self):
        if self._api is None:
            self._api = kubernetes.client.ApiClient(self._configuration())
        return self._api

    def _configuration(self):
        p = self.params
        conf = kubernetes.client.Configuration()
        if not p["host"] or not p["api_key"]:
            try:
                if p["kubeconfig"] or p["context"] or not _in_cluster():
                    kubernetes.config.load_kube_config(config_file=p["kubeconfig"], context=p["context"],
                                                       client_configuration=conf)
                else:
                    kubernetes.config.load_incluster_config(client_configuration=conf)
            except (kubernetes.config.ConfigException, OSError) as e:
                if not p["host"]:
                    raise K8sError("Cannot load the Kubernetes configuration (%s); set kubeconfig (or KUBECONFIG), "
                                   "or host with api_key." % (str(e).strip() or type(e).__name__))
        if p["host"]:
            conf.host = p["host"]
        if p["api_key"]:
            conf.api_key = {"authorization": "Bearer " + p["api_key"]}
        if p["ca_cert"]:
            conf.ssl_ca_cert = p["ca_cert"]
        if p["client_cert"]:
            conf.cert_file = p["client_cert"]
        if p["client_key"]:
            conf.key_file = p["client_key"]
        conf.verify_ssl = p["verify_ssl"]
        # No retries inside urllib3: an unreachable API server should be said at once, not after minutes.
        conf.retries = False
        return conf

    @property
    def server(self):
        return self.api.configuration.host

    def close(self):
        if self._api is not None:
            self._api.close()

    def call(self, what, fn, *args, **kwargs):
        """fn(*args) with the client's errors turned into one sentence naming what was being done."""
        kwargs.setdefault("_request_timeout", API_TIMEOUT)
        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            raise K8sError("The Kubernetes API refused to %s: %s." % (what, api_error_text(e)), status=e.status)
        except Exception as e:  # urllib3 raises many types for the same thing: the server did not answer
            if urllib3 is not None and isinstance(e, (urllib3.exceptions.HTTPError, OSError)):
                raise K8sError("Cannot reach the Kubernetes API server at %s (%s); check kubeconfig or host, and that the "
                               "API server is up." % (self.server, _reason(e)))
            raise

    def plain(self, obj):
        """A typed client object as the API's plain JSON dict."""
        return self.api.sanitize_for_serialization(obj)

    # -- the objects relocation needs ----------------------------------------------------------

    @property
    def apps(self):
        return kubernetes.client.AppsV1Api(self.api)

    @property
    def core(self):
        return kubernetes.client.CoreV1Api(self.api)

    def get_workload(self, kind, namespace, name):
        """The Deployment or StatefulSet as a dict, or None when it does not exist."""
        reader = self.apps.read_namespaced_deployment if kind == "Deployment" else self.apps.read_namespaced_stateful_set
        try:
            return self.plain(self.call("read %s %s/%s" % (kind, namespace, name), reader, name, namespace))
        except K8sError as e:
            if e.result.get("status") == 404:
                return None
            raise

    def patch_workload(self, kind, namespace, name, patch):
        """Strategic-merge patch of the workload; returns it as a dict."""
        patcher = self.apps.patch_namespaced_deployment if kind == "Deployment" else self.apps.patch_namespaced_stateful_set
        return self.plain(self.call("patch %s %s/%s" % (kind, namespace, name), patcher, name, namespace, patch))

    def pods(self, namespace, match_labels):
        """Pods matching a label selector (a matchLabels dict), as dicts."""
        selector = ",".join("%s=%s" % item for item in sorted(match_labels.items()))
        listing = self.call("list pods in %s" % namespace, self.core.list_namespaced_pod, namespace, label_selector=selector)
        return [self.plain(pod) for pod in listing.items]

    def nodes(self, label_selector=None):
        listing = self.call("list nodes", self.core.list_node, label_selector=label_selector or "")
        return [self.plain(node) for node in listing.items]


def node_ready(node):
    """Ready condition true and not cordoned."""
    if node.get("spec", {}).get("unschedulable"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions") or [])


def pod_ready(pod):
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions") or [])


def api_error_text(error):
    """The API's own message from an ApiException body (Status object), else its reason."""
    try:
        message = json.loads(error.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return message or ("%s %s" % (error.status or "", error.reason or "")).strip()


def _reason(error):
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    # urllib3 wraps the socket error: keep its last, human part ("[Errno 111] Connection refused").
    return text.rsplit(": ", 1)[-1].strip(" '\">)") if ": " in text else text


def _in_cluster():
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not (
        os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")))
