#requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests and runs EtPhoneHome. The twin of build.sh: both are thin over build/build.proj.
.EXAMPLE
    ./build.ps1 -Task Test
.EXAMPLE
    ./build.ps1 -Task Sandbox -Clients 3 -Once
.EXAMPLE
    ./build.ps1 -Task Pester -ExcludeTag Sandbox
    Builds only the module layout and runs the Pester suite without the sandbox end-to-end tests (hosts without sshd).
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

# The Pester suite runs in a child pwsh: a binary module cannot be unloaded, so each run gets a fresh process.
function Invoke-EphPester {
    $pester = Get-Module -ListAvailable Pester | Where-Object Version -GE '5.0' | Sort-Object Version -Descending | Select-Object -First 1
    if (-not $pester) {
        Write-Warning 'Pester 5 is not installed: the Pester suite in tests/pester was not run.'
        return
    }

    $exclude = ($ExcludeTag | ForEach-Object { "'$_'" }) -join ','
    $command = "Import-Module '$($pester.Path)'; `$c = New-PesterConfiguration; `$c.Run.Path = 'tests/pester'; `$c.Run.PassThru = `$true; " +
        "`$c.Output.Verbosity = 'Detailed'; `$c.Filter.ExcludeTag = @($exclude); `$r = Invoke-Pester -Configuration `$c; exit `$r.FailedCount + `$r.FailedBlocksCount"
    & pwsh -NoProfile -NonInteractive -Command $command
    if ($LASTEXITCODE -ne 0) { throw "Pester: $LASTEXITCODE failure(s)" }
}

switch ($Task) {
    'Build' { Invoke-EphMSBuild Build }
    'Package' { Invoke-EphMSBuild Package }
    'Test' {
        Invoke-EphMSBuild Test
        Invoke-EphPester
    }
    'Pester' {
        Invoke-EphMSBuild ModuleLayout
        Invoke-EphPester
    }
    'Sandbox' {
        Invoke-EphMSBuild Build
        $sandboxArgs = @('--clients', $Clients)
        if ($Once) { $sandboxArgs += '--once' }
        & "$PSScriptRoot/out/bin/eph-sandbox" @sandboxArgs
        exit $LASTEXITCODE
    }
}
