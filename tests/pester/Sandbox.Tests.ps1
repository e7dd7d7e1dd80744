#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# End to end against a real sandbox: private sshd + hub + agents on 127.0.0.1 (out/bin/eph-sandbox, which needs
# root and OpenSSH). Tagged 'Sandbox' so hosts without sshd (the Windows CI legs) exclude it by tag.

Describe 'A running sandbox' -Tag 'Sandbox' {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestSandbox.ps1')
        $script:ModuleDir = Resolve-Path (Join-Path $PSScriptRoot '../../out/EtPhoneHome')
        $script:Sandbox = Start-TestSandbox -Clients 2 -Name 'sandbox'
        $script:Work = $script:Sandbox.Work
        $script:DataDir = $script:Sandbox.DataDir
        Import-Module (Join-Path $script:ModuleDir 'EtPhoneHome.psd1') -Force
        Set-EphConfiguration -DataDirectory $script:DataDir
    }

    AfterAll {
        Set-EphConfiguration -Reset -ErrorAction SilentlyContinue
        Stop-TestSandbox $script:Sandbox
    }

    It 'lists the sandbox clients online' {
        $clients = Get-EphClient -Online
        $clients | Should -HaveCount 2
        $clients.Name | Sort-Object | Should -Be @('sandbox-1', 'sandbox-2')
        $clients[0].PSObject.TypeNames[0] | Should -Be 'EtPhoneHome.EphClient'
    }

    It 'fans a command out from the pipeline, one result per client' {
        $results = Get-EphClient -Name 'sandbox-*' | Invoke-EphCommand -Command 'echo hello-from-$(hostname)' -TimeoutSec 30
        $results | Should -HaveCount 2
        $results.Status | Should -Be @('Succeeded', 'Succeeded')
        $results.ExitCode | Should -Be @(0, 0)
        $results | ForEach-Object { $_.Stdout | Should -Match '^hello-from-' }
        ($results | Format-Table | Out-String) | Should -Match 'hello-from-'
    }

    It 'gives command output line by line, as Invoke-Command and Posh-SSH do, and to CSV as values' {
        $result = Get-EphClient -Name 'sandbox-1' | Invoke-EphCommand -Command 'printf "one\ntwo\n"' -TimeoutSec 30
        $result.Output | Should -Be @('one', 'two')
        $result | Select-Object -ExpandProperty Output | Should -Be @('one', 'two')
        ($result | Select-Object PSComputerName, Status, Output | ConvertTo-Csv | ConvertFrom-Csv).Output | Should -Be 'one;two'
        ($result | Select-Object Status | ConvertTo-Csv | ConvertFrom-Csv).Status | Should -Be 'Succeeded'
    }

    It "shows a client's output and file names in the default views without letting them drive the terminal" {
        # What a compromised client could print: OSC 52 (write the operator's clipboard), clear screen, a lone CR
        # that hides the start of a line. The objects keep the exact bytes; only the views escape. Failure messages
        # show the text escaped (raw control characters would also break the test report).
        $visible = { param($text) [regex]::Replace($text, '[\x00-\x1f\x7f]', { '<{0:x2}>' -f [int][char]$args[0].Value }) }
        $controls = '[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)'
        $hostile = 'printf "ok\033]52;c;ZWNobyBwd25lZA==\007\033[2J\rfake\n"'
        $result = Get-EphClient -Name 'sandbox-1' | Invoke-EphCommand -Command $hostile -TimeoutSec 30
        & $visible $result.Stdout | Should -Be 'ok<1b>]52;c;ZWNobyBwd25lZA==<07><1b>[2J<0d>fake<0a>' -Because 'the object keeps the exact output'
        $shown = ($result | Format-Table | Out-String) + ($result | Format-List | Out-String)
        ($shown -match $controls) | Should -BeFalse -Because "the views escape control characters: $(& $visible $shown)"
        $shown | Should -Match 'ok.*52;c;ZWNobyBwd25lZA=='

        $dir = Join-Path $script:Work "hostile-names-$(Get-Random)"
        $make = "mkdir -p '$dir' && printf 'x\033[2Jy\n' > `"$dir/`$(printf 'n\033]0;t\007me')`""
        (Get-EphClient -Name 'sandbox-1' | Invoke-EphCommand -Command $make -TimeoutSec 30).Status | Should -Be 'Succeeded'
        $entries = @(Get-EphChildItem -ClientId 'sandbox-1' -Path $dir)
        & $visible $entries[0].Name | Should -Be 'n<1b>]0;t<07>me'
        $shown = $entries | Out-String
        ($shown -match $controls) | Should -BeFalse -Because "the listing view escapes file names: $(& $visible $shown)"
        $content = Get-EphFileContent -ClientId 'sandbox-1' -Path $entries[0].FullName
        & $visible $content.Content | Should -Be 'x<1b>[2Jy<0a>'
        $shown = $content | Out-String
        ($shown -match $controls) | Should -BeFalse -Because "the content view escapes the text: $(& $visible $shown)"
    }

    It 'binds -ClientId by property name and runs nothing with -WhatIf' {
        $marker = Join-Path $script:Work 'whatif-marker'
        $results = Get-EphClient | Select-Object Id | Invoke-EphCommand -Command "touch $marker" -WhatIf
        $results | Should -BeNullOrEmpty
        Test-Path $marker | Should -BeFalse
    }

    It 'searches by tag, query, capability and name, intersecting' {
        (Get-EphClient -Tag 'SANDBOX') | Should -HaveCount 2
        (Get-EphClient -Tag 'sandbox', 'no-such-tag') | Should -BeNullOrEmpty
        (Get-EphClient -Query 'BOX-1').Name | Should -Be 'sandbox-1'
        (Get-EphClient -Capability 'ssh') | Should -HaveCount 2   # detected on every agent of this host
        (Get-EphClient 'sandbox-?' -Tag 'sandbox' -Online) | Should -HaveCount 2
    }

    It 'edits a fleet from the pipeline, and -WhatIf changes nothing' {
        Get-EphClient -Tag 'sandbox' | Set-EphClient -AddTag 'pester-wave' -Purpose 'pester run'
        $tagged = Get-EphClient -Tag 'pester-wave'
        $tagged | Should -HaveCount 2
        $tagged.Purpose | Should -Be @('pester run', 'pester run')

        Get-EphClient -Tag 'pester-wave' | Set-EphClient -RemoveTag 'pester-wave' -WhatIf
        (Get-EphClient -Tag 'pester-wave') | Should -HaveCount 2
        $passed = Get-EphClient -Tag 'pester-wave' | Set-EphClient -RemoveTag 'pester-wave' -PassThru
        $passed | Should -HaveCount 2
        $passed[0].Tags | Should -Not -Contain 'pester-wave'
        (Get-EphClient -Tag 'pester-wave') | Should -BeNullOrEmpty
    }

    It 'keeps an edit through the pipeline by property name (Id)' {
        $client = Get-EphClient -Name 'sandbox-1'
        [pscustomobject]@{ Id = $client.Id } | Set-EphClient -RateLimitRpm 500
        (Get-EphClient -Id $client.Id).RateLimitRpm | Should -Be 500
        { Set-EphClient -Id $client.Id -RateLimitRpm 1001 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
    }

    It 'lists the approved keys of the sandbox clients' {
        $keys = Get-EphClientKey
        ($keys | Where-Object Status -EQ 'Approved') | Should -HaveCount 2
        Get-EphClientKey -Pending | Should -BeNullOrEmpty
    }

    It 'collects metrics from the pipeline and sums up the fleet' {
        $metrics = Get-EphClient -Tag 'sandbox' | Get-EphClientMetric -Summary -TimeoutSec 30
        $metrics | Should -HaveCount 2
        $metrics.Status | Should -Be @('Succeeded', 'Succeeded')
        $metrics | ForEach-Object { $_.MemoryPercent | Should -BeGreaterThan 0 }
        $status = Get-EphFleetStatus -TimeoutSec 30
        $status.Total | Should -Be 2
        $status.Online | Should -Be 2
        $status.Unreachable | Should -BeNullOrEmpty
    }

    It 'counts requests per client and records them in the history' {
        $client = Get-EphClient -Name 'sandbox-2'
        $client | Invoke-EphCommand -Command 'true' -TimeoutSec 30 | Out-Null
        $stats = $client | Get-EphRateLimitStats
        $stats.RequestsPerMinute | Should -BeGreaterOrEqual 1
        $stats.RpmLimit | Should -Be 60
        $stats.ConcurrentLimit | Should -Be 10
        $entry = Get-EphHistory -ClientId $client.Id -Operation 'run_command' -First 1
        $entry | Should -HaveCount 1
        $entry.Surface | Should -Be 'pwsh'
        $entry.Status | Should -Be 'Succeeded'
    }

    It 'shows a removal with -WhatIf and keeps the client' {
        Get-EphClient -Name 'sandbox-2' | Remove-EphClient -WhatIf
        Get-EphClient -Name 'sandbox-2' | Should -HaveCount 1
    }

    It 'completes the sandbox client names from the registry' {
        $result = TabExpansion2 -inputScript 'Get-EphClient -Name sand' -cursorColumn 'Get-EphClient -Name sand'.Length
        $result.CompletionMatches.CompletionText | Should -Be @('sandbox-1', 'sandbox-2')
    }
}
