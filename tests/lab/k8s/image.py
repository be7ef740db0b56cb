"""Write a docker-save style image tar that `ctr images import` accepts, without any engine.

    image.py OUT.tar --tag REF --layer TAR_OR_DIR [--layer ...] [--entrypoint JSON] [--cmd JSON]
             [--env K=V ...] [--workdir DIR]

Each --layer is an existing tar file (used as it is) or a directory (tarred, numeric owners,
sorted names, fixed mtimes, so the same content always gives the same layer digest). The result
holds manifest.json, the image config and one `<digest>/layer.tar` per layer, in that order.
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

CHUNK = 1 << 20


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def tar_directory(src, dest):
    """Tar the contents of src (paths relative to it) reproducibly into dest."""

    def reset(info):
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(src):
            dirs.sort()
            for name in sorted(dirs + files):
                full = os.path.join(top, name)
                tar.add(full, arcname=os.path.relpath(full, src), recursive=False, filter=reset)


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--tag", required=True, help="e.g. streamops-lab/consumer:1")
    parser.add_argument("--layer", action="append", required=True)
    parser.add_argument("--entrypoint", type=json.loads)
    parser.add_argument("--cmd", type=json.loads)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--workdir", default="/")
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix=".image-", dir=os.path.dirname(os.path.abspath(args.out)))
    try:
        layers = []  # (path, digest, size)
        for index, layer in enumerate(args.layer):
            if os.path.isdir(layer):
                path = os.path.join(work, "layer-%d.tar" % index)
                tar_directory(layer, path)
            else:
                path = layer
            layers.append((path, sha256_of(path), os.path.getsize(path)))

        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Env": args.env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "WorkingDir": args.workdir,
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + digest for unused, digest, unused2 in layers]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/lab/k8s/image.py"}
                        for unused in layers],
        }
        if args.entrypoint is not None:
            config["config"]["Entrypoint"] = args.entrypoint
        if args.cmd is not None:
            config["config"]["Cmd"] = args.cmd
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        manifest = [{
            "Config": config_name,
            "RepoTags": [args.tag],
            "Layers": ["%s/layer.tar" % digest for unused, digest, unused2 in layers],
        }]

        tmp_out = args.out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
            add_bytes(tar, config_name, config_bytes)
            for path, digest, size in layers:
                info = tarfile.TarInfo("%s/layer.tar" % digest)
                info.size = size
                info.mode = 0o644
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
        os.replace(tmp_out, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
