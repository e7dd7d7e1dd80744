#requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests and runs EtPhoneHome. The twin of build.sh: both are thin over build/build.proj.
.EXAMPLE
    ./build.ps1 -Task Test
.EXAMPLE
    ./build.ps1 -Task Sandbox -Clients 3 -Once
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Sandbox', 'Package')]
    [string] $Task = 'Build',
    [ValidateRange(1, 200)]
    [int] $Clients = 3,
    [switch] $Once
)
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

function Invoke-EphMSBuild([string] $Target) {
    & dotnet msbuild build/build.proj -nologo -v:m "-t:$Target"
    if ($LASTEXITCODE -ne 0) { throw "build target $Target failed (exit $LASTEXITCODE)" }
}

switch ($Task) {
    'Build' { Invoke-EphMSBuild Build }
    'Package' { Invoke-EphMSBuild Package }
    'Test' {
        Invoke-EphMSBuild Test
        $pester = Get-Module -ListAvailable Pester | Where-Object Version -GE '5.0' | Select-Object -First 1
        if ($pester) {
            Import-Module $pester
            $result = Invoke-Pester -Path tests/pester -PassThru -Output Detailed
            if ($result.FailedCount -gt 0) { throw "$($result.FailedCount) Pester test(s) failed" }
        }
        else {
            Write-Warning 'Pester 5 is not installed: the Pester suite in tests/pester was not run.'
        }
    }
    'Sandbox' {
        Invoke-EphMSBuild Build
        $sandboxArgs = @('--clients', $Clients)
        if ($Once) { $sandboxArgs += '--once' }
        & "$PSScriptRoot/out/bin/eph-sandbox" @sandboxArgs
        exit $LASTEXITCODE
    }
}
