#!/usr/bin/env bash
# Installs what the tests or the sandbox need on a Debian/Ubuntu machine.
#   prerequisites.sh test      OpenSSH client and server, Node.js and the S3-compatible test server of the exchange
#                              tests (npm, pinned in tests/s3/package-lock.json), PostgreSQL 15 (the registry tests
#                              start a private cluster of their own with its initdb and pg_ctl)
#   prerequisites.sh sandbox   OpenSSH client and server only
#   prerequisites.sh sandbox-hubs  OpenSSH and PostgreSQL 15 (the sandbox's several hubs share a private cluster)
# Called by the Prerequisites target of build/build.proj; safe to run repeatedly. PowerShell and Pester are .NET/NuGet
# packages the build restores itself (.config/dotnet-tools.json, build/TestTools).
set -euo pipefail
purpose="${1:-test}"
case "$purpose" in test|sandbox|sandbox-hubs) ;; *) echo "usage: prerequisites.sh [test|sandbox|sandbox-hubs]" >&2; exit 2 ;; esac

need=()
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 && command -v ssh-keyscan >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ "$purpose" = test ]; then
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
fi
if [ "$purpose" = test ] || [ "$purpose" = sandbox-hubs ]; then
  [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
fi
s3dir="$(cd "$(dirname "$0")/../tests/s3" && pwd)"

install_s3rver() {
  [ "$purpose" = test ] || return 0
  if [ -f "$s3dir/node_modules/@20minutes/s3rver/lib/cli.js" ]; then
    echo "prerequisites: s3rver present"
  else
    echo "prerequisites: installing the S3 test server (npm ci in tests/s3)"
    (cd "$s3dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  echo "prerequisites ($purpose): present"
  install_s3rver
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo -n)
else
  echo "prerequisites: missing ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
  exit 1
fi

echo "prerequisites: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ " ${need[*]} " == *" postgresql-15 "* ]]; then
  # The tests and the sandbox run their own cluster on a free port; Debian would otherwise create and start a system cluster on 5432.
  "${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/etphonehome-no-main-cluster.conf >/dev/null
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the system sshd on install; the project never uses it, and it is left as the system configured it.
install_s3rver
