"""End to end: a Kafka-staged workflow of two OpenFaaS functions, each record transformed exactly once, the functions
scaled up by the burst's lag and down to zero when it is over.

Real Kafka and Kafka Connect (FileStreamSource, FileStreamSink), real pods on two real kubelets (the step runners and
the scaler, from the faas_workflow playbook), the real OpenFaaS gateway with the lab's provider and function image.
A runner of each step is killed with SIGKILL while the records flow.

Report: .lab/reports/workflow.json (counts, kills, the replica timeline from the gateway and the scaler's decisions).
"""

from __future__ import annotations

import json
import time

import pytest

from workflow_lab import ROOT, ReplicaSampler, WorkflowLab, lab_env, missing, record

pytestmark = pytest.mark.timeout(600)
REPORTS = ROOT / ".lab" / "reports"
COUNT = 10000


@pytest.fixture(scope="module")
def env():
    env = lab_env()
    reason = missing(env)
    if reason:
        pytest.skip(reason)
    return env


def wait_for(what, check, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def test_ten_thousand_records_through_two_steps_once_with_sigkills_and_scaling_to_zero(env):
    lab = WorkflowLab(env)
    sampler = ReplicaSampler(lab.gateway, list(lab.functions.values()))
    report = {"workflow": lab.name, "records": COUNT, "steps": ["upper", "reverse"], "runners_per_step": lab.runners,
              "concurrency": lab.concurrency}
    started = time.monotonic()
    try:
        predicted = lab.playbook("present", check=True)
        assert "changed=0" not in predicted["recap"], "check mode predicted nothing for a new workflow: %s" % predicted
        assert lab.exists() == {"namespace": False, "connectors": [], "functions": []}, "check mode made something: %s" % lab.exists()
        made = lab.create()
        report["deploy"] = made
        sampler.start()
        # Nothing to do yet: the scaler idles both functions down to zero before the burst.
        wait_for("both functions at zero replicas before the burst",
                 lambda: all((sampler.now(f) or {}).get("replicas") == 0 for f in lab.functions.values()), 90)
        burst_at = time.time()
        with open(lab.input, "a") as source:
            source.write("".join(record(i) + "\n" for i in range(COUNT)))
        # Mid-stream: a runner of each step is killed while its input still has most of the burst to go.
        wait_for("the upper step to be under way", lambda: lab.committed("upper") >= 500, 120, step=0.1)
        lab.sigkill_runner("upper")
        wait_for("the reverse step to be under way", lambda: lab.committed("reverse") >= 500, 120, step=0.1)
        lab.sigkill_runner("reverse")
        wait_for("every record in the sink's file", lambda: len(lab.output_lines()) >= COUNT, 240, step=1.0)
        done_at = time.time()
        time.sleep(3)  # anything repeated would show up now
        # After the burst: idle for idle_seconds, then zero.
        wait_for("both functions back at zero replicas after the burst",
                 lambda: all((sampler.now(f) or {}).get("replicas") == 0 and sampler.timeline[f][-1]["ts"] > burst_at
                             for f in lab.functions.values()), 120)
        sampler.stop()
        decisions = lab.scaler_decisions()
        first_out = lab.runner_events("upper", "replica-available")
        report.update(lab.verdict(COUNT))
        report.update({
            "kills": lab.kills,
            "burst_to_last_record_s": round(done_at - burst_at, 2),
            "records_per_s": round(COUNT / (done_at - burst_at), 1),
            "replica_timeline": {step: [dict(p, t=round(p["ts"] - burst_at, 2)) for p in sampler.timeline[fn]]
                                 for step, fn in lab.functions.items()},
            "scaler_decisions": [dict(d, t=round(d["ts"] - burst_at, 2)) for d in decisions],
            "runner_waits": [{k: e.get(k) for k in ("instance", "waited_s")} for e in first_out],
        })
        for step, fn in lab.functions.items():
            series = [p for p in sampler.timeline[fn] if p["ts"] >= burst_at]
            up = [p for p in series if p["replicas"] > 0]
            report.setdefault("cold_start_s", {})[step] = round(next(p["ts"] for p in series if p["available"] > 0) - burst_at, 2) if up else None
            report.setdefault("max_replicas", {})[step] = max((p["replicas"] for p in series), default=0)
        lab.playbook("present")  # a re-run changes nothing, also with the scaler's replicas on the functions
        report["rerun"] = lab.playbook_runs[-1]
        report["rerun_check"] = lab.playbook("present", check=True)
    finally:
        sampler.stop()
        report["seconds"] = round(time.monotonic() - started, 1)
        REPORTS.mkdir(parents=True, exist_ok=True)
        (REPORTS / "workflow.json").write_text(json.dumps(report, indent=2) + "\n")
        lab.delete()
    print("\nworkflow.json: %s" % json.dumps({k: v for k, v in report.items() if k not in ("replica_timeline", "scaler_decisions", "deploy")}))

    assert (report["lost"], report["duplicated"], report["unexpected"], report["output_lines"]) == (0, 0, [], COUNT), report
    assert [k["step"] for k in lab.kills] == ["upper", "reverse"]
    assert all(k["committed_before"] < COUNT for k in lab.kills), "a kill came after its step had finished: %s" % lab.kills
    for step, fn in lab.functions.items():
        series = report["replica_timeline"][step]
        before = [p for p in series if p["t"] < 0]
        assert before and before[-1]["replicas"] == 0, "%s was not at zero when the burst began: %s" % (step, series)
        assert report["max_replicas"][step] >= 2, "%s was not scaled up by the burst: %s" % (step, series)
        assert series[-1]["replicas"] == 0 and series[-1]["t"] > 0, "%s did not go back to zero: %s" % (step, series)
        ups = [d for d in report["scaler_decisions"] if d["function"] == fn and d["t"] >= 0 and d["replicas_to"] > d["replicas_from"]]
        zero = [d for d in report["scaler_decisions"] if d["function"] == fn and d["t"] > 0 and d["replicas_to"] == 0]
        assert ups and ups[0]["reason"] == "lag", "the scaler did not scale %s up on lag: %s" % (step, report["scaler_decisions"])
        assert zero and zero[-1]["reason"] == "idle", "the scaler did not idle %s to zero: %s" % (step, report["scaler_decisions"])
    assert "changed=0" in report["rerun"]["recap"], report["rerun"]
    assert "changed=0" in report["rerun_check"]["recap"], report["rerun_check"]
