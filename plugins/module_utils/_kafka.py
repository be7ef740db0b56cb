# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Kafka connection helper every Kafka module uses (private: may change without notice).

confluent-kafka (librdkafka) is the client for data-path and most admin calls: it is fast and
well kept.  kafka-python is used only for the admin APIs librdkafka lacks (partition
reassignments, log dirs, leader election by partition list); both are configured here from the
same options so a module never builds a client by hand.
"""

from __future__ import annotations

import concurrent.futures
import copy
import os
import re
import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.streamops.day2.plugins.module_utils._common import OperationError, StreamopsModule

try:
    import confluent_kafka
    from confluent_kafka.admin import AdminClient
    CONFLUENT_IMPORT_ERROR = None
except ImportError:
    confluent_kafka = AdminClient = None
    CONFLUENT_IMPORT_ERROR = traceback.format_exc()

# kafka-python is imported on first use, not here: it serves only the few admin APIs librdkafka lacks, and importing
# it costs more than a whole lag query's Kafka requests (about 0.15 s of every module start), so kafka_lag_info and
# kafka_topic never load it. load_kafka_python() imports it; KAFKA_PYTHON_IMPORT_ERROR is still importable (see
# __getattr__ below) for modules that check it up front.
_KAFKA_PYTHON = {}


def load_kafka_python():
    """(the kafka-python package or None, the import traceback or None), imported once, on first call."""
    if not _KAFKA_PYTHON:
        try:
            import kafka
            _KAFKA_PYTHON.update(module=kafka, error=None)
        except ImportError:
            _KAFKA_PYTHON.update(module=None, error=traceback.format_exc())
    return _KAFKA_PYTHON["module"], _KAFKA_PYTHON["error"]


def __getattr__(name):
    """KAFKA_PYTHON_IMPORT_ERROR and kafka_python, computed when first asked for (PEP 562)."""
    if name == "KAFKA_PYTHON_IMPORT_ERROR":
        return load_kafka_python()[1]
    if name == "kafka_python":
        return load_kafka_python()[0]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


KAFKA_CONNECTION_SPEC = dict(
    bootstrap_servers=dict(type="list", elements="str", fallback=(env_fallback, ["KAFKA_BOOTSTRAP_SERVERS"])),
    security_protocol=dict(type="str", default="PLAINTEXT",
                           choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
    sasl_mechanism=dict(type="str", default="PLAIN", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
    sasl_username=dict(type="str", fallback=(env_fallback, ["KAFKA_SASL_USERNAME"])),
    sasl_password=dict(type="str", no_log=True, fallback=(env_fallback, ["KAFKA_SASL_PASSWORD"])),
    ssl_cafile=dict(type="path"),
    ssl_certfile=dict(type="path"),
    ssl_keyfile=dict(type="path"),
    ssl_key_password=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True),
    client_id=dict(type="str", default="streamops.day2"),
    request_timeout=dict(type="float", default=30.0),
)


def kafka_argument_spec(**module_options):
    """The module's own options plus the shared connection options (deep-copied)."""
    spec = copy.deepcopy(KAFKA_CONNECTION_SPEC)
    spec.update(module_options)
    return spec


def _server_list(params):
    return [s.strip() for s in params.get("bootstrap_servers") or [] if s and s.strip()]


def _servers(params):
    return ",".join(_server_list(params))


SSL_FILES = (("ssl_cafile", "the CA certificates"), ("ssl_certfile", "the client certificate"), ("ssl_keyfile", "the client key"))


def check_connection_params(params):
    """What is wrong with the connection options, found before connecting: (error sentence or None, [warnings])."""
    warnings = []
    if not _server_list(params):
        return ("bootstrap_servers is empty: give the brokers as host:port (or set the environment variable "
                "KAFKA_BOOTSTRAP_SERVERS)."), warnings
    protocol = params["security_protocol"]
    for key, what in SSL_FILES:
        path = params.get(key)
        if not path:
            continue
        if not _uses_ssl(params):
            warnings.append("%s is ignored with security_protocol=%s (only SSL and SASL_SSL use it)." % (key, protocol))
        elif not os.path.isfile(path):
            return "%s %s (%s) does not exist or is not a file." % (key, path, what), warnings
        elif not os.access(path, os.R_OK):
            return "%s %s (%s) is not readable." % (key, path, what), warnings
    if _uses_ssl(params) and bool(params.get("ssl_certfile")) != bool(params.get("ssl_keyfile")):
        return "ssl_certfile and ssl_keyfile go together (a client certificate needs its key).", warnings
    if _uses_sasl(params):
        missing = [key for key in ("sasl_username", "sasl_password") if not params.get(key)]
        if missing:
            return ("security_protocol=%s needs %s (or the environment variable%s %s)." % (
                protocol, " and ".join(missing), "s" if len(missing) > 1 else "",
                " and ".join("KAFKA_" + key.upper() for key in missing))), warnings
    else:
        given = [key for key in ("sasl_username", "sasl_password") if params.get(key)]
        if given:
            warnings.append("%s %s ignored with security_protocol=%s (only SASL_PLAINTEXT and SASL_SSL use %s)." % (
                " and ".join(given), "is" if len(given) == 1 else "are", protocol, "it" if len(given) == 1 else "them"))
    return None, warnings


def _uses_sasl(params):
    return params["security_protocol"].startswith("SASL")


def _uses_ssl(params):
    return params["security_protocol"].endswith("SSL")


def confluent_config(params, **extra):
    """librdkafka configuration from the shared connection options."""
    conf = {
        "bootstrap.servers": _servers(params),
        "security.protocol": params["security_protocol"].lower(),
        "client.id": params["client_id"],
        "socket.timeout.ms": int(params["request_timeout"] * 1000),
    }
    if _uses_sasl(params):
        conf.update({
            "sasl.mechanism": params["sasl_mechanism"],
            "sasl.username": params["sasl_username"] or "",
            "sasl.password": params["sasl_password"] or "",
        })
    if _uses_ssl(params):
        optional = {
            "ssl.ca.location": params["ssl_cafile"],
            "ssl.certificate.location": params["ssl_certfile"],
            "ssl.key.location": params["ssl_keyfile"],
            "ssl.key.password": params["ssl_key_password"],
        }
        conf.update({k: v for k, v in optional.items() if v})
        conf["enable.ssl.certificate.verification"] = params["validate_certs"]
        conf["ssl.endpoint.identification.algorithm"] = "https" if params["validate_certs"] else "none"
    conf.update(extra)
    return conf


def kafka_python_config(params):
    """kafka-python configuration from the same shared connection options."""
    conf = dict(
        bootstrap_servers=_server_list(params),
        security_protocol=params["security_protocol"],
        client_id=params["client_id"],
        request_timeout_ms=int(params["request_timeout"] * 1000),
    )
    if _uses_sasl(params):
        conf.update(sasl_mechanism=params["sasl_mechanism"],
                    sasl_plain_username=params["sasl_username"],
                    sasl_plain_password=params["sasl_password"])
    if _uses_ssl(params):
        conf.update(ssl_cafile=params["ssl_cafile"], ssl_certfile=params["ssl_certfile"],
                    ssl_keyfile=params["ssl_keyfile"], ssl_password=params["ssl_key_password"],
                    ssl_check_hostname=params["validate_certs"])
    return conf


class KafkaError(OperationError):
    """A Kafka failure worth one clear sentence to the user (no traceback)."""


class _LogCollector:
    """A logger for librdkafka: keeps its messages instead of printing them to stderr,
    so a failure can quote the broker-level cause (e.g. 'Connection refused')."""

    def __init__(self):
        self.lines = []

    def log(self, level, msg, *args, **kwargs):
        self.lines.append(msg % args if args else msg)

    debug = info = warning = error = critical = exception = log

    def last_cause(self):
        for line in reversed(self.lines):
            if "failed" in line.lower() or "error" in line.lower():
                return line.split(": ", 1)[-1].strip()
        return None


# TLS alerts a broker sends when it requires a client certificate (ssl.client.auth=required) and gets none or one it
# does not trust; OpenSSL names them so in librdkafka's errors.
CLIENT_CERTIFICATE_ALERTS = ("alert bad certificate", "alert certificate required", "alert unknown ca", "alert certificate unknown")

# Kafka's authorization errors (ACLs): the request reached the brokers, the principal lacks a right.
AUTHORIZATION_ERRORS = ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
                        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "DELEGATION_TOKEN_AUTHORIZATION_FAILED")

# How long a refused connection is retried at start-up before it counts: a broker restarting takes a moment.
REFUSED_GRACE_SECONDS = 2.0
CONNECT_POLL_SECONDS = 0.25


class ConnectErrors:
    """librdkafka's error callbacks while connecting, and what they say about why no broker answers.

    librdkafka reports each failed attempt (refused, unresolvable, TLS or SASL handshake refused) and, once every
    bootstrap broker failed, ALL_BROKERS_DOWN: then the cause is known and waiting out request_timeout would not help.
    """

    def __init__(self):
        self.errors = []
        self.all_down = False

    def add(self, error):
        if error.code() == confluent_kafka.KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
        else:
            self.errors.append((error.code(), error.str()))

    def verdict(self, params, elapsed):
        """One sentence on why the brokers cannot be used, once that is certain; else None."""
        if not self.all_down or not self.errors:
            return None
        code, text = self.errors[-1]
        texts = [t for unused, t in self.errors]
        protocol = params["security_protocol"]
        cause = _strip_broker(text)
        if code == confluent_kafka.KafkaError._AUTHENTICATION:
            offered = re.search(r"broker's supported mechanisms: *([\w ,-]*)", text)
            if "Request not valid in current SASL state" in text or (offered and not offered.group(1).strip()):
                return ("the brokers refused the SASL handshake, as a listener without SASL does (security_protocol=%s against a "
                        "PLAINTEXT or SSL listener?); check security_protocol and the port" % protocol)
            if offered and params["sasl_mechanism"] not in offered.group(1):
                return ("the brokers do not offer sasl_mechanism=%s (they offer %s); check sasl_mechanism"
                        % (params["sasl_mechanism"], offered.group(1).strip()))
            return ("authentication as %s failed (%s); check sasl_username, sasl_password and sasl_mechanism"
                    % (params.get("sasl_username"), cause))
        if any("connecting to a PLAINTEXT broker listener?" in t for t in texts):
            return ("the TLS handshake failed, as it does against a PLAINTEXT listener (security_protocol=%s against a PLAINTEXT "
                    "or SASL_PLAINTEXT listener?); check security_protocol and the port" % protocol)
        if any("certificate verify failed" in t for t in texts):
            return ("the brokers' certificate is not trusted (%s); check ssl_cafile (or validate_certs)"
                    % _strip_broker(next(t for t in texts if "certificate verify failed" in t)))
        refusal = next((t for t in texts if any(alert in t for alert in CLIENT_CERTIFICATE_ALERTS)), None)
        if refusal:
            alert = next(alert for alert in CLIENT_CERTIFICATE_ALERTS if alert in refusal)
            if not params.get("ssl_certfile"):
                return ("the brokers refused the TLS handshake without a client certificate (ssl/tls %s): the listener requires "
                        "one (mTLS); set ssl_certfile and ssl_keyfile" % alert)
            return ("the brokers refused the TLS handshake with the client certificate %s (ssl/tls %s); check that it is signed "
                    "by a CA the brokers trust and has not expired" % (params["ssl_certfile"], alert))
        if not _uses_sasl(params) and any("Disconnected while requesting ApiVersion" in t or "wrong security.protocol" in t for t in texts):
            return ("the brokers closed the connection before answering, as a TLS or SASL listener does to a client without them "
                    "(security_protocol=%s against an SSL or SASL listener?); check security_protocol and the port" % protocol)
        if code == confluent_kafka.KafkaError._RESOLVE:
            return "the broker address does not resolve (%s)" % cause
        if elapsed < REFUSED_GRACE_SECONDS:   # refused or dropped: a broker may be restarting; give it a moment
            return None
        if all("Connection refused" in t for t in texts):
            return "nothing listens there (every broker refused the connection)"
        return "every broker failed (the last one: %s)" % cause


def _strip_broker(text):
    """librdkafka's error text without its 'proto://host:port/id: ' prefix and '(after Nms in state X)' suffix."""
    text = re.sub(r"^\S+/(?:bootstrap|\d+): ", "", text)
    return re.sub(r" \(after \d+ms in state \w+\)$", "", text).strip()


class KafkaModule(StreamopsModule):
    """AnsibleModule with the shared Kafka options, library checks and lazily built clients."""

    def __init__(self, argument_spec, needs_kafka_python=False, **kwargs):
        super().__init__(argument_spec=kafka_argument_spec(**argument_spec), **kwargs)
        if CONFLUENT_IMPORT_ERROR:
            self.fail_json(msg=missing_required_lib("confluent-kafka"), exception=CONFLUENT_IMPORT_ERROR)
        if needs_kafka_python and load_kafka_python()[1]:
            self.fail_json(msg=missing_required_lib("kafka-python"), exception=load_kafka_python()[1])
        self.timeout = self.params["request_timeout"]
        self._log = _LogCollector()
        self._connect_errors = ConnectErrors()
        self._admin = None
        self._kp_admin = None

    @property
    def servers(self):
        return _servers(self.params)

    @property
    def admin(self):
        """confluent-kafka AdminClient, connected and checked on first use."""
        if self._admin is None:
            problem, warnings = check_connection_params(self.params)   # before any connection: no wait for a typo
            if problem:
                raise KafkaError(problem)
            for warning in warnings:
                self.warn(warning)
            self._admin = AdminClient(confluent_config(self.params, logger=self._log, error_cb=self._connect_errors.add))
            self._connect()  # fail early and clearly if the brokers can't be reached
        return self._admin

    def connection_check(self):
        """Connect (once) and fail in one sentence when the brokers cannot be used; returns the AdminClient."""
        return self.admin

    def _connect(self):
        """The first metadata request, in short slices, so a hopeless connection (refused, unresolvable, the wrong protocol
        for the listener) fails as soon as librdkafka knows every broker failed, not after request_timeout."""
        started = time.monotonic()
        deadline = started + self.timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return self._admin.list_topics(timeout=max(0.05, min(CONNECT_POLL_SECONDS, left)))
            except confluent_kafka.KafkaException as e:
                self._admin.poll(0)   # serves the error callbacks
                verdict = self._connect_errors.verdict(self.params, time.monotonic() - started)
                if verdict:
                    raise KafkaError("Cannot reach the Kafka brokers at %s: %s." % (self.servers, verdict))
                if left <= CONNECT_POLL_SECONDS:
                    raise KafkaError(self.unreachable_message(e))

    def consumer(self, **extra):
        """A confluent-kafka Consumer that never commits on its own (for offset reads)."""
        conf = confluent_config(self.params, logger=self._log, **{
            "group.id": extra.pop("group_id", "streamops.day2.reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        })
        conf.update(extra)
        return confluent_kafka.Consumer(conf)

    @property
    def kafka_python_admin(self):
        """kafka-python KafkaAdminClient, for the admin APIs librdkafka lacks."""
        if self._kp_admin is None:
            kafka_python, import_error = load_kafka_python()
            if import_error:
                raise KafkaError(missing_required_lib("kafka-python"))
            self.connection_check()   # the same quick, clear connection check first
            try:
                self._kp_admin = kafka_python.KafkaAdminClient(**kafka_python_config(self.params))
            except Exception as e:  # kafka-python raises several unrelated types here
                raise KafkaError(self.unreachable_message(e))
        return self._kp_admin

    def drop_kafka_python_admin(self):
        """Forget the kafka-python client so its next use connects afresh.

        It caches the broker it sends controller requests to and the broker list, and does not notice by
        itself that this broker went away or came back (a broker restart in the middle of a long wait).
        """
        if self._kp_admin is not None:
            try:
                self._kp_admin.close()
            except Exception:  # closing a client whose broker is gone may fail in several ways; it is dropped anyway
                pass
            self._kp_admin = None

    def metadata(self, topic=None):
        """The cluster's metadata (of one topic); a topic the principal may not Describe is an error, not an absent topic."""
        try:
            metadata = self.admin.list_topics(topic=topic, timeout=self.timeout)
        except confluent_kafka.KafkaException as e:
            raise KafkaError(self.unreachable_message(e))
        error = metadata.topics[topic].error if topic in metadata.topics else None
        if error is not None and error.name() == "TOPIC_AUTHORIZATION_FAILED":
            raise KafkaError(self.not_authorized("describe topic %s" % topic, error.name()))
        return metadata

    def refuse_hidden_topics(self, names):
        """Before calling topics unknown: fail in one sentence if the brokers only hide them from this principal."""
        for name in names:
            self.metadata(topic=name)

    def unlisted_groups_known(self, names):
        """Of consumer groups a listing lacks, those their coordinators know after all; fail in one sentence if the brokers
        only hide them from this principal. A listing is every broker's part put together, and a part can be missing (its
        answer failed, its share of __consumer_offsets changed hands): a group's coordinator has the last word."""
        futures = self.admin.describe_consumer_groups(list(names), request_timeout=self.timeout)
        known = []
        for name, future in futures.items():
            try:
                description = future.result(timeout=self.timeout)
            except confluent_kafka.KafkaException as e:
                if error_code(e) == "GROUP_AUTHORIZATION_FAILED":
                    raise KafkaError(self.not_authorized("describe consumer group %s" % name, "GROUP_AUTHORIZATION_FAILED"))
                continue   # GROUP_ID_NOT_FOUND and the like: the unknown-group sentence follows
            except concurrent.futures.TimeoutError:
                continue
            if getattr(description.state, "name", "DEAD") not in ("DEAD", "UNKNOWN"):   # a group nobody knows describes as Dead
                known.append(name)
        return known

    @property
    def principal(self):
        """Who the brokers' ACLs see, as far as the client can tell."""
        if _uses_sasl(self.params):
            return "User:%s" % self.params["sasl_username"]
        if _uses_ssl(self.params) and self.params.get("ssl_certfile"):
            return "the principal of the client certificate %s" % self.params["ssl_certfile"]
        return "the principal of this connection (security_protocol=%s)" % self.params["security_protocol"]

    def not_authorized(self, action, code):
        return ("%s is not authorized to %s (%s); grant it the ACL (docs/security.md lists what each module needs)."
                % (self.principal, action, code))

    def invisible_note(self, kind):
        """Why a listing may be empty on a cluster with ACLs: a principal sees only what it may Describe."""
        if self.params["security_protocol"] == "PLAINTEXT":
            return ""
        return " (%s sees only the %s its ACLs let it Describe)" % (self.principal, kind)

    def unreachable_message(self, error):
        cause = self._log.last_cause() or error_text(error)
        return ("Cannot reach the Kafka brokers at %s within %gs (%s); check bootstrap_servers, "
                "the security options and that the brokers are up." % (self.servers, self.timeout, cause))

    def wait_for(self, future):
        """Result of an admin future, with a Kafka error turned into one sentence."""
        try:
            return future.result(timeout=self.timeout)
        except confluent_kafka.KafkaException as e:
            raise KafkaError(self.error_text(e))
        except concurrent.futures.TimeoutError:
            raise KafkaError(self.unreachable_message("no answer from the brokers"))

    def error_text(self, error):
        """error_text, and for an authorization error who was refused and what to do."""
        code = error_code(error)
        if code in AUTHORIZATION_ERRORS:
            return ("%s is not authorized by the brokers' ACLs (%s); grant it the rights docs/security.md lists for this module"
                    % (self.principal, error_text(error)))
        return error_text(error)

    def close(self):
        if self._kp_admin is not None:
            self._kp_admin.close()


def error_code(error):
    """The Kafka error name (e.g. TOPIC_AUTHORIZATION_FAILED) of a confluent-kafka exception or error, else None."""
    if confluent_kafka is not None and isinstance(error, confluent_kafka.KafkaException) and error.args:
        error = error.args[0]
    if confluent_kafka is not None and isinstance(error, confluent_kafka.KafkaError):
        return error.name()
    return None


def error_text(error):
    """The readable part of a confluent-kafka / kafka-python error."""
    if confluent_kafka is not None and isinstance(error, confluent_kafka.KafkaException) and error.args:
        inner = error.args[0]
        if isinstance(inner, confluent_kafka.KafkaError):
            return "%s: %s" % (inner.name(), inner.str())
    return str(error) or type(error).__name__
