# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Docker engine helper every Docker module uses (private: may change without notice).

The Docker SDK for Python (docker-py) is used through its low-level ``APIClient`` only: modules
need raw Engine API calls (container create bodies copied from an inspect, image save/load
streams) and endpoints the SDK does not wrap at all (checkpoints, see ``Engine.checkpoints``).
Connection options are declared once here, matching the ``streamops.day2._docker`` doc fragment.
"""

from __future__ import annotations

import copy
import os
import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.streamops.day2.plugins.module_utils._common import OperationError, StreamopsModule

try:
    import docker
    import docker.errors
    import docker.tls
    import requests.exceptions
    DOCKER_IMPORT_ERROR = None
    DOCKER_SDK_VERSION = tuple(int(p) for p in docker.__version__.split(".")[:2] if p.isdigit())
except ImportError:
    docker = None
    DOCKER_IMPORT_ERROR = traceback.format_exc()
    DOCKER_SDK_VERSION = ()

MIN_DOCKER_SDK = (5, 0)
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Engine API 1.25 (Docker 1.13) brought the checkpoint endpoints, behind --experimental.
MIN_API_VERSION = "1.25"

DOCKER_CONNECTION_SPEC = dict(
    # No default in the spec: E(DOCKER_HOST) is the fallback, then DEFAULT_DOCKER_HOST (Engine), as the docs say.
    docker_host=dict(type="str", aliases=["docker_url"], fallback=(env_fallback, ["DOCKER_HOST"])),
    tls=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=False, aliases=["tls_verify"]),
    ca_path=dict(type="path", aliases=["ca_cert"]),
    client_cert=dict(type="path"),
    client_key=dict(type="path"),
    timeout=dict(type="int", default=60),
)
CONNECTION_KEYS = tuple(DOCKER_CONNECTION_SPEC)


def docker_argument_spec(**module_options):
    """The module's own options plus the shared connection options (deep-copied)."""
    spec = copy.deepcopy(DOCKER_CONNECTION_SPEC)
    spec.update(module_options)
    return spec


def connection_suboptions(**extra):
    """The connection options as suboptions of a dict option (for a second engine), without env fallbacks."""
    spec = copy.deepcopy(DOCKER_CONNECTION_SPEC)
    spec["docker_host"].pop("fallback")
    spec["docker_host"]["required"] = True
    spec.update(extra)
    return spec


def connection_of(params):
    """The connection options out of a module's params (or a target dict)."""
    return {key: params.get(key) for key in CONNECTION_KEYS}


class DockerError(OperationError):
    """A Docker failure worth one clear sentence to the user (no traceback)."""


class EngineUnreachable(DockerError):
    """The engine did not answer (down, wrong address, TLS refused)."""


def error_text(error):
    """The readable part of a docker-py / requests error."""
    explanation = getattr(error, "explanation", None)
    if explanation:
        text = explanation.decode("utf-8", "replace") if isinstance(explanation, bytes) else str(explanation)
        return text.strip()
    return str(error).strip() or type(error).__name__


def _tls_config(conn):
    if not (conn.get("tls") or conn.get("validate_certs") or conn.get("client_cert")):
        return False
    client_cert = None
    if conn.get("client_cert"):
        if not conn.get("client_key"):
            raise DockerError("client_cert needs client_key (the private key of the client certificate).")
        client_cert = (conn["client_cert"], conn["client_key"])
    verify = conn.get("validate_certs") or False
    if verify and conn.get("ca_path"):
        verify = conn["ca_path"]
    try:
        return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=conn.get("ca_path"), verify=verify)
    except docker.errors.TLSParameterError as e:
        raise DockerError("TLS options for %s: %s" % (conn.get("docker_host"), error_text(e)))


class Engine:
    """One Docker engine: a low-level APIClient plus the calls the checkpoint modules need.

    Every failure of the engine or the transport becomes a DockerError with one readable sentence.
    """

    def __init__(self, conn, label="engine"):
        self.conn = dict(conn)
        self.host = conn.get("docker_host") or DEFAULT_DOCKER_HOST
        self.label = label
        self._client = None
        self._info = None

    # -- connection -------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = docker.APIClient(base_url=self.host, version="auto", timeout=self.conn.get("timeout") or 60,
                                                tls=_tls_config(self.conn))
            except docker.errors.DockerException as e:
                raise EngineUnreachable(self.unreachable_message(e))
            except requests.exceptions.RequestException as e:
                raise EngineUnreachable(self.unreachable_message(e))
        return self._client

    def unreachable_message(self, error):
        text = error_text(error)
        if "Connection refused" in text or "No such file or directory" in text or "FileNotFoundError" in text:
            text = "nothing answers at that address"
        return ("Cannot reach the Docker engine (%s) at %s: %s. Check docker_host and that the engine is up."
                % (self.label, self.host, text))

    @property
    def is_local(self):
        """True when the engine listens on a unix socket of this host (so its data root and runc are here)."""
        return self.host.startswith("unix://") or self.host.startswith("/")

    def ping(self):
        """True when the engine answers; never raises."""
        try:
            self.call(self.client.ping)
            return True
        except DockerError:
            return False

    def call(self, fn, *args, **kwargs):
        """Call the SDK; engine errors become DockerError, transport errors EngineUnreachable."""
        what = kwargs.pop("what", None)
        try:
            return fn(*args, **kwargs)
        except docker.errors.APIError as e:
            text = error_text(e)
            raise DockerError("%s%s" % ("%s: " % what if what else "", text), status=getattr(e, "status_code", None))
        except requests.exceptions.RequestException as e:
            if isinstance(e, requests.exceptions.ReadTimeout):
                raise DockerError("The Docker engine (%s) at %s gave no answer within %ss%s; raise timeout if it is only slow."
                                  % (self.label, self.host, self.conn.get("timeout"), " (%s)" % what if what else ""))
            raise EngineUnreachable(self.unreachable_message(e))
        except docker.errors.DockerException as e:
            raise DockerError("%s%s" % ("%s: " % what if what else "", error_text(e)))

    # -- engine -----------------------------------------------------------------------------

    def info(self):
        if self._info is None:
            self._info = self.call(self.client.info, what="docker info")
        return self._info

    @property
    def data_root(self):
        return self.info().get("DockerRootDir")

    def require_experimental(self):
        if not self.info().get("ExperimentalBuild"):
            raise DockerError(
                "The Docker engine (%s) at %s does not run with experimental features, and checkpoints are an experimental "
                "API: start dockerd with --experimental (or \"experimental\": true in daemon.json)." % (self.label, self.host))

    def summary(self):
        info = self.info()
        return dict(docker_host=self.host, name=info.get("Name"), id=info.get("ID"), server_version=info.get("ServerVersion"),
                    api_version=self.client.api_version, experimental=bool(info.get("ExperimentalBuild")),
                    data_root=info.get("DockerRootDir"), cgroup_driver=info.get("CgroupDriver"),
                    kernel=info.get("KernelVersion"))

    # -- containers -------------------------------------------------------------------------

    def _inspect(self, inspect, ref, kind):
        """inspect(ref) with call()'s errors, or None when the engine has no such object."""
        try:
            return self.call(inspect, ref, what="Inspecting %s %s on %s" % (kind, ref, self.host))
        except DockerError as e:
            if e.result.get("status") == 404:
                return None
            raise

    def container(self, name):
        """The container's inspect dict, or None when the engine has no such container."""
        return self._inspect(self.client.inspect_container, name, "container")

    def require_container(self, name, running=True):
        found = self.container(name)
        if found is None:
            raise DockerError("No container named %s on the Docker engine (%s) at %s." % (name, self.label, self.host))
        if running and not found["State"].get("Running"):
            raise DockerError("Container %s on %s is not running (%s); only a running container can be checkpointed."
                              % (name, self.host, found["State"].get("Status")))
        if running and found["State"].get("Paused"):
            raise DockerError("Container %s on %s is paused; unpause it before a checkpoint." % (name, self.host))
        return found

    def create_container(self, name, body):
        """POST /containers/create with a full body (Config keys + HostConfig + NetworkingConfig)."""
        url = self.client._url("/containers/create")
        res = self.call(self.client._post_json, url, data=body, params={"name": name}, what="create container %s" % name)
        return self.call(self.client._result, res, True, what="create container %s" % name)["Id"]

    def remove_container(self, name, force=True):
        """Remove the container; one that is already gone is fine."""
        try:
            self.call(self.client.remove_container, name, force=force, v=False,
                      what="Removing container %s on %s" % (name, self.host))
        except DockerError as e:
            if e.result.get("status") != 404:
                raise

    def update_restart_policy(self, name, policy):
        self.call(self.client.update_container, name, restart_policy=policy, what="update the restart policy of %s" % name)

    def start(self, name, checkpoint=None, retries=5):
        """Start a container, from a checkpoint when one is named.

        docker-py's start() has no checkpoint parameter: POST /containers/{id}/start?checkpoint=NAME is called directly.
        A restore straight after a checkpoint has been seen to fail with containerd's "content sha256:... already
        exists" (LAB.md): that error is retried, every other one is not.
        """
        params = {"checkpoint": checkpoint} if checkpoint else {}
        url = self.client._url("/containers/{0}/start", name)
        for attempt in range(retries):
            try:
                res = self.client._post(url, params=params)
                self.client._raise_for_status(res)
                return attempt
            except docker.errors.APIError as e:
                text = error_text(e)
                if "already exists" in text and attempt < retries - 1:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                what = "restore container %s from checkpoint %s" % (name, checkpoint) if checkpoint else "start container %s" % name
                raise DockerError("%s on %s failed: %s" % (what, self.host, text))
            except requests.exceptions.RequestException as e:
                raise EngineUnreachable(self.unreachable_message(e))
        return retries

    def stop(self, name, timeout=10):
        self.call(self.client.stop, name, timeout=timeout, what="stop container %s" % name)

    def wait_running(self, name, seconds, since=None):
        """Inspect the container until it has run for `seconds` without exiting or restarting; return its inspect."""
        deadline = time.monotonic() + seconds
        state = {}
        while True:
            found = self.container(name)
            state = (found or {}).get("State") or {}
            if not state.get("Running") or state.get("Restarting"):
                raise DockerError("Container %s on %s is not running after the restore (%s, exit code %s%s)."
                                  % (name, self.host, state.get("Status", "missing"), state.get("ExitCode"),
                                     ", error: %s" % state["Error"] if state.get("Error") else ""))
            if time.monotonic() >= deadline:
                return found
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def changes(self, name):
        return self.call(self.client.diff, name, what="list filesystem changes of %s" % name) or []

    def get_archive(self, name, path):
        return self.call(self.client.get_archive, name, path, what="read %s from %s" % (path, name))

    def put_archive(self, name, path, data):
        return self.call(self.client.put_archive, name, path, data, what="write into %s of %s" % (path, name))

    # -- checkpoints ------------------------------------------------------------------------
    # docker-py has no checkpoint API at all, so the Engine API's experimental checkpoint endpoints are called
    # through the SDK's low-level client helpers (_url/_get/_post_json/_delete/_result):
    #   GET    /containers/{id}/checkpoints?dir=DIR
    #   POST   /containers/{id}/checkpoints          {"CheckpointID", "CheckpointDir", "Exit"}
    #   DELETE /containers/{id}/checkpoints/{name}?dir=DIR
    #   POST   /containers/{id}/start?checkpoint=NAME (see start())

    def checkpoints(self, name, directory=None):
        params = {"dir": directory} if directory else {}
        res = self.call(self.client._get, self.client._url("/containers/{0}/checkpoints", name), params=params,
                        what="list checkpoints of %s" % name)
        found = self.call(self.client._result, res, True, what="list checkpoints of %s" % name) or []
        return [entry.get("Name") for entry in found]

    def create_checkpoint(self, name, checkpoint, directory=None, leave_running=True):
        body = {"CheckpointID": checkpoint, "Exit": not leave_running}
        if directory:
            body["CheckpointDir"] = directory
        res = self.call(self.client._post_json, self.client._url("/containers/{0}/checkpoints", name), data=body,
                        what="checkpoint %s of %s" % (checkpoint, name))
        self.call(self.client._raise_for_status, res, what="checkpoint %s of %s" % (checkpoint, name))

    def delete_checkpoint(self, name, checkpoint, directory=None):
        params = {"dir": directory} if directory else {}
        res = self.call(self.client._delete, self.client._url("/containers/{0}/checkpoints/{1}", name, checkpoint), params=params,
                        what="remove checkpoint %s of %s" % (checkpoint, name))
        self.call(self.client._raise_for_status, res, what="remove checkpoint %s of %s" % (checkpoint, name))

    # -- images -----------------------------------------------------------------------------

    def image(self, ref):
        """The image's inspect dict, or None when the engine has no such image."""
        return self._inspect(self.client.inspect_image, ref, "image")

    def images(self):
        return self.call(self.client.images, what="list images") or []

    def save_image(self, ref):
        """The image as a stream of tar chunks (docker save)."""
        return self.call(self.client.get_image, ref, chunk_size=1 << 20, what="save image %s" % ref)

    def load_image(self, stream):
        """docker load from a stream; returns the engine's messages."""
        messages = self.call(self.client.load_image, stream, what="load image")
        errors = [m.get("error") or m.get("errorDetail", {}).get("message") for m in messages or [] if isinstance(m, dict)
                  and (m.get("error") or m.get("errorDetail"))]
        if errors:
            raise DockerError("docker load on %s failed: %s" % (self.host, "; ".join(e for e in errors if e)))
        return messages

    def tag_image(self, image_id, ref):
        repo, tag = split_reference(ref)
        self.call(self.client.tag, image_id, repo, tag=tag, what="tag %s as %s" % (image_id, ref))

    def close(self):
        if self._client is not None:
            self._client.close()


def split_reference(ref):
    """repository and tag of an image reference (registry ports kept in the repository)."""
    if "@" in ref:
        return ref, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


class DockerModule(StreamopsModule):
    """AnsibleModule with the shared Docker options, the SDK check, and the engine of docker_host."""

    def __init__(self, argument_spec, **kwargs):
        super().__init__(argument_spec=docker_argument_spec(**argument_spec), **kwargs)
        if DOCKER_IMPORT_ERROR:
            self.fail_json(msg=missing_required_lib("docker (the Docker SDK for Python)"), exception=DOCKER_IMPORT_ERROR)
        if DOCKER_SDK_VERSION and DOCKER_SDK_VERSION < MIN_DOCKER_SDK:
            self.warn("docker (the Docker SDK for Python) %s is older than the %s this collection is tested with."
                      % (docker.__version__, ".".join(str(p) for p in MIN_DOCKER_SDK)))
        self._engine = None

    @property
    def engine(self):
        """The engine named by docker_host and the other connection options."""
        if self._engine is None:
            self._engine = Engine(connection_of(self.params), label="docker_host")
        return self._engine

    def connect(self, conn, label):
        return Engine(conn, label=label)

    def error_text(self, error):
        return error_text(error)

    def close(self):
        if self._engine is not None:
            self._engine.close()


def env_path(name):
    """A path from the environment, or None."""
    value = os.environ.get(name)
    return value or None
