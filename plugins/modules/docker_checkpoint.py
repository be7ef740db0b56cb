#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_checkpoint
short_description: CRIU checkpoints of Docker containers, versioned, stored, pruned and restored
version_added: 0.1.0
description:
  - Takes a CRIU checkpoint of a running container (leaving it running, or stopping it), named or as a timestamped
    version, and keeps the newest O(keep) versions.
  - Versions live in the engine (what C(docker checkpoint ls) shows), or, with O(store_path), in a checkpoint store on
    shared storage, each with a manifest (container configuration, image, CRIU version, kernel, time, sizes, checksums),
    as a directory, an archive, or de-duplicated content-addressed pages.
  - O(state=absent) removes versions, O(state=query) lists them (with their validity and the host's CRIU capabilities),
    O(state=restored) restores one, creating the container from the manifest when the engine does not have it (a failover
    to another engine).
  - The Engine API's experimental checkpoint endpoints are used, or, with O(method=runc), runc and CRIU directly on the
    engine's host, which freezes the container far shorter (no copying through containerd).
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._docker
  - streamops.day2._attributes
  - streamops.day2._attributes.ACTIONGROUP_DOCKER
attributes:
  check_mode:
    support: full
    details: Inspects the container, the versions and (for a new checkpoint) CRIU, and reports what would be created, pruned or restored.
  diff_mode:
    support: full
    details: The version names before and after, or the container's running state for O(state=restored).
  idempotent:
    support: partial
    details:
      - A named checkpoint that exists, O(state=absent) of what is gone and O(state=restored) of a running container change nothing.
      - Without O(name) each run is a new version, unless the newest one is younger than O(interval).
options:
  container:
    description:
      - Name or id of the container. With O(store_path), versions are filed under the container's name.
      - Like every name that becomes a path, it is checked before anything is done; a name is 1 to 128 ASCII letters,
        digits, C(_), C(.) or C(-), starting with a letter or digit (one leading C(/), as Docker prints names, is dropped).
    type: str
    required: true
  state:
    description:
      - V(present) takes a checkpoint (unless O(name) exists, or the newest version is younger than O(interval)), then prunes.
      - V(absent) removes version O(name), or every version named with O(prefix) when O(name) is not given.
      - V(query) lists versions and never changes anything (an info mode, C(changed) is always false).
      - V(restored) makes the container run from version O(name) (default the newest valid one); nothing happens when it runs.
        From a store, a version taken before the container moved to another engine (the store's home record, written by every
        checkpoint, restore and migration naming the store) is refused unless O(force), with the reason.
    type: str
    choices: [present, absent, query, restored]
    default: present
  name:
    description:
      - Name of the checkpoint (version), 1 to 128 ASCII letters, digits, C(_), C(.) or C(-), starting with a letter or digit.
        Any other name (C(..), a C(/), a NUL, a newline, non-ASCII letters) is refused before the container is touched.
      - With O(state=present) and no name, a timestamped version C(<prefix><UTC time>) is created, for example C(ckpt-20250101T120000.250Z).
      - With O(state=restored), V(latest) or no name means the newest version that passes verification.
    type: str
  prefix:
    description:
      - Prefix of timestamped versions; O(keep), O(interval) and O(state=absent) without O(name) only touch versions named with it.
      - Empty, or letters, digits, C(_), C(.) or C(-) starting with a letter or digit, at most 108 characters (so that
        C(<prefix><UTC time>) is a valid name).
    type: str
    default: ckpt-
  leave_running:
    description: Leave the container running after the checkpoint (true), or stop it (false, as C(docker checkpoint create) does by default).
    type: bool
    default: true
  keep:
    description: Keep the newest N versions named with O(prefix) and remove older ones; V(0) keeps all.
    type: int
    default: 0
  interval:
    description:
      - Seconds. With O(state=present) and no O(name), no new version is taken while the newest one is younger than this.
      - Makes a frequently scheduled run (cron, AWX schedule) take versions at this pace, and a repeated run report no change.
    type: int
    default: 0
  store_path:
    description:
      - Directory of a checkpoint store (created when missing). Without it, versions live in the engine.
      - It must be at the same path on this host and on the engine's host (shared storage such as NFS, or the same host),
        because the engine writes the checkpoint there.
      - A run that fails after the dump (the store full, for example) removes what it wrote into the store, that is the dump,
        the image archive, the container's folder and the store itself when it made them.
    type: path
  store_format:
    description:
      - How a version is kept in the store. V(directory) keeps CRIU's files as they are (fastest to restore),
        V(archive) one tar file, V(dedup) content-addressed 4 KiB pages shared by all versions and containers of the store
        (least space for many versions; see the collection's docs/checkpoint.md for measurements).
    type: str
    choices: [directory, archive, dedup]
    default: directory
  compress:
    description:
      - Compress archives (gzip), for O(store_format=archive) only. Slow for memory that does not compress (about 20 MB/s
        for random data); de-duplicated pages are kept raw so a restore reads any page directly.
    type: bool
    default: false
  store_image:
    description:
      - Keep a C(docker save) of the container's image in the store (once per image), so a failover can load it into an
        engine that lacks it.
    type: bool
    default: true
  method:
    description:
      - How the checkpoint is taken. V(engine) calls the Engine API (works with a remote engine).
      - V(runc) runs C(runc checkpoint) with the engine's runc state on this host (the module must run on the engine's host);
        CRIU writes straight to the destination, the container is frozen for CRIU's dump only, and CRIU's statistics are returned.
      - V(auto) uses V(runc) when the container's runc state is on this host, else V(engine).
    type: str
    choices: [auto, engine, runc]
    default: auto
  criu_path:
    description:
      - The CRIU binary the engine's runc uses, checked (version, C(criu check)) before a checkpoint when the engine is on this
        host, and given to runc by O(method=runc).
      - Defaults to the environment variable E(CRIU_BIN), then C(criu) on PATH.
    type: path
  runc_path:
    description:
      - The runc binary of the engine (for O(method=runc)), a path or a name looked up on PATH.
      - Checked before anything is done, in check mode too; with O(method=auto) a missing one makes the checkpoint go through
        the Engine API, with a warning.
    type: path
    default: runc
  runc_root:
    description: runc's state directory of the engine (for O(method=runc)); found from the container's shim when not given.
    type: path
  data_root:
    description: The engine's data root as seen from this host; defaults to the one the engine reports (C(docker info)).
    type: path
  work_dir:
    description: Where an archive or de-duplicated version is rebuilt for a restore (a temporary directory inside it); system default when not set.
    type: path
  link_pages:
    description:
      - For O(state=restored) from a store, link CRIU's page files into the engine's checkpoint folder instead of copying them,
        which saves the engine copying them twice; a failed restore is retried once with copies.
    type: bool
    default: true
  verify:
    description:
      - Check versions against their manifests' checksums, for O(state=query) (each version gets C(valid)) and for
        O(state=restored) (damaged versions are skipped when looking for the newest valid one).
    type: bool
    default: true
  verify_seconds:
    description: After a restore, the container must stay running this long for the task to succeed.
    type: float
    default: 1.0
  force:
    description:
      - With O(state=restored), replace another container that has the container's name on the engine.
      - With O(state=restored) from a store, also restore a version taken before the container moved (by a migration or a
        restore) to another engine, which is otherwise refused because the copy there holds newer state.
    type: bool
    default: false
notes:
  - The engine must run with C(--experimental), and CRIU must be installed on the engine's host (CRIU 3.11 or newer that passes C(criu check)).
  - A restore reads the checkpoint from inside the engine's data root, so O(state=restored) runs on the engine's host.
  - Checkpoints hold the processes' memory and state, not the container's volumes or its writable layer; see docs/checkpoint.md.
requirements:
  - CRIU >= 3.11 on the engine's host
seealso:
  - module: streamops.day2.docker_container_migrate
  - name: CRIU
    description: Checkpoint/Restore In Userspace.
    link: https://criu.org/Docker
"""

EXAMPLES = r"""
- name: Checkpoint a container into the shared store, keep the last 5 versions (new one at most every 10 minutes)
  streamops.day2.docker_checkpoint:
    container: counter
    store_path: /shared/checkpoints
    keep: 5
    interval: 600

- name: A named checkpoint kept by the engine, stopping the container (like docker checkpoint create)
  streamops.day2.docker_checkpoint:
    container: counter
    name: before-upgrade
    leave_running: false
    docker_host: unix:///var/run/docker.sock

- name: De-duplicated versions (space grows with what changed between them)
  streamops.day2.docker_checkpoint:
    container: cache
    store_path: /shared/checkpoints
    store_format: dedup
    keep: 24

- name: List versions with their validity, and the host's CRIU capabilities
  streamops.day2.docker_checkpoint:
    container: counter
    store_path: /shared/checkpoints
    state: query
  register: versions

- name: Restore the newest valid version on another engine (failover)
  streamops.day2.docker_checkpoint:
    container: counter
    store_path: /shared/checkpoints
    state: restored
    docker_host: unix:///run/engine-b/docker.sock

- name: Remove every timestamped version
  streamops.day2.docker_checkpoint:
    container: counter
    store_path: /shared/checkpoints
    state: absent
"""

RETURN = r"""
checkpoint:
  description: The version created (or that would be), found, or restored.
  returned: when one was created, named or restored
  type: dict
  sample: {name: ckpt-20250101T120000.250Z, location: store, format: directory, size: 16613376, freeze_seconds: 0.21}
versions:
  description: Versions of the container after the task, newest first (with O(state=query) and O(verify), each with C(valid) and C(problems)).
  returned: always
  type: list
  elements: dict
  sample: [{name: ckpt-20250101T120000.250Z, created: "2025-01-01T12:00:00.250000+00:00", size: 16613376, location: store}]
latest:
  description: The newest version (O(state=query)).
  returned: when O(state=query)
  type: dict
removed:
  description: Names of the versions removed (or that would be).
  returned: when O(state=present) or O(state=absent)
  type: list
  elements: str
container:
  description: The container on the engine after the task (C(exists), C(running), C(id), C(image), C(status), C(pid)).
  returned: always
  type: dict
engine:
  description: The engine (O(state=query)); C(reachable=false) and C(error) when it does not answer and a store is listed.
  returned: when O(state=query)
  type: dict
capabilities:
  description:
    - CRIU on this host (path, version, C(check_ok)) and the kernel features it reports (C(mem_dirty_track) for pre-dump,
      C(uffd)/C(uffd-noncoop) for lazy pages), with C(pre_dump) saying whether incremental dumps are possible.
  returned: when O(state=query)
  type: dict
timings:
  description:
    - Seconds. C(checkpoint_seconds) is the whole checkpoint call; C(freeze_seconds) the time CRIU kept the container frozen
      (known with O(method=runc), null through the engine); C(store_seconds) writing the version into the store;
      C(restore_seconds) the restore call.
  returned: when a checkpoint was taken or restored
  type: dict
  sample: {checkpoint_seconds: 0.52, freeze_seconds: 0.38, store_seconds: 0.31}
criu_stats:
  description: CRIU's dump statistics (O(method=runc)); times in seconds, page counts.
  returned: when a checkpoint was taken
  type: dict
  sample: {frozen_time: 0.38, memdump_time: 0.22, memwrite_time: 0.18, pages_written: 66725}
restore:
  description: How a restore from the store went (C(mode) link or copy, C(bytes_rebuilt), C(image_bytes) loaded).
  returned: when a version was restored from a store
  type: dict
criu:
  description: The CRIU that was checked before the checkpoint (C(path), C(version), C(check_ok)).
  returned: when a checkpoint was taken on an engine of this host
  type: dict
skipped_reason:
  description: Why no new version was taken (the newest is younger than O(interval)).
  returned: when O(interval) held a new version back
  type: str
skipped_versions:
  description: Newer versions passed over as damaged when looking for the newest valid one (C(name), C(problems)).
  returned: when O(state=restored) from a store without O(name)
  type: list
  elements: dict
collected:
  description: De-duplicated page packs deleted because no version uses them any more (C(packs), C(bytes)).
  returned: when versions of the dedup format were pruned
  type: dict
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["checkpoint container counter as ckpt-20250101T120000.250Z into the store /shared/checkpoints (directory), leaving it running, by runc"]
home:
  description:
    - The store's record of where the container last ran (C(engine), C(engine_id), C(how) V(checkpoint), V(restore) or
      V(migration), C(since), C(version), C(from_engine)); V(null) when the store has none.
  returned: with O(store_path), when O(state=query) or O(state=restored)
  type: dict
  sample: {engine: "unix:///run/engine-b/docker.sock", how: migration, since: "2025-01-01T12:00:00+00:00", from_engine: "unix:///run/engine-a/docker.sock"}
msg:
  description:
    - One line saying what was (or would be) done, for the play's output, for example
      C(Took version ckpt-20250101T120000.250Z of counter into the store /shared/checkpoints (frozen 0.21s, 16.6 MB); 5 versions kept.)
      or C(Restored counter on unix:///run/engine-b/docker.sock from version ... in 0.80s.).
  returned: when O(state=present) or O(state=restored)
  type: str
location:
  description: Where the versions live, V(engine) or V(store).
  returned: always
  type: str
diff:
  description: Version names before and after (or the container's running state for O(state=restored)).
  returned: when run with C(--diff)
  type: dict
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.streamops.day2.plugins.module_utils._docker import DockerModule
from ansible_collections.streamops.day2.plugins.module_utils._criu.checkpoint import run


def main():
    module = DockerModule(
        argument_spec=dict(
            container=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent", "query", "restored"]),
            name=dict(type="str"),
            prefix=dict(type="str", default="ckpt-"),
            leave_running=dict(type="bool", default=True),
            keep=dict(type="int", default=0),
            interval=dict(type="int", default=0),
            store_path=dict(type="path"),
            store_format=dict(type="str", default="directory", choices=["directory", "archive", "dedup"]),
            compress=dict(type="bool", default=False),
            store_image=dict(type="bool", default=True),
            method=dict(type="str", default="auto", choices=["auto", "engine", "runc"]),
            criu_path=dict(type="path", fallback=(env_fallback, ["CRIU_BIN"])),
            runc_path=dict(type="path", default="runc"),
            runc_root=dict(type="path"),
            data_root=dict(type="path"),
            work_dir=dict(type="path"),
            link_pages=dict(type="bool", default=True),
            verify=dict(type="bool", default=True),
            verify_seconds=dict(type="float", default=1.0),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.params["keep"] < 0 or module.params["interval"] < 0:
        module.fail_json(msg="keep and interval must be 0 or more.")
    if module.params["compress"] and module.params["store_format"] != "archive":
        module.fail_json(msg="compress applies to store_format=archive only.")
    module.run(run)


if __name__ == "__main__":
    main()
