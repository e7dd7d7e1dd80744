#!/usr/bin/env bash
# Thin wrapper over build/build.proj (the build's logic lives in MSBuild).
#   ./build.sh build                       build everything into out/
#   ./build.sh test                        install prerequisites (OpenSSH, Node.js, PostgreSQL 15, pwsh 7.6.10, Pester 5.7.1), build,
#                                          run unit, integration and Pester tests
#   ./build.sh pester                      the module layout and the Pester suites only
#   ./build.sh sandbox [--clients N] [--hubs N] [--once] [--shell]
#                                          installs OpenSSH if missing, then a private sshd + hub + N agents on
#                                          127.0.0.1 (needs root); --shell opens pwsh with the module pointed at it;
#                                          --hubs 2 or more: that many sshd + hub pairs on a private PostgreSQL
#                                          registry (installs PostgreSQL 15 if missing), agents listing every hub
#   ./build.sh package                     out/packages: the module's Gallery .nupkg and self-contained agent binaries
set -euo pipefail
cd "$(dirname "$0")"
task="${1:-build}"
[ $# -gt 0 ] && shift

if ! command -v dotnet >/dev/null 2>&1; then
  echo "build.sh: the .NET SDK (dotnet) is required" >&2
  exit 1
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

msbuild() { dotnet msbuild build/build.proj -nologo -v:m "$@"; }

case "$task" in
  build)   msbuild -t:Build "$@" ;;
  test)    msbuild -t:Test "$@" ;;
  pester)  msbuild -t:Pester "$@" ;;
  package) msbuild -t:Package "$@" ;;
  sandbox)
    needs=sandbox previous=""
    for arg in "$@"; do
      [ "$previous" = --hubs ] && [ "$arg" != 1 ] && needs=sandbox-hubs
      previous="$arg"
    done
    msbuild -t:Prerequisites -p:PrerequisitesFor="$needs" && msbuild -t:Build && exec out/bin/eph-sandbox "$@" ;;
  *) echo "usage: ./build.sh build|test|pester|sandbox [--clients N] [--hubs N] [--once] [--shell]|package" >&2; exit 2 ;;
esac
