# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A small client of the OpenFaaS gateway's REST API, on the standard library's urllib (the package depends on
confluent-kafka alone): invoke a function, read its replicas, scale it. Shared by the step runner and the scaler.

    POST /function/<name>[.<namespace>]                 invoke (the body is the record's value)
    GET  /system/function/<name>?namespace=<ns>         replicas, availableReplicas, invocationCount
    POST /system/scale-function/<name>?namespace=<ns>   {"serviceName", "replicas", "namespace"}
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Mapping, Optional

from .settings import SettingsError


class GatewayError(Exception):
    """A request the gateway did not answer with success.

    status       the HTTP status, or None when no answer came (refused, timed out, TLS)
    unreachable  no answer at all: the gateway (not the function) is down or unreachable
    """

    def __init__(self, message, status=None, unreachable=False, body=b""):
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable
        self.body = body


def _flag(environ, name, default):
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError("%s must be true or false, not %r" % (name, raw))


@dataclasses.dataclass
class GatewaySettings:
    """Where the gateway is and how to talk to it (STREAMOPS_GATEWAY_*)."""

    url: str
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    namespace: Optional[str] = None
    verify: bool = True
    ca_file: Optional[str] = None

    def __post_init__(self):
        parsed = urllib.parse.urlparse(self.url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError("STREAMOPS_GATEWAY_URL must be an http(s) URL of the OpenFaaS gateway, not %r" % self.url)
        self.url = self.url.rstrip("/")
        if self.username and self.password is None:
            raise SettingsError("a gateway user without a password: set STREAMOPS_GATEWAY_PASSWORD or STREAMOPS_GATEWAY_PASSWORD_FILE")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "GatewaySettings":
        env = os.environ if environ is None else environ
        password = env.get("STREAMOPS_GATEWAY_PASSWORD")
        password_file = env.get("STREAMOPS_GATEWAY_PASSWORD_FILE", "").strip()
        if password_file:
            try:
                with open(password_file) as handle:
                    password = handle.read().strip()
            except OSError as exc:
                raise SettingsError("cannot read STREAMOPS_GATEWAY_PASSWORD_FILE %s: %s" % (password_file, exc.strerror))
        return cls(
            url=env.get("STREAMOPS_GATEWAY_URL", "").strip(),
            username=env.get("STREAMOPS_GATEWAY_USERNAME", "").strip() or None,
            password=password,
            namespace=env.get("STREAMOPS_FUNCTION_NAMESPACE", "").strip() or None,
            verify=_flag(env, "STREAMOPS_GATEWAY_TLS_VERIFY", True),
            ca_file=env.get("STREAMOPS_GATEWAY_CA_FILE", "").strip() or None,
        )


class Gateway:
    """HTTP to one gateway. Every method raises GatewayError (never a urllib exception) on failure."""

    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self._headers = {}
        if settings.username:
            token = base64.b64encode(("%s:%s" % (settings.username, settings.password)).encode()).decode()
            self._headers["Authorization"] = "Basic " + token
        self._context = None
        if settings.url.startswith("https:"):
            if settings.verify:
                self._context = ssl.create_default_context(cafile=settings.ca_file)
            else:
                self._context = ssl.create_default_context()
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self._context)
                                                   if self._context else urllib.request.HTTPHandler())

    def _request(self, method, path, body=None, timeout=10.0, content_type="application/octet-stream"):
        url = self.settings.url + path
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read() or b""
            text = payload.decode("utf-8", "replace").strip().splitlines()
            detail = (": " + text[0][:300]) if text else ""
            raise GatewayError("%s %s answered HTTP %d%s" % (method, path, exc.code, detail), status=exc.code, body=payload)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLError):
                why = "its TLS certificate is not trusted or TLS failed (%s)" % reason
            elif isinstance(reason, ConnectionRefusedError):
                why = "connection refused"
            elif isinstance(reason, socket.gaierror):
                why = "its host name does not resolve"
            elif isinstance(reason, (socket.timeout, TimeoutError)):
                why = "no answer within %ss" % timeout
            else:
                why = str(reason)
            raise GatewayError("cannot reach the gateway at %s: %s" % (self.settings.url, why), unreachable=True)
        except (socket.timeout, TimeoutError):
            raise GatewayError("%s %s: no answer within %ss" % (method, path, timeout))
        except (ConnectionError, OSError) as exc:  # reset or closed mid-answer
            raise GatewayError("%s %s: the connection failed mid-request (%s)" % (method, path, exc))

    def _ns_query(self):
        ns = self.settings.namespace
        return ("?namespace=" + urllib.parse.quote(ns)) if ns else ""

    def invoke(self, function, body, timeout=10.0):
        """The function's answer (bytes) to body; GatewayError for any non-2xx answer or none."""
        name = function + ("." + self.settings.namespace if self.settings.namespace else "")
        return self._request("POST", "/function/" + urllib.parse.quote(name), body=body or b"", timeout=timeout)[1]

    def function(self, function, timeout=5.0):
        """GET /system/function/<name>: the function's status as a dict (replicas, availableReplicas, ...), None if absent."""
        try:
            answer = self._request("GET", "/system/function/%s%s" % (urllib.parse.quote(function), self._ns_query()), timeout=timeout)[1]
        except GatewayError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return json.loads(answer)
        except ValueError:
            raise GatewayError("GET /system/function/%s answered something other than JSON" % function)

    def scale(self, function, replicas, timeout=5.0):
        """POST /system/scale-function/<name>: set the function's replicas."""
        body = {"serviceName": function, "replicas": int(replicas)}
        if self.settings.namespace:
            body["namespace"] = self.settings.namespace
        self._request("POST", "/system/scale-function/%s%s" % (urllib.parse.quote(function), self._ns_query()),
                      body=json.dumps(body).encode(), timeout=timeout, content_type="application/json")
