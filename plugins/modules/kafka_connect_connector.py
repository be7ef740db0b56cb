#!/usr/bin/python
# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_connect_connector
short_description: Manage Kafka Connect connectors
version_added: 0.2.0
description:
  - Creates, updates, pauses, resumes, stops and deletes a connector of a Kafka Connect cluster through its REST API.
  - The configuration is validated by Connect (C(PUT /connector-plugins/{class}/config/validate)) before anything is applied,
    also in check mode; every error Connect reports is returned in one message naming the fields, and nothing is changed.
  - O(config) is the connector's whole configuration, as C(PUT /connectors/{name}/config) takes it. It is compared with the
    effective configuration the worker holds (C(GET /connectors/{name}/config)), the way Connect reads it, so that a run with
    the same configuration reports no change. See O(config) for the rules.
  - Requests answered with HTTP 409 (the workers are rebalancing) are retried with back-off for up to O(timeout) seconds.
author:
  - streamops.day2 engineers (@streamops)
extends_documentation_fragment:
  - streamops.day2._connect
  - streamops.day2._attributes
  - streamops.day2._attributes.ACTIONGROUP_CONNECT
attributes:
  check_mode:
    support: full
    details:
      - The configuration is still validated by Connect (validation changes nothing).
      - Creation, updates, state changes and restarts are predicted, not made.
  diff_mode:
    support: full
    details: The configuration and state before and after; secrets show as V([secret]), or V([secret, changed]) where the value changes.
  idempotent:
    support: full
    details:
      - Except with O(force_update=true), which sends the configuration every run.
      - A key whose current value Connect masks (V([hidden])) cannot be compared; see O(force_update).
options:
  name:
    description: Name of the connector.
    type: str
    required: true
  state:
    description:
      - V(present) makes the connector exist with O(config) and leaves its run state (running, paused, stopped) as it is;
        a new connector starts running.
      - V(running) also resumes a paused or stopped connector.
      - V(paused) pauses it (C(PUT /connectors/{name}/pause)); its tasks stay assigned but process nothing.
      - V(stopped) stops it (C(PUT /connectors/{name}/stop), Kafka Connect 3.5 or later); its tasks are shut down and removed,
        which also allows its offsets to be altered.
      - A connector created with V(paused) or V(stopped) is created directly in that state (C(initial_state), Kafka Connect 3.7
        or later), so it never runs first.
      - V(absent) deletes it.
    type: str
    choices: [present, absent, paused, running, stopped]
    default: present
  config:
    description:
      - The connector's complete configuration; keys left out are removed from the connector when it is updated
        (C(PUT /connectors/{name}/config) replaces the whole configuration). A key set to V(null) is left out.
      - Required to create a connector. Without it an existing connector's configuration is left as it is
        (for example to pause or resume it).
      - C(connector.class) names the connector plugin, by its class name or an alias Connect accepts (the simple class name,
        with or without its C(Connector) suffix, for example V(FileStreamSource)). It may be left out for an existing connector,
        which keeps its class. An unknown class is an error listing the installed connector plugins (C(GET /connector-plugins)).
      - The C(name) key is implicit (the O(name) option); a different value is an error.
      - Values may be strings, numbers, booleans or lists (sent comma-separated); they are sent as strings.
      - 'Comparison with the current configuration: values are compared the way Connect parses the key''s declared type
        (booleans without regard to case, numbers by value, lists item by item, strings trimmed), keys the connector does not
        declare verbatim; C(connector.class) by the class its alias names; a key missing on one side equals its declared
        default on the other.'
      - Secrets (keys Connect declares as C(PASSWORD), and keys named like credentials, for example C(*password*), C(*secret*),
        C(sasl.jaas.config), C(*token*)) are never shown in results, diffs or messages.
      - Apache Kafka's worker returns secrets as stored, so a changed secret is detected like any other value. A worker or proxy
        that masks them returns V([hidden]); such a key cannot be compared, is listed in RV(unknown_keys), and never on its own
        makes the task change. To send a changed secret there, run the task once with O(force_update=true).
        Secrets held outside the configuration through a config provider (V(${file:/path:key})) are compared as the placeholder.
    type: dict
  force_update:
    description:
      - Send the configuration (C(PUT /connectors/{name}/config)) even when it compares equal, and report a change.
      - The way to push a secret the worker masks (see O(config)); Connect restarts the connector and its tasks.
    type: bool
    default: false
  restart_failed_tasks:
    description:
      - Restart the connector and the tasks that are C(FAILED)
        (C(POST /connectors/{name}/restart?includeTasks=true&onlyFailed=true)); reports a change only when something had failed.
      - Only with O(state=present) or O(state=running), and only when the configuration is not updated in the same run
        (an update restarts every task anyway).
    type: bool
    default: false
  wait:
    description:
      - Wait until the connector and every one of its tasks report C(RUNNING) (C(PAUSED) for O(state=paused);
        for O(state=stopped) the connector C(STOPPED) and no task left), or until it is gone for O(state=absent).
      - With O(state=present) the state waited for is the connector's own (a paused or stopped connector stays so).
      - A running connector needs at least one task to count as running. A stopped connector that is paused does not
        start, so it has no task until it is resumed.
      - The wait fails at once, with the first line of each failure's trace, when the connector or a task stays
        C(FAILED) for 3 seconds.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: float
    default: 60
notes:
  - Uses Kafka Connect's REST API with Ansible's own HTTP client; no Python library to install.
  - Connect distributes the connector's tasks to its workers after a rebalance; with O(wait=false) the module returns
    as soon as Connect has accepted the requests.
seealso:
  - name: Kafka Connect REST API
    description: The endpoints this module uses.
    link: https://kafka.apache.org/documentation/#connect_rest
  - module: streamops.day2.kafka_topic
"""

EXAMPLES = r"""
- name: Stream a file into a topic
  streamops.day2.kafka_connect_connector:
    url: https://connect-1:8083
    ca_path: /etc/pki/connect-ca.pem
    name: access-log-source
    config:
      connector.class: FileStreamSource
      file: /var/log/nginx/access.log
      topic: access-log
      tasks.max: 1

- name: A sink, with the worker address set once for every Connect task
  module_defaults:
    group/streamops.day2.connect:
      url: https://connect-1:8083
      url_username: day2-operator
      url_password: "{{ vault_connect_password }}"
  block:
    - name: Write the orders topic to a file
      streamops.day2.kafka_connect_connector:
        name: orders-archive
        config:
          connector.class: org.apache.kafka.connect.file.FileStreamSinkConnector
          topics: [orders, returns]
          file: /data/orders.jsonl
        restart_failed_tasks: true
        wait_timeout: 120

    - name: Pause it during maintenance of the file system
      streamops.day2.kafka_connect_connector:
        name: orders-archive
        state: paused

    - name: Resume it
      streamops.day2.kafka_connect_connector:
        name: orders-archive
        state: running

- name: Stop a connector (its tasks are removed) to reset its offsets
  streamops.day2.kafka_connect_connector:
    name: access-log-source
    state: stopped

- name: Push a rotated database password that the worker shows as [hidden]
  streamops.day2.kafka_connect_connector:
    name: orders-jdbc-sink
    config: "{{ orders_jdbc_sink_config }}"
    force_update: true

- name: Remove a connector
  streamops.day2.kafka_connect_connector:
    name: access-log-source
    state: absent
"""

RETURN = r"""
connector:
  description: The connector after the task (as it would be, in check mode). Empty when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the connector.
      type: str
      sample: access-log-source
    state:
      description: The connector's state as Connect reports it (C(RUNNING), C(PAUSED), C(STOPPED), C(FAILED), C(UNASSIGNED)), predicted in check mode.
      type: str
      sample: RUNNING
    config:
      description: Its configuration, secrets masked as V([secret]).
      type: dict
      sample: {connector.class: FileStreamSource, file: /var/log/nginx/access.log, topic: access-log, tasks.max: "1", name: access-log-source}
    tasks:
      description: Its tasks as Connect reports them; empty in check mode for a connector that does not exist yet.
      type: list
      elements: dict
      contains:
        id:
          description: Task number.
          type: int
        state:
          description: C(RUNNING), C(PAUSED), C(FAILED), C(UNASSIGNED) or C(RESTARTING).
          type: str
        worker_id:
          description: The worker running the task.
          type: str
        trace:
          description: First line of the failure, for a task that failed.
          type: str
          returned: when the task failed
      sample: [{id: 0, state: RUNNING, worker_id: "connect-1:8083"}]
    type:
      description: C(source) or C(sink); V(null) in check mode for a connector that does not exist yet.
      type: str
      sample: source
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["validate config", "update config: change file; set tasks.max", "resume connector access-log-source"]
unknown_keys:
  description: Keys of O(config) whose current value the worker masks (V([hidden])), which could not be compared.
  returned: always
  type: list
  elements: str
  sample: []
retries:
  description: Requests retried because the worker answered HTTP 409 (rebalance in progress).
  returned: always
  type: int
  sample: 0
validation_errors:
  description: On a configuration Connect rejects, its error messages per key.
  returned: on failure of validation
  type: dict
  sample: {topic: ["Missing required configuration \"topic\" which has no default value."]}
diff:
  description: The configuration and state before and after, secrets masked.
  returned: when run with C(--diff)
  type: dict
  sample:
    before: {config: {connector.class: FileStreamSource, file: /tmp/a, name: c1, topic: t}, state: RUNNING}
    after: {config: {connector.class: FileStreamSource, file: /tmp/b, name: c1, topic: t}, state: PAUSED}
"""

from ansible_collections.streamops.day2.plugins.module_utils._connect import ConnectModule, run_connector


def main():
    module = ConnectModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent", "paused", "running", "stopped"]),
            config=dict(type="dict"),
            force_update=dict(type="bool", default=False),
            restart_failed_tasks=dict(type="bool", default=False),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="float", default=60.0),
        ),
        supports_check_mode=True,
    )
    module.run(run_connector)


if __name__ == "__main__":
    main()
