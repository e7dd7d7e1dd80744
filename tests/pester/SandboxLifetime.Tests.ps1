#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# A test run that dies must not leave a sandbox behind: eph-sandbox --exit-with-parent stops its sshd, hub and agents
# when the process that started it is gone (the Sandbox suite starts it that way).

Describe 'A sandbox whose starter dies' -Tag 'Sandbox' {
    BeforeAll {
        $script:Work = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-lifetime-" + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:Work | Out-Null
        $script:Log = Join-Path $script:Work 'sandbox.out'
        $sandbox = (Resolve-Path (Join-Path $PSScriptRoot '../../out/bin/eph-sandbox')).Path
        $pwsh = [IO.Path]::Combine($PSHOME, 'pwsh')
        # The starter: a pwsh that launches the sandbox, then waits to be killed (bounded: 10 minutes).
        $inner = "Start-Process -FilePath '$sandbox' -ArgumentList '--clients','1','--exit-with-parent','--work','$(Join-Path $script:Work 'env')' " +
            "-RedirectStandardOutput '$script:Log' -RedirectStandardError '$(Join-Path $script:Work 'sandbox.err')'; Start-Sleep -Seconds 600"
        $script:Starter = Start-Process -FilePath $pwsh -ArgumentList '-NoProfile', '-NonInteractive', '-Command', $inner -PassThru
    }

    AfterAll {
        if ($script:Starter -and -not $script:Starter.HasExited) { $script:Starter.Kill($true) }
        foreach ($id in @($script:Tree | Where-Object { $_ })) { Stop-Process -Id $id -Force -ErrorAction SilentlyContinue }
        Remove-Item -Recurse -Force $script:Work -ErrorAction SilentlyContinue
    }

    It 'stops sshd, the hub and the agents once the starter is killed' {
        $deadline = [DateTime]::UtcNow.AddSeconds(120)
        function Test-Ready { (Test-Path $script:Log) -and (Select-String -Path $script:Log -Pattern 'clients --data' -Quiet) }
        while (-not (Test-Ready) -and [DateTime]::UtcNow -lt $deadline -and -not $script:Starter.HasExited) {
            Start-Sleep -Milliseconds 200   # polling a file another process writes; bounded by the deadline
        }
        Test-Ready | Should -BeTrue -Because "the sandbox should start: $(Get-Content -Raw (Join-Path $script:Work 'sandbox.err') -ErrorAction SilentlyContinue)"

        # Everything under the starter: the sandbox, sshd, the hub, the agent and its ssh.
        function Get-Descendants([int] $Root) {
            $children = Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$' | ForEach-Object {
                $stat = Get-Content -Raw "/proc/$($_.Name)/stat" -ErrorAction SilentlyContinue
                if ($stat -and $stat -match '\)\s+\S+\s+(\d+)' -and [int]$Matches[1] -eq $Root) { [int]$_.Name }
            }
            foreach ($child in $children) { $child; Get-Descendants $child }
        }
        $script:Tree = @(Get-Descendants $script:Starter.Id)
        $names = $script:Tree | ForEach-Object { (Get-Content -Raw "/proc/$_/comm" -ErrorAction SilentlyContinue)?.Trim() }
        $names | Should -Contain 'eph-sandbox'
        $names | Should -Contain 'sshd'
        $names | Should -Contain 'eph-agent'

        $script:Starter.Kill()   # the starter alone, as a crash would end it: no chance to clean up
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        do {
            Start-Sleep -Milliseconds 250
            $alive = @($script:Tree | Where-Object { Test-Path "/proc/$_" } | Where-Object {
                    # A zombie waiting for its reaper is gone for every purpose here.
                    (Get-Content -Raw "/proc/$_/stat" -ErrorAction SilentlyContinue) -notmatch '\)\s+Z\s'
                })
        } while ($alive.Count -gt 0 -and [DateTime]::UtcNow -lt $deadline)
        $alive | Should -BeNullOrEmpty -Because 'every process the sandbox started stops with it'
    }
}
