#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Which clients a cmdlet acts on, and what it says about them, as a user meets it in pwsh: an empty upstream does
# nothing, the whole fleet takes -All, an unknown name refuses the whole operation, rate-limit warnings are
# PowerShell warnings, and a target that was not reached is an error record (a non-zero exit code is not).
# The first block needs only an empty registry; the second a real sandbox (tag 'Sandbox', like Sandbox.Tests.ps1).

BeforeDiscovery {
    # Every cmdlet that takes clients from the pipeline, with arguments that would act if a client arrived.
    $script:PipedCmdlets = @(
        @{ Name = 'Invoke-EphCommand'; Arguments = @{ Command = 'true' } }
        @{ Name = 'Copy-EphFile'; Arguments = @{ FromClient = $true; Path = '/etc/hostname'; Destination = 'x' } }
        @{ Name = 'Get-EphFileContent'; Arguments = @{ Path = '/etc/hostname' } }
        @{ Name = 'Set-EphFileContent'; Arguments = @{ Path = '/tmp/x'; Value = 'x' } }
        @{ Name = 'Get-EphChildItem'; Arguments = @{ Path = '/tmp' } }
        @{ Name = 'Get-EphClientMetric'; Arguments = @{} }
        @{ Name = 'Get-EphHistory'; Arguments = @{} }
        @{ Name = 'Get-EphRateLimitStats'; Arguments = @{} }
    )
}

Describe 'Targets with an empty registry' {
    BeforeAll {
        $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-targets-" + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:DataDir | Out-Null
        Import-Module (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1') -Force
        Set-EphConfiguration -DataDirectory $script:DataDir
    }

    AfterAll {
        Set-EphConfiguration -Reset -ErrorAction SilentlyContinue
        Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
    }

    It '<Name> without any client and without -All is a NoClient error, never the whole fleet' -ForEach @(
        @{ Name = 'Get-EphFileContent'; Arguments = @{ Path = '/etc/hostname' } }
        @{ Name = 'Get-EphChildItem'; Arguments = @{ Path = '/tmp' } }
        @{ Name = 'Set-EphFileContent'; Arguments = @{ Path = '/tmp/x'; Value = 'x' } }
        @{ Name = 'Copy-EphFile'; Arguments = @{ ToClient = $true; Path = $PSCommandPath; Destination = '/tmp/' } }
    ) {
        { & $Name @Arguments -ErrorAction Stop } | Should -Throw -ErrorId "NoClient,*"
    }

    It 'Get-EphClientMetric without any client and without -All is a NoClient error' {
        { Get-EphClientMetric -ErrorAction Stop } | Should -Throw -ErrorId 'NoClient,*'
    }

    It 'Invoke-EphCommand offers -All as its own parameter set, and -All with -ClientId does not bind' {
        (Get-Command Invoke-EphCommand).ParameterSets.Name | Should -Contain 'All'
        { Invoke-EphCommand -All -ClientId 'x' -Command 'true' } | Should -Throw -ErrorId 'AmbiguousParameterSet,*'
    }

    It '<Name> offers -All as its own parameter set, which does not bind with -ClientId' -ForEach @(
        @{ Name = 'Get-EphFileContent'; Sets = @('All'); Arguments = @{ Path = '/etc/hostname' } }
        @{ Name = 'Get-EphChildItem'; Sets = @('All'); Arguments = @{ Path = '/tmp' } }
        @{ Name = 'Set-EphFileContent'; Sets = @('TextAll', 'BytesAll'); Arguments = @{ Path = '/tmp/x'; Value = 'x' } }
        @{ Name = 'Copy-EphFile'; Sets = @('ToClientAll', 'FromClientAll'); Arguments = @{ ToClient = $true; Path = $PSCommandPath; Destination = '/tmp/' } }
        @{ Name = 'Get-EphClientMetric'; Sets = @('All'); Arguments = @{} }
    ) {
        $withAll = (Get-Command $Name).ParameterSets | Where-Object { $_.Parameters.Name -contains 'All' }
        $withAll.Name | Sort-Object | Should -Be ($Sets | Sort-Object)
        $withAll | ForEach-Object { $_.Parameters.Name | Should -Not -Contain 'ClientId' }
        { & $Name @Arguments -All -ClientId 'x' -ErrorAction Stop } | Should -Throw -ErrorId 'AmbiguousParameterSet,*'
    }

    It 'the help of <_> describes -All with an example' -ForEach @('Invoke-EphCommand', 'Copy-EphFile', 'Get-EphFileContent', 'Set-EphFileContent', 'Get-EphChildItem', 'Get-EphClientMetric') {
        $help = Get-Help $_ -Full
        ($help.parameters.parameter | Where-Object name -EQ 'All').description.Text | Should -Not -BeNullOrEmpty
        ($help.examples.example.code -join "`n") | Should -Match '-All\b'
    }
}

Describe 'Targets on a running sandbox' -Tag 'Sandbox' {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestSandbox.ps1')
        $script:Sandbox = Start-TestSandbox -Clients 3 -Name 'targets'
        $script:Work = $script:Sandbox.Work
        $script:DataDir = $script:Sandbox.DataDir

        Import-Module (Join-Path $PSScriptRoot '../../out/EtPhoneHome/EtPhoneHome.psd1') -Force
        Set-EphConfiguration -DataDirectory $script:DataDir
        $script:Marker = Join-Path $script:Work 'ran'

        # sandbox-3 goes offline: its agent is stopped (SIGTERM, by its process id), and the hub notices.
        $agent = Get-Process | Where-Object { $_.CommandLine -like "*eph-agent*run*--config-dir*$($script:Work)*sandbox-3*" } | Select-Object -First 1
        if (-not $agent) { throw 'the agent of sandbox-3 was not found' }
        & kill -TERM $agent.Id
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while ((Get-EphClient -Name 'sandbox-3').Online -and [DateTime]::UtcNow -lt $deadline) {
            Start-Sleep -Milliseconds 200   # the hub records the closed session; bounded by the deadline
        }
        (Get-EphClient -Name 'sandbox-3').Online | Should -BeFalse
    }

    AfterAll {
        Set-EphConfiguration -Reset -ErrorAction SilentlyContinue
        Stop-TestSandbox $script:Sandbox
    }

    BeforeEach {
        Remove-Item $script:Marker -ErrorAction SilentlyContinue
    }

    It '<Name> does nothing when the upstream delivers no client' -ForEach $script:PipedCmdlets {
        $output = Get-EphClient -Tag 'no-such-tag' | & $Name @Arguments -ErrorVariable err 3>&1
        $output | Should -BeNullOrEmpty
        $err | Should -BeNullOrEmpty
        $output = @() | & $Name @Arguments -ErrorVariable err 3>&1
        $output | Should -BeNullOrEmpty
        $err | Should -BeNullOrEmpty
    }

    It 'runs nothing on an empty upstream: the marker command never runs' {
        Get-EphClient -Tag 'no-such-tag' | Invoke-EphCommand -Command "touch $($script:Marker)" -ErrorAction SilentlyContinue
        Test-Path $script:Marker | Should -BeFalse
    }

    It 'runs on the whole fleet with -All' {
        $results = Invoke-EphCommand -All -Command 'echo all' -TimeoutSec 30 -ErrorAction SilentlyContinue
        $results | Should -HaveCount 3
        ($results | Where-Object Status -EQ 'Succeeded') | Should -HaveCount 2
    }

    It 'refuses the whole command when any name is unknown, naming every unknown name' {
        $thrown = $null
        try {
            Invoke-EphCommand -ClientId 'sandbox-1', 'sandbx-2', 'ghost' -Command "touch $($script:Marker)" -ErrorAction Stop
        }
        catch { $thrown = $_ }
        $thrown | Should -Not -BeNullOrEmpty
        $thrown.FullyQualifiedErrorId | Should -BeLike 'ClientNotFound,*'
        $thrown.ToString() | Should -Match "'sandbx-2'"
        $thrown.ToString() | Should -Match "'ghost'"
        Test-Path $script:Marker | Should -BeFalse
    }

    It 'refuses a request that breaks a limit before any client is contacted: <Why>' -ForEach @(
        @{ Why = 'a relative working directory'; Extra = @{ WorkingDirectory = 'srv/app' }; Words = 'absolute' }
        @{ Why = 'an environment name with ='; Extra = @{ Environment = @{ 'A=B' = '1' } }; Words = "without '='" }
    ) {
        $thrown = $null
        try {
            Invoke-EphCommand -All -Command "touch $($script:Marker)" @Extra -ErrorAction Stop
        }
        catch { $thrown = $_ }
        $thrown | Should -Not -BeNullOrEmpty
        $thrown.FullyQualifiedErrorId | Should -BeLike 'InvalidCommandRequest,*'
        $thrown.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $thrown.ToString() | Should -Match ([regex]::Escape($Words))
        Test-Path $script:Marker | Should -BeFalse
    }

    It 'refuses a file read as a whole when any name is unknown' {
        { Get-EphFileContent -ClientId 'sandbox-1', 'ghost' -Path '/etc/hostname' -ErrorAction Stop } | Should -Throw -ErrorId 'ClientNotFound,*'
        # A refusal is terminating (nothing was done), so -ErrorAction SilentlyContinue does not turn it into partial output.
        $out = try { Get-EphFileContent -ClientId 'sandbox-1', 'ghost' -Path '/etc/hostname' -ErrorAction SilentlyContinue } catch { 'refused' }
        $out | Should -Be 'refused'
    }

    It 'writes an offline client as a ClientOffline error record beside its result' {
        $results = Get-EphClient -Name 'sandbox-3' | Invoke-EphCommand -Command 'true' -ErrorVariable err -ErrorAction SilentlyContinue
        $results | Should -HaveCount 1
        $results.Status | Should -Be 'Offline'
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ClientOffline,*'
        $err[0].CategoryInfo.Category | Should -Be 'ResourceUnavailable'
    }

    It 'stops a rollout at an offline client with -ErrorAction Stop, and $? is false without it' {
        { Invoke-EphCommand -ClientId 'sandbox-3' -Command 'true' -ErrorAction Stop } | Should -Throw -ErrorId 'ClientOffline,*'
        Invoke-EphCommand -ClientId 'sandbox-3' -Command 'true' -ErrorAction SilentlyContinue | Out-Null
        $? | Should -BeFalse
    }

    It 'writes an offline client as a ClientOffline error record from <Name> too' -ForEach @(
        @{ Name = 'Get-EphClientMetric'; Arguments = @{ Summary = $true; TimeoutSec = 30 } }
        @{ Name = 'Copy-EphFile'; Arguments = @{ FromClient = $true; Path = '/etc/hostname'; Destination = 'offline-copy' } }
    ) {
        Push-Location $script:Work
        try {
            $results = Get-EphClient -Name 'sandbox-3' | & $Name @Arguments -ErrorVariable err -ErrorAction SilentlyContinue
        }
        finally { Pop-Location }
        $results | Should -HaveCount 1
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ClientOffline,*'
    }

    It 'answers a non-zero exit with a Failed result and no error record' {
        $result = Invoke-EphCommand -ClientId 'sandbox-1' -Command 'exit 3' -TimeoutSec 30 -ErrorVariable err
        $result.Status | Should -Be 'Failed'
        $result.ExitCode | Should -Be 3
        $err | Should -BeNullOrEmpty
    }

    It 'writes a rate-limit warning to the warning stream (-WarningVariable, 3>)' {
        Set-EphClient -Id 'sandbox-2' -RateLimitRpm 1
        try {
            $results = 1..2 | ForEach-Object { Invoke-EphCommand -ClientId 'sandbox-2' -Command 'true' -TimeoutSec 30 -WarningVariable +warned -WarningAction SilentlyContinue -ErrorVariable +failed }
            $results | Should -HaveCount 2
            $results | Where-Object { $_ -is [string] } | Should -BeNullOrEmpty   # the warning is not output
            $failed | Should -BeNullOrEmpty                                           # nor an error
            $warned | Should -Not -BeNullOrEmpty
            "$($warned[0])" | Should -Match 'warn mode'
            $redirected = Invoke-EphCommand -ClientId 'sandbox-2' -Command 'true' -TimeoutSec 30 3>&1 | Where-Object { $_ -is [System.Management.Automation.WarningRecord] }
            $redirected | Should -Not -BeNullOrEmpty
        }
        finally {
            Set-EphClient -Id 'sandbox-2' -RateLimitRpm 60
        }
    }
}
