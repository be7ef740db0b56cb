#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_container_migrate
short_description: Move a running container to another Docker engine by CRIU checkpoint, transfer and restore
version_added: 0.1.0
description:
  - Moves a running container from the engine given by the connection options (the source) to the engine in O(target),
    with its processes' state (memory, counters, open files) kept.
  - Before the container is frozen, its image is put on the target (streamed C(docker save)/C(docker load) when the target
    lacks it; an image with the same layers counts as the same) and the container is created there with the same
    configuration.
  - Then the container is checkpointed on the source (stopping it there), the files it changed in its writable layer are
    copied, the checkpoint is placed where the target engine restores from, and the container is restored on the target and
    must keep running for O(verify_seconds). Only then is it removed from the source.
  - If the restore fails, the target's container is removed and the container is brought back on the source (from the same
    checkpoint when possible, else by a plain start), and the task fails saying which.
  - Reports the freeze time, the downtime, the bytes moved and where the time went.
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._docker
  - streamops.day2._attributes
  - streamops.day2._attributes.ACTIONGROUP_DOCKER
attributes:
  check_mode:
    support: full
    details: Checks both engines, CRIU, the image and the networks, and lists the steps a run would take.
  diff_mode:
    support: full
    details: The engine the container runs on, before and after.
  idempotent:
    support: full
    details: A container already running on the target (and not on the source) is left alone.
options:
  container:
    description: Name (or id) of the container on the source engine; it keeps its name on the target.
    type: str
    required: true
  target:
    description: The engine to move the container to.
    type: dict
    required: true
    suboptions:
      docker_host:
        description: URL of the target engine's API, for example V(unix:///run/engine-b/docker.sock).
        type: str
        required: true
        aliases: [docker_url]
      tls:
        description: Use TLS to talk to the target engine.
        type: bool
        default: false
      validate_certs:
        description: Verify the target engine's certificate.
        type: bool
        default: false
        aliases: [tls_verify]
      ca_path:
        description: CA certificate of the target engine.
        type: path
        aliases: [ca_cert]
      client_cert:
        description: Client certificate for the target engine.
        type: path
      client_key:
        description: Client key for the target engine.
        type: path
      timeout:
        description: Seconds to wait for one answer from the target engine (a restore is one answer).
        type: int
        default: 60
      data_root:
        description: The target engine's data root as seen from this host; defaults to the one it reports.
        type: path
  method:
    description:
      - How the checkpoint is taken on the source. V(runc) calls runc and CRIU directly with the source engine's runc state
        (the module runs on the source engine's host), so CRIU writes straight into O(transfer_dir) and the container is frozen
        for CRIU's dump only. V(engine) uses the Engine API, which copies the checkpoint through containerd (about 20 s per GB
        frozen). V(auto) picks V(runc) when possible.
    type: str
    choices: [auto, engine, runc]
    default: auto
  transfer_dir:
    description:
      - Directory the checkpoint is written to and restored from (a private folder inside it, removed afterwards).
      - Both engines' hosts and this one must see it at this path; with two hosts, shared storage (NFS). With both engines on
        this host, a tmpfs (V(/dev/shm)) makes the freeze shortest.
      - Defaults to the system's temporary directory. When given it must exist and be writable (checked before anything is
        done, in check mode too).
    type: path
  image_transfer:
    description: Copy the image to the target (save/load) when it lacks it; when false a missing image is an error.
    type: bool
    default: true
  rootfs_changes:
    description:
      - Copy the files the container added or changed in its writable layer (C(docker diff)) into the target's container
        before the restore, so files the processes have open exist there. Deletions cannot be replayed and are reported.
    type: bool
    default: true
  pre_dump:
    description:
      - Take one pre-copy round (C(criu pre-dump)) while the container still runs, so the final dump writes only the pages
        changed since. Needs O(method=runc) and soft-dirty page tracking in the kernel (C(criu check --feature
        mem_dirty_track)); where either is missing it is skipped with a warning (it is never tried without the feature).
    type: bool
    default: false
  link_pages:
    description:
      - Link CRIU's page files into the target engine's checkpoint folder instead of copying them (the engine then does not
        copy them through containerd twice). A failed restore with links is retried once with copies.
    type: bool
    default: true
  remove_source:
    description: Remove the container from the source engine once it runs on the target; when false it is left there, stopped.
    type: bool
    default: true
  verify_seconds:
    description: The restored container must keep running this long before the migration counts as done.
    type: float
    default: 2.0
  store_path:
    description:
      - The checkpoint store the container's versions are kept in (the one of M(streamops.day2.docker_checkpoint) and the
        C(container_checkpoint) role; created when missing). The move is recorded there (the container's home is now the target),
        so a failover never brings back a version taken before the move on another engine without C(force).
      - Without it nothing records the move; the C(container_failover) role then relies on the container it finds on the
        engines that answer.
    type: path
  keep_checkpoint:
    description: Keep the checkpoint in O(transfer_dir) afterwards (its path is returned).
    type: bool
    default: false
  force:
    description: Replace a stopped container of the same name on the target.
    type: bool
    default: false
  criu_path:
    description: The CRIU binary of the engines' host. Defaults to the environment variable E(CRIU_BIN), then C(criu) on PATH.
    type: path
  runc_path:
    description: The runc binary of the source engine (for O(method=runc)); checked before anything is done, in check mode too.
    type: path
    default: runc
  runc_root:
    description: runc's state directory of the source engine; found from the container's shim when not given.
    type: path
notes:
  - Runs on the target engine's host (the checkpoint must be placed inside its data root); the source engine may be remote
    with O(method=engine) and a shared O(transfer_dir).
  - Both engines need C(--experimental) and CRIU. TCP connections of the container are not kept (its IP address changes);
    local volumes are not moved. See the collection's docs/checkpoint.md for measurements and limits.
requirements:
  - CRIU >= 3.11 on the engines' hosts
seealso:
  - module: streamops.day2.docker_checkpoint
"""

EXAMPLES = r"""
- name: Move the counter from engine A to engine B
  streamops.day2.docker_container_migrate:
    container: counter
    docker_host: unix:///run/engine-a/docker.sock
    target:
      docker_host: unix:///run/engine-b/docker.sock
  register: moved

- name: Report how long it was frozen
  ansible.builtin.debug:
    msg: "frozen {{ moved.timings.freeze_seconds }} s, down {{ moved.timings.downtime_seconds }} s, {{ moved.bytes.transferred }} bytes"

- name: Two hosts, the checkpoint through shared storage, the source checkpointed through its API
  streamops.day2.docker_container_migrate:
    container: cache
    docker_host: tcp://engine-a.example.com:2376
    tls: true
    validate_certs: true
    method: engine
    transfer_dir: /shared/migrations
    target:
      docker_host: unix:///var/run/docker.sock
  delegate_to: engine-b.example.com
"""

RETURN = r"""
timings:
  description:
    - Seconds. C(freeze_seconds) is how long CRIU kept the processes frozen during the dump (known with O(method=runc)),
      C(downtime_seconds) from the freeze to the container running on the target, C(checkpoint_seconds) the dump call,
      C(restore_seconds) the restore call, C(image_seconds)/C(create_seconds) the preparation while it still ran,
      C(rootfs_seconds) copying its changed files, C(total_seconds) the whole migration.
  returned: when the container was moved
  type: dict
  sample: {freeze_seconds: 0.41, downtime_seconds: 1.35, checkpoint_seconds: 0.52, restore_seconds: 0.79, total_seconds: 3.2}
bytes:
  description:
    - Bytes of the checkpoint (C(checkpoint), of which C(pages)), of the image transferred (C(image)), of the changed files
      (C(rootfs)), their sum (C(transferred)), and copied into the target engine (C(copied_into_engine)).
  returned: when the container was moved
  type: dict
  sample: {checkpoint: 201987072, pages: 201326592, image: 0, rootfs: 0, transferred: 201987072, copied_into_engine: 660000}
criu_stats:
  description: CRIU's dump statistics (O(method=runc)), times in seconds.
  returned: when the container was moved by runc
  type: dict
method:
  description: How the checkpoint was (or would be) taken, V(runc) or V(engine).
  returned: when a migration was planned
  type: str
restore:
  description: How the restore went (C(mode) link or copy, C(link_error) when links failed and copies were used).
  returned: when the container was moved
  type: dict
pre_dump:
  description: Whether a pre-dump was used, or why not.
  returned: when O(pre_dump=true)
  type: dict
rootfs_changes:
  description: Paths copied from the writable layer (C(copied)) and deletions not replayed (C(deleted)).
  returned: when the container was moved with O(rootfs_changes)
  type: dict
source:
  description: The container on the source engine after the task (C(exists=false) once removed).
  returned: always
  type: dict
target:
  description: The container on the target engine after the task.
  returned: always
  type: dict
actions:
  description: The steps taken (or that would be taken in check mode), in order.
  returned: always
  type: list
  elements: str
rolled_back:
  description:
    - True when the migration failed after the container had stopped on the source and was brought back there; C(msg)
      says whether from the same checkpoint (state kept) or by a plain start.
  returned: when the migration failed after the checkpoint
  type: bool
msg:
  description:
    - >-
      The move in one line (for example C(Moved counter from A to B by runc: frozen 0.41s, down 1.35s, 202.0 MB moved, 3.20s in all.)),
      why nothing was done (the container already runs on the target), or what failed and how it was undone.
  returned: always
  type: str
home:
  description: The store's record of where the container now runs (C(engine), C(how=migration), C(since), C(from_engine)).
  returned: when the container was moved with O(store_path)
  type: dict
checkpoint_path:
  description: Where the checkpoint was kept (O(keep_checkpoint)).
  returned: when O(keep_checkpoint=true) and the container was moved
  type: str
diff:
  description: The engine the container runs on, before and after.
  returned: when run with C(--diff)
  type: dict
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.streamops.day2.plugins.module_utils._docker import DockerModule, connection_suboptions
from ansible_collections.streamops.day2.plugins.module_utils._criu.migrate import run


def main():
    module = DockerModule(
        argument_spec=dict(
            container=dict(type="str", required=True),
            target=dict(type="dict", required=True, options=connection_suboptions(data_root=dict(type="path"))),
            method=dict(type="str", default="auto", choices=["auto", "engine", "runc"]),
            transfer_dir=dict(type="path"),
            image_transfer=dict(type="bool", default=True),
            rootfs_changes=dict(type="bool", default=True),
            pre_dump=dict(type="bool", default=False),
            link_pages=dict(type="bool", default=True),
            remove_source=dict(type="bool", default=True),
            verify_seconds=dict(type="float", default=2.0),
            store_path=dict(type="path"),
            keep_checkpoint=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            criu_path=dict(type="path", fallback=(env_fallback, ["CRIU_BIN"])),
            runc_path=dict(type="path", default="runc"),
            runc_root=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    module.run(run)


if __name__ == "__main__":
    main()
