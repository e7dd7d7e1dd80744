#requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests and runs EtPhoneHome. The twin of build.sh: both are thin over build/build.proj.
.EXAMPLE
    ./build.ps1 -Task Test
.EXAMPLE
    ./build.ps1 -Task Sandbox -Clients 3 -Once
.EXAMPLE
    ./build.ps1 -Task Sandbox -Hubs 2 -Clients 4 -Once
    Two sshd + hub pairs on a private PostgreSQL registry, the agents' first servers alternating between them.
.EXAMPLE
    ./build.ps1 -Task Pester -ExcludeTag Sandbox
    Builds only the module layout and runs the Pester suites without the sandbox end-to-end tests (hosts without sshd),
    in the pinned pwsh 7.6.10 with Pester 5.7.1, both installed by the build.
.EXAMPLE
    ./build.ps1 -Task Package
    Writes out/packages/EtPhoneHome.<version>.nupkg and the agent binaries for the platforms the toolchain can build.
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Pester', 'Sandbox', 'Package')]
    [string] $Task = 'Build',
    [string[]] $ExcludeTag = @(),
    [ValidateRange(1, 200)]
    [int] $Clients = 3,
    [ValidateRange(1, 8)]
    [int] $Hubs = 1,
    [switch] $Once
)
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

function Invoke-EphMSBuild([string] $Target, [string[]] $Arguments = @()) {
    & dotnet msbuild build/build.proj -nologo -v:m "-t:$Target" @Arguments
    if ($LASTEXITCODE -ne 0) { throw "build target $Target failed (exit $LASTEXITCODE)" }
}

switch ($Task) {
    'Build' { Invoke-EphMSBuild Build }
    'Package' { Invoke-EphMSBuild Package }
    # Test runs unit, integration and Pester tests (pwsh and Pester are installed by the build, pinned).
    'Test' { Invoke-EphMSBuild Test }
    'Pester' {
        $arguments = if ($ExcludeTag) { "-p:PesterArguments=-ExcludeTag $($ExcludeTag -join ',')" }
        Invoke-EphMSBuild Pester $arguments
    }
    'Sandbox' {
        Invoke-EphMSBuild Build
        $sandboxArgs = @('--clients', $Clients)
        if ($Hubs -gt 1) { $sandboxArgs += @('--hubs', $Hubs) }
        if ($Once) { $sandboxArgs += '--once' }
        & "$PSScriptRoot/out/bin/eph-sandbox" @sandboxArgs
        exit $LASTEXITCODE
    }
}
