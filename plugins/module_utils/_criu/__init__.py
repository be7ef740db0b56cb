# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRIU checkpoint/restore of Docker containers (private: may change without notice).

- :mod:`.capability`: which CRIU, how new, does ``criu check`` pass, which kernel features (pure parsing + probes).
- :mod:`.images`: CRIU image directories: dump statistics, the restore stub with page files linked, not copied.
- :mod:`.dedup`: page-granular, content-addressed storage of checkpoint images: units, packs, indexes (pure).
- :mod:`.store`: the checkpoint store on shared storage: versions, manifests, pruning, de-duplicated page packs.
- :mod:`.runc`: the direct path: ``runc checkpoint`` of an engine's container, with its CRIU statistics.
- :mod:`.container`: the container's create body from an inspect, image matching between engines.
- :mod:`.restore`: putting a checkpoint where an engine restores from, restoring, verifying.

Everything but the last three is free of Docker, so unit tests cover it without an engine.
"""
