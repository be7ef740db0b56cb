# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection shares, whatever service it talks to (private: may change without notice)."""

from __future__ import annotations

import traceback

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
        """Call work(self) and exit with its result dict; clients are closed whatever happens."""
        try:
            result = work(self)
        except OperationError as e:
            self.fail_json(msg=str(e), **e.result)
        except Exception as e:  # a bug of ours or a library surprise: one line, the traceback kept apart
            self.fail_json(msg="Unexpected error: %s" % self.error_text(e), exception=traceback.format_exc())
        finally:
            self.close()
        self.exit_json(**result)

    def error_text(self, error):
        """The readable part of an error of this module's client library."""
        return str(error).strip() or type(error).__name__

    def close(self):
        """Release the clients the work opened."""
