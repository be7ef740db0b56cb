"""StreamopsModule's result: Ansible's copy that masks no_log values is skipped only when there is no value to mask
(issue 11), and the result is out before the clients are closed. Each case runs a small module in a fresh
interpreter, as Ansible runs one."""

import json
import os
import signal
import subprocess
import sys

MODULE = """
from ansible_collections.streamops.day2.plugins.module_utils._common import StreamopsModule

module = StreamopsModule(argument_spec=dict(password=dict(type="str", no_log=True), rows=dict(type="int", default=3)))
module.run(lambda m: dict(changed=False, rows=[dict(n=n, echo="said %s" % m.params["password"]) for n in range(m.params["rows"])]))
"""


def run_module(**args):
    proc = subprocess.run([sys.executable, "-c", MODULE], input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True,
                          text=True, check=False, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_a_no_log_value_is_still_masked_everywhere_in_the_result():
    result = run_module(password="s3cret-value")
    assert "s3cret-value" not in json.dumps(result)
    assert [row["echo"] for row in result["rows"]] == ["said ********"] * 3
    assert result["invocation"]["module_args"]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_without_a_no_log_value_the_result_is_returned_as_built():
    result = run_module(rows=2)
    assert result["rows"] == [dict(n=0, echo="said None"), dict(n=1, echo="said None")]
    assert result["invocation"]["module_args"] == dict(password=None, rows=2)
    assert result["changed"] is False


# A client whose shutdown kills the process: a module once died so in CI (SIGSEGV), and Ansible got no result at all.
CRASHING_CLOSE = """
import os, signal
from ansible_collections.streamops.day2.plugins.module_utils._common import StreamopsModule

class Module(StreamopsModule):
    def close(self):
        os.kill(os.getpid(), signal.SIGSEGV)

Module(argument_spec=dict(fail=dict(type="bool", default=False))).run(
    lambda m: m.fail_json(msg="It went wrong.") if m.params["fail"] else dict(changed=True, done="yes"))
"""


def test_the_result_is_out_before_a_client_shuts_down():
    for args, expected in ((dict(), dict(changed=True, done="yes")), (dict(fail=True), dict(failed=True, msg="It went wrong."))):
        proc = subprocess.run([sys.executable, "-c", CRASHING_CLOSE], input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
                              capture_output=True, text=True, check=False, env=dict(os.environ))
        assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stderr)
        result = json.loads(proc.stdout)   # what Ansible reads: the result, whatever the exit code
        assert {k: result.get(k) for k in expected} == expected, result
