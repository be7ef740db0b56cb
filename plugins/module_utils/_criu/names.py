# Copyright: streamops.day2 contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one rule for every user-given name that becomes a path (checkpoint and version names, version
prefixes, container names in store paths and transfer folders), checked before anything is done.

A name is one path component that Docker also accepts as a checkpoint name: 1 to 128 ASCII letters,
digits, ``_``, ``.`` and ``-``, starting with a letter or digit (so never ``.``, ``..``, a hidden
name, a ``/``, a NUL or a newline).
"""

from __future__ import annotations

import re

NAME_MAX = 128
NAME_RULE = "1 to %d ASCII letters, digits, '_', '.' or '-', starting with a letter or digit" % NAME_MAX
# fullmatch with explicit ASCII ranges: no '$' that would let a trailing newline through, no Unicode digits.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}" % (NAME_MAX - 1))
_PREFIX = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]*)?")
# A timestamped version is <prefix><UTC time>, the time being 20 characters (20250101T120000.250Z).
TIMESTAMP_LENGTH = 20


class BadName(ValueError):
    """A name that breaks the rule; the message is one sentence for the user."""


def shown(name, limit=40):
    """The name as the user can read it in one line (control characters escaped, long names cut)."""
    text = repr(name)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def check_name(kind, name):
    """Return name when it follows the rule, else raise BadName saying which rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadName("%s %s is not usable: a name is %s." % (kind, shown(name), NAME_RULE))
    return name


def check_container(name):
    """A container name or id as a path component; one leading '/' (as Docker prints names) is dropped."""
    if isinstance(name, str) and name.startswith("/"):
        name = name[1:]
    return check_name("Container name", name)


def check_prefix(prefix):
    """A prefix of timestamped versions: empty, or such that <prefix><UTC time> follows the rule."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix) or len(prefix) + TIMESTAMP_LENGTH > NAME_MAX:
        raise BadName("The prefix %s is not usable: versions are named <prefix><UTC time>, and a name is %s (so the prefix "
                      "has at most %d characters)." % (shown(prefix), NAME_RULE, NAME_MAX - TIMESTAMP_LENGTH))
    return prefix
