"""The shared Docker helper's pure parts: messages, references, connection specs (no engine contacted)."""

import pytest

from ansible_collections.streamops.day2.plugins.module_utils import _docker
from ansible_collections.streamops.day2.plugins.module_utils._docker import DockerError, Engine


def test_not_experimental_is_a_clear_error():
    engine = Engine(dict(docker_host="unix:///run/a.sock"), label="source")
    engine._info = {"ExperimentalBuild": False}
    with pytest.raises(DockerError, match=r"^The Docker engine \(source\) at unix:///run/a.sock does not run with experimental features"):
        engine.require_experimental()
    engine._info = {"ExperimentalBuild": True}
    engine.require_experimental()


def test_locality_and_unreachable_message():
    assert Engine(dict(docker_host="unix:///run/a.sock")).is_local
    assert not Engine(dict(docker_host="tcp://engine-b:2376")).is_local
    message = Engine(dict(docker_host="tcp://b:2376"), label="target").unreachable_message(OSError("Connection refused"))
    assert message == "Cannot reach the Docker engine (target) at tcp://b:2376: nothing answers at that address. Check docker_host and that the engine is up."


@pytest.mark.parametrize("ref, expected", [
    ("app:1", ("app", "1")), ("app", ("app", "latest")), ("registry:5000/team/app", ("registry:5000/team/app", "latest")),
    ("registry:5000/team/app:2", ("registry:5000/team/app", "2")), ("app@sha256:abc", ("app@sha256:abc", None)),
])
def test_split_reference(ref, expected):
    assert _docker.split_reference(ref) == expected


def test_connection_specs():
    spec = _docker.docker_argument_spec(container=dict(type="str"))
    assert set(_docker.CONNECTION_KEYS) <= set(spec) and "container" in spec
    assert "default" not in spec["docker_host"]          # DOCKER_HOST first, then the socket (Engine), as the docs say
    assert _docker.Engine({}).host == _docker.DEFAULT_DOCKER_HOST
    sub = _docker.connection_suboptions(data_root=dict(type="path"))
    assert sub["docker_host"]["required"] and "default" not in sub["docker_host"] and "fallback" not in sub["docker_host"]
    assert _docker.DOCKER_CONNECTION_SPEC["docker_host"].get("fallback")      # the shared spec was not changed
    assert _docker.connection_of(dict(docker_host="x", tls=True, other=1)) == dict(
        docker_host="x", tls=True, validate_certs=None, ca_path=None, client_cert=None, client_key=None, timeout=None)


def test_client_cert_needs_a_key():
    with pytest.raises(DockerError, match="client_cert needs client_key"):
        _docker._tls_config(dict(docker_host="tcp://b:2376", client_cert="/c.pem"))
    assert _docker._tls_config(dict(docker_host="unix:///a.sock")) is False
