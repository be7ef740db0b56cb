"""A container's create body and image identity from docker inspect (pure)."""

from ansible_collections.streamops.day2.plugins.module_utils._criu import container as ctr

INSPECT = {
    "Id": "f" * 64,
    "Name": "/web",
    "Image": "sha256:" + "a" * 64,
    "State": {"Status": "running", "Running": True, "Pid": 4242, "StartedAt": "2025-01-01T00:00:00Z"},
    "Config": {"Hostname": "f" * 12, "Env": ["A=1"], "Cmd": ["sh", "-c", "sleep 1"], "Image": "app:1", "Labels": {"x": "y"},
               "Volumes": None, "Entrypoint": None, "NotACreateKey": 1},
    "HostConfig": {"RestartPolicy": {"Name": "always"}, "Binds": ["/data:/data"], "Memory": 0},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.0.0.2"},
                                     "backend": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}, "IPAddress": "10.1.0.5"}}},
    "Mounts": [{"Type": "bind", "Source": "/data", "Destination": "/data"},
               {"Type": "volume", "Name": "cache", "Driver": "local", "Destination": "/cache"}],
}


def test_create_body_keeps_config_host_config_and_user_networks():
    body = ctr.create_body(INSPECT)
    assert body["Cmd"] == ["sh", "-c", "sleep 1"] and body["Image"] == "app:1" and body["Hostname"] == "f" * 12
    assert "NotACreateKey" not in body and "Volumes" not in body
    assert body["HostConfig"] == INSPECT["HostConfig"] and body["HostConfig"] is not INSPECT["HostConfig"]
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"backend": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}}
    assert ctr.user_networks(body) == ["backend"]


def test_summary_and_mounts():
    summary = ctr.summary(INSPECT, "unix:///a.sock")
    assert summary["name"] == "web" and summary["running"] and summary["pid"] == 4242 and summary["docker_host"] == "unix:///a.sock"
    assert ctr.summary(None) == {"exists": False, "running": False}
    assert ctr.local_volumes(INSPECT) == ["cache"] and ctr.bind_sources(INSPECT) == ["/data"]


def test_same_image_by_id_or_by_layers():
    wanted = {"id": "sha256:1", "layers": ["sha256:l1", "sha256:l2"]}
    assert ctr.same_image(wanted, {"id": "sha256:1", "layers": []})
    assert ctr.same_image(wanted, {"id": "sha256:2", "layers": ["sha256:l1", "sha256:l2"]})
    assert not ctr.same_image(wanted, {"id": "sha256:2", "layers": ["sha256:l1"]})
    assert not ctr.same_image(wanted, {})
    identity = ctr.image_identity({"Id": "sha256:1", "RootFS": {"Layers": ["sha256:l1"]}, "RepoTags": ["app:1"]})
    assert identity == {"id": "sha256:1", "layers": ["sha256:l1"], "tags": ["app:1"]}
