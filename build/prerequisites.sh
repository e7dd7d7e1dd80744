#!/usr/bin/env bash
# Installs what the tests need on a Debian/Ubuntu machine: OpenSSH client and server.
# Called by the Prerequisites target of build/build.proj; safe to run repeatedly.
set -euo pipefail

need=()
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 && command -v ssh-keyscan >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)

if [ ${#need[@]} -eq 0 ]; then
  echo "prerequisites: openssh-client and openssh-server present"
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
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the system sshd on install; the project never uses it, and it is left as the system configured it.
