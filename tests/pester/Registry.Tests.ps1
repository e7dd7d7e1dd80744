#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0' }
# Pester 5 tests of the fleet-registry cmdlets against an empty registry (no agents needed, so every CI leg runs
# them): parameter validation, errors for unknown clients and keys, -WhatIf, the fleet view of an empty fleet,
# and a signed test webhook received by a listener on 127.0.0.1. Sandbox.Tests.ps1 covers them with real clients.

BeforeAll {
    $script:ModuleDir = Resolve-Path (Join-Path $PSScriptRoot '../../out/EtPhoneHome')
    $script:DataDir = Join-Path ([IO.Path]::GetTempPath()) ("eph-pester-registry-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $script:DataDir | Out-Null
    $env:ETPHONEHOME_DATA_DIR = $script:DataDir
    Import-Module (Join-Path $script:ModuleDir 'EtPhoneHome.psd1') -Force
}

AfterAll {
    Remove-Module EtPhoneHome -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $script:DataDir -ErrorAction SilentlyContinue
    Remove-Item Env:ETPHONEHOME_DATA_DIR, Env:ETPHONEHOME_WEBHOOK_URL, Env:ETPHONEHOME_WEBHOOK_SECRET -ErrorAction SilentlyContinue
}

Describe 'Set-EphClient' {
    It 'refuses <Name> = <Value> before touching the registry' -ForEach @(
        @{ Name = 'DisplayName'; Value = '' }
        @{ Name = 'DisplayName'; Value = ('x' * 101) }
        @{ Name = 'Purpose'; Value = ('x' * 201) }
        @{ Name = 'RateLimitRpm'; Value = 0 }
        @{ Name = 'RateLimitRpm'; Value = 1001 }
        @{ Name = 'RateLimitConcurrent'; Value = 101 }
    ) {
        $arguments = @{ Id = 'some-client'; $Name = $Value }
        { Set-EphClient @arguments } | Should -Throw -ErrorId 'ParameterArgumentValidationError,EtPhoneHome.SetEphClientCommand'
    }

    It 'reports an unknown client as ClientNotFound and goes on with the next' {
        Set-EphClient -Id 'no-such-client', 'nor-this-one' -Purpose 'x' -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err | Should -HaveCount 2
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ClientNotFound,*'
    }

    It 'supports -WhatIf and -Confirm' {
        $command = Get-Command Set-EphClient
        $command.Parameters.Keys | Should -Contain 'WhatIf'
        $command.Parameters.Keys | Should -Contain 'Confirm'
    }
}

Describe 'Keys and removal' {
    It 'lists no pending key in a new registry' {
        Get-EphClientKey -Pending | Should -BeNullOrEmpty
    }

    It 'reports an unknown fingerprint when approving and revoking' {
        Approve-EphClientKey -Fingerprint 'SHA256:unknown' -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err | Should -Not -BeNullOrEmpty
        Revoke-EphClientKey -Fingerprint 'SHA256:unknown' -ErrorVariable err2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err2 | Should -Not -BeNullOrEmpty
    }

    It 'reports an unknown client on Remove-EphClient' {
        Remove-EphClient -Id 'no-such-client' -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ClientNotFound,*'
    }
}

Describe 'Fleet view, limits and history of an empty fleet' {
    It 'counts nothing and lists nothing' {
        $status = Get-EphFleetStatus
        $status.Total | Should -Be 0
        $status.Online | Should -Be 0
        $status.PendingKeys | Should -Be 0
        $status.Unreachable | Should -BeNullOrEmpty
        $status.CpuThreshold | Should -Be 80
        $status.MemoryThreshold | Should -Be 85
        $status.DiskThreshold | Should -Be 85
    }

    It 'has no rate-limit stats and no history' {
        Get-EphRateLimitStats | Should -BeNullOrEmpty
        Get-EphHistory | Should -BeNullOrEmpty
        Get-EphWebhookDelivery | Should -BeNullOrEmpty
    }

    It 'refuses a history range that ends before it starts' {
        { Get-EphHistory -Since (Get-Date) -Until (Get-Date).AddHours(-1) } | Should -Throw -ErrorId 'InvalidHistoryQuery,*'
    }

    It 'pages history with -First and -Skip' {
        (Get-Command Get-EphHistory).Parameters.Keys | Should -Contain 'First'
        (Get-Command Get-EphHistory).Parameters.Keys | Should -Contain 'Skip'
    }
}

Describe 'Test-EphWebhook' {
    AfterEach { Remove-Item Env:ETPHONEHOME_WEBHOOK_URL, Env:ETPHONEHOME_WEBHOOK_SECRET -ErrorAction SilentlyContinue }

    It 'says so when no webhook is configured' {
        Remove-Item Env:ETPHONEHOME_WEBHOOK_URL -ErrorAction SilentlyContinue
        Test-EphWebhook -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'WebhookNotConfigured,*'
    }

    It 'refuses a URL that is not http or https' {
        Test-EphWebhook -Url 'ftp://127.0.0.1/hook' -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'WebhookUrlInvalid,*'
    }

    It 'sends nothing with -WhatIf' {
        $result = Test-EphWebhook -Url 'http://127.0.0.1:9/hook' -WhatIf
        $result | Should -BeNullOrEmpty
    }

    It 'delivers a signed test event that the receiver can verify' {
        # A listener on a free loopback port, answering one request.
        $probe = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $probe.Start(); $port = $probe.LocalEndpoint.Port; $probe.Stop()
        $listener = [System.Net.HttpListener]::new()
        $listener.Prefixes.Add("http://127.0.0.1:$port/hook/")
        $listener.Start()
        try {
            $secret = 'pester-' + [guid]::NewGuid()
            $env:ETPHONEHOME_WEBHOOK_SECRET = $secret
            $pending = $listener.GetContextAsync()
            $job = Start-ThreadJob -ScriptBlock {
                param($url, $module, $data, $secret)
                $env:ETPHONEHOME_DATA_DIR = $data; $env:ETPHONEHOME_WEBHOOK_SECRET = $secret
                Import-Module $module
                Test-EphWebhook -Url $url -TimeoutSec 10
            } -ArgumentList "http://127.0.0.1:$port/hook/", (Join-Path $script:ModuleDir 'EtPhoneHome.psd1'), $script:DataDir, $secret
            $pending.Wait(15000) | Should -BeTrue
            $context = $pending.Result
            $body = [IO.StreamReader]::new($context.Request.InputStream).ReadToEnd()
            $headers = $context.Request.Headers
            $context.Response.StatusCode = 204
            $context.Response.Close()
            $result = $job | Wait-Job -Timeout 30 | Receive-Job

            $hmac = [System.Security.Cryptography.HMACSHA256]::new([Text.Encoding]::UTF8.GetBytes($secret))
            $expected = 'sha256=' + [Convert]::ToHexString($hmac.ComputeHash([Text.Encoding]::UTF8.GetBytes($headers['X-EtPhoneHome-Timestamp'] + '.' + $body))).ToLowerInvariant()
            $headers['X-EtPhoneHome-Signature'] | Should -Be $expected
            $headers['X-EtPhoneHome-Delivery'] | Should -Not -BeNullOrEmpty
            ($body | ConvertFrom-Json).delivery_id | Should -Be $headers['X-EtPhoneHome-Delivery']
            $result.Success | Should -BeTrue
            $result.StatusCode | Should -Be 204
        }
        finally {
            $listener.Stop()
            Get-Job | Remove-Job -Force -ErrorAction SilentlyContinue
        }
    }
}
