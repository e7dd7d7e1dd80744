#requires -Version 7.4
<#
.SYNOPSIS
    Runs the Pester suites in tests/pester against the built module (out/EtPhoneHome) and records the counts.
.DESCRIPTION
    Called by the Test target of build/build.proj (through the repo-local pwsh) with the path of the pinned Pester
    manifest. Writes out/test-results/pester.xml (NUnit) and pester-counts.xml, whose passed/failed/skipped the build
    adds to the totals. A block that fails to run (BeforeAll, a failed import) counts as failed, never as nothing.
    Exits with the number of failures.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $PesterManifest,
    [Parameter(Mandatory)] [string] $ResultsDirectory,
    [string[]] $ExcludeTag = @(),
    [string[]] $Path = @((Join-Path $PSScriptRoot '../tests/pester'))
)
$ErrorActionPreference = 'Stop'
New-Item -ItemType Directory -Force -Path $ResultsDirectory | Out-Null
$counts = Join-Path $ResultsDirectory 'pester-counts.xml'
Remove-Item -Force $counts -ErrorAction SilentlyContinue

Import-Module $PesterManifest -Force
$config = New-PesterConfiguration
# `pwsh -File` hands an array parameter over as one string: accept "a,b" too.
$config.Run.Path = @($Path | ForEach-Object { $_ -split ',' } | Where-Object { $_ })
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Detailed'
$config.Output.RenderMode = 'Plaintext'
$config.Filter.ExcludeTag = @($ExcludeTag | ForEach-Object { $_ -split ',' } | Where-Object { $_ })
$config.TestResult.Enabled = $true
$config.TestResult.OutputFormat = 'NUnitXml'
$config.TestResult.OutputPath = Join-Path $ResultsDirectory 'pester.xml'
$result = Invoke-Pester -Configuration $config

# Tests in a block whose BeforeAll failed are already failed tests; a block that failed while all its tests passed
# (an AfterAll) and a file that could not run at all count once each.
function Test-AnyFailed($block) {
    if ($null -eq $block) { return $false }
    foreach ($test in @($block.Tests)) { if ($test -and $test.Result -eq 'Failed') { return $true } }
    foreach ($child in @($block.Blocks)) { if ($child -and (Test-AnyFailed $child)) { return $true } }
    return $false
}
$failed = $result.FailedCount + $result.FailedContainersCount + @($result.FailedBlocks | Where-Object { -not (Test-AnyFailed $_) }).Count
$skipped = $result.SkippedCount + $result.NotRunCount
foreach ($test in @($result.Skipped)) { Write-Host "skipped: $($test.ExpandedPath)" }
"<counts passed='$($result.PassedCount)' failed='$failed' skipped='$skipped' />" | Set-Content -Path $counts -Encoding utf8
Write-Host "pester: $($result.PassedCount) passed, $failed failed, $skipped skipped"
exit $failed
