#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# The module as a new user meets it, each case in a fresh pwsh (a binary module cannot be unloaded): found on
# PSModulePath and auto-loaded by its first command, and started as an MCP server the way the README tells an MCP
# client to start it (`pwsh -NoProfile -Command Start-EphMcpServer`).

BeforeAll {
    $script:OutDir = (Resolve-Path (Join-Path $PSScriptRoot '../../out')).Path
    $script:Pwsh = [IO.Path]::Combine($PSHOME, $IsWindows ? 'pwsh.exe' : 'pwsh')
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-loading-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null

    # A fresh pwsh whose PSModulePath starts with out/ (where the EtPhoneHome folder is), as after Install-Module.
    function Invoke-FreshPwsh([string] $Command) {
        $psi = [Diagnostics.ProcessStartInfo]::new($script:Pwsh)
        foreach ($a in '-NoProfile', '-NonInteractive', '-Command', $Command) { $psi.ArgumentList.Add($a) }
        $psi.Environment['PSModulePath'] = $script:OutDir + [IO.Path]::PathSeparator + $env:PSModulePath
        $psi.Environment['ETPHONEHOME_DATA_DIR'] = $script:DataDir
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $process = [Diagnostics.Process]::Start($psi)
        $stdout = $process.StandardOutput.ReadToEndAsync()
        $stderr = $process.StandardError.ReadToEndAsync()
        if (-not $process.WaitForExit(60000)) { $process.Kill($true); throw "pwsh did not finish: $Command" }
        [pscustomobject]@{ ExitCode = $process.ExitCode; Stdout = $stdout.Result; Stderr = $stderr.Result }
    }
}

AfterAll {
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
}

Describe 'Loading' {
    It 'auto-loads from PSModulePath on the first command, without Import-Module' {
        $r = Invoke-FreshPwsh '(Get-EphConfiguration).DataDirectory; (Get-Module EtPhoneHome).Version.ToString(); @(Get-EphClient).Count'
        $r.Stderr | Should -BeNullOrEmpty
        $r.ExitCode | Should -Be 0
        $lines = $r.Stdout.Trim() -split '\r?\n'
        $lines[0] | Should -Be $script:DataDir
        $lines[1] | Should -Match '^\d+\.\d+\.\d+$'
        $lines[2] | Should -Be '0'
    }

    It 'imports by name, by path, and again after Remove-Module in the same session' {
        $r = Invoke-FreshPwsh ("Import-Module EtPhoneHome -ErrorAction Stop; Remove-Module EtPhoneHome; " +
            "Import-Module '$(Join-Path $script:OutDir 'EtPhoneHome')' -ErrorAction Stop; (Get-Command -Module EtPhoneHome).Count")
        $r.Stderr | Should -BeNullOrEmpty
        [int]($r.Stdout.Trim()) | Should -BeGreaterThan 20
    }

    It 'serves MCP over stdio when an MCP client runs pwsh -Command Start-EphMcpServer' {
        $psi = [Diagnostics.ProcessStartInfo]::new($script:Pwsh)
        foreach ($a in '-NoProfile', '-Command', 'Start-EphMcpServer') { $psi.ArgumentList.Add($a) }
        $psi.Environment['PSModulePath'] = $script:OutDir + [IO.Path]::PathSeparator + $env:PSModulePath
        $psi.Environment['ETPHONEHOME_DATA_DIR'] = $script:DataDir
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $process = [Diagnostics.Process]::Start($psi)
        $stderr = $process.StandardError.ReadToEndAsync()
        try {
            function Send($message) { $process.StandardInput.WriteLine(($message | ConvertTo-Json -Depth 10 -Compress)); $process.StandardInput.Flush() }
            function Receive([int] $Id) {
                $deadline = [DateTime]::UtcNow.AddSeconds(60)
                while ([DateTime]::UtcNow -lt $deadline) {
                    $read = $process.StandardOutput.ReadLineAsync()
                    if (-not $read.Wait(60000) -or $null -eq $read.Result) { break }
                    $message = $read.Result | ConvertFrom-Json -Depth 20
                    if ($message.id -eq $Id) { return $message }
                }
                throw "no answer to request $Id; stderr: $($stderr.Result)"
            }

            Send @{ jsonrpc = '2.0'; id = 1; method = 'initialize'; params = @{ protocolVersion = '2025-06-18'; capabilities = @{}; clientInfo = @{ name = 'pester'; version = '1.0' } } }
            $init = Receive 1
            $init.result.serverInfo.name | Should -Not -BeNullOrEmpty
            Send @{ jsonrpc = '2.0'; method = 'notifications/initialized' }
            Send @{ jsonrpc = '2.0'; id = 2; method = 'tools/list' }
            $tools = (Receive 2).result.tools.name
            $tools | Should -Contain 'list_clients'
            $tools | Should -Contain 'run_fleet_command'
            Send @{ jsonrpc = '2.0'; id = 3; method = 'tools/call'; params = @{ name = 'list_clients'; arguments = @{} } }
            $call = Receive 3
            $call.result.isError | Should -Not -BeTrue
        }
        finally {
            $process.StandardInput.Close()   # the client closing stdin ends the server
            if (-not $process.WaitForExit(20000)) { $process.Kill($true) }
        }
        $process.ExitCode | Should -Be 0
    }
}
