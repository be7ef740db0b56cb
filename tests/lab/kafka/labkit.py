"""Small helpers for tests/lab/kafka.sh, standard library only (a fresh machine has python3
but not necessarily the repo's virtualenv, and a JVM per check would cost seconds).

  labkit.py ports N                      N free TCP ports on 127.0.0.1, one per line
  labkit.py cluster-id                   a new KRaft cluster id (Kafka's Uuid format)
  labkit.py brokers HOST:PORT            broker ids the node reports (Metadata v4), one line
  labkit.py wait-brokers ADDRS IDS SECS  until every address in ADDRS (comma list) reports
                                         every broker id in IDS (comma list) as registered
  labkit.py wait-http URL SECS [TEXT]    until URL answers 200 (and its body contains TEXT)
  labkit.py class-index OUT JAR...       names of the Kafka classes in the jars (kafka-tool)
"""
import base64
import os
import random
import socket
import struct
import sys
import time
import urllib.request
import zipfile

# Lab ports come from below Linux's ephemeral range (32768-60999): a port picked there could be
# taken by some client's outgoing connection while its broker is stopped, and the broker could
# then not get its address back on restart.
PORT_RANGE = (20000, 32000)


def free_ports(count):
    held, ports = [], []
    rng = random.SystemRandom()
    try:
        while len(ports) < count:
            port = rng.randrange(*PORT_RANGE)
            if port in ports:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)  # keep it bound so the next pick cannot return it again
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def cluster_id():
    # Kafka's Uuid.randomUuid(): 16 random bytes, URL-safe base64 without padding, and never
    # one that starts with '-' (it would look like a command-line option).
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _recv_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def broker_ids(address, timeout=3.0):
    """Broker ids in a Metadata v4 response: in KRaft only registered, unfenced brokers."""
    host, port = address.rsplit(":", 1)
    client_id = b"streamops-lab"
    # Request header v1 (api key 3 = Metadata, version 4, correlation id, client id), then
    # Metadata v4's body: an empty topic array (no topics) and allow_auto_topic_creation=false.
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id
    body += struct.pack(">i?", 0, False)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        resp = _recv_exact(sock, size)
    pos = 4 + 4  # correlation id, throttle_time_ms
    (count,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    ids = []
    for unused in range(count):
        node_id, host_len = struct.unpack_from(">ih", resp, pos)
        pos += 6 + host_len + 4  # host, port
        (rack_len,) = struct.unpack_from(">h", resp, pos)
        pos += 2 + max(rack_len, 0)
        ids.append(node_id)
    return sorted(ids)


def wait_brokers(addresses, expected, seconds):
    deadline = time.monotonic() + seconds
    last = {}
    while True:
        pending = []
        for address in addresses:
            try:
                last[address] = broker_ids(address)
            except (OSError, struct.error) as exc:
                last[address] = "no answer (%s)" % exc.__class__.__name__
            if last[address] != expected:
                pending.append(address)
        if not pending:
            return 0
        if time.monotonic() > deadline:
            for address in pending:
                print("%s: %s, want %s" % (address, last[address], expected), file=sys.stderr)
            return 1
        time.sleep(0.25)


def wait_http(url, seconds, text=None):
    deadline = time.monotonic() + seconds
    last = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                body = resp.read().decode("utf-8", "replace")
                if resp.status == 200 and (text is None or text in body):
                    return 0
                last = "HTTP %s" % resp.status
        except OSError as exc:  # URLError and HTTPError are OSErrors
            last = str(exc)
        if time.monotonic() > deadline:
            print("%s: %s" % (url, last), file=sys.stderr)
            return 1
        time.sleep(0.25)


def class_index(out, jars):
    names = set()
    for jar in jars:
        with zipfile.ZipFile(jar) as zf:
            for name in zf.namelist():
                if name.endswith(".class") and "$" not in name and (
                        name.startswith("kafka/") or name.startswith("org/apache/kafka/")):
                    names.add(name[:-6].replace("/", "."))
    with open(out + ".tmp", "w") as fh:
        fh.write("".join(n + "\n" for n in sorted(names)))
    os.replace(out + ".tmp", out)
    return 0


def main(argv):
    cmd, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if cmd == "ports":
        print("\n".join(str(p) for p in free_ports(int(args[0]))))
        return 0
    if cmd == "cluster-id":
        print(cluster_id())
        return 0
    if cmd == "brokers":
        print(" ".join(str(i) for i in broker_ids(args[0])))
        return 0
    if cmd == "wait-brokers":
        return wait_brokers(args[0].split(","), sorted(int(i) for i in args[1].split(",")),
                            float(args[2]))
    if cmd == "wait-http":
        return wait_http(args[0], float(args[1]), args[2] if len(args) > 2 else None)
    if cmd == "class-index":
        return class_index(args[0], args[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
