# shellcheck shell=bash
# What the lab's part scripts share (sourced by docker.sh and k8s.sh): messages, step timing, the Debian mirror.
# LAB_PART names the script in its messages.

say() { printf '[%s] %s\n' "${LAB_PART:-lab}" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# timed NAME CMD...: run a step and print how long it took (cold/warm start measurements).
timed() {
  local name=$1 t0; shift; t0=$(date +%s%N)
  "$@"
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  say "$(printf '%-22s %d.%03ds' "$name" $((ms / 1000)) $((ms % 1000)))"
}

# The system's own Debian mirror (first deb entry for this release), from deb822 or one-line files.
debian_mirror() {
  local codename uri
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  uri=$(awk -v cn="$codename" 'BEGIN { RS = ""; FS = "\n" }
    { types = suites = uris = ""; enabled = 1
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^Types:/) types = " " substr($i, 7) " "
        if ($i ~ /^Suites:/) suites = " " substr($i, 8) " "
        if ($i ~ /^URIs:/) uris = substr($i, 6)
        if ($i ~ /^Enabled:[ \t]*no/) enabled = 0
      }
      gsub(/[ \t]+/, " ", suites)
      if (enabled && types ~ / deb / && suites ~ (" " cn " ")) { split(uris, u, " "); print u[1]; exit }
    }' /dev/null /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -E 's/\[[^]]*\]//' | awk -v cn="$codename" '$1 == "deb" && $3 == cn { print $2; exit }')
  fi
  [ -n "$uri" ] || die "no Debian mirror for '$codename' in the apt sources; add the system's Debian entry first"
  printf '%s\n' "$uri"
}
