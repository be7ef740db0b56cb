# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker engine connection options (private: may change without notice).

Matches DOCKER_CONNECTION_SPEC in plugins/module_utils/_docker.py.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - URL of the Docker engine API, for example V(unix:///var/run/docker.sock) or V(tcp://engine-a:2376).
      - If not set, the environment variable E(DOCKER_HOST) is used, then the local socket V(unix:///var/run/docker.sock).
    type: str
    aliases: [docker_url]
  tls:
    description: Use TLS to talk to the engine (implied by O(validate_certs=true) or a client certificate).
    type: bool
    default: false
  validate_certs:
    description: Verify the engine's certificate (against O(ca_path) when given, else the system's CAs).
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description: CA certificate that signed the engine's certificate.
    type: path
    aliases: [ca_cert]
  client_cert:
    description: Client certificate for mutual TLS (needs O(client_key)).
    type: path
  client_key:
    description: Client key for mutual TLS.
    type: path
  timeout:
    description:
      - Seconds to wait for one answer from the engine.
      - A checkpoint or a restore is one answer, so this bounds them too; raise it for containers with much memory
        checkpointed through the engine (about 20 s per GB there).
    type: int
    default: 60
notes:
  - The Docker SDK for Python is used through its low-level API client; the Engine API's checkpoint endpoints are
    experimental, so the engine must run with C(--experimental).
requirements:
  - docker (the Docker SDK for Python) >= 5.0
"""
