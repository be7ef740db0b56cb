# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection shares, whatever service it talks to (private: may change without notice)."""

from __future__ import annotations

import sys
import traceback

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule


class OperationError(Exception):
    """A failure worth one clear sentence to the user (no traceback).

    Keyword arguments are returned with the failure (for example how far a long operation got).
    """

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.result = result


class StreamopsModule(AnsibleModule):
    """AnsibleModule that runs one piece of work and turns every failure into one sentence."""

    def run(self, work):
        """Call work(self) and exit with its result dict; clients are closed whatever happens.

        The result is written out (and flushed) before the clients are closed and freed: a client library's threads
        that misbehave while shutting down (librdkafka's, kafka-python's I/O thread) can no longer cost the result.
        """
        try:
            try:
                result = work(self)
            except OperationError as e:
                self.fail_json(msg=str(e), **e.result)
            except Exception as e:  # a bug of ours or a library surprise: one line, the traceback kept apart
                self.fail_json(msg="Unexpected error: %s" % self.error_text(e), exception=traceback.format_exc())
            self.exit_json(**result)
        finally:
            self.close()

    def _return_formatted(self, kwargs):
        try:
            self._print_result(kwargs)
        finally:
            sys.stdout.flush()

    def _print_result(self, kwargs):
        # Ansible copies the whole result to mask the values of no_log options, also when none was given: a lag
        # report of 5,000 partitions spends a quarter of a second there, a third of the module process. With no
        # value to mask, that copy is the result itself, so it is skipped; with one (a password), Ansible masks.
        if self.no_log_values or not callable(getattr(basic, "remove_values", None)):
            return super()._return_formatted(kwargs)
        masking = basic.remove_values
        basic.remove_values = _nothing_to_mask
        try:
            return super()._return_formatted(kwargs)
        finally:
            basic.remove_values = masking

    def error_text(self, error):
        """The readable part of an error of this module's client library."""
        return str(error).strip() or type(error).__name__

    def close(self):
        """Release the clients the work opened."""


def _nothing_to_mask(value, no_log_strings):
    """Ansible's remove_values when there is no string to remove (the caller checks): the value as it is."""
    return value
