# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's identity and its create body, from ``docker inspect`` (pure).

A checkpoint only restores into a container created with the same configuration from the same
root filesystem, so the body that recreates the container is derived from its inspect (and kept
in every stored version's manifest, for a failover when the original engine is gone).
"""

from __future__ import annotations

import copy

# Keys of an inspect's "Config" that POST /containers/create accepts.
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
               "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
               "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell")
# Networks every engine has; a container on them needs no NetworkingConfig.
BUILTIN_NETWORKS = ("bridge", "host", "none", "default")


def container_name(inspect):
    return (inspect.get("Name") or "").lstrip("/")


def create_body(inspect):
    """The POST /containers/create body that recreates the container on another engine."""
    config = inspect.get("Config") or {}
    body = {key: copy.deepcopy(config[key]) for key in CONFIG_KEYS if key in config and config[key] is not None}
    body["HostConfig"] = copy.deepcopy(inspect.get("HostConfig") or {})
    endpoints = {}
    for network, settings in ((inspect.get("NetworkSettings") or {}).get("Networks") or {}).items():
        if network in BUILTIN_NETWORKS:
            continue
        endpoint = {}
        for key in ("Aliases", "IPAMConfig", "Links", "DriverOpts"):
            if settings.get(key):
                endpoint[key] = copy.deepcopy(settings[key])
        endpoints[network] = endpoint
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return body


def user_networks(body):
    return sorted(((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).keys())


def local_volumes(inspect):
    """Named volumes of the local driver: their data stays on the source engine's host."""
    return sorted(m.get("Name") for m in inspect.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Driver", "local") == "local")


def bind_sources(inspect):
    return sorted(m.get("Source") for m in inspect.get("Mounts") or [] if m.get("Type") == "bind")


def summary(inspect, engine=None):
    """What a module returns about a container."""
    if not inspect:
        return dict(exists=False, running=False)
    state = inspect.get("State") or {}
    out = dict(exists=True, name=container_name(inspect), id=inspect.get("Id"), image=(inspect.get("Config") or {}).get("Image"),
               image_id=inspect.get("Image"), status=state.get("Status"), running=bool(state.get("Running")),
               pid=state.get("Pid") or None, created=inspect.get("Created"), started_at=state.get("StartedAt"),
               finished_at=state.get("FinishedAt"))
    if engine:
        out["docker_host"] = engine
    return out


def image_identity(image_inspect):
    """What makes two images the same root filesystem: the id, else the same layer diff ids."""
    if not image_inspect:
        return {}
    return dict(id=image_inspect.get("Id"), layers=list((image_inspect.get("RootFS") or {}).get("Layers") or []),
                tags=list(image_inspect.get("RepoTags") or []))


def same_image(wanted, candidate):
    """True when candidate (an image_identity) has the wanted id or exactly the wanted layers."""
    if not wanted or not candidate:
        return False
    if wanted.get("id") and wanted.get("id") == candidate.get("id"):
        return True
    return bool(wanted.get("layers")) and wanted.get("layers") == candidate.get("layers")
