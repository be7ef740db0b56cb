# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the REST clients of the collection (Kafka Connect, OpenFaaS) share (private: may change without notice)."""

from __future__ import annotations

import http.client
import socket
import ssl

from ansible.module_utils.urls import SSLValidationError


def transport_reason(error, timeout, refused_hint, disconnected_hint):
    """Why a request never got an HTTP answer, as the end of one sentence.

    refused_hint and disconnected_hint name what the user should check for that service (its port, its URL)."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, (ssl.SSLCertVerificationError, SSLValidationError)) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
        detail = getattr(reason, "verify_message", None) or "certificate verify failed"
        return ("its TLS certificate is not trusted (%s); give the CA in ca_path, or validate_certs: false for a lab "
                "with self-signed certificates" % detail)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (%s)" % refused_hint
    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve (%s)" % (reason.strerror or reason)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer within %gs (timeout)" % timeout
    if isinstance(reason, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer (%s)" % disconnected_hint
    text = " ".join(str(reason).split()).rstrip(".")
    return text or type(reason).__name__
